#!/usr/bin/env bash
# scripts/bench.sh (`make bench`): the load suite. Against one shopd instance, then against a
# cluster of CLUSTER_SIZE instances behind nginx (scripts/cluster.sh), each with the
# data-platform consumer running, it measures every scenario of bench/*.lua at CONNECTIONS
# connections, RUNS runs of DURATION seconds each, and runs `shopd check` after each scenario;
# then the ceilings (bench/ceilings.sh), a connection sweep of product detail and order + pay,
# a perf profile of product detail and order + pay, the tuning runs (SHOPD_THREADS, InnoDB log
# flushing), and the payment-to-platform lag. bench/report.sh writes docs/PERFORMANCE.md and
# bench/plot.sh its PNGs in docs/perf/.
#
#   make bench                                   the whole suite, about 50 minutes (defaults)
#   DURATION=3 RUNS=1 SWEEP_DURATION=2 SWEEP_RUNS=1 scripts/bench.sh     a short full pass
#   scripts/bench.sh --smoke                     what `make test` runs: 3 s per scenario, small
#                                                fixtures, cluster of 2 only, no sweep, profile
#                                                or tuning; writes only under var/bench-smoke/;
#                                                fails on any unexpected answer
#   SCENARIOS="product-detail order-pay" TOPOLOGIES=single scripts/bench.sh   a subset
#
# Scenarios: charge-distinct charge-hot coupon-rush product-detail product-list cart
#            top-products order-pay order-burst order-hot
# Settings (environment, defaults in brackets): DURATION [30] RUNS [3] CONNECTIONS [100]
#   TOPOLOGIES ["single cluster"] CLUSTER_SIZE [3] SWEEP ["10 50 100 400 1000"] SWEEP_DURATION [10]
#   SWEEP_RUNS [3] PROFILE [1] PERF_SECONDS [8] TUNING [1] TUNING_THREADS ["16 256"]
#   USERS [10000] PRODUCTS [1000] CART_USERS [1000] HOT_USERS [10] RUSH_QUANTITY [50] BURST [100]
#   HOT_STOCK [5000] SHOPD_THREADS [64] BASE_PORT [18080: nginx of the cluster; instances from
#   BASE_PORT+1; the ceiling nginx on BASE_PORT+10] BENCH_DB [shopd_t_bench, dropped and created
#   afresh] OUT [var/bench] DOC [docs/PERFORMANCE.md] PLOTS [docs/perf] BUILD [1; 0 = use
#   build/release/shopd as it is instead of building the release preset first] DB_NODES [none;
#   host:port,... = shopd is given a Galera cluster's nodes, with BENCH_TCP=1 and DB_PORT the first]
# Everything it starts (shopd, nginx, the platform consumer, wrk, perf) is stopped by pid when
# it exits for any reason; MariaDB and Redis (scripts/services.sh) are left running. The InnoDB
# setting changed by the tuning runs is restored. Exit status: non-zero when `shopd check` or a
# scenario's own invariant failed, the platform missed an event, or (--smoke) an answer was
# unexpected.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

SMOKE=0
[ "${1:-}" != --smoke ] || SMOKE=1
if [ "$SMOKE" = 1 ]; then
  # Small and quick, on ports of its own (the integration tests use ephemeral ones).
  : "${DURATION:=3}" "${RUNS:=1}" "${TOPOLOGIES:=cluster}" "${CLUSTER_SIZE:=2}" "${SWEEP:=}"
  : "${PROFILE:=0}" "${TUNING:=0}" "${USERS:=200}" "${PRODUCTS:=50}" "${CART_USERS:=50}"
  : "${HOT_STOCK:=200}" "${BASE_PORT:=18180}" "${BENCH_DB:=shopd_t_bench_smoke}"
  : "${OUT:=$ROOT/var/bench-smoke}" "${CEILING_DURATION:=1}" "${REDIS_REQUESTS:=20000}"
  : "${MARIADB_SECONDS:=1}"
  export REDIS_REQUESTS MARIADB_SECONDS
  : "${DOC:=$OUT/PERFORMANCE.md}" "${PLOTS:=$OUT/perf}" "${SHOPD_THREADS:=16}"
