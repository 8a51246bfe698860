#!/bin/sh
# SPDX-License-Identifier: MIT
# check-exports.sh - the libraries export exactly the public API.
#
# Everything not in src/libdynshm.map must stay hidden (internals such as
# dynshm_sys would otherwise become ABI by accident), and everything in it must
# really be there (a renamed or forgotten function would break users at run
# time, not at build time).
#
#   shared library: `nm -D --defined-only` equals the map's global: list;
#     the library's calls to its own exports use no PLT slot (readelf -r:
#     no JUMP_SLOT relocation against a dynshm_ symbol), so nothing can
#     interpose them.
#   static archive: its defined global symbols are exactly the map's list
#     (no ctl_lock, region_create, ... to collide with a program's own).
#   both: no test hook (dynshm_test_*) in what is installed.
#
# usage: check-exports.sh <libdynshm.map> <libdynshm.so|libdynshm.a>...
#        (NM= and READELF= override nm and readelf)
set -u

die() { echo "check-exports: $*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: $0 <version script> <library>..."
map=$1
shift
nm=${NM:-nm}
readelf=${READELF:-readelf}
[ -f "$map" ] || die "no such version script: $map"

tmp=$(mktemp -d) || die "mktemp failed"
trap 'rm -rf "$tmp"' EXIT

# Listed: the names between "global:" and "local:" of every node.
sed -e 's,/\*.*\*/,,g' "$map" |
	awk '
		/^[ \t]*\/\*/ { incomment = 1 }
		incomment { if ($0 ~ /\*\//) incomment = 0; next }
		/global:/ { inglobal = 1; next }
		/local:/ { inglobal = 0; next }
		/}/ { inglobal = 0; next }
		inglobal {
			gsub(/[ \t;]/, "")
			if ($0 != "") print
		}' |
	sort -u > "$tmp/listed"

[ -s "$tmp/listed" ] || die "no global symbols found in $map"

status=0
# compare <library> <file of exported names>
compare() {
	comm -23 "$2" "$tmp/listed" > "$tmp/extra"
	comm -13 "$2" "$tmp/listed" > "$tmp/missing"
	if [ -s "$tmp/extra" ]; then
		echo "$(basename "$1"): exported but not in $(basename "$map"):"
		sed 's/^/  /' "$tmp/extra"
		status=1
	fi
	if [ -s "$tmp/missing" ]; then
		echo "in $(basename "$map") but not exported by $(basename "$1"):"
		sed 's/^/  /' "$tmp/missing"
		status=1
	fi
	[ -s "$tmp/extra" ] || [ -s "$tmp/missing" ] ||
		echo "ok: $(basename "$1"): $(wc -l < "$tmp/listed") symbols, exactly as listed"
}

# no_hooks <library>: not even a local symbol of the test hooks
# (dynshm_test_hook, dynshm_area_test_hook, ...).
no_hooks() {
	"$nm" -a "$1" 2>/dev/null |
		awk '$NF ~ /^dynshm_test_|^dynshm_.*test_hook/ { print $NF }' |
		sort -u > "$tmp/hooks"
	if [ -s "$tmp/hooks" ]; then
		echo "$(basename "$1"): test hooks in an installed library:"
		sed 's/^/  /' "$tmp/hooks"
		status=1
	fi
}

for lib in "$@"; do
	[ -f "$lib" ] || die "no such library: $lib"
	case $lib in
	*.a)
		# Defined globals of every member (weak ones too): lines
		# "address type name" with an upper-case type other than U.
		"$nm" --defined-only -g "$lib" > "$tmp/nm" ||
			die "$nm failed on $lib"
		awk 'NF == 3 && $2 ~ /^[A-TV-Z]$/ { print $3 }' "$tmp/nm" |
			sort -u > "$tmp/exported"
		compare "$lib" "$tmp/exported"
		;;
	*)
		# Defined dynamic symbols, without their @VERSION suffix and
		# without the version nodes themselves (absolute symbols
		# named like DYNSHM_0.2).
		"$nm" -D --defined-only "$lib" > "$tmp/nm" ||
			die "$nm failed on $lib"
		awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' "$tmp/nm" |
			sort -u > "$tmp/exported"
		compare "$lib" "$tmp/exported"
		"$readelf" -rW "$lib" > "$tmp/relocs" ||
			die "$readelf failed on $lib"
		grep -E 'JUMP_SLOT|_JMP_SLOT' "$tmp/relocs" |
			grep -E '[[:space:]]dynshm_' > "$tmp/plt"
		if [ -s "$tmp/plt" ]; then
			echo "$(basename "$lib"): calls its own exports through the PLT:"
			awk '{ print "  " $5 }' "$tmp/plt"
			status=1
		else
			echo "ok: $(basename "$lib"): no PLT slot for its own dynshm_ functions"
		fi
		;;
	esac
	no_hooks "$lib"
done
exit $status
