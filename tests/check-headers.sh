#!/bin/sh
# SPDX-License-Identifier: MIT
# check-headers.sh - the public headers compile on their own as C99, C11,
# C++11 and C++17, the README's example compiles as C++ too, and 32-bit
# targets are refused.
#
# The brief promises headers usable from C99 and C++ programs, and nothing in
# the library's own build (C11, _GNU_SOURCE) would notice a C11-only
# construct or a missing extern "C".  Each header is compiled alone, first
# in a translation unit that includes only it, with warnings as errors.
# The README's example (docs/examples/readme_example.c) is what users copy
# into C++ programs: it must not rely on C's implicit void * conversion.
# dynshm is 64-bit only (meson.build refuses 32-bit targets); a program
# built with -m32 against the installed headers gets a clear #error, not
# a silently truncated DYNSHM_IMPL_MAX_SIZE.
#
# usage: check-headers.sh <include dir> <generated include dir>
#          --cc <c compiler...> [--cxx <c++...>] [--example <file.c>]
# Exits 77 (skipped) after the C checks pass when no C++ compiler is given.
set -u

die() { echo "check-headers: $*" >&2; exit 1; }

[ $# -ge 4 ] || die "usage: $0 <include dir> <generated include dir> --cc <cc...> [--cxx <c++...>] [--example <file>]"
incdir=$1
genincdir=$2
shift 2
[ "$1" = "--cc" ] || die "expected --cc"
shift

cc=""
cxx=""
example=""
target=cc
for arg in "$@"; do
	case $arg in
	--cxx) target=cxx ;;
	--example) target=example ;;
	*)
		case $target in
		cc) cc="$cc '$arg'" ;;
		cxx) cxx="$cxx '$arg'" ;;
		example) example=$arg ;;
		esac
		;;
	esac
done
[ -n "$cc" ] || die "no C compiler given"
incs="-I'$incdir' -I'$genincdir'"

failed=0
# -Wredundant-decls: a function declared twice (in one header, or in two
# that a program includes together) breaks a user's -Werror build.
for h in dsm.h dsm_impl.h version.h facility.h area.h; do
	[ -f "$incdir/dynshm/$h" ] || [ -f "$genincdir/dynshm/$h" ] ||
		die "missing dynshm/$h"
	for std in c99 c11; do
		if printf '#include <dynshm/%s>\nint main(void) { return 0; }\n' "$h" |
			eval "$cc -std=$std -pedantic -Werror -Wall -Wextra \
				-Wredundant-decls -fsyntax-only $incs -x c -"; then
			echo "ok: $h compiles as $std"
		else
			echo "FAIL: $h does not compile as $std (-pedantic -Werror)"
			failed=1
		fi
	done
done

# -m32 -ffreestanding needs no 32-bit C library: dsm_impl.h includes only
# <stddef.h> and <stdint.h>, which the compiler itself provides.
if printf 'int main(void) { return 0; }\n' |
	eval "$cc -m32 -ffreestanding -fsyntax-only -x c -" 2>/dev/null; then
	out=$(printf '#include <dynshm/dsm_impl.h>\n' |
		eval "$cc -m32 -ffreestanding -fsyntax-only $incs -x c -" 2>&1)
	if [ $? -ne 0 ] && printf '%s' "$out" | grep -q '64-bit'; then
		echo "ok: dsm_impl.h refuses a 32-bit target with a clear error"
	else
		echo "FAIL: dsm_impl.h compiled for -m32 without the 64-bit #error:"
		printf '%s\n' "$out"
		failed=1
	fi
else
	echo "note: $cc cannot target -m32; 32-bit refusal not checked"
fi

if [ -z "$cxx" ]; then
	[ $failed = 0 ] || exit 1
	echo "skipped: no C++ compiler configured"
	exit 77
fi

for h in dsm.h dsm_impl.h version.h facility.h area.h; do
	for std in c++11 c++17; do
		if printf '#include <dynshm/%s>\nint main() { return 0; }\n' "$h" |
			eval "$cxx -std=$std -fsyntax-only -Wall -Wextra -Werror \
				-Wredundant-decls -pedantic $incs -x c++ -"; then
			echo "ok: $h compiles as $std"
		else
			echo "FAIL: $h does not compile as $std (-Wall -Werror)"
			failed=1
		fi
	done
done

if [ -n "$example" ]; then
	if eval "$cxx -std=c++11 -fsyntax-only -Wall -Wextra -Werror \
		$incs -x c++ '$example'"; then
		echo "ok: $(basename "$example") compiles as C++11"
	else
		echo "FAIL: $(basename "$example") does not compile as C++11"
		failed=1
	fi
fi
exit $failed
