#!/bin/sh
# SPDX-License-Identifier: MIT
# check-release.sh - the release files agree with meson.build.
#
#   LICENSE exists and is the license meson.build declares (MIT);
#   every source file (C, headers, meson files, scripts, the version
#     script) says SPDX-License-Identifier: <license> on its first line, or
#     its second after a shebang;
#   NEWS exists and its newest entry is the project version;
#   every man page's header line names "dynshm <version>".
#
# usage: check-release.sh <source root> <version> <license>
set -u

die() { echo "check-release: $*" >&2; exit 1; }

[ $# -eq 3 ] || die "usage: $0 <source root> <version> <license>"
root=$1 version=$2 license=$3
status=0
fail() { echo "FAIL: $*"; status=1; }

case $license in
MIT)
	[ -f "$root/LICENSE" ] || fail "no LICENSE file"
	[ -f "$root/LICENSE" ] && ! grep -q '^MIT License' "$root/LICENSE" &&
		fail "LICENSE is not the MIT license that meson.build declares"
	;;
*) fail "meson.build declares '$license': teach this test its text" ;;
esac

missing=$(find "$root" \( -name .git -o -name 'build*' -o -name subprojects \
		-o -path "$root/tests/corpus" \) -prune -o -type f \
		\( -name '*.c' -o -name '*.h' -o -name '*.h.in' \
		-o -name '*.sh' -o -name '*.map' -o -name meson.build \
		-o -name meson_options.txt -o -name Makefile \
		-o -path "$root/.ci/run" \) -print |
	sort | while read -r f; do
		if head -n 1 "$f" | grep -q '^#!'; then
			line=$(sed -n 2p "$f")
		else
			line=$(sed -n 1p "$f")
		fi
		case $line in
		*"SPDX-License-Identifier: $license"*) ;;
		*) echo "${f#"$root"/}" ;;
		esac
	done)
if [ -n "$missing" ]; then
	fail "no 'SPDX-License-Identifier: $license' on the first line (second after #!) of:"
	printf '%s\n' "$missing" | sed 's/^/  /'
fi

if [ ! -f "$root/NEWS" ]; then
	fail "no NEWS file"
else
	newest=$(grep -m 1 -E '^[0-9]+\.[0-9]+\.[0-9]+' "$root/NEWS")
	[ "$newest" = "$version" ] ||
		fail "NEWS: newest entry is '$newest', meson.build says $version"
fi

for page in "$root"/docs/man/*.[1-9]; do
	th=$(grep -m 1 '^\.TH' "$page") || continue
	case $th in
	*"\"dynshm $version\""*) ;;
	*) fail "${page#"$root"/}: '$th' does not name dynshm $version" ;;
	esac
done

[ $status = 0 ] && echo "ok: LICENSE ($license), SPDX lines, NEWS and man pages agree with $version"
exit $status
