#!/usr/bin/env bash
# bench/connections.sh: issue 12's connection scenarios, by hand after a `make bench` run (it
# reuses that run's database shopd_t_bench and its product ids under var/bench/, or OUT=...).
# One release instance on 127.0.0.1:18281; product detail (wrk -t2 -c100, 10 s, 3 runs) alone,
# then beside 10,000 idle connections (5,000 from each of 127.0.0.2 and .3), then beside 4,096
# connections from 127.0.0.4 that each trickle a byte of a head every 2 s. Prints req/s, p99,
# the instance's RSS and threads per run. Everything it starts is stopped by pid.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-var/bench}
sock=$PWD/var/svc/mariadb/mariadb.sock
db="mysql://shop:shop-pass@localhost/shopd_t_bench?socket=$sock"
redis="unix://$PWD/var/svc/redis/redis.sock?db=0"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT

gcc -O2 -o var/hold_conns bench/hold_conns.c || exit 1
SHOPD_ACCESS_LOG=0 SHOPD_MAX_CONNS_PER_IP=5000 SHOPD_DB_URL=$db SHOPD_REDIS_URL=$redis \
  SHOPD_JWT_SECRET=$(cat var/dev-jwt-secret) SHOPD_LISTEN=127.0.0.1:18281 \
  build/release/shopd serve >var/connections-bench.log 2>&1 &
srv=$!
pids+=("$srv")
for _ in $(seq 100); do curl -sf http://127.0.0.1:18281/healthz >/dev/null && break; sleep 0.1; done

load() {
  wrk -t2 -c100 -d10s --latency -s bench/product_detail.lua http://127.0.0.1:18281 -- \
    products="$OUT/product-ids.txt" 2>&1 | awk '/Requests\/sec/ {r = $2} /^ +99%/ {p = $2} END {print r " req/s, p99 " p}'
}
state() { awk '/VmRSS/ {rss = $2 / 1024} /Threads/ {t = $2} END {printf "RSS %.0f MiB, %d threads", rss, t}' "/proc/$srv/status"; }
hold() {  # hold N SRC MODE: starts a holder, returns once its connections are open
  local out=var/hold-$2.out
  : >"$out"
  var/hold_conns 18281 "$1" "$2" "$3" >"$out" &
  pids+=($!)
  for _ in $(seq 600); do [ -s "$out" ] && return 0; sleep 0.1; done
  echo "holder $2 did not open its connections" >&2
  return 1
}
runs() { for run in 1 2 3; do echo "$1, run $run: $(load), $(state)"; done; }

runs "alone"
hold 5000 127.0.0.2 idle && hold 5000 127.0.0.3 idle || exit 1
runs "beside 10,000 idle"
kill "${pids[@]:1}"
hold 4096 127.0.0.4 trickle || exit 1
runs "beside 4,096 trickling"
