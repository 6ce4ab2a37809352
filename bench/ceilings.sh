#!/usr/bin/env bash
# bench/ceilings.sh: what the machine can do at all, measured in the same invocation as the
# shopd figures so that each can be reported as a share of its ceiling:
#   http-get      nginx returning a fixed 200 to the product-detail requests (bench/product_detail.lua,
#                 no Lua response() callback, like the catalog scenarios)
#   http-counted  the same nginx driven by bench/charge.lua, which counts every answer in a Lua
#                 response() as the write scenarios do (that costs wrk CPU: a lower ceiling)
#   redis-get     redis-benchmark GET; redis-eval: EVAL of a one-key INCR script (a Lua script is
#                 how the coupon gate and the locks reach Redis)
#   mariadb-hot   autocommit UPDATEs of one row from MARIADB_CLIENTS clients (a hot user's balance)
#   mariadb-spread  autocommit UPDATEs from the same clients, each on a row of its own (commits
#                 bounded by the redo-log flush, not by row locks)
# scripts/bench.sh runs it (after bench/fixtures.sh, whose token and product files it reuses):
#   OUT=var/bench BENCH_DB=shopd_t_bench bench/ceilings.sh
# Writes $OUT/ceilings.tsv (name run value unit) and the commands to $OUT/commands.tsv; the nginx
# it starts (bench/nginx-ceiling.conf.in under $OUT/nginx) is stopped by its pid on exit.
# Settings (environment): DURATION, RUNS, CONNECTIONS, WRK_THREADS, CEILING_PORT (18090),
# MARIADB_CLIENTS (64, as SHOPD_THREADS), MARIADB_SECONDS (10 per MariaDB run), REDIS_REQUESTS
# (300000 per redis-benchmark run), and lib.sh's DB_PORT, REDIS_PORT.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
: "${OUT:?OUT is the run directory}" "${BENCH_DB:?BENCH_DB is the database}"
. bench/lib.sh
DURATION=${DURATION:-30}
RUNS=${RUNS:-3}
CONNECTIONS=${CONNECTIONS:-100}
WRK_THREADS=${WRK_THREADS:-2}
CEILING_PORT=${CEILING_PORT:-18090}
MARIADB_CLIENTS=${MARIADB_CLIENTS:-64}
REDIS_REQUESTS=${REDIS_REQUESTS:-300000}
MARIADB_SECONDS=${MARIADB_SECONDS:-10}
RUN_ID=${RUN_ID:-ceiling-$$}
NGINX_DIR=$OUT/nginx
NGINX_PID='' WRK_PID=''
UNEXPECTED_RUNS=()

