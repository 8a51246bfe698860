#!/bin/sh
# SPDX-License-Identifier: MIT
# check-static-link.sh - a program may define any name the library uses
# inside, and still link the static archive.
#
# The archive used to carry every internal function and variable as a global
# symbol, so a program with its own region_create or ctl_lock failed to
# link statically (or, with a weak definition, replaced ours).  This test
# writes a program that defines, as its own functions, every global name of
# the library's internals (taken from the internal test library, so a new
# internal name is covered at once), links it against the archive as
# installed - with -static too when the C library allows - and runs it: the
# program's functions and the library's must both work.
#
# usage: check-static-link.sh <libdynshm.a> <internal .a> <version script>
#          <include dir> <generated include dir> <cc...>   (NM= overrides nm)
set -u

die() { echo "check-static-link: $*" >&2; exit 1; }

[ $# -ge 6 ] || die "usage: $0 <libdynshm.a> <internal.a> <map> <inc> <geninc> <cc...>"
archive=$1 internal=$2 map=$3 inc=$4 geninc=$5
shift 5
nm=${NM:-nm}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dynshm-test.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM PIPE

# The internal names: defined globals of the internal library that are not
# public (not in the map's global: list); C identifiers only (sanitizers
# add names such as __odr_asan.x).
grep -E '^[[:space:]]*dynshm_[a-z0-9_]+;' "$map" | tr -d ' \t;' |
	sort -u > "$tmp/public"
"$nm" --defined-only -g "$internal" |
	awk 'NF == 3 && $2 ~ /^[A-TV-Z]$/ { print $3 }' | sort -u |
	comm -23 - "$tmp/public" |
	grep -E '^[A-Za-z][A-Za-z0-9_]*$' > "$tmp/internal"
n=$(wc -l < "$tmp/internal")
[ "$n" -gt 0 ] || die "no internal names found in $internal"
grep -qx region_create "$tmp/internal" ||
	die "region_create is not among the internal names (test is stale?)"

{
	echo '#include <dynshm/dsm.h>'
	echo '#include <errno.h>'
	echo '#include <stdio.h>'
	echo '#include <string.h>'
	echo 'int mine(void);'
	while read -r name; do
		echo "int $name(void);"
		echo "int $name(void) { return 1; }"
	done < "$tmp/internal"
	echo 'int mine(void) { int n = 0;'
	while read -r name; do
		echo "  n += $name();"
	done < "$tmp/internal"
	echo '  return n; }'
	cat <<'MAIN'
int main(void)
{
	dynshm_config *cfg;
	char buf[64];

	if (dynshm_config_new(&cfg) != 0)
		return 2;
	if (dynshm_config_get(cfg, "max_segments", buf, sizeof(buf)) != 0)
		return 3;
	dynshm_config_free(cfg);
	if (strcmp(dynshm_version(), DYNSHM_VERSION_STRING) != 0)
		return 4;
	printf("%d own functions; library %s; max_segments %s; %s\n",
	       mine(), dynshm_version(), buf, dynshm_strerror(-EBUSY));
	return 0;
}
MAIN
} > "$tmp/app.c"

status=0
# link_and_run <label> <extra flags...>
link_and_run() {
	label=$1
	shift
	if ! "$@" -I"$inc" -I"$geninc" -o "$tmp/app" "$tmp/app.c" \
		"$archive" -pthread > "$tmp/log" 2>&1; then
		echo "FAIL: a program defining the $n internal names does not link ($label):"
		sed 's/^/  /' "$tmp/log" | head -20
		status=1
		return
	fi
	if ! out=$("$tmp/app"); then
		echo "FAIL: the program linked $label does not run"
		status=1
		return
	fi
	case $out in
	"$n own functions;"*) echo "ok ($label): $out" ;;
	*)
		echo "FAIL ($label): unexpected output: $out"
		status=1
		;;
	esac
}

link_and_run "against the archive" "$@"
# Fully static when the C library has a static libc.a (not with sanitizers:
# NO_STATIC=1).
if [ -n "${NO_STATIC:-}" ]; then
	echo "note: sanitized build; -static link not tried"
elif printf 'int main(void) { return 0; }\n' |
	"$@" -static -x c - -o "$tmp/probe" 2>/dev/null; then
	link_and_run "with -static" "$@" -static
else
	echo "note: no static C library; -static link not tried"
fi
exit $status
