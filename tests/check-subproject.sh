#!/bin/sh
# SPDX-License-Identifier: MIT
# check-subproject.sh - dynshm behaves as a Meson subproject should.
#
# tests/subproject/ is a tiny parent project.  It is copied to a temporary
# directory with this source tree linked in as subprojects/dynshm, and
# configured with CMocka out of sight (PKG_CONFIG_LIBDIR points to an empty
# directory) once per default_library.  Each time:
#   - configure succeeds and never looks for CMocka (tests are off);
#   - `meson test --list` shows the parent's one test, none of dynshm's;
#   - dsm_demo, the benchmarks and the man pages are not built;
#   - installing puts in the parent's files and, with default_library=shared,
#     libdynshm.so*, nothing else: no headers, .pc, .a, dsm_demo, pages;
#   - the parent's program links what default_library built (NEEDED
#     libdynshm.so.0 only when shared) and works.
#
# usage: check-subproject.sh <dynshm source root> <meson...>
set -u

die() { echo "check-subproject: $*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: $0 <source root> <meson...>"
src=$1
shift
[ -f "$src/tests/subproject/meson.build" ] || die "no $src/tests/subproject"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dynshm-test.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM PIPE

mkdir "$tmp/parent" "$tmp/parent/subprojects" "$tmp/empty"
cp "$src/tests/subproject/meson.build" "$src/tests/subproject/consumer.c" \
	"$tmp/parent/" || die "copy failed"
ln -s "$src" "$tmp/parent/subprojects/dynshm" || die "symlink failed"

status=0
fail() { echo "FAIL ($kind): $*"; status=1; }

for kind in shared static; do
	b=$tmp/parent/build-$kind
	dest=$tmp/dest-$kind
	if ! (cd "$tmp/parent" && PKG_CONFIG_LIBDIR=$tmp/empty \
		PKG_CONFIG_PATH= "$@" setup "$b" --wrap-mode=forcefallback \
		-Ddefault_library=$kind > "$tmp/setup-$kind.log" 2>&1); then
		fail "configure failed:"
		tail -n 20 "$tmp/setup-$kind.log"
		continue
	fi
	grep -qi cmocka "$b/meson-logs/meson-log.txt" &&
		fail "configure looked for CMocka with tests off"
	if ! "$@" compile -C "$b" > "$tmp/build-$kind.log" 2>&1; then
		fail "build failed:"
		tail -n 20 "$tmp/build-$kind.log"
		continue
	fi

	tests=$(cd "$b" && "$@" test --no-rebuild --list 2>/dev/null | tr '\n' ' ')
	[ "$tests" = "consumer-version " ] ||
		fail "meson test lists '$tests', not only the parent's test"

	for f in contrib/dsm_demo/dsm_demo bench/dsm_bench tests/test_segments; do
		[ ! -e "$b/subprojects/dynshm/$f" ] || fail "built $f"
	done

	DESTDIR=$dest "$@" install -C "$b" --no-rebuild > /dev/null 2>&1 ||
		fail "meson install failed"
	find "$dest" \( -type f -o -type l \) | sed "s|^$dest||" | sort \
		> "$tmp/installed-$kind"
	extra=$(grep -v -e '/bin/consumer$' -e '/libdynshm\.so[.0-9]*$' \
		"$tmp/installed-$kind")
	[ -z "$extra" ] || fail "installed more than the library: $extra"
	if [ $kind = static ]; then
		grep -q libdynshm "$tmp/installed-$kind" &&
			fail "installed a library with default_library=static"
	else
		grep -q '/libdynshm\.so\.0$' "$tmp/installed-$kind" ||
			fail "libdynshm.so.0 not installed"
	fi

	needed=$(readelf -d "$b/consumer" 2>/dev/null | grep -c 'libdynshm')
	if [ $kind = static ]; then
		[ "$needed" = 0 ] || fail "consumer needs libdynshm.so"
	else
		[ "$needed" = 1 ] || fail "consumer does not link libdynshm.so"
	fi
	out=$("$b/consumer" "$tmp/inst-$kind") ||
		fail "consumer failed: $out"
	[ "$out" = consumed ] || fail "consumer printed '$out'"
	[ ! -e "$tmp/inst-$kind" ] || fail "consumer left its instance"
	[ $status = 0 ] && echo "ok: as a subproject with default_library=$kind"
done
exit $status
