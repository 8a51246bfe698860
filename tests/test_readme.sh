#!/bin/sh
# SPDX-License-Identifier: MIT
# test_readme.sh - the README's example is real: the code block in README.md
# is docs/examples/readme_example.c, it compiles (meson builds it), and run
# as the README says - once to create, once with the handle to read - it
# prints the text and leaves nothing behind.
#
# usage: test_readme.sh <readme_example binary> <README.md> <example source>
set -u

die() { echo "test_readme: $*" >&2; exit 1; }

[ $# -eq 3 ] || die "usage: $0 <binary> <README.md> <source>"
bin=$1 readme=$2 src=$3

block=$(sed -n '/^```c$/,/^```$/p' "$readme" | sed '1d;$d')
[ -n "$block" ] || die "no \`\`\`c block in $readme"
# The file's SPDX line is not part of the README's block.
want=$(sed '1{/SPDX-License-Identifier/d;}' "$src")
[ "$want" = "$block" ] || { printf '%s\n' "$block" | diff -u "$src" -; false; } ||
	die "the code in $readme differs from $src"

# A private XDG_RUNTIME_DIR, so the instance "example" lives in it.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dynshm-test.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$tmp"' EXIT
export XDG_RUNTIME_DIR="$tmp"

handle=$("$bin") || die "first run failed"
echo "first run printed: $handle"
case $handle in
'' | *[!0-9a-f]*) die "first run printed '$handle', not a hex handle" ;;
esac
out=$("$bin" "$handle") || die "second run failed"
echo "second run printed: $out"
[ "$out" = "hello from dynshm" ] || die "expected 'hello from dynshm'"
# the second run destroyed the instance: no directory, no object
[ ! -e "$tmp/dynshm/example" ] || die "instance directory left behind"
if ls /dev/shm 2>/dev/null | grep -q "\.$(printf '%016x' "0x$handle")\$"; then
	die "segment $handle left in /dev/shm"
fi
echo "ok"
