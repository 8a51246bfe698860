#!/bin/sh
# check-exports.sh - the shared library exports exactly the public API.
#
# Everything not in src/libdynshm.map must stay hidden (internals such as
# dynshm_sys would otherwise become ABI by accident), and everything in it must
# really be there (a renamed or forgotten function would break users at run
# time, not at build time).  Compares `nm -D --defined-only` of the built
# library with the global: list of the version script.
#
# usage: check-exports.sh <libdynshm.so> <libdynshm.map>   (NM= overrides nm)
set -u

die() { echo "check-exports: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: $0 <shared library> <version script>"
lib=$1
map=$2
nm=${NM:-nm}
[ -f "$lib" ] || die "no such library: $lib"
[ -f "$map" ] || die "no such version script: $map"

tmp=$(mktemp -d) || die "mktemp failed"
trap 'rm -rf "$tmp"' EXIT

# Exported: defined dynamic symbols, without their @VERSION suffix and
# without the version nodes themselves (absolute symbols named like
# DYNSHM_0.2).
"$nm" -D --defined-only "$lib" > "$tmp/nm" || die "$nm failed on $lib"
awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' "$tmp/nm" |
	sort -u > "$tmp/exported"

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

comm -23 "$tmp/exported" "$tmp/listed" > "$tmp/extra"
comm -13 "$tmp/exported" "$tmp/listed" > "$tmp/missing"

status=0
if [ -s "$tmp/extra" ]; then
	echo "exported but not in $(basename "$map"):"
	sed 's/^/  /' "$tmp/extra"
	status=1
fi
if [ -s "$tmp/missing" ]; then
	echo "in $(basename "$map") but not exported by $(basename "$lib"):"
	sed 's/^/  /' "$tmp/missing"
	status=1
fi
[ $status = 0 ] &&
	echo "ok: $(wc -l < "$tmp/listed") symbols, exactly as listed"
exit $status