fi
DURATION=${DURATION:-30}
RUNS=${RUNS:-3}
CONNECTIONS=${CONNECTIONS:-100}
TOPOLOGIES=${TOPOLOGIES:-single cluster}
CLUSTER_SIZE=${CLUSTER_SIZE:-3}
SWEEP=${SWEEP-10 50 100 400 1000}
SWEEP_DURATION=${SWEEP_DURATION:-10}
SWEEP_RUNS=${SWEEP_RUNS:-3}
PROFILE=${PROFILE:-1}
PERF_SECONDS=${PERF_SECONDS:-8}
TUNING=${TUNING:-1}
TUNING_THREADS=${TUNING_THREADS:-16 256}
export USERS=${USERS:-10000} PRODUCTS=${PRODUCTS:-1000} CART_USERS=${CART_USERS:-1000}
HOT_USERS=${HOT_USERS:-10}
RUSH_QUANTITY=${RUSH_QUANTITY:-50}
BURST=${BURST:-100}
HOT_STOCK=${HOT_STOCK:-5000}
export SHOPD_THREADS=${SHOPD_THREADS:-64}
BASE_PORT=${BASE_PORT:-18080}
export BENCH_DB=${BENCH_DB:-shopd_t_bench}
OUT=${OUT:-$ROOT/var/bench}
export OUT=$(realpath -m "$OUT") # nginx and the children resolve paths from elsewhere
DOC=${DOC:-$ROOT/docs/PERFORMANCE.md}
PLOTS=${PLOTS:-$ROOT/docs/perf}
export WRK_THREADS=2 DURATION RUNS CONNECTIONS
export RUN_ID
RUN_ID=$(date -u +%Y%m%dT%H%M%S)-$$
export SHOPD=$ROOT/build/release/shopd
ALL_SCENARIOS="charge-distinct charge-hot coupon-rush product-detail product-list cart top-products order-pay order-burst order-hot"
SCENARIOS=${SCENARIOS:-$ALL_SCENARIOS}
. bench/lib.sh
shopd_env

WRK_PID='' PERF_PID='' CLUSTER_UP='' FLUSH_CHANGED=''
UNEXPECTED_RUNS=()
FAILURES=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid wrk "$WRK_PID"
  stop_pid perf "$PERF_PID"
  [ -z "$CLUSTER_UP" ] || topology_down
  [ -z "$FLUSH_CHANGED" ] || mariadb_root "SET GLOBAL innodb_flush_log_at_trx_commit = 1" || true
  exit "$rc"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT
trap 'log terminated; exit 143' TERM

fail() { FAILURES+=("$*"); log "FAILED: $*"; }
mariadb_root() { mariadb --defaults-file="$ROOT/var/svc/mariadb/my.cnf" -uroot -N -B -e "$1"; }
wanted() { case " $SCENARIOS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# ---- set-up -------------------------------------------------------------------------------------

for tool in wrk nginx curl jq mariadb mariadb-slap redis-cli redis-benchmark gnuplot awk; do
  command -v "$tool" > /dev/null || die "$tool is not installed (scripts/deps.sh)"
done
[ "$PROFILE" = 0 ] || command -v perf > /dev/null || die "perf is not installed (linux-perf; or PROFILE=0)"
for s in $SCENARIOS; do case " $ALL_SCENARIOS " in *" $s "*) ;; *) die "unknown scenario '$s' (known: $ALL_SCENARIOS)" ;; esac; done
[[ $BENCH_DB =~ ^shopd_t_[a-z0-9_]+$ ]] || die "BENCH_DB must start with shopd_t_ (the databases the shop user may create)"

rm -rf "$OUT"
mkdir -p "$OUT/raw"
: > "$OUT/results.tsv"; : > "$OUT/facts.tsv"; : > "$OUT/commands.tsv"; : > "$OUT/ceilings.tsv"
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || COMMIT="$COMMIT + uncommitted changes"
fact run - commit "$COMMIT"
fact run - started "$(date -u '+%F %T UTC')"

if [ "${BUILD:-1}" = 0 ]; then
  log "BUILD=0: using build/release/shopd as it is"
  [ -x "$SHOPD" ] || die "$SHOPD is missing"
else
log "building the release preset (log: $OUT/build.log)"
{ cmake --preset release && cmake --build build/release -j"$(nproc)" --target shopd; } > "$OUT/build.log" 2>&1 \
  || { tail -n 30 "$OUT/build.log" >&2; die "build failed"; }
fi
scripts/services.sh up >&2