cleanup() {
  local rc=$?
  stop_pid wrk "$WRK_PID"
  stop_pid nginx "$NGINX_PID"
  redis-cli -p "$REDIS_PORT" del "$BENCH_DB:ceiling:eval" "$BENCH_DB:ceiling:get" > /dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ceiling() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$OUT/ceilings.tsv"; }
command_of() { printf 'ceiling\t%s\t-\t%s\n' "$1" "$2" >> "$OUT/commands.tsv"; }

http_ceilings() {
  local url=http://127.0.0.1:$CEILING_PORT r
  port_free "$CEILING_PORT" || die "127.0.0.1:$CEILING_PORT is in use"
  mkdir -p "$NGINX_DIR/logs" "$NGINX_DIR/tmp"
  sed -e "s|@PREFIX@|$NGINX_DIR|g" -e "s|@LISTEN@|127.0.0.1:$CEILING_PORT|g" \
    bench/nginx-ceiling.conf.in > "$NGINX_DIR/nginx.conf"
  nginx -p "$NGINX_DIR" -e "$NGINX_DIR/logs/error.log" -c "$NGINX_DIR/nginx.conf" -g 'daemon off;' \
    < /dev/null > "$NGINX_DIR/logs/stdout.log" 2>&1 &
  NGINX_PID=$!
  wait_until 10 curl -fsS "$url/" || { cat "$NGINX_DIR/logs/error.log" >&2; die "nginx did not start"; }
  for ((r = 1; r <= RUNS; r++)); do
    run_wrk ceiling http-get "$CONNECTIONS" "$r" "$DURATION" "$url" bench/product_detail.lua "products=$OUT/product-ids.txt"
    ceiling http-get "$r" "$(tail -n 1 "$OUT/results.tsv" | cut -f5)" req/s
  done
  for ((r = 1; r <= RUNS; r++)); do
    run_wrk ceiling http-counted "$CONNECTIONS" "$r" "$DURATION" "$url" bench/charge.lua "tokens=$OUT/tokens.txt" run=
    ceiling http-counted "$r" "$(tail -n 1 "$OUT/results.tsv" | cut -f5)" req/s
  done
  stop_pid nginx "$NGINX_PID"; NGINX_PID=
}

# redis_rps NAME ARGS...: one redis-benchmark run; its req/s.
redis_rps() {
  local name=$1; shift
  # shellcheck disable=SC2207 # redis_place is several words on purpose
  local -a cmd=(redis-benchmark $(redis_place) -c "$CONNECTIONS" -n "$REDIS_REQUESTS" -q --csv "$@")
  command_of "$name" "${cmd[*]}"
  "${cmd[@]}" 2>&1 | tee "$OUT/raw/ceiling-$name.txt" | awk -F'","' 'NR == 2 { print $2 + 0 }'
}

redis_ceilings() {
  local r
  for ((r = 1; r <= RUNS; r++)); do
    log "redis GET run $r"
    ceiling redis-get "$r" "$(redis_rps redis-get get "$BENCH_DB:ceiling:get")" ops/s
    log "redis EVAL run $r"
    ceiling redis-eval "$r" "$(redis_rps redis-eval eval "return redis.call('INCR', KEYS[1])" 1 "$BENCH_DB:ceiling:eval")" ops/s
  done
}

# commits_per_s NAME QUERY: mariadb-slap repeats QUERY from MARIADB_CLIENTS autocommit clients
# in rounds until MARIADB_SECONDS have passed; the committed UPDATEs (the counter's growth)
# per second of wall time.
commits_per_s() {
  local name=$1 query=$2 before after t0 t1
  # shellcheck disable=SC2207 # db_place is several words on purpose
  local -a cmd=(mariadb-slap $(db_place) -u "$DB_USER" --create-schema="$BENCH_DB"
                --concurrency="$MARIADB_CLIENTS" --number-of-queries=$((MARIADB_CLIENTS * 50))
                --iterations=1 --query="$query")
  command_of "$name" "${cmd[*]} (repeated for ${MARIADB_SECONDS} s)"
  before=$(sql "SELECT SUM(n) FROM ceiling_counter")
  t0=$(date +%s%N)
  while [ $(( ($(date +%s%N) - t0) / 1000000000 )) -lt "$MARIADB_SECONDS" ]; do
    MYSQL_PWD=$DB_PASS "${cmd[@]}" >> "$OUT/raw/ceiling-$name.txt" 2>&1 || die "mariadb-slap failed; see $OUT/raw/ceiling-$name.txt"
  done
  t1=$(date +%s%N)
  after=$(sql "SELECT SUM(n) FROM ceiling_counter")
  awk -v n=$((after - before)) -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f\n", n / (ns / 1e9) }'
}

mariadb_ceilings() {
  local r
  sql "CREATE TABLE IF NOT EXISTS ceiling_counter (id INT PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0) ENGINE = InnoDB;
       INSERT IGNORE INTO ceiling_counter (id) SELECT seq FROM seq_1_to_10000;"
  for ((r = 1; r <= RUNS; r++)); do
    log "mariadb hot UPDATE run $r"
    ceiling mariadb-hot "$r" "$(commits_per_s mariadb-hot 'UPDATE ceiling_counter SET n = n + 1 WHERE id = 1')" commits/s
    log "mariadb spread UPDATE run $r"
    # CONNECTION_ID() is a constant within a statement, so the primary key is used: each client
    # updates a row of its own.
    ceiling mariadb-spread "$r" "$(commits_per_s mariadb-spread 'UPDATE ceiling_counter SET n = n + 1 WHERE id = CONNECTION_ID() % 10000 + 1')" commits/s
  done
}

mkdir -p "$OUT/raw"
http_ceilings
redis_ceilings
mariadb_ceilings
log "ceilings: $(awk -F'\t' '{ printf "%s %s=%s ", $1, $2, $3 }' "$OUT/ceilings.tsv")"
