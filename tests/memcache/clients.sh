#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# clients.sh - real memcached clients that no one here wrote, against
# dsm_memcache: Debian's libmemcached-tools (memccp, memccat, memcrm,
# memcstat, and memccapable's ASCII protocol checks) and python3-pymemcache.
#
# Why: our own tests share our reading of the protocol; these clients
# bring someone else's.  memccapable runs with -a: its 27 ASCII checks all
# apply and must pass; its binary-protocol checks are skipped because
# dsm_memcache speaks only the text protocol (memcached deprecated the
# binary one in 1.6).  Exits 77 with the reason when a client is absent
# (.ci/run installs them), and fails if the server leaves anything behind.
# Usage: clients.sh DSM_MEMCACHE
set -uo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
tag=$(printf '%03x' "${TEST_TAG:-3423}")

need=()
for t in memccp memccat memcrm memcstat memccapable; do
	command -v "$t" >/dev/null || need+=("$t")
done
if ((${#need[@]})); then
	echo "SKIP: ${need[*]} not installed (apt-get install libmemcached-tools)"
	exit 77
fi
# pymemcache is a Debian package: the system python has it even when
# another python3 comes first on PATH.
py=
for p in python3 /usr/bin/python3; do
	if command -v "$p" >/dev/null &&
	   "$p" -c 'import pymemcache' 2>/dev/null; then
		py=$p
		break
	fi
done
if [[ -z $py ]]; then
	echo "SKIP: python3-pymemcache not installed"
	exit 77
fi

dir=$(mktemp -d "/tmp/dynshm-test.$tag.XXXXXX")
fail=0
"$bin" -p 0 -t 2 -m 32 --instance "$dir/inst" --port-file "$dir/port" \
	--pid-file "$dir/pid" &
spid=$!
for _ in $(seq 100); do
	[[ -s $dir/port ]] && break
	sleep 0.05
done
port=$(cat "$dir/port")
srv=127.0.0.1:$port
bad() { echo "FAIL: $*"; fail=1; }

# memccp stores files under their base names; memccat prints them back.
mkdir "$dir/files"
for i in 1 2 3; do
	head -c $((i * 3000)) /dev/urandom >"$dir/files/f$i"
done
printf 'hello from memccp\n' >"$dir/files/greeting"
memccp --servers="$srv" "$dir"/files/* || bad "memccp failed"
for f in "$dir"/files/*; do
	memccat --servers="$srv" "$(basename "$f")" >"$dir/out" ||
		bad "memccat $(basename "$f") failed"
	# memccat ends each value with a newline of its own.
	{ cat "$f"; echo; } >"$dir/want"
	cmp -s "$dir/want" "$dir/out" || bad "memccat $(basename "$f") differs"
done
memcrm --servers="$srv" greeting || bad "memcrm failed"
memccat --servers="$srv" greeting >/dev/null 2>&1 &&
	bad "memccat found a removed key"
memcstat --servers="$srv" >"$dir/stat" || bad "memcstat failed"
grep -q 'curr_items: 3' "$dir/stat" || bad "memcstat: $(grep curr_items "$dir/stat")"
grep -q 'curr_connections:' "$dir/stat" || bad "memcstat lacks curr_connections"

# memccapable flushes the server: after the file checks.
if ! timeout 120 memccapable -h 127.0.0.1 -p "$port" -a >"$dir/cap" 2>&1; then
	cat "$dir/cap"
	bad "memccapable -a"
else
	echo "memccapable: $(grep -c '\[pass\]' "$dir/cap") ASCII checks passed"
fi

"$py" "$here/pymc.py" "$port" || bad "pymemcache checks"

# Stop: the supervisor reaps its workers and removes the instance.
workers=$(ps -o pid= --ppid "$spid" 2>/dev/null)
kill -TERM "$spid"
wait "$spid" || bad "the server exited with $?"
for w in $workers; do
	[[ -e /proc/$w ]] && bad "worker $w left"
done
[[ -e $dir/inst ]] && bad "instance directory left"
rm -rf "$dir"
exit "$fail"
