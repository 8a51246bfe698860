#!/bin/sh
# SPDX-License-Identifier: MIT
# mkstatic.sh - the installed static archive: one object, public API only.
#
# An archive of the library's objects would expose every internal function
# and variable (ctl_lock, region_create, config_defaults, ...) as a global
# symbol: hidden visibility means nothing to a static link, so a program that
# defines a function of the same name fails to link, or worse, silently
# replaces ours.  Instead the objects are linked into one relocatable object
# (ld -r), whose hidden symbols objcopy then makes local: only the functions
# marked DYNSHM_EXPORT stay global.  The archive holds that one object.
#
# usage: mkstatic.sh <out.a> <objects archive> <objcopy> <ar> <cc...>
set -eu

[ $# -ge 5 ] || { echo "usage: $0 <out.a> <in.a> <objcopy> <ar> <cc...>" >&2; exit 1; }
out=$1
in=$2
objcopy=$3
ar=$4
shift 4

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The C compiler as linker driver: it knows the target; -nostdlib keeps the
# C library and start files out of the relocatable link.
"$@" -r -nostdlib -Wl,--whole-archive "$in" -Wl,--no-whole-archive \
	-o "$tmp/libdynshm.o"
"$objcopy" --localize-hidden "$tmp/libdynshm.o"
rm -f "$out"
"$ar" rcs "$out" "$tmp/libdynshm.o"
