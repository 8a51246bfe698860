#!/bin/sh
# SPDX-License-Identifier: MIT
# check-m32.sh - src/mshare.c (the msharefs ABI) compiles for 32-bit x86.
#
# The v3 create structure is 40 bytes on x86-64 and 36 on i386 (u64 is
# 4-aligned there); a static assertion once demanded 40 everywhere, so the
# default build failed on i386 and nothing here noticed (issue 17, item 9).
# Skips (77) when the compiler cannot build for -m32 (no multilib headers:
# apt-get install gcc-multilib).
#
# usage: check-m32.sh <source root> <build dir> <c compiler...>
set -u
[ $# -ge 3 ] || { echo "usage: $0 <source root> <build dir> <cc...>" >&2; exit 1; }
src=$1
build=$2
shift 2
probe=$(mktemp "${TMPDIR:-/tmp}/dynshm-m32.XXXXXX") || exit 1
trap 'rm -f "$probe" "$probe.c"' EXIT
printf '#include <limits.h>\n#include <stdint.h>\nint x;\n' >"$probe.c"
if ! "$@" -m32 -fsyntax-only "$probe.c" 2>/dev/null; then
	echo "check-m32: the compiler cannot build for -m32 (no multilib); skipped"
	exit 77
fi
"$@" -m32 -std=c11 -D_GNU_SOURCE -Wall -Werror -fsyntax-only \
	-I"$src/include" -I"$src/src" -I"$build" "$src/src/mshare.c" || {
	echo "check-m32: src/mshare.c does not compile for i386" >&2
	exit 1
}
echo "check-m32: src/mshare.c compiles for i386"