log "database $BENCH_DB: dropped and created afresh; its Redis keys deleted"
MYSQL_PWD=$DB_PASS mariadb -h "$DB_HOST" -P "$DB_PORT" -u "$DB_USER" \
  -e "DROP DATABASE IF EXISTS \`$BENCH_DB\`; CREATE DATABASE \`$BENCH_DB\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
redis-cli -p "$REDIS_PORT" --scan --pattern "$BENCH_DB:*" | xargs -r -n 500 redis-cli -p "$REDIS_PORT" unlink > /dev/null
"$SHOPD" migrate > "$OUT/migrate.log" 2>&1 || { cat "$OUT/migrate.log" >&2; die "shopd migrate failed"; }

# ---- topologies ---------------------------------------------------------------------------------

TOPO_DIR=''
# topology_up NAME INSTANCES: scripts/cluster.sh under $OUT/cluster-NAME; one instance is
# served directly (BALANCER=0), more behind nginx on BASE_PORT. Sets URL.
topology_up() {
  local name=$1 n=$2
  TOPO_DIR=$OUT/cluster-$name
  CLUSTER_UP=1
  if [ "$n" -eq 1 ]; then
    CLUSTER_DIR=$TOPO_DIR LB_PORT=$BASE_PORT BALANCER=0 SHOPD=$SHOPD scripts/cluster.sh up 1
    URL=http://127.0.0.1:$((BASE_PORT + 1))
  else
    CLUSTER_DIR=$TOPO_DIR LB_PORT=$BASE_PORT SHOPD=$SHOPD scripts/cluster.sh up "$n"
    URL=http://127.0.0.1:$BASE_PORT
  fi
  PLATFORM_STATE=$(cat "$TOPO_DIR/platform.state")
}
topology_down() {
  CLUSTER_DIR=$TOPO_DIR scripts/cluster.sh down
  CLUSTER_UP=''
}

# ---- checks -------------------------------------------------------------------------------------

# shopd_check TOPOLOGY SCENARIO: `shopd check` on the bench database, its verdict a fact.
shopd_check() {
  local out=$OUT/raw/$1-$2.check.txt
  if "$SHOPD" check > "$out" 2>&1 < /dev/null; then
    fact "$1" "$2" check PASS
  else
    fact "$1" "$2" check FAIL; fail "$1 $2: shopd check failed ($out)"
  fi
}

# invariant TOPOLOGY SCENARIO VERDICT DETAIL: the scenario's own check of MariaDB.
invariant() {
  fact "$1" "$2" invariant "$3: $4"
  [ "$3" = PASS ] || fail "$1 $2: $4"
}

# platform_drained: every order.paid outbox row has reached platform_events.
platform_counts() { sql "SELECT (SELECT COUNT(*) FROM outbox WHERE event_type = 'order.paid'), (SELECT COUNT(*) FROM platform_events WHERE event_type = 'order.paid')"; }
platform_drained() { local a b; read -r a b < <(platform_counts); [ "$a" = "$b" ]; }

# platform_lag TOPOLOGY FIRST_ORDER LAST_ORDER: once the backlog has drained (60 s at most), the
# lag from payment commit to the platform's commit of the orders (FIRST_ORDER, LAST_ORDER].
platform_lag() {
  local topo=$1 lo=$2 hi=$3 outbox events
  if [ "$PLATFORM_STATE" != running ]; then
    fact "$topo" order-pay lag "skipped: the data platform was not started (PLATFORM=0)"
    log "lag: skipped (PLATFORM=0)"; return 0
  fi
  if ! wait_until 60 platform_drained; then
    read -r outbox events < <(platform_counts)
    fact "$topo" order-pay platform "FAIL: $events of $outbox order.paid events in platform_events after 60 s"
    fail "$topo: the platform holds $events of $outbox order.paid events after 60 s"
  else
    read -r outbox events < <(platform_counts)
    fact "$topo" order-pay platform "PASS: $events of $outbox order.paid events in platform_events"
  fi
  fact "$topo" order-pay lag "$(sql "SELECT COUNT(*), ROUND(MAX(p50) / 1000, 2), ROUND(MAX(p99) / 1000, 2), ROUND(MAX(mx) / 1000, 2) FROM (
      SELECT PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY lag_us) OVER () AS p50,
             PERCENTILE_CONT(0.99) WITHIN GROUP (ORDER BY lag_us) OVER () AS p99,
             MAX(lag_us) OVER () AS mx
      FROM (SELECT TIMESTAMPDIFF(MICROSECOND, occurred_at, received_at) AS lag_us FROM platform_events
            WHERE event_type = 'order.paid' AND order_id > $lo AND order_id <= $hi) AS l) AS t" | tr '\t' ' ')"
}

