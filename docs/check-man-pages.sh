#!/bin/sh
# SPDX-License-Identifier: MIT
# check-man-pages.sh - every exported function has a manual page.
#
# The version script lists every public symbol; docs/meson.build lists every
# page.  A function added to one but not the other is a user without
# documentation (or a page for nothing), so the docs suite fails on either.
# An alias page is a symbolic link to a page in the list: a '.so man3/x.3'
# page cannot be read with man -l from the source tree, so it is refused.
#
# usage: check-man-pages.sh <libdynshm.map> <page>...
set -u

die() { echo "check-man-pages: $*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: $0 <version script> <page>..."
map=$1
shift
[ -f "$map" ] || die "no such version script: $map"

tmp=$(mktemp -d) || die "mktemp failed"
trap 'rm -rf "$tmp"' EXIT

sed -n 's/^[[:space:]]*\(dynshm_[A-Za-z0-9_]*\);[[:space:]]*$/\1/p' "$map" |
	sort -u > "$tmp/exported"
for page in "$@"; do
	echo "${page##*/}"
done > "$tmp/files"
sed -n 's/\.3$//p' "$tmp/files" | sort -u > "$tmp/pages"
status=0
for page in "$@"; do
	if grep -q '^\.so ' "$page"; then
		echo "${page##*/}: a .so page, which man -l cannot read from the" \
			"tree; make it a symbolic link: ln -sf TARGET.3 ${page##*/}"
		status=1
	fi
	[ -L "$page" ] || continue
	target=$(readlink "$page")
	if [ "${target##*/}" != "$target" ] || ! grep -qxF "$target" "$tmp/files"; then
		echo "${page##*/}: links to $target, which is not a listed page" \
			"in the same directory"
		status=1
	fi
done

missing=$(comm -23 "$tmp/exported" "$tmp/pages")
extra=$(comm -13 "$tmp/exported" "$tmp/pages")
if [ -n "$missing" ]; then
	echo "exported but without a page in docs/meson.build:"
	echo "$missing" | sed 's/^/  /'
	status=1
fi
if [ -n "$extra" ]; then
	echo "a page in docs/meson.build for a function not exported:"
	echo "$extra" | sed 's/^/  /'
	status=1
fi
exit $status
