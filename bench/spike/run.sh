#!/usr/bin/env bash
# bench/spike/run.sh: the HTTP engine spike (issue 12). Toy product-detail servers on each
# candidate engine, driven by the same wrk script as shopd's product detail
# (bench/product_detail.lua, wrk -t2 -c100) in the same run as nginx returning a fixed 200:
#   nginx            bench/nginx-ceiling.conf.in, the HTTP ceiling
#   h2o-fixed        libh2o-evloop 2.2.5, 2 loops, a fixed JSON body (bench/spike/h2o_product.c)
#   mhd-epoll-fixed  libmicrohttpd 0.9.75, epoll with a pool of 2, the same body
#   mhd-tpc-fixed    libmicrohttpd, a thread per connection (shopd's front end today)
#   h2o-redis        h2o, the body from Redis, each loop pipelining its requests' GETs
#   mhd-epoll-redis  libmicrohttpd epoll pool, one blocking GET per request
#   bench/spike/run.sh            OUT=var/spike DURATION=10 RUNS=3 (the defaults)
# Needs the project's Redis (scripts/services.sh up) for the Redis rows; writes
# $OUT/results.tsv (lib.sh's columns) and $OUT/table.md (min / median / max of the runs, each
# beside the nginx runs of the same invocation). Every server it starts is stopped by pid.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
. bench/lib.sh
OUT=${OUT:-var/spike}
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
CONNECTIONS=${CONNECTIONS:-100}
WRK_THREADS=${WRK_THREADS:-2}
SPIKE_PORT=${SPIKE_PORT:-18095}
CANDIDATES=${CANDIDATES:-nginx h2o-fixed mhd-epoll-fixed mhd-tpc-fixed h2o-redis mhd-epoll-redis}
RUN_ID=spike-$$
SERVER_PID='' WRK_PID=''
UNEXPECTED_RUNS=()

cleanup() {
  local rc=$?
  stop_pid wrk "$WRK_PID"
  stop_pid server "$SERVER_PID"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

build() {
  local cflags
  cflags="-O2 -Wall -Wextra $(pkg-config --cflags hiredis)"
  # shellcheck disable=SC2086 # cflags and the pkg-config output are several words on purpose
  gcc $cflags -DH2O_USE_EPOLL=1 -o "$OUT/h2o_product" bench/spike/h2o_product.c \
    -lh2o-evloop $(pkg-config --libs hiredis) -lssl -lcrypto -lpthread
  # shellcheck disable=SC2086
  gcc $cflags -o "$OUT/mhd_product" bench/spike/mhd_product.c -lmicrohttpd \
    $(pkg-config --libs hiredis) -lpthread
}

seed_redis() {
  local body='{"id":1,"name":"Spike product","price":12000,"stock":100,"createdAt":"2026-12-04T00:00:00Z"}'
  seq 1 1000 > "$OUT/product-ids.txt"
  # shellcheck disable=SC2046 # redis_place is several words on purpose
  for id in $(cat "$OUT/product-ids.txt"); do printf "SET spike:product:%s '%s'\n" "$id" "${body/\"id\":1/\"id\":$id}"; done |
    redis-cli $(redis_place) > /dev/null
}

start() {  # start CANDIDATE: the server, on SPIKE_PORT, until it answers
  local url=http://127.0.0.1:$SPIKE_PORT
  port_free "$SPIKE_PORT" || die "127.0.0.1:$SPIKE_PORT is in use"
  case $1 in
    nginx)
      mkdir -p "$OUT/nginx/logs" "$OUT/nginx/tmp"
      sed -e "s|@PREFIX@|$ROOT/$OUT/nginx|g" -e "s|@LISTEN@|127.0.0.1:$SPIKE_PORT|g" \
        bench/nginx-ceiling.conf.in > "$OUT/nginx/nginx.conf"
      nginx -p "$OUT/nginx" -e "$OUT/nginx/logs/error.log" -c "$ROOT/$OUT/nginx/nginx.conf" \
        -g 'daemon off;' < /dev/null > "$OUT/nginx/logs/stdout.log" 2>&1 & ;;
    h2o-fixed) "$OUT/h2o_product" "$SPIKE_PORT" 2 fixed & ;;
    h2o-redis) "$OUT/h2o_product" "$SPIKE_PORT" 2 redis "$REDIS_PORT" & ;;
    mhd-epoll-fixed) "$OUT/mhd_product" "$SPIKE_PORT" 2 fixed & ;;
    mhd-tpc-fixed) "$OUT/mhd_product" "$SPIKE_PORT" 0 fixed & ;;
    mhd-epoll-redis) "$OUT/mhd_product" "$SPIKE_PORT" 2 redis "$REDIS_PORT" & ;;
    *) die "no candidate $1" ;;
  esac
  SERVER_PID=$!
  wait_until 10 curl -fsS "$url/api/products/1" || die "$1 did not answer"
}

# table: min / median / max req/s and median p99 of each candidate, and the share of the
# nginx median.
table() {
  awk -F'\t' '
    $1 == "spike" { n[$2]++; rps[$2, n[$2]] = $5; p99[$2, n[$2]] = $8; if (!seen[$2]++) order[++k] = $2 }
    function sort(a, name, m,   i, j, t) { for (i = 1; i <= m; i++) v[i] = a[name, i]
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t } }
    END {
      printf "| candidate | req/s min / median / max | p99 ms (median run) | median, share of nginx |\n|---|---|---|---|\n"
      sort(rps, "nginx", n["nginx"]); ceiling = v[int((n["nginx"] + 1) / 2)]
      for (i = 1; i <= k; i++) { c = order[i]; m = n[c]
        sort(p99, c, m); p = v[int((m + 1) / 2)]
        sort(rps, c, m); med = v[int((m + 1) / 2)]
        printf "| %s | %d / %d / %d | %.2f | %.0f %% |\n", c, v[1], med, v[m], p, 100 * med / ceiling }
    }' "$OUT/results.tsv"
}

mkdir -p "$OUT/raw"
: > "$OUT/results.tsv"; : > "$OUT/commands.tsv"
build
seed_redis
for c in $CANDIDATES; do
  start "$c"
  for ((r = 1; r <= RUNS; r++)); do
    run_wrk spike "$c" "$CONNECTIONS" "$r" "$DURATION" "http://127.0.0.1:$SPIKE_PORT" \
      bench/product_detail.lua "products=$OUT/product-ids.txt"
  done
  stop_pid server "$SERVER_PID"; SERVER_PID=
done
table | tee "$OUT/table.md"
[ ${#UNEXPECTED_RUNS[@]} -eq 0 ] || { printf '%s\n' "${UNEXPECTED_RUNS[@]}" >&2; die "runs with errors"; }