# ---- scenarios ------------------------------------------------------------------------------------
# scenario_NAME TOPOLOGY CONNECTIONS RUNS DURATION: the runs of one scenario and its own checks.

scenario_charge-distinct() {
  local r; for ((r = 1; r <= $3; r++)); do
    run_wrk "$1" charge-distinct "$2" "$r" "$4" "$URL" bench/charge.lua "tokens=$OUT/tokens.txt" hot=0 run=
  done
}

scenario_charge-hot() {
  local r; for ((r = 1; r <= $3; r++)); do
    run_wrk "$1" charge-hot "$2" "$r" "$4" "$URL" bench/charge.lua "tokens=$OUT/tokens.txt" "hot=$HOT_USERS" run=
  done
}

admin_create() {  # admin_create PATH JSON FIELD: the new object's id
  local body id
  body=$(curl -sS -X POST "$URL$1" -H "Authorization: Bearer $(cat "$OUT/admin-token.txt")" -H 'Content-Type: application/json' -d "$2")
  id=$(jq -r ".$3 // empty" <<< "$body" 2>/dev/null || true)
  [[ $id =~ ^[0-9]+$ ]] || die "POST $1 answered: $body"
  echo "$id"
}

scenario_coupon-rush() {
  local r coupon issued held
  for ((r = 1; r <= $3; r++)); do
    coupon=$(admin_create /api/admin/coupons "{\"name\":\"rush-$RUN_ID-$1-$r\",\"discountType\":\"FIXED\",\"discountValue\":1000,\"totalQuantity\":$RUSH_QUANTITY}" couponId)
    run_wrk "$1" coupon-rush "$2" "$r" "$4" "$URL" bench/coupon_rush.lua "tokens=$OUT/tokens.txt" "coupon=$coupon" "threads=$WRK_THREADS"
    read -r issued held < <(settled_sql "SELECT issued_quantity, (SELECT COUNT(*) FROM user_coupons WHERE coupon_id = $coupon) FROM coupons WHERE id = $coupon")
    if [ "$issued" -eq "$held" ] && [ "$issued" -le "$RUSH_QUANTITY" ]; then
      invariant "$1" coupon-rush PASS "run $r: $issued issued = $held held <= $RUSH_QUANTITY"
    else
      invariant "$1" coupon-rush FAIL "run $r: $issued issued, $held held, of $RUSH_QUANTITY"
    fi
  done
}

scenario_product-detail() {
  local r; for ((r = 1; r <= $3; r++)); do
    run_wrk "$1" product-detail "$2" "$r" "$4" "$URL" bench/product_detail.lua "products=$OUT/product-ids.txt"
  done
}

scenario_product-list() {
  local r; for ((r = 1; r <= $3; r++)); do
    run_wrk "$1" product-list "$2" "$r" "$4" "$URL" bench/product_list.lua "products=$OUT/product-ids.txt" limit=20
  done
}

scenario_cart() {
  local r; for ((r = 1; r <= $3; r++)); do
    run_wrk "$1" cart "$2" "$r" "$4" "$URL" bench/cart.lua "tokens=$OUT/tokens.txt" "users=$CART_USERS"
  done
}

scenario_top-products() {
  local r; for ((r = 1; r <= $3; r++)); do
    run_wrk "$1" top-products "$2" "$r" "$4" "$URL" bench/top_products.lua
  done
}

CHARGE_ROUND=1
scenario_order-pay() {
  local r lo hi
  # A user who ran below half a charge is topped up (fixtures give each ORDER_BALANCE once).
  while [ "$(sql "SELECT COALESCE(MIN(balance_krw), 0) < 5000000 FROM users WHERE name LIKE 'bench-%'")" = 1 ]; do
    CHARGE_ROUND=$((CHARGE_ROUND + 1)); bench/fixtures.sh charge "$URL" "$OUT" "$CHARGE_ROUND"
  done
  lo=$(sql "SELECT COALESCE(MAX(id), 0) FROM orders")
  for ((r = 1; r <= $3; r++)); do
    run_wrk "$1" order-pay "$2" "$r" "$4" "$URL" bench/order_pay.lua "tokens=$OUT/tokens.txt" "products=$OUT/product-ids.txt" "threads=$WRK_THREADS" run=
  done
  hi=$(settled_sql "SELECT COALESCE(MAX(id), 0) FROM orders")
  case $1 in sweep|profile) ;; *) platform_lag "$1" "$lo" "$hi" ;; esac
}

