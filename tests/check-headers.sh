#!/bin/sh
# check-headers.sh - the public headers compile on their own as C99 and C++.
#
# The brief promises headers usable from C99 and C++ programs, and nothing in
# the library's own build (C11, _GNU_SOURCE) would notice a C11-only
# construct or a missing extern "C".  Each header is compiled alone, first
# in a translation unit that includes only it, with warnings as errors.
#
# usage: check-headers.sh <include dir> --cc <c compiler...> [--cxx <c++...>]
# Exits 77 (skipped) after the C checks pass when no C++ compiler is given.
set -u

die() { echo "check-headers: $*" >&2; exit 1; }

[ $# -ge 3 ] || die "usage: $0 <include dir> --cc <cc...> [--cxx <c++...>]"
incdir=$1
shift
[ "$1" = "--cc" ] || die "expected --cc"
shift

cc=""
cxx=""
target=cc
for arg in "$@"; do
	if [ "$arg" = "--cxx" ]; then
		target=cxx
	elif [ $target = cc ]; then
		cc="$cc '$arg'"
	else
		cxx="$cxx '$arg'"
	fi
done
[ -n "$cc" ] || die "no C compiler given"

failed=0
for h in dsm.h dsm_impl.h area.h; do
	[ -f "$incdir/dynshm/$h" ] || die "missing $incdir/dynshm/$h"
	if printf '#include <dynshm/%s>\nint main(void) { return 0; }\n' "$h" |
		eval "$cc -std=c99 -pedantic -Werror -Wall -Wextra \
			-fsyntax-only -I'$incdir' -x c -"; then
		echo "ok: $h compiles as C99"
	else
		echo "FAIL: $h does not compile as C99 (-pedantic -Werror)"
		failed=1
	fi
done

if [ -z "$cxx" ]; then
	[ $failed = 0 ] || exit 1
	echo "skipped: no C++ compiler configured"
	exit 77
fi

for h in dsm.h dsm_impl.h area.h; do
	if printf '#include <dynshm/%s>\nint main() { return 0; }\n' "$h" |
		eval "$cxx -std=c++11 -fsyntax-only -Wall -Wextra -Werror \
			-pedantic -I'$incdir' -x c++ -"; then
		echo "ok: $h compiles as C++11"
	else
		echo "FAIL: $h does not compile as C++11 (-Wall -Werror)"
		failed=1
	fi
done
exit $failed
