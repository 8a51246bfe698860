#!/bin/sh
# SPDX-License-Identifier: MIT
# check-pc.sh - dynshm.pc is enough for a static link.
#
# `pkg-config --static --libs dynshm` must name what libdynshm.a needs
# beyond libc: -pthread always, and -lrt where shm_open is not in libc
# (glibc before 2.34).  The test probes the C compiler the way meson.build
# does and checks the generated file's Libs.private and Version.
#
# usage: check-pc.sh <dynshm.pc> <version> <cc...>
set -u

die() { echo "check-pc: $*" >&2; exit 1; }

[ $# -ge 3 ] || die "usage: $0 <dynshm.pc> <version> <cc...>"
pc=$1 version=$2
shift 2
[ -f "$pc" ] || die "no such file: $pc"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dynshm-test.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM PIPE

status=0
private=$(sed -n 's/^Libs\.private:[[:space:]]*//p' "$pc")
case " $private " in
*" -pthread "*) ;;
*) echo "FAIL: Libs.private '$private' lacks -pthread"; status=1 ;;
esac

cat > "$tmp/probe.c" <<'PROBE'
#include <fcntl.h>
#include <sys/mman.h>
int main(void) { return shm_open("/dynshm-probe", O_RDONLY, 0) < 0 ? 0 : 0; }
PROBE
if "$@" -pthread "$tmp/probe.c" -o "$tmp/probe" 2>/dev/null; then
	need_rt=no
elif "$@" -pthread "$tmp/probe.c" -o "$tmp/probe" -lrt 2>/dev/null; then
	need_rt=yes
else
	die "cannot link a program calling shm_open, with or without -lrt"
fi
case " $private " in
*" -lrt "*) has_rt=yes ;;
*) has_rt=no ;;
esac
if [ $need_rt = yes ] && [ $has_rt = no ]; then
	echo "FAIL: shm_open needs -lrt here but Libs.private is '$private'"
	status=1
fi

got=$(sed -n 's/^Version:[[:space:]]*//p' "$pc")
[ "$got" = "$version" ] || {
	echo "FAIL: Version: '$got', meson.build says $version"
	status=1
}
[ $status = 0 ] &&
	echo "ok: Libs.private '$private' (shm_open needs -lrt: $need_rt), Version $got"
exit $status