scenario_order-burst() {
  local r o0 orders keys
  for ((r = 1; r <= $3; r++)); do
    o0=$(sql "SELECT COALESCE(MAX(id), 0) FROM orders")
    run_wrk "$1" order-burst "$2" "$r" "$4" "$URL" bench/order_burst.lua "tokens=$OUT/tokens.txt" "products=$OUT/product-ids.txt" "burst=$BURST" run=
    read -r orders keys < <(settled_sql "SELECT (SELECT COUNT(*) FROM orders WHERE id > $o0), (SELECT COUNT(*) FROM idempotency_keys WHERE path = '/api/orders' AND idem_key LIKE 'burst-$RUN_ID-$1-order-burst-$2-$r-%')")
    if [ "$orders" -eq "$keys" ]; then
      invariant "$1" order-burst PASS "run $r: $orders orders for $keys keys"
    else
      invariant "$1" order-burst FAIL "run $r: $orders orders for $keys keys"
    fi
  done
}

scenario_order-hot() {
  local r product stock reserved sold qty
  for ((r = 1; r <= $3; r++)); do
    product=$(admin_create /api/admin/products "{\"name\":\"hot-$RUN_ID-$1-$r\",\"price\":1000,\"stock\":$HOT_STOCK}" productId)
    run_wrk "$1" order-hot "$2" "$r" "$4" "$URL" bench/order_hot.lua "tokens=$OUT/tokens.txt" "product=$product" "threads=$WRK_THREADS" run=
    read -r stock reserved sold qty < <(settled_sql "SELECT stock, reserved, sold, (SELECT COALESCE(SUM(quantity), 0) FROM order_items WHERE product_id = $product) FROM products WHERE id = $product")
    if [ "$stock" -ge 0 ] && [ $((stock + reserved + sold)) -eq "$HOT_STOCK" ] && [ "$qty" -eq $((HOT_STOCK - stock)) ]; then
      invariant "$1" order-hot PASS "run $r: stock $stock + reserved $reserved + sold $sold = $HOT_STOCK, $qty ordered"
    else
      invariant "$1" order-hot FAIL "run $r: stock $stock + reserved $reserved + sold $sold vs $HOT_STOCK, $qty ordered"
    fi
  done
}

# run_scenarios TOPOLOGY CONNECTIONS RUNS DURATION SCENARIO...: each scenario, then shopd check.
run_scenarios() {
  local topo=$1 conns=$2 runs=$3 duration=$4 s; shift 4
  for s in "$@"; do
    wanted "$s" || continue
    case $s in product-detail|cart|top-products) bench/fixtures.sh warm "$URL" "$OUT" ;; esac
    "scenario_$s" "$topo" "$conns" "$runs" "$duration"
    [ "$topo" = sweep ] || [ "$topo" = profile ] || shopd_check "$topo" "$s"
  done
}

# profile SCENARIO: a run of its own (not in the figures) with `perf record -a -g` during
# PERF_SECONDS of it; the top of `perf report` into $OUT/perf-SCENARIO.txt.
profile() {
  local s=$1 data=$OUT/perf-$1.data
  log "profiling $s: perf record -a -g for $PERF_SECONDS s"
  ( "scenario_$s" profile "$CONNECTIONS" 1 $((PERF_SECONDS + 4)) ) &
  local runner=$!
  # perf starts once wrk runs (the scenario may first top balances up), not after a fixed sleep.
  wait_until 30 pgrep -P "$runner" -x wrk || log "warning: no wrk seen for the profiled run of $s"
  perf record -a -g -o "$data" -- sleep "$PERF_SECONDS" > "$OUT/raw/perf-$s.log" 2>&1 &
  PERF_PID=$!
  wait "$PERF_PID" || log "warning: perf record failed; see $OUT/raw/perf-$s.log"
  PERF_PID=''
  wait "$runner" || die "the profiled run of $s failed"
  {
    echo "## by process"
    perf report -i "$data" --stdio --no-children --sort comm -g none --percent-limit 1 2>/dev/null | grep -v '^#' | sed '/^$/d' | head -n 12
    echo "## by function"
    perf report -i "$data" --stdio --no-children --sort comm,dso,symbol -g none --percent-limit 0.7 2>/dev/null | grep -v '^#' | sed -e '/^$/d' -e 's/[ -]*$//' | head -n 30
  } > "$OUT/perf-$s.txt"
  rm -f "$data"
}

