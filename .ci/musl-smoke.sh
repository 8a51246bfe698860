#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# .ci/musl-smoke.sh - build dynshm against musl and use it.
#
# glibc hides portability mistakes (GNU strerror_r returned NULL on musl
# and printing it crashed).  CMocka is not packaged for musl, so the suite
# cannot run there; instead the library (static, as musl programs usually
# link) and dsm_demo are built with musl-gcc and -Dwerror=true, then
# tests/smoke_portable.c (strerror texts, a create/attach across fork) and a
# dsm_demo round trip run.  Skips (exit 0, says so) when musl-gcc is
# missing: apt-get install musl-tools.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v musl-gcc >/dev/null 2>&1; then
	echo "musl: skipped: musl-gcc not found (apt-get install musl-tools)"
	exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dynshm-test.XXXXXX")
demo=""
cleanup() {
	if [[ -n $demo && -f $tmp/inst-demo/state ]]; then
		"$demo" --instance "$tmp/inst-demo" reset >/dev/null 2>&1 || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

CC=musl-gcc meson setup "$tmp/build" -Ddefault_library=static \
	-Dtests=false -Ddocs=false -Dbench=false -Ddemo=true \
	-Dwerror=true >"$tmp/setup.log" 2>&1 || {
	cat "$tmp/setup.log"
	exit 1
}
ninja -C "$tmp/build"
demo=$tmp/build/contrib/dsm_demo/dsm_demo

musl-gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror \
	-Iinclude -I"$tmp/build/include" tests/smoke_portable.c \
	"$tmp/build/src/libdynshm.a" -pthread -o "$tmp/smoke"
"$tmp/smoke" "$tmp/inst-smoke"

D=(--instance "$tmp/inst-demo")
"$demo" "${D[@]}" create --name greeting "hello from musl" >/dev/null
out=$("$demo" "${D[@]}" read greeting)
[[ $out == "hello from musl" ]] || {
	echo "musl: dsm_demo read gave '$out'"
	exit 1
}
"$demo" "${D[@]}" destroy greeting
"$demo" "${D[@]}" reset >/dev/null
echo "musl: ok ($(musl-gcc --version | head -n 1))"
