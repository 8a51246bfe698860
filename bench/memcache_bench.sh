#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# memcache_bench.sh - dsm_memcache against Debian's memcached, same load.
#
# Why: issue 15's target is "at least memcached's throughput on the same
# two cores".  Both servers run at once with 2 workers / 2 threads on
# 127.0.0.1; one load generator (bench/mc_load, one thread, N connections,
# one request in flight each) drives them in turn, ABAB, so drift on a
# shared machine hits both alike.  Prints one CSV row per run and a
# summary with the median requests per second of each and the ratio.
#
# usage: memcache_bench.sh BUILD_DIR [ROUNDS] [SECONDS]
#   CONNS (default 50), KEYS (10000), SIZE (100), GETS (90: percent gets)
set -euo pipefail
build=${1:?usage: memcache_bench.sh BUILD_DIR [ROUNDS] [SECONDS]}
rounds=${2:-3}
seconds=${3:-5}
conns=${CONNS:-50}
keys=${KEYS:-10000}
size=${SIZE:-100}
gets=${GETS:-90}
dsm=$build/contrib/dynshm_memcache/dsm_memcache
load=$build/bench/mc_load
if ! command -v memcached >/dev/null; then
	echo "memcache_bench: memcached is not installed (apt-get install memcached)" >&2
	exit 77
fi
dir=$(mktemp -d /tmp/dynshm-bench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$dir"
}
trap cleanup EXIT

"$dsm" -p 0 -t 2 -m 1024 --instance "$dir/inst" --port-file "$dir/port" &
pids+=($!)
# memcached refuses to run as root without -u.
user=()
[[ $(id -u) -eq 0 ]] && user=(-u root)
mport=$((20000 + RANDOM % 20000))
memcached "${user[@]}" -l 127.0.0.1 -p "$mport" -U 0 -t 2 -m 1024 -c 4096 &
pids+=($!)
for _ in $(seq 100); do [[ -s $dir/port ]] && break; sleep 0.05; done
dport=$(cat "$dir/port")
sleep 0.3

echo "# $(nproc) cores, $(uname -srm); $conns connections, $keys keys," \
	"$size-byte values, $gets% gets, $seconds s per run"
echo "server,conns,requests,rps,p50_us,p90_us,p99_us,p999_us,max_us,misses,errors"
for r in $(seq "$rounds"); do
	"$load" "$dport" --conns "$conns" --seconds "$seconds" --keys "$keys" \
		--size "$size" --get-percent "$gets" --label dsm_memcache |
		tee -a "$dir/dsm.csv"
	"$load" "$mport" --conns "$conns" --seconds "$seconds" --keys "$keys" \
		--size "$size" --get-percent "$gets" --label memcached |
		tee -a "$dir/mc.csv"
done
median() { cut -d, -f"$2" "$1" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
d=$(median "$dir/dsm.csv" 4)
m=$(median "$dir/mc.csv" 4)
printf '# median rps: dsm_memcache %s, memcached %s, ratio %s\n' "$d" "$m" \
	"$(awk -v a="$d" -v b="$m" 'BEGIN {printf "%.2f", a / b}')"
printf '# median p99 us: dsm_memcache %s, memcached %s\n' \
	"$(median "$dir/dsm.csv" 7)" "$(median "$dir/mc.csv" 7)"