# ---- the run --------------------------------------------------------------------------------------

first=1
for topo in $TOPOLOGIES; do
  case $topo in single) n=1 ;; cluster) n=$CLUSTER_SIZE ;; *) die "unknown topology '$topo' (single, cluster)" ;; esac
  log "==== topology $topo: $n instance(s)"
  topology_up "$topo" "$n"
  fact "$topo" - instances "$n"
  fact "$topo" - platform "$PLATFORM_STATE"
  if [ "$first" = 1 ]; then
    bench/fixtures.sh create "$URL" "$OUT"
    log "==== ceilings"
    DURATION=${CEILING_DURATION:-$DURATION} CEILING_PORT=$((BASE_PORT + 10)) bench/ceilings.sh
    first=0
  fi
  # shellcheck disable=SC2086
  run_scenarios "$topo" "$CONNECTIONS" "$RUNS" "$DURATION" $ALL_SCENARIOS
  if [ "$topo" = single ]; then
    for c in $SWEEP; do
      log "==== sweep: $c connections"
      run_scenarios sweep "$c" "$SWEEP_RUNS" "$SWEEP_DURATION" product-detail order-pay
    done
    if [ "$PROFILE" = 1 ]; then
      bench/fixtures.sh warm "$URL" "$OUT"
      ! wanted product-detail || profile product-detail
      ! wanted order-pay || profile order-pay
    fi
  fi
  topology_down
done

if [ "$TUNING" = 1 ]; then
  for t in $TUNING_THREADS; do
    log "==== tuning: SHOPD_THREADS=$t"
    SHOPD_THREADS=$t topology_up "threads-$t" 1
    run_scenarios "threads-$t" "$CONNECTIONS" 1 "$DURATION" charge-distinct order-pay
    topology_down
  done
  log "==== tuning: innodb_flush_log_at_trx_commit=2"
  FLUSH_CHANGED=1
  mariadb_root "SET GLOBAL innodb_flush_log_at_trx_commit = 2"
  topology_up flush-2 1
  run_scenarios flush-2 "$CONNECTIONS" 1 "$DURATION" charge-distinct order-pay
  topology_down
  mariadb_root "SET GLOBAL innodb_flush_log_at_trx_commit = 1"
  FLUSH_CHANGED=''
fi

fact run - finished "$(date -u '+%F %T UTC')"
# Empty files when nothing went wrong (printf of an empty list would still write a newline).
{ [ ${#UNEXPECTED_RUNS[@]} -eq 0 ] || printf '%s\n' "${UNEXPECTED_RUNS[@]}"; } > "$OUT/unexpected.txt"
{ [ ${#FAILURES[@]} -eq 0 ] || printf '%s\n' "${FAILURES[@]}"; } > "$OUT/failures.txt"
mkdir -p "$PLOTS" "$(dirname "$DOC")"
bench/plot.sh "$OUT" "$PLOTS"
DURATION=$DURATION RUNS=$RUNS CONNECTIONS=$CONNECTIONS SMOKE=$SMOKE bench/report.sh "$OUT" "$DOC" "$PLOTS"
log "wrote ${DOC#$ROOT/} and ${PLOTS#$ROOT/}/*.png (raw outputs: ${OUT#$ROOT/})"

status=0
if [ ${#FAILURES[@]} -gt 0 ]; then
  log "invariant failures:"; printf '  %s\n' "${FAILURES[@]}" >&2; status=1
fi
if [ ${#UNEXPECTED_RUNS[@]} -gt 0 ]; then
  log "runs with unexpected answers:"; printf '  %s\n' "${UNEXPECTED_RUNS[@]}" >&2
  [ "$SMOKE" = 0 ] || status=1
fi
[ "$status" = 0 ] && log "done: every check passed"
exit "$status"
