#!/usr/bin/env bash
# scripts/bench.sh: throughput and latency of the shopd balance and catalog endpoints, against a
# ceiling.
#
# What it measures, each with wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency, $RUNS times:
#   nginx-ceiling     nginx returning a fixed 200 "ok" to the balance-get requests: what wrk and
#                     the loopback can carry on this machine (bench/nginx-ceiling.conf.in)
#   balance-get       GET  /api/users/{id}/balance over $USERS users   (bench/balance_get.lua)
#   charge-distinct   POST /api/users/{id}/balance/charge over $USERS users, unique keys
#   charge-hot        the same, all requests on $HOT_USERS users        (bench/charge.lua)
# then checks the balance invariant (users.balance_krw = SUM(balance_history.amount_krw)) in
# MariaDB, and writes docs/bench/balances.md (min/median/max req/s, median p50/p99, errors,
# ratio to the ceiling, machine, commit, commands). And the catalog (bench/catalog.lua):
#   nginx-ceiling-catalog  the same nginx, driven with the product-detail requests by
#                     catalog.lua (no Lua response() callback, like the catalog scenarios)
#   product-detail    GET /api/products/{id} over $PRODUCTS products, round-robin, cache warmed
#   product-list      GET /api/products?limit=$LIST_LIMIT&cursor=<a product id, shuffled>
#   cart-get          GET /api/users/{id}/cart over $USERS users, $CART_LINES lines each, warmed
#   top-products      GET /api/products/top?days=3&limit=5 and ?days=7&limit=10, alternating
# with the cache hit ratio of each run (from /metrics before and after it), written to
# docs/bench/catalog.md. Raw wrk outputs go to var/bench/raw/.
# The coupons (issue 4; bench/coupon_rush.lua), written to docs/bench/coupons.md:
#   nginx-ceiling-coupons  the same nginx, driven with the coupon-issue requests
#   coupon-rush-50    POST /api/coupons/{id}/issue {"userId":N}, each of $RUSH_USERS users with
#   coupon-rush-5000  its own token, round-robin, on a coupon of totalQuantity 50 (5,000) created
#                     for the run; for every strategy of $COUPON_STRATEGIES (gate lock db), shopd
#                     restarted with SHOPD_COUPON_STRATEGY for each. Status mix counted in Lua;
#                     after each run the issued count is checked in MariaDB (issued_quantity =
#                     user_coupons rows <= totalQuantity) and `shopd check` is run.
# The orders (issue 5; bench/orders.lua), written to docs/bench/orders.md:
#   nginx-ceiling-orders   the same nginx, driven with the order-pay requests
#   order-pay         POST /api/orders (1-3 lines over the $PRODUCTS products, unique key) then
#                     POST /api/orders/{id}/payment of that order, distinct users
#   order-duplicate-burst  every connection sends the same order with the same key, a new key
#                     every $BURST requests per thread; orders created = keys used (MariaDB)
#   order-hot-product 1 unit of one product of stock $HOT_STOCK (created for the run), many
#                     buyers; stock = $HOT_STOCK - orders (MariaDB)
#   each followed by `shopd check`.
# The products are created once per invocation (POST /api/admin/products) and used by every
# catalog and order scenario and run (the order scenarios first set their stock to $ORDER_STOCK
# with PATCH /api/admin/products/{id}); the users likewise (POST /api/admin/users): $USERS for
# the balance and cart scenarios, and another $RUSH_USERS for the coupon and order scenarios,
# who are charged $ORDER_BALANCE KRW each before order-pay (again whenever one of them runs
# low).
#
# Run:      scripts/bench.sh                      (DURATION=30 RUNS=3: about 45 minutes)
# Smoke:    DURATION=5 RUNS=1 scripts/bench.sh
# Subset:   SCENARIOS="product-detail cart-get" scripts/bench.sh   (space-separated names from
#           the lists above, ceilings excepted: a group's ceiling runs whenever one of its
#           scenarios does, and only the docs of the groups run are rewritten)
# Settings (environment): DURATION, RUNS, THREADS (2), CONNECTIONS (100), USERS (1000),
#   HOT_USERS (10), AMOUNT (1000 KRW per charge), PRODUCTS (1000), CART_LINES (3),
#   LIST_LIMIT (20), RUSH_USERS (10000), COUPON_STRATEGIES ("gate lock db"), ORDER_STOCK
#   (1000000000), ORDER_BALANCE (10000000, the most one charge may add), BURST (100),
#   HOT_STOCK (5000), SHOPD_THREADS (64), BENCH_PORT (18080), CEILING_PORT (18090),
#   BENCH_DOC (docs/bench/balances.md), CATALOG_DOC (docs/bench/catalog.md),
#   COUPON_DOC (docs/bench/coupons.md), ORDER_DOC (docs/bench/orders.md), SCENARIOS (all).
# It builds the release binary, starts the project's MariaDB/Redis (scripts/services.sh up, left
# running), and starts its own shopd and nginx on loopback; those two are stopped, by pid, when
# the script exits for any reason (including Ctrl-C). Run it on an otherwise idle machine: wrk,
# shopd, MariaDB and Redis all share its cores. It exits non-zero when an invariant failed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

DURATION=${DURATION:-30}
RUNS=${RUNS:-3}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-100}
USERS=${USERS:-1000}
HOT_USERS=${HOT_USERS:-10}
AMOUNT=${AMOUNT:-1000}
SHOPD_THREADS=${SHOPD_THREADS:-64}
BENCH_PORT=${BENCH_PORT:-18080}
CEILING_PORT=${CEILING_PORT:-18090}
DOC=${BENCH_DOC:-docs/bench/balances.md}
CATALOG_DOC=${CATALOG_DOC:-docs/bench/catalog.md}
PRODUCTS=${PRODUCTS:-1000}
CART_LINES=${CART_LINES:-3}
LIST_LIMIT=${LIST_LIMIT:-20}
COUPON_DOC=${COUPON_DOC:-docs/bench/coupons.md}
ORDER_DOC=${ORDER_DOC:-docs/bench/orders.md}
RUSH_USERS=${RUSH_USERS:-10000}
COUPON_STRATEGIES=${COUPON_STRATEGIES:-"gate lock db"}
ORDER_STOCK=${ORDER_STOCK:-1000000000}
ORDER_BALANCE=${ORDER_BALANCE:-10000000}
BURST=${BURST:-100}
HOT_STOCK=${HOT_STOCK:-5000}
BALANCE_SCENARIOS="balance-get charge-distinct charge-hot"
CATALOG_SCENARIOS="product-detail product-list cart-get top-products"
COUPON_SCENARIOS="coupon-rush-50 coupon-rush-5000"
ORDER_SCENARIOS="order-pay order-duplicate-burst order-hot-product"
ALL_SCENARIOS="$BALANCE_SCENARIOS $CATALOG_SCENARIOS $COUPON_SCENARIOS $ORDER_SCENARIOS"
SCENARIOS=${SCENARIOS:-$ALL_SCENARIOS}
# The reference system's figure for cached cart reads (reported beside cart-get in catalog.md).
REF_CART_AVG_MS=31
REF_CART_VUS=100
# The reference system's figures and our targets (coupons.md, orders.md).
REF_COUPON_RPS=3000      # sold-out coupon rush, req/s
TARGET_COUPON_RPS=30000
REF_PAIRS=170            # order then pay, pairs/s
TARGET_PAIRS=1700

DB_HOST=127.0.0.1 DB_PORT=${DB_PORT:-13306} DB_USER=shop DB_PASS=shop-pass DB_NAME=shop
REDIS_PORT=${REDIS_PORT:-16379}
JWT_SECRET=shopd-bench-secret-not-for-production

OUT=$ROOT/var/bench
RAW=$OUT/raw
TOKENS=$OUT/tokens.txt
PRODUCT_IDS=$OUT/product-ids.txt
# results.tsv, one line per wrk run: scenario run rps p50_ms p99_ms non2xx socket_errors replayed
# 2xx requests avg_ms, then the /metrics deltas over the run of hits misses loads errors for the
# product, cart and top caches (columns 12-15, 16-19, 20-23).
RESULTS=$OUT/results.tsv
# extra.tsv, one line per fact about a coupon or order run: scenario run key value (the status
# mix, the MariaDB checks, `shopd check`); also kept in the array X["scenario|run|key"].
EXTRA=$OUT/extra.tsv
RUSH_TOKENS=$OUT/rush-tokens.txt
NGINX_DIR=$OUT/nginx
SHOPD=$ROOT/build/release/shopd
SHOPD_URL=http://127.0.0.1:$BENCH_PORT
CEILING_URL=http://127.0.0.1:$CEILING_PORT
RUN_ID=$(date -u +%Y%m%dT%H%M%S)-$$

SHOPD_PID='' NGINX_PID='' WRK_PID=''

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- process management: everything we start is stopped by its pid --------------------------

stop_pid() {  # stop_pid NAME PID: TERM, wait up to 15 s by polling, then KILL
  local name=$1 pid=$2 i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) ignored TERM; killing"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  log "$name (pid $pid) stopped"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid wrk "$WRK_PID"
  stop_pid nginx "$NGINX_PID"
  stop_pid shopd "$SHOPD_PID"
  exit "$rc"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT
trap 'log terminated; exit 143' TERM

wait_until() {  # wait_until SECONDS PID command...: poll until command succeeds, PID must live
  local deadline=$(( $(date +%s) + $1 )) pid=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || return 1
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

sql() { MYSQL_PWD=$DB_PASS mariadb -h "$DB_HOST" -P "$DB_PORT" -u "$DB_USER" -N -B "$DB_NAME" -e "$1"; }

# ---- setup ------------------------------------------------------------------------------------

for tool in wrk nginx curl jq mariadb awk; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
[[ $DURATION =~ ^[1-9][0-9]*$ && $RUNS =~ ^[1-9][0-9]*$ ]] || die "DURATION and RUNS must be positive integers"
[ "$USERS" -ge "$HOT_USERS" ] || die "USERS must be at least HOT_USERS"
[[ $PRODUCTS =~ ^[1-9][0-9]*$ && $CART_LINES =~ ^[1-9][0-9]*$ && $LIST_LIMIT =~ ^[1-9][0-9]*$ ]] \
  || die "PRODUCTS, CART_LINES and LIST_LIMIT must be positive integers"
[ "$PRODUCTS" -gt "$LIST_LIMIT" ] || die "PRODUCTS must be more than LIST_LIMIT"
[ "$PRODUCTS" -ge "$CART_LINES" ] || die "PRODUCTS must be at least CART_LINES"
[ "$LIST_LIMIT" -le 100 ] || die "LIST_LIMIT is at most 100 (the API's maximum)"
[[ $RUSH_USERS =~ ^[1-9][0-9]*$ && $BURST =~ ^[1-9][0-9]*$ && $HOT_STOCK =~ ^[1-9][0-9]*$ ]] \
  || die "RUSH_USERS, BURST and HOT_STOCK must be positive integers"
[[ $ORDER_STOCK =~ ^[1-9][0-9]*$ && $ORDER_STOCK -le 1000000000 ]] || die "ORDER_STOCK must be 1 … 1000000000"
[[ $ORDER_BALANCE =~ ^[1-9][0-9]*$ && $ORDER_BALANCE -le 10000000 ]] || die "ORDER_BALANCE must be 1 … 10000000 (one charge)"
[ "$RUSH_USERS" -ge "$THREADS" ] || die "RUSH_USERS must be at least THREADS"
for st in $COUPON_STRATEGIES; do
  case $st in gate|lock|db) ;; *) die "COUPON_STRATEGIES: '$st' is not gate, lock or db" ;; esac
done

# The selected scenarios, each group in its own fixed order whatever the order given.
declare -A WANT=()
for s in $SCENARIOS; do
  case " $ALL_SCENARIOS " in
    *" $s "*) WANT[$s]=1 ;;
    *) die "unknown scenario '$s' in SCENARIOS (known: $ALL_SCENARIOS; the ceilings run by themselves)" ;;
  esac
done
BAL_SEL='' CAT_SEL='' COUP_SEL='' ORD_SEL=''
for s in $BALANCE_SCENARIOS; do [ -z "${WANT[$s]:-}" ] || BAL_SEL+="${BAL_SEL:+ }$s"; done
for s in $CATALOG_SCENARIOS; do [ -z "${WANT[$s]:-}" ] || CAT_SEL+="${CAT_SEL:+ }$s"; done
for s in $COUPON_SCENARIOS; do [ -z "${WANT[$s]:-}" ] || COUP_SEL+="${COUP_SEL:+ }$s"; done
for s in $ORDER_SCENARIOS; do [ -z "${WANT[$s]:-}" ] || ORD_SEL+="${ORD_SEL:+ }$s"; done
[ -n "$BAL_SEL$CAT_SEL$COUP_SEL$ORD_SEL" ] || die "SCENARIOS selects nothing"
[ -z "$COUP_SEL" ] || [ -n "${COUPON_STRATEGIES// /}" ] || die "COUPON_STRATEGIES is empty"
[ -z "$ORD_SEL" ] || [ "$PRODUCTS" -ge 3 ] || die "the order scenarios need PRODUCTS >= 3 (orders of 1-3 lines)"
wanted() { [ -n "${WANT[$1]:-}" ]; }
log "scenarios: ${BAL_SEL:+nginx-ceiling $BAL_SEL }${CAT_SEL:+nginx-ceiling-catalog $CAT_SEL }${ORD_SEL:+nginx-ceiling-orders $ORD_SEL }${COUP_SEL:+nginx-ceiling-coupons $COUP_SEL (strategies: $COUPON_STRATEGIES)}"

# The names of the wrk runs (results.tsv, var/bench/raw/NAME-RUN.txt) of the selected groups: a
# coupon rush is run, and named, once per strategy (coupon-rush-50-gate, ...).
RUN_NAMES="${BAL_SEL:+nginx-ceiling $BAL_SEL} ${CAT_SEL:+nginx-ceiling-catalog $CAT_SEL} ${ORD_SEL:+nginx-ceiling-orders $ORD_SEL}"
[ -z "$COUP_SEL" ] || RUN_NAMES+=" nginx-ceiling-coupons"
for s in $COUP_SEL; do for st in $COUPON_STRATEGIES; do RUN_NAMES+=" $s-$st"; done; done

mkdir -p "$RAW" "$(dirname "$DOC")" "$(dirname "$CATALOG_DOC")" "$(dirname "$COUPON_DOC")" "$(dirname "$ORDER_DOC")"
# Only the raw outputs of the scenarios about to run: the other docs still link to their own.
for s in $RUN_NAMES; do
  rm -f "$RAW/$s"-[0-9]*.txt
done
rm -f "$RESULTS" "$EXTRA"
declare -A X=()
xset() { X["$1|$2|$3"]=$4; printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$EXTRA"; }  # xset NAME RUN KEY VALUE
xget() { printf '%s' "${X["$1|$2|$3"]:-}"; }                                          # xget NAME RUN KEY

# The commit reported is the one built (taken now: the tree may move on while the bench runs).
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || COMMIT="$COMMIT (working tree had uncommitted changes)"
log "building release (log: var/bench/build.log)"
# Only the server binary: the benchmark does not need the test targets.
{ cmake --preset release && cmake --build build/release -j"$(nproc)" --target shopd; } \
  > "$OUT/build.log" 2>&1 || { tail -n 30 "$OUT/build.log" >&2; die "build failed"; }

log "starting services"
scripts/services.sh up >&2

for p in "$BENCH_PORT" "$CEILING_PORT"; do
  ! port_in_use "$p" || die "127.0.0.1:$p is already in use (another bench or shopd?)"
done

# The environment of every shopd this script runs (serve, check).
SHOPD_ENV=(SHOPD_DB_URL="mysql://$DB_USER:$DB_PASS@$DB_HOST:$DB_PORT/$DB_NAME"
           SHOPD_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" SHOPD_JWT_SECRET="$JWT_SECRET")
SHOPD_STRATEGY=''   # the SHOPD_COUPON_STRATEGY of the running shopd ('' = the default, gate)

# start_shopd [STRATEGY]: shopd serve on $SHOPD_URL (its output appended to var/bench/shopd.log),
# with SHOPD_COUPON_STRATEGY=STRATEGY (read at start-up; empty = the default), polled on /healthz.
start_shopd() {
  SHOPD_STRATEGY=${1:-}
  log "starting shopd on $SHOPD_URL${SHOPD_STRATEGY:+ with SHOPD_COUPON_STRATEGY=$SHOPD_STRATEGY} (log: var/bench/shopd.log)"
  printf -- '---- bench: shopd serve started %s, SHOPD_COUPON_STRATEGY=%s\n' \
    "$(date -u '+%Y-%m-%d %H:%M:%S')" "${SHOPD_STRATEGY:-(default)}" >> "$OUT/shopd.log"
  env "${SHOPD_ENV[@]}" SHOPD_LISTEN="127.0.0.1:$BENCH_PORT" SHOPD_THREADS="$SHOPD_THREADS" \
    SHOPD_ACCESS_LOG=0 SHOPD_COUPON_STRATEGY="$SHOPD_STRATEGY" \
    "$SHOPD" serve >> "$OUT/shopd.log" 2>&1 < /dev/null &
  SHOPD_PID=$!
  wait_until 60 "$SHOPD_PID" curl -fsS "$SHOPD_URL/healthz" \
    || { tail -n 20 "$OUT/shopd.log" >&2; die "shopd did not answer /healthz"; }
}

# restart_shopd [STRATEGY]: stop ours by its pid, wait for the port to be free, start again.
restart_shopd() {
  stop_pid shopd "$SHOPD_PID"; SHOPD_PID=
  wait_until 15 $$ bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$BENCH_PORT) 2>/dev/null" \
    || die "127.0.0.1:$BENCH_PORT is still in use after shopd stopped"
  start_shopd "${1:-}"
}

: > "$OUT/shopd.log"
start_shopd

token() { SHOPD_JWT_SECRET=$JWT_SECRET "$SHOPD" token "$@"; }
ADMIN_TOKEN=$(token --admin)

# create_users TAG COUNT NAME_PREFIX TOKEN_FILE: COUNT users named NAME_PREFIX-1..COUNT, their
# ids in var/bench/TAG-ids.txt (creation order) and "userId token" lines in TOKEN_FILE.
create_users() {
  local tag=$1 count=$2 prefix=$3 tokens=$4 i
  log "creating $count users ($tag)"
  # One curl process, one kept-alive connection, $count POSTs; each prints its body and a newline.
  for ((i = 1; i <= count; i++)); do
    printf 'url = "%s/api/admin/users"\nsilent\nshow-error\nrequest = "POST"\n' "$SHOPD_URL"
    printf 'header = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\n' "$ADMIN_TOKEN"
    printf 'data = "{\\"name\\":\\"%s-%d\\"}"\nwrite-out = "\\n"\n' "$prefix" "$i"
    [ "$i" -eq "$count" ] || printf 'next\n'
  done > "$OUT/create-$tag.curl"
  curl -K "$OUT/create-$tag.curl" > "$OUT/created-$tag.json"
  jq -r '.userId // empty' "$OUT/created-$tag.json" > "$OUT/$tag-ids.txt"
  [ "$(wc -l < "$OUT/$tag-ids.txt")" -eq "$count" ] \
    || die "created $(wc -l < "$OUT/$tag-ids.txt") of $count users; see var/bench/created-$tag.json"

  log "minting $count user tokens ($tag)"
  # One `shopd token` per user, in parallel (process start-up dominates); each token names its
  # user in the `sub` claim, which jq decodes to pair them up again.
  SHOPD_JWT_SECRET=$JWT_SECRET xargs -P "$(nproc)" -n 1 "$SHOPD" token \
    < "$OUT/$tag-ids.txt" > "$tokens.unordered"
  jq -rR '. as $t | split(".")[1] | gsub("-"; "+") | gsub("_"; "/")
          | (. + ("=" * ((4 - length % 4) % 4))) | @base64d | fromjson | "\(.sub) \($t)"' \
    "$tokens.unordered" > "$tokens.paired"
  # Keep creation order (the hot users are the first $HOT_USERS created).
  awk 'NR == FNR { tok[$1] = $2; next } { print $1, tok[$1] }' "$tokens.paired" "$OUT/$tag-ids.txt" > "$tokens"
  rm -f "$tokens.unordered" "$tokens.paired"
  [ "$(awk 'NF == 2' "$tokens" | wc -l)" -eq "$count" ] || die "token file $tokens is incomplete"
}

# Users: for the balance scenarios and for cart-get.
if [ -n "$BAL_SEL" ] || wanted cart-get; then
  create_users user "$USERS" "bench-$RUN_ID" "$TOKENS"
  BENCH_IDS=$(paste -sd, "$OUT/user-ids.txt")
fi

# The crowd: $RUSH_USERS more users for the coupon rushes and the orders, reused by every run.
if [ -n "$COUP_SEL$ORD_SEL" ]; then
  create_users rush-user "$RUSH_USERS" "rush-$RUN_ID" "$RUSH_TOKENS"
fi

# Products: for every catalog scenario (cart lines, and the catalog ceiling's requests too) and
# the order scenarios.
if [ -n "$CAT_SEL$ORD_SEL" ]; then
  log "creating $PRODUCTS products"
  # As the users: one curl process, one kept-alive connection, one POST per product.
  for ((i = 1; i <= PRODUCTS; i++)); do
    printf 'url = "%s/api/admin/products"\nsilent\nshow-error\nrequest = "POST"\n' "$SHOPD_URL"
    printf 'header = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\n' "$ADMIN_TOKEN"
    printf 'data = "{\\"name\\":\\"bench-%s-%d\\",\\"description\\":\\"Benchmark product %d of run %s, with a description of ordinary length for a catalog page.\\",\\"price\\":%d,\\"stock\\":1000}"\nwrite-out = "\\n"\n' \
      "$RUN_ID" "$i" "$i" "$RUN_ID" $((1000 + (i * 7919 % 500) * 100))
    [ "$i" -eq "$PRODUCTS" ] || printf 'next\n'
  done > "$OUT/create-products.curl"
  curl -K "$OUT/create-products.curl" > "$OUT/created-products.json"
  jq -r '.productId // empty' "$OUT/created-products.json" > "$PRODUCT_IDS"
  [ "$(wc -l < "$PRODUCT_IDS")" -eq "$PRODUCTS" ] \
    || die "created $(wc -l < "$PRODUCT_IDS") of $PRODUCTS products; see var/bench/created-products.json"
fi

if wanted cart-get; then
  log "filling $USERS carts with $CART_LINES lines each"
  # Line k of user j is product (j * CART_LINES + k) mod PRODUCTS, quantity k + 1, posted with
  # the user's own token; neighbouring users share no product.
  awk -v url="$SHOPD_URL" -v lines="$CART_LINES" '
    NR == FNR { pid[n++] = $1; next }
    {
      for (k = 0; k < lines; k++) {
        if (blocks++) print "next"
        printf "url = \"%s/api/users/%s/cart/items\"\nsilent\nshow-error\nrequest = \"POST\"\n", url, $1
        printf "header = \"Authorization: Bearer %s\"\nheader = \"Content-Type: application/json\"\n", $2
        printf "data = \"{\\\"productId\\\":%s,\\\"quantity\\\":%d}\"\nwrite-out = \"\\n\"\n", pid[((FNR - 1) * lines + k) % n], k + 1
      }
    }' "$PRODUCT_IDS" "$TOKENS" > "$OUT/fill-carts.curl"
  curl -K "$OUT/fill-carts.curl" > "$OUT/filled-carts.json"
  filled=$(jq -r 'select(.userId != null and (.items | type) == "array") | .userId' "$OUT/filled-carts.json" | wc -l)
  [ "$filled" -eq $((USERS * CART_LINES)) ] \
    || die "$filled of $((USERS * CART_LINES)) cart POSTs answered with a Cart; see var/bench/filled-carts.json"
fi

# ---- running wrk and parsing its output -------------------------------------------------------

declare -A CMDS=()   # scenario -> wrk command line (for the report)

# parse_wrk FILE: prints "rps p50_ms p99_ms non2xx socket_errors replayed 2xx requests avg_ms".
# non2xx comes from our Lua counters (every status outside 200..299); if the script printed none
# (catalog.lua has no response() callback), from wrk's own "Non-2xx or 3xx responses" line
# (which, despite its wording, counts statuses >= 400).
parse_wrk() {
  awk '
    function ms(v) {                      # wrk prints 812.00us, 1.23ms, 2.01s, 1.50m
      if (v ~ /us$/) return v / 1000
      if (v ~ /ms$/) return v + 0
      if (v ~ /s$/)  return v * 1000
      if (v ~ /m$/)  return v * 60000
      if (v ~ /h$/)  return v * 3600000
      return v + 0
    }
    /^Requests\/sec:/              { rps = $2 }
    /^[ \t]+Latency[ \t]+[0-9]/     { avg = ms($2) }
    /^[ \t]+50%/                   { p50 = ms($2) }
    /^[ \t]+99%/                   { p99 = ms($2) }
    /^[ \t]*[0-9]+ requests in /   { requests = $1 }
    /Socket errors:/               { gsub(/,/, ""); sock = $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/    { wrk_non2xx = $5 }
    /^shopd-bench: responses=/ {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      lua = 1
    }
    END {
      if (rps == "") exit 1
      non2xx = lua ? v["non2xx"] : wrk_non2xx + 0
      printf "%s %.3f %.3f %d %d %d %d %d %.3f\n", rps, p50, p99, non2xx, sock + 0, v["replayed"] + 0, v["2xx"] + 0,
        requests + 0, avg
    }' "$1"
}

# cache_counters: the 12 cache counters of shopd's /metrics, in the order of results.tsv
# (hits misses loads errors of the product, cart and top caches).
cache_counters() {
  curl -fsS "$SHOPD_URL/metrics" | awk '
    { v[$1] = $2 }
    END {
      nc = split("product cart top", cache, " "); nk = split("hits misses loads errors", kind, " ")
      for (i = 1; i <= nc; i++)
        for (j = 1; j <= nk; j++) {
          name = "shopd_cache_" kind[j] "_total{cache=\"" cache[i] "\"}"
          if (!(name in v)) { print "no " name " in /metrics" > "/dev/stderr"; exit 1 }
          out = out (out == "" ? "" : " ") v[name]
        }
      print out
    }'
}

# scenario NAME URL SCRIPT ARGS...: RUNS wrk runs; raw output in var/bench/raw/NAME-RUN.txt.
# Against shopd, the cache counters are read before and after every run; their differences go to
# results.tsv (zeros for the nginx ceilings).
scenario() {
  local name=$1 url=$2 script=$3 r; shift 3
  local -a cmd=(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$script" "$url" -- "$@")
  CMDS[$name]="${cmd[*]}"
  for ((r = 1; r <= RUNS; r++)); do
    run_wrk "$name" "$r" "$url" "$script" "$@"
  done
}

# run_wrk NAME RUN URL SCRIPT ARGS...: one wrk run, var/bench/raw/NAME-RUN.txt, a results.tsv line.
# An argument "run=" becomes run=<invocation>-NAME-RUN: idempotency keys must be unique across
# runs, so every run gets its own run id.
run_wrk() {
  local name=$1 r=$2 url=$3 script=$4 raw fields before after delta i; shift 4
  local -a cmd=(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$script" "$url" -- "$@")
  for ((i = 0; i < ${#cmd[@]}; i++)); do
    [ "${cmd[i]}" != run= ] || cmd[i]=run=$RUN_ID-$name-$r
  done
  raw=$RAW/$name-$r.txt
  before='0 0 0 0 0 0 0 0 0 0 0 0'
  if [ "$url" = "$SHOPD_URL" ]; then before=$(cache_counters) || die "cannot read $SHOPD_URL/metrics"; fi
  log "$name run $r/$RUNS: ${cmd[*]}"
  "${cmd[@]}" > "$raw" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || die "wrk failed (exit $?); see $raw"
  WRK_PID=
  after=$before
  if [ "$url" = "$SHOPD_URL" ]; then after=$(cache_counters) || die "cannot read $SHOPD_URL/metrics"; fi
  delta=$(awk -v a="$before" -v b="$after" 'BEGIN {
    n = split(a, x, " "); split(b, y, " ")
    for (i = 1; i <= n; i++) printf "%s%d", (i > 1 ? " " : ""), y[i] - x[i]
    print "" }')
  fields=$(parse_wrk "$raw") || die "no Requests/sec in $raw"
  printf '%s\t%s\t%s\t%s\n' "$name" "$r" "${fields// /$'\t'}" "${delta// /$'\t'}" >> "$RESULTS"
  read -r rps p50 p99 non2xx sock replayed _ <<< "$fields"
  log "$name run $r: $rps req/s, p50 ${p50} ms, p99 ${p99} ms, non-2xx $non2xx, socket errors $sock, replayed $replayed"
  [ "$url" != "$SHOPD_URL" ] || log "$name run $r: cache deltas (product cart top: hits misses loads errors): $delta"
}

# ---- the scenarios ----------------------------------------------------------------------------

start_nginx() {
  log "starting nginx ceiling on $CEILING_URL"
  mkdir -p "$NGINX_DIR/logs" "$NGINX_DIR/tmp"
  sed -e "s|@PREFIX@|$NGINX_DIR|g" -e "s|@LISTEN@|127.0.0.1:$CEILING_PORT|g" \
    bench/nginx-ceiling.conf.in > "$NGINX_DIR/nginx.conf"
  nginx -p "$NGINX_DIR" -e "$NGINX_DIR/logs/error.log" -c "$NGINX_DIR/nginx.conf" -g 'daemon off;' \
    < /dev/null > "$NGINX_DIR/logs/stdout.log" 2>&1 &
  NGINX_PID=$!
  wait_until 10 "$NGINX_PID" curl -fsS "$CEILING_URL/" \
    || { cat "$NGINX_DIR/logs/error.log" >&2; die "nginx did not start"; }
}

# get_all NAME FILE: one curl process, one kept-alive connection, a GET of every URL listed in
# FILE (lines "url" or "url token", the token sent as a bearer token); each answer's body and a
# newline go to var/bench/NAME.json.
get_all() {
  local name=$1 file=$2
  awk '{
      if (NR > 1) print "next"
      printf "url = \"%s\"\nsilent\nshow-error\nwrite-out = \"\\n\"\n", $1
      if (NF > 1) printf "header = \"Authorization: Bearer %s\"\n", $2
    }' "$file" > "$OUT/$name.curl"
  curl -K "$OUT/$name.curl" > "$OUT/$name.json"
}

# ---- the balance scenarios --------------------------------------------------------------------

if [ -n "$BAL_SEL" ]; then
  start_nginx
  scenario nginx-ceiling "$CEILING_URL" bench/balance_get.lua "tokens=$TOKENS"
  stop_pid nginx "$NGINX_PID"; NGINX_PID=

  ! wanted balance-get || scenario balance-get "$SHOPD_URL" bench/balance_get.lua "tokens=$TOKENS"
  ! wanted charge-distinct \
    || scenario charge-distinct "$SHOPD_URL" bench/charge.lua "tokens=$TOKENS" mode=distinct "amount=$AMOUNT" run=
  ! wanted charge-hot \
    || scenario charge-hot "$SHOPD_URL" bench/charge.lua "tokens=$TOKENS" mode=hot "hot=$HOT_USERS" "amount=$AMOUNT" run=
fi

# ---- the catalog scenarios --------------------------------------------------------------------
# Every cached scenario is warmed just before it is measured (one request per key), and each
# warm-up also checks the answers: the wrk runs themselves only count statuses >= 400.

declare -A TOP_SIZES=()   # "days limit" -> number of ranked products in the warm-up answer

if [ -n "$CAT_SEL" ]; then
  start_nginx
  scenario nginx-ceiling-catalog "$CEILING_URL" bench/catalog.lua mode=product-detail "products=$PRODUCT_IDS"
  stop_pid nginx "$NGINX_PID"; NGINX_PID=

  if wanted product-detail; then
    log "product-detail: warming the product cache (one GET per product)"
    sed "s|^|$SHOPD_URL/api/products/|" "$PRODUCT_IDS" > "$OUT/warm-products.urls"
    get_all warm-products "$OUT/warm-products.urls"
    n=$(jq -r '.productId // empty' "$OUT/warm-products.json" | wc -l)
    [ "$n" -eq "$PRODUCTS" ] || die "warm-up: $n of $PRODUCTS product GETs answered a Product; see var/bench/warm-products.json"
    scenario product-detail "$SHOPD_URL" bench/catalog.lua mode=product-detail "products=$PRODUCT_IDS"
  fi

  if wanted product-list; then
    # Not cached (each page is one MariaDB query): no warm-up, one check of a page's size.
    n=$(curl -fsS "$SHOPD_URL/api/products?limit=$LIST_LIMIT&cursor=$(head -n 1 "$PRODUCT_IDS")" | jq '.products | length')
    [ "$n" -eq "$LIST_LIMIT" ] || die "product-list: a page after the first bench product has $n products, not $LIST_LIMIT"
    scenario product-list "$SHOPD_URL" bench/catalog.lua mode=product-list "products=$PRODUCT_IDS" "limit=$LIST_LIMIT"
  fi

  if wanted cart-get; then
    log "cart-get: warming the cart cache (one GET per user)"
    awk -v base="$SHOPD_URL" '{ print base "/api/users/" $1 "/cart", $2 }' "$TOKENS" > "$OUT/warm-carts.urls"
    get_all warm-carts "$OUT/warm-carts.urls"
    n=$(jq -r --argjson k "$CART_LINES" 'select((.items | length) == $k) | .userId' "$OUT/warm-carts.json" | wc -l)
    [ "$n" -eq "$USERS" ] || die "warm-up: $n of $USERS carts have $CART_LINES lines; see var/bench/warm-carts.json"
    scenario cart-get "$SHOPD_URL" bench/catalog.lua mode=cart-get "tokens=$TOKENS"
  fi

  if wanted top-products; then
    log "top-products: warming the top cache (its two keys)"
    printf '%s\n' "$SHOPD_URL/api/products/top?days=3&limit=5" "$SHOPD_URL/api/products/top?days=7&limit=10" \
      > "$OUT/warm-top.urls"
    get_all warm-top "$OUT/warm-top.urls"
    while read -r period count; do
      TOP_SIZES[$period]=$count
    done < <(jq -r 'select(.period != null) | "\(.period) \(.products | length)"' "$OUT/warm-top.json")
    [ "${#TOP_SIZES[@]}" -eq 2 ] || die "warm-up: the top-products answers lack a period; see var/bench/warm-top.json"
    scenario top-products "$SHOPD_URL" bench/catalog.lua mode=top-products
  fi
fi

# ---- the order and coupon scenarios -----------------------------------------------------------
# Each shopd run of these is followed by its MariaDB checks (once the database has settled: the
# requests in flight when wrk stopped still finish) and by `shopd check`. What they find goes to
# extra.tsv / X (xset), read back by the report.

CHECK_FAILED=0   # a `shopd check` failed (or could not run)
DB_FAILED=0      # a scenario's own MariaDB check failed
# The shopd counters whose change over each run is reported (name in /metrics, key in X).
METRICS_WATCHED="shopd_lock_timeouts_total:lock_timeouts shopd_lock_waits_total:lock_waits shopd_db_deadlock_retries_total:deadlock_retries shopd_db_errors_total:db_errors shopd_redis_errors_total:redis_errors shopd_idempotency_replays_total:idem_replays"

# metrics_values: the watched counters' values, space-separated, in METRICS_WATCHED's order.
metrics_values() {
  curl -fsS "$SHOPD_URL/metrics" | awk -v want="$METRICS_WATCHED" '
    { v[$1] = $2 }
    END { n = split(want, w, " "); for (i = 1; i <= n; i++) { split(w[i], nk, ":"); printf "%s%d", (i > 1 ? " " : ""), v[nk[1]] } print "" }'
}

# record_metrics NAME RUN BEFORE AFTER: the differences, into X.
record_metrics() {
  local -a b a w
  read -ra b <<< "$3"; read -ra a <<< "$4"; read -ra w <<< "$METRICS_WATCHED"
  local i
  for ((i = 0; i < ${#w[@]}; i++)); do xset "$1" "$2" "${w[i]#*:}" $(( ${a[i]:-0} - ${b[i]:-0} )); done
}

# lua_field RAW KEY: the value of KEY=value on the shopd-bench lines of a raw wrk output ("" if none).
lua_field() {
  awk -v k="$2" '/^shopd-bench: (responses=|codes=|orders )/ {
      for (i = 2; i <= NF; i++) { n = index($i, "="); if (n && substr($i, 1, n - 1) == k) v = substr($i, n + 1) } }
    END { print v }' "$1"
}

# list_count "K:N,K:N" KEY: N of KEY, 0 when absent (the statuses= and codes= lists).
list_count() {
  awk -v l="$1" -v k="$2" 'BEGIN {
    n = split(l, a, ",")
    for (i = 1; i <= n; i++) { j = match(a[i], /:[0-9]+$/); if (j && substr(a[i], 1, j - 1) == k) { print substr(a[i], j + 1) + 0; exit } }
    print 0 }'
}

# record_lua NAME RUN: the counts that the Lua scripts printed, into X (responses, statuses,
# codes, s2xx, s5xx, replayed; created, paid, keys for orders.lua).
record_lua() {
  local raw=$RAW/$1-$2.txt statuses codes
  statuses=$(lua_field "$raw" statuses) codes=$(lua_field "$raw" codes)
  xset "$1" "$2" responses "$(lua_field "$raw" responses)"
  xset "$1" "$2" s2xx "$(lua_field "$raw" 2xx)"
  xset "$1" "$2" replayed "$(lua_field "$raw" replayed)"
  xset "$1" "$2" statuses "${statuses:--}"
  xset "$1" "$2" codes "${codes:--}"
  xset "$1" "$2" s5xx "$(awk -v l="$statuses" 'BEGIN { n = split(l, a, ","); for (i = 1; i <= n; i++) { split(a[i], kv, ":"); if (kv[1] >= 500) s += kv[2] } print s + 0 }')"
  local k
  for k in created paid keys; do xset "$1" "$2" "$k" "$(lua_field "$raw" "$k")"; done
}

# settled_sql QUERY: QUERY's answer once it has stopped changing (3 equal answers 0.2 s apart,
# at most 30 s): requests that were in flight when wrk stopped are still being served.
settled_sql() {
  local prev='' cur same=0 deadline=$(( $(date +%s) + 30 ))
  while :; do
    cur=$(sql "$1")
    if [ "$cur" = "$prev" ]; then
      same=$((same + 1)); [ "$same" -lt 2 ] || break
    else
      same=0; prev=$cur
    fi
    [ "$(date +%s)" -lt "$deadline" ] || { log "warning: '$1' still changing after 30 s"; break; }
    sleep 0.2
  done
  printf '%s\n' "$cur"
}

# run_check NAME RUN: `shopd check` on the bench database; PASS/FAIL/ERROR and the failing
# invariants into X; its output in var/bench/raw/NAME-RUN.check.txt.
run_check() {
  local out=$RAW/$1-$2.check.txt rc=0 t0 t1 verdict
  t0=$(date +%s%N)
  env "${SHOPD_ENV[@]}" SHOPD_THREADS=2 "$SHOPD" check > "$out" 2>&1 < /dev/null || rc=$?
  t1=$(date +%s%N)
  case $rc in
    0) verdict=PASS ;;
    1) verdict=FAIL ;;
    *) verdict="ERROR (exit $rc)" ;;
  esac
  [ "$rc" -eq 0 ] || CHECK_FAILED=1
  xset "$1" "$2" check "$verdict"
  xset "$1" "$2" check_ms $(( (t1 - t0) / 1000000 ))
  xset "$1" "$2" check_failures "$(grep -E '^(FAIL|ERROR)' "$out" | sed 's/  */ /g' | paste -sd ';' -)"
  log "$1 run $2: shopd check $verdict ($(tail -n 1 "$out"))"
}

# admin_post PATH JSON: the answer's body (dies on a transport error; the caller checks it).
admin_post() {
  curl -sS -X POST "$SHOPD_URL$1" -H "Authorization: Bearer $ADMIN_TOKEN" \
    -H 'Content-Type: application/json' -d "$2"
}

# new_id PATH JSON FIELD: create something through the admin API and print its id.
new_id() {
  local body id
  body=$(admin_post "$1" "$2") || die "POST $1 failed"
  id=$(jq -r ".$3 // empty" <<< "$body" 2>/dev/null || true)
  [[ $id =~ ^[0-9]+$ ]] || die "POST $1 $2 answered: $body"
  printf '%s\n' "$id"
}

# charge_crowd ROUND: every crowd user charged $ORDER_BALANCE KRW with their own token.
charge_crowd() {
  log "charging each of the $RUSH_USERS crowd users $ORDER_BALANCE KRW (round $1)"
  awk -v url="$SHOPD_URL" -v amount="$ORDER_BALANCE" -v key="crowd-$RUN_ID-$1" '{
      if (NR > 1) print "next"
      printf "url = \"%s/api/users/%s/balance/charge\"\nsilent\nshow-error\nrequest = \"POST\"\n", url, $1
      printf "header = \"Authorization: Bearer %s\"\nheader = \"Content-Type: application/json\"\n", $2
      printf "header = \"Idempotency-Key: %s-%s\"\ndata = \"{\\\"amount\\\":%d}\"\nwrite-out = \"\\n\"\n", key, $1, amount
    }' "$RUSH_TOKENS" > "$OUT/charge-crowd.curl"
  curl -K "$OUT/charge-crowd.curl" > "$OUT/charged-crowd-$1.json"
  local n
  n=$(jq -r 'select(.chargedAmount != null) | .userId' "$OUT/charged-crowd-$1.json" | wc -l)
  [ "$n" -eq "$RUSH_USERS" ] || die "$n of $RUSH_USERS crowd charges succeeded; see var/bench/charged-crowd-$1.json"
}

crowd_min_balance() { sql "SELECT COALESCE(MIN(balance_krw), 0) FROM users WHERE name LIKE 'rush-$RUN_ID-%'"; }

# ---- the order scenarios ----------------------------------------------------------------------

CROWD_ROUNDS=0
if [ -n "$ORD_SEL" ]; then
  if wanted order-pay || wanted order-duplicate-burst; then
    log "setting the stock of the $PRODUCTS products to $ORDER_STOCK (PATCH /api/admin/products/{id})"
    awk -v url="$SHOPD_URL" -v tok="$ADMIN_TOKEN" -v stock="$ORDER_STOCK" '{
        if (NR > 1) print "next"
        printf "url = \"%s/api/admin/products/%s\"\nsilent\nshow-error\nrequest = \"PATCH\"\n", url, $1
        printf "header = \"Authorization: Bearer %s\"\nheader = \"Content-Type: application/json\"\n", tok
        printf "data = \"{\\\"stock\\\":%d}\"\nwrite-out = \"\\n\"\n", stock
      }' "$PRODUCT_IDS" > "$OUT/patch-stock.curl"
    curl -K "$OUT/patch-stock.curl" > "$OUT/patched-stock.json"
    n=$(jq -r --argjson s "$ORDER_STOCK" 'select(.stock == $s) | .productId' "$OUT/patched-stock.json" | wc -l)
    [ "$n" -eq "$PRODUCTS" ] || die "$n of $PRODUCTS stock PATCHes answered stock $ORDER_STOCK; see var/bench/patched-stock.json"
  fi
  if wanted order-pay; then
    CROWD_ROUNDS=1
    charge_crowd "$CROWD_ROUNDS"
  fi

  start_nginx
  scenario nginx-ceiling-orders "$CEILING_URL" bench/orders.lua mode=pay "tokens=$RUSH_TOKENS" \
    "products=$PRODUCT_IDS" "threads=$THREADS" run=
  stop_pid nginx "$NGINX_PID"; NGINX_PID=
  for ((r = 1; r <= RUNS; r++)); do record_lua nginx-ceiling-orders "$r"; done

  if wanted order-pay; then
    name=order-pay
    CMDS[$name]="wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency -s bench/orders.lua $SHOPD_URL -- mode=pay tokens=$RUSH_TOKENS products=$PRODUCT_IDS threads=$THREADS run="
    for ((r = 1; r <= RUNS; r++)); do
      # Top up while any crowd user has less than half a charge left.
      while [ "$(crowd_min_balance)" -lt $((ORDER_BALANCE / 2)) ]; do
        CROWD_ROUNDS=$((CROWD_ROUNDS + 1)); charge_crowd "$CROWD_ROUNDS"
      done
      read -r o0 p0 < <(sql "SELECT COALESCE(MAX(id), 0), (SELECT COALESCE(MAX(id), 0) FROM payments) FROM orders")
      m0=$(metrics_values)
      run_wrk "$name" "$r" "$SHOPD_URL" bench/orders.lua mode=pay "tokens=$RUSH_TOKENS" \
        "products=$PRODUCT_IDS" "threads=$THREADS" run=
      record_metrics "$name" "$r" "$m0" "$(metrics_values)"
      record_lua "$name" "$r"
      read -r orders_db payments_db < <(settled_sql "SELECT (SELECT COUNT(*) FROM orders WHERE id > $o0), (SELECT COUNT(*) FROM payments WHERE id > $p0)")
      xset "$name" "$r" orders_db "$orders_db"
      xset "$name" "$r" payments_db "$payments_db"
      created=$(xget "$name" "$r" created) paid=$(xget "$name" "$r" paid)
      # every 201 and 200 counted by wrk is a row; rows beyond them are the requests in flight at the stop
      verdict=PASS
      if [ "$created" -gt "$orders_db" ] || [ "$paid" -gt "$payments_db" ] \
         || [ $((orders_db - created)) -gt "$CONNECTIONS" ] || [ $((payments_db - paid)) -gt "$CONNECTIONS" ]; then
        verdict=FAIL; DB_FAILED=1
      fi
      xset "$name" "$r" db "$verdict"
      fields=$(parse_wrk "$RAW/$name-$r.txt")
      read -r rps _ _ _ _ _ _ requests _ <<< "$fields"
      xset "$name" "$r" pairs_s "$(awk -v p="$paid" -v rps="$rps" -v n="$requests" 'BEGIN { printf "%.1f", (n > 0 ? p * rps / n : 0) }')"
      log "$name run $r: $created orders and $paid payments answered (MariaDB: $orders_db orders, $payments_db payments: $verdict), $(xget "$name" "$r" pairs_s) pairs/s"
      run_check "$name" "$r"
    done
  fi

  if wanted order-duplicate-burst; then
    name=order-duplicate-burst
    CMDS[$name]="wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency -s bench/orders.lua $SHOPD_URL -- mode=burst tokens=$RUSH_TOKENS products=$PRODUCT_IDS threads=$THREADS burst=$BURST run="
    for ((r = 1; r <= RUNS; r++)); do
      o0=$(sql "SELECT COALESCE(MAX(id), 0) FROM orders")
      m0=$(metrics_values)
      run_wrk "$name" "$r" "$SHOPD_URL" bench/orders.lua mode=burst "tokens=$RUSH_TOKENS" \
        "products=$PRODUCT_IDS" "threads=$THREADS" "burst=$BURST" run=
      record_metrics "$name" "$r" "$m0" "$(metrics_values)"
      record_lua "$name" "$r"
      read -r orders_db keys_db < <(settled_sql "SELECT (SELECT COUNT(*) FROM orders WHERE id > $o0), (SELECT COUNT(*) FROM idempotency_keys WHERE path = '/api/orders' AND idem_key LIKE 'burst-$RUN_ID-$name-$r-%')")
      xset "$name" "$r" orders_db "$orders_db"
      xset "$name" "$r" keys_db "$keys_db"
      keys=$(xget "$name" "$r" keys) created=$(xget "$name" "$r" created)
      responses=$(xget "$name" "$r" responses) s2xx=$(xget "$name" "$r" s2xx)
      inflight=$(list_count "$(xget "$name" "$r" codes)" 409/IDEMPOTENCY_IN_FLIGHT)
      xset "$name" "$r" in_flight "$inflight"
      xset "$name" "$r" other $((responses - s2xx - inflight))
      # one order per key stored; no key answered twice as a first (non-replayed) 201; every key
      # sent stored, but for the last one of each thread that the stop may have cut off
      verdict=PASS
      if [ "$orders_db" -ne "$keys_db" ] || [ "$created" -gt "$keys_db" ] || [ "$keys_db" -gt "$keys" ] \
         || [ $((keys - keys_db)) -gt "$THREADS" ]; then
        verdict=FAIL; DB_FAILED=1
      fi
      xset "$name" "$r" db "$verdict"
      log "$name run $r: $keys keys sent, $keys_db stored, $orders_db orders created ($verdict); $created first 201s, $(xget "$name" "$r" replayed) replays, $inflight IDEMPOTENCY_IN_FLIGHT, $(xget "$name" "$r" other) other"
      run_check "$name" "$r"
    done
  fi

  if wanted order-hot-product; then
    name=order-hot-product
    CMDS[$name]="wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency -s bench/orders.lua $SHOPD_URL -- mode=hot tokens=$RUSH_TOKENS product=<a new product of stock $HOT_STOCK> threads=$THREADS run="
    for ((r = 1; r <= RUNS; r++)); do
      pid=$(new_id /api/admin/products "{\"name\":\"hot-$RUN_ID-$r\",\"description\":\"The one product of hot-product run $r.\",\"price\":1000,\"stock\":$HOT_STOCK}" productId)
      xset "$name" "$r" product "$pid"
      m0=$(metrics_values)
      run_wrk "$name" "$r" "$SHOPD_URL" bench/orders.lua mode=hot "tokens=$RUSH_TOKENS" "product=$pid" \
        "threads=$THREADS" run=
      record_metrics "$name" "$r" "$m0" "$(metrics_values)"
      record_lua "$name" "$r"
      read -r stock reserved sold lines qty < <(settled_sql "SELECT stock, reserved, sold, (SELECT COUNT(*) FROM order_items WHERE product_id = $pid), (SELECT COALESCE(SUM(quantity), 0) FROM order_items WHERE product_id = $pid) FROM products WHERE id = $pid")
      s201=$(list_count "$(xget "$name" "$r" statuses)" 201)
      oos=$(list_count "$(xget "$name" "$r" codes)" 409/OUT_OF_STOCK)
      responses=$(xget "$name" "$r" responses)
      for k in stock reserved sold lines s201 oos; do xset "$name" "$r" "$k" "${!k}"; done
      xset "$name" "$r" other $((responses - s201 - oos))
      # never below 0, nothing lost (stock + reserved + sold = what was put in), one unit per
      # order line, and every 201 is an order (orders beyond them were in flight at the stop)
      verdict=PASS
      if [ "$stock" -lt 0 ] || [ $((stock + reserved + sold)) -ne "$HOT_STOCK" ] \
         || [ "$qty" -ne $((HOT_STOCK - stock)) ] || [ "$s201" -gt "$lines" ] \
         || [ $((lines - s201)) -gt "$CONNECTIONS" ]; then
        verdict=FAIL; DB_FAILED=1
      fi
      xset "$name" "$r" db "$verdict"
      log "$name run $r: product $pid: stock $stock, reserved $reserved, sold $sold, $lines orders in MariaDB; wrk: $s201 × 201, $oos × OUT_OF_STOCK, $(xget "$name" "$r" other) other ($verdict; stock $( [ "$stock" -eq $((HOT_STOCK - s201)) ] && echo '=' || echo '≠') $HOT_STOCK − 201s)"
      run_check "$name" "$r"
    done
  fi
fi

# ---- the coupon scenarios ---------------------------------------------------------------------

if [ -n "$COUP_SEL" ]; then
  start_nginx
  scenario nginx-ceiling-coupons "$CEILING_URL" bench/coupon_rush.lua "tokens=$RUSH_TOKENS" coupon=1 \
    "threads=$THREADS"
  stop_pid nginx "$NGINX_PID"; NGINX_PID=
  for ((r = 1; r <= RUNS; r++)); do record_lua nginx-ceiling-coupons "$r"; done

  for st in $COUPON_STRATEGIES; do
    restart_shopd "$st"
    for s in $COUP_SEL; do
      qty=${s#coupon-rush-} name=$s-$st
      CMDS[$name]="wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency -s bench/coupon_rush.lua $SHOPD_URL -- tokens=$RUSH_TOKENS coupon=<a new coupon of $qty> threads=$THREADS"
      for ((r = 1; r <= RUNS; r++)); do
        coupon=$(new_id /api/admin/coupons "{\"name\":\"rush-$RUN_ID-$name-$r\",\"discountType\":\"FIXED\",\"discountValue\":1000,\"totalQuantity\":$qty}" couponId)
        xset "$name" "$r" strategy "$st"
        xset "$name" "$r" coupon "$coupon"
        xset "$name" "$r" total "$qty"
        m0=$(metrics_values)
        run_wrk "$name" "$r" "$SHOPD_URL" bench/coupon_rush.lua "tokens=$RUSH_TOKENS" "coupon=$coupon" \
          "threads=$THREADS"
        record_metrics "$name" "$r" "$m0" "$(metrics_values)"
        record_lua "$name" "$r"
        read -r issued held < <(settled_sql "SELECT issued_quantity, (SELECT COUNT(*) FROM user_coupons WHERE coupon_id = $coupon) FROM coupons WHERE id = $coupon")
        s201=$(list_count "$(xget "$name" "$r" statuses)" 201)
        sold=$(list_count "$(xget "$name" "$r" codes)" 409/COUPON_SOLD_OUT)
        already=$(list_count "$(xget "$name" "$r" codes)" 409/COUPON_ALREADY_ISSUED)
        responses=$(xget "$name" "$r" responses)
        for k in issued held s201 sold already; do xset "$name" "$r" "$k" "${!k}"; done
        xset "$name" "$r" other $((responses - s201 - sold - already))
        # exact: issued = coupons held <= the quantity; every 201 is a held coupon (coupons
        # beyond the 201s were in flight at the stop)
        verdict=PASS
        if [ "$issued" -ne "$held" ] || [ "$issued" -gt "$qty" ] || [ "$s201" -gt "$held" ] \
           || [ $((held - s201)) -gt "$CONNECTIONS" ]; then
          verdict=FAIL; DB_FAILED=1
        fi
        xset "$name" "$r" db "$verdict"
        log "$name run $r: coupon $coupon: issued $issued, held $held of $qty ($verdict); wrk: $s201 × 201, $sold × SOLD_OUT, $already × ALREADY_ISSUED, $(xget "$name" "$r" other) other"
        run_check "$name" "$r"
      done
    done
  done
fi

# ---- invariant --------------------------------------------------------------------------------

if [ -n "$BAL_SEL" ]; then
  log "checking the balance invariant"
  INV_ALL=$(sql "SELECT COUNT(*) FROM users u WHERE u.balance_krw <> (SELECT COALESCE(SUM(amount_krw),0) FROM balance_history h WHERE h.user_id=u.id)")
  USERS_ALL=$(sql "SELECT COUNT(*) FROM users")
  INV_BENCH=$(sql "SELECT COUNT(*) FROM users u WHERE u.id IN ($BENCH_IDS) AND u.balance_krw <> (SELECT COALESCE(SUM(amount_krw),0) FROM balance_history h WHERE h.user_id=u.id)")
  read -r DB_CHARGES DB_SUM < <(sql "SELECT COUNT(*), COALESCE(SUM(amount_krw),0) FROM balance_history WHERE type='CHARGE' AND user_id IN ($BENCH_IDS)")
  WRK_CHARGES=$(awk -F'\t' '$1 ~ /^charge-/ { s += $9 } END { print s + 0 }' "$RESULTS")
  REPLAYED=$(awk -F'\t' '$1 ~ /^charge-/ { s += $8 } END { print s + 0 }' "$RESULTS")
  INFLIGHT=$((DB_CHARGES - WRK_CHARGES))
  log "invariant: $INV_ALL of $USERS_ALL users violate it ($INV_BENCH of the $USERS bench users)"
  log "charges: $DB_CHARGES history rows for bench users, $WRK_CHARGES 2xx counted by wrk"
fi

# ---- report -----------------------------------------------------------------------------------

CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
SMOKE=
[ "$DURATION" -ge 30 ] && [ "$RUNS" -ge 3 ] \
  || SMOKE="**Smoke run (DURATION=$DURATION RUNS=$RUNS): checks the harness, not a measurement.**"

# awk helpers for results.tsv: statistics over the runs of a scenario ("x y z" lists)
AWK_STATS='
    function sorted(s, a,   n, i, j, t) {      # split "x y z" into a[1..n] ascending
      n = split(s, a, " ")
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t }
      return n
    }
    function median(s,   a, n) { n = sorted(s, a); return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2 }
    function lo(s,   a) { sorted(s, a); return a[1] }
    function hi(s,   a, n) { n = sorted(s, a); return a[n] }
    function range(s) { return lo(s) == hi(s) ? "" : sprintf(" (%.2f–%.2f)", lo(s), hi(s)) }
'

# summary_rows "SCENARIO...": one row per scenario listed (in results.tsv order): min/median/max
# req/s, median and range of p50/p99, errors
summary_rows() {
  awk -F'\t' -v only=" $1 " "$AWK_STATS"'
    !index(only, " " $1 " ") { next }
    !($1 in seen) { seen[$1] = 1; order[++n] = $1 }
    { rps[$1] = rps[$1] " " $3; p50[$1] = p50[$1] " " $4; p99[$1] = p99[$1] " " $5
      non[$1] += $6; sock[$1] += $7; rep[$1] += $8 }
    END {
      ceil = ("nginx-ceiling" in seen) ? median(rps["nginx-ceiling"]) : 0
      for (i = 1; i <= n; i++) {
        s = order[i]; m = median(rps[s])
        printf "| %s | %.0f | %.0f | %.0f | %.2f%s | %.2f%s | %d | %d | %d | %s |\n", s,
          lo(rps[s]), m, hi(rps[s]), median(p50[s]), range(p50[s]), median(p99[s]), range(p99[s]),
          non[s], sock[s], rep[s], (ceil > 0 ? sprintf("%.1f %%", 100 * m / ceil) : "–")
      }
    }' "$RESULTS"
}

run_rows() {  # run_rows SCENARIO: one row per wrk run
  awk -F'\t' -v s="$1" '$1 == s {
    printf "| %d | %.0f | %.2f | %.2f | %d | %d | %d | `var/bench/raw/%s-%d.txt` |\n", $2, $3, $4, $5, $6, $7, $8, $1, $2
  }' "$RESULTS"
}

# The caches a catalog scenario reads (results.tsv columns: product 12-15, cart 16-19, top 20-23).
AWK_CACHES='
    function caches(s) {
      if (s == "product-detail") return "product"
      if (s == "cart-get") return "cart product"
      if (s == "top-products") return "top"
      return ""
    }
    function col(c) { return c == "product" ? 12 : c == "cart" ? 16 : 20 }
    function ratio(h, m) { return h + m > 0 ? sprintf("%.2f %%", 100 * h / (h + m)) : "– (no reads)" }
'

catalog_summary_rows() {  # like summary_rows, with the average latency and the cache hit ratio
  awk -F'\t' -v only=" $1 " "$AWK_STATS$AWK_CACHES"'
    !index(only, " " $1 " ") { next }
    !($1 in seen) { seen[$1] = 1; order[++n] = $1 }
    { rps[$1] = rps[$1] " " $3; p50[$1] = p50[$1] " " $4; p99[$1] = p99[$1] " " $5; avg[$1] = avg[$1] " " $11
      non[$1] += $6; sock[$1] += $7
      for (c = 12; c <= 23; c++) tot[$1, c] += $c }
    END {
      ceil = ("nginx-ceiling-catalog" in seen) ? median(rps["nginx-ceiling-catalog"]) : 0
      for (i = 1; i <= n; i++) {
        s = order[i]; m = median(rps[s])
        k = split(caches(s), cs, " ")
        hit = (s == "nginx-ceiling-catalog") ? "–" : (k ? "" : "– (not cached)")
        for (j = 1; j <= k; j++)
          hit = hit (j > 1 ? ", " : "") cs[j] " " ratio(tot[s, col(cs[j])], tot[s, col(cs[j]) + 1])
        printf "| %s | %.0f | %.0f | %.0f | %.2f%s | %.2f%s | %.2f%s | %d | %d | %s | %s |\n", s,
          lo(rps[s]), m, hi(rps[s]), median(p50[s]), range(p50[s]), median(p99[s]), range(p99[s]),
          median(avg[s]), range(avg[s]), non[s], sock[s], hit,
          (ceil > 0 ? sprintf("%.1f %%", 100 * m / ceil) : "–")
      }
    }' "$RESULTS"
}

catalog_run_rows() {  # catalog_run_rows SCENARIO: one row per wrk run, with its cache deltas
  awk -F'\t' -v s="$1" "$AWK_CACHES"'$1 == s {
    k = split(caches(s), cs, " "); reads = k ? "" : "–"
    for (j = 1; j <= k; j++) {
      c = col(cs[j])
      reads = reads (j > 1 ? "; " : "") sprintf("%s %d / %d / %d / %d", cs[j], $c, $(c + 1), $(c + 2), $(c + 3))
    }
    printf "| %d | %.0f | %.2f | %.2f | %.2f | %d | %d | %d | %s | `var/bench/raw/%s-%d.txt` |\n",
      $2, $3, $4, $5, $11, $10, $6, $7, reads, $1, $2
  }' "$RESULTS"
}

# cart_vs_reference: one markdown list comparing cart-get's median p50/p99/average with the
# reference system's average.
cart_vs_reference() {
  awk -F'\t' -v ref="$REF_CART_AVG_MS" "$AWK_STATS"'
    function cmp(name, v) {
      if (v < ref) return sprintf("- %s %.2f ms: %.2f ms below the reference average (%.1f %% of it, %.1f× lower)", name, v, ref - v, 100 * v / ref, ref / v)
      if (v > ref) return sprintf("- %s %.2f ms: %.2f ms **above** the reference average (%.1f %% of it)", name, v, v - ref, 100 * v / ref)
      return sprintf("- %s %.2f ms: equal to the reference average", name, v)
    }
    $1 == "cart-get" { p50 = p50 " " $4; p99 = p99 " " $5; avg = avg " " $11 }
    END {
      if (p50 == "") exit 1
      print cmp("p50", median(p50)); print cmp("p99", median(p99)); print cmp("average", median(avg))
    }' "$RESULTS"
}

describe() {
  case $1 in
    nginx-ceiling) echo "nginx (\`bench/nginx-ceiling.conf.in\`, one worker per core) answering \`200 ok\` to exactly the balance-get requests: the most wrk and the loopback carry here." ;;
    balance-get) echo "\`GET /api/users/{id}/balance\` with each user's own token, round-robin over $USERS users (\`bench/balance_get.lua\`)." ;;
    charge-distinct) echo "\`POST /api/users/{id}/balance/charge\` \`{\"amount\":$AMOUNT}\`, a unique \`Idempotency-Key\` per request, round-robin over $USERS users (\`bench/charge.lua mode=distinct\`)." ;;
    charge-hot) echo "The same charges, all on $HOT_USERS users: row-lock contention (\`bench/charge.lua mode=hot\`)." ;;
    nginx-ceiling-catalog) echo "The same nginx answering \`200 ok\` to the product-detail requests of \`bench/catalog.lua\`, which, like every catalog scenario, has no Lua \`response()\` callback (the balance scripts count statuses in one, which costs wrk CPU: the balance ceiling is lower and not comparable)." ;;
    product-detail) echo "\`GET /api/products/{id}\`, round-robin over the $PRODUCTS bench products (\`bench/catalog.lua mode=product-detail\`). The product cache (1 h) is warmed first with one GET per product; every read should be a hit." ;;
    product-list) echo "\`GET /api/products?limit=$LIST_LIMIT&cursor=C\`, C one of the bench product ids (never one of the last $LIST_LIMIT, so every page is full), each thread in its own shuffled order (\`bench/catalog.lua mode=product-list\`). Not cached: one MariaDB query per request (\`WHERE id > ? ORDER BY id LIMIT $((LIST_LIMIT + 1))\`)." ;;
    cart-get) echo "\`GET /api/users/{id}/cart\` with each user's own token, round-robin over $USERS users with $CART_LINES cart lines each (\`bench/catalog.lua mode=cart-get\`). Each request reads the user's cart lines from the cart cache (1 day) and each line's product from the product cache; both are warmed first (one GET per cart)." ;;
    top-products) echo "\`GET /api/products/top?days=3&limit=5\` and \`?days=7&limit=10\`, alternating (\`bench/catalog.lua mode=top-products\`), warmed first. No sales are made, so the ranking may be empty (the warm-up answers ranked: $(for k in "${!TOP_SIZES[@]}"; do printf '%s %s products; ' "$k" "${TOP_SIZES[$k]}"; done | sed 's/; $//')); the cached path is what is measured. The top cache keeps a ranking 5 min (±10 %), so a run that ends more than about 4.5 min after the warm-up includes a reload." ;;
  esac
}

# Lines shared by both documents: commit, machine, tools, load, shopd.
machine_lines() {
  echo "- Commit: \`$COMMIT\`"
  echo "- Machine: $(nproc) CPUs ($CPU), $MEM RAM, Linux $(uname -r)"
  echo "- Tools: $(wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}'), nginx $(nginx -v 2>&1 | sed 's|.*nginx/||'), MariaDB $(sql 'SELECT VERSION()')"
  echo "- Load: \`wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency\`, $RUNS run(s) per scenario, back to back;" \
       "wrk, shopd, MariaDB and Redis share the $(nproc) CPUs."
  echo "- shopd: release build, \`SHOPD_THREADS=$SHOPD_THREADS\`, \`SHOPD_ACCESS_LOG=0\`, on 127.0.0.1:$BENCH_PORT;" \
       "MariaDB and Redis from \`scripts/services.sh\` (InnoDB flushes at every commit)."
}

commands() {  # commands SCENARIO...: the wrk command lines, relative to the repository
  local s line
  for s in "$@"; do
    line=${CMDS[$s]//$ROOT\//}
    [[ $line != *run= ]] || line+="<run id>"
    echo "$line"
  done
}

if [ -n "$BAL_SEL" ]; then
  log "writing $DOC"
  read -ra shown <<< "nginx-ceiling $BAL_SEL"
  INV_STATUS="PASS"
  [ "$INV_ALL" = 0 ] || INV_STATUS="FAIL"
  {
    echo "# Balance endpoints: benchmark"
    echo
    echo "Generated by \`scripts/bench.sh\` on $(date -u '+%Y-%m-%d %H:%M:%S UTC'); do not edit by hand."
    [ -z "$SMOKE" ] || { echo; echo "$SMOKE"; }
    echo
    machine_lines
    echo "- Data: $USERS users created for this run (ids $(head -n 1 "$OUT/user-ids.txt")…$(tail -n 1 "$OUT/user-ids.txt")), each request with that user's own token."
    echo
    echo "## Summary"
    echo
    echo "Latencies in ms. p50 and p99 are the median over the runs (range in parentheses);" \
         "req/s min/median/max over the runs; non-2xx, socket errors and replays are totals over the runs."
    echo "\"vs ceiling\" is the median req/s as a share of the nginx-ceiling median."
    echo
    echo "| scenario | req/s min | req/s median | req/s max | p50 | p99 | non-2xx | socket errors | replayed | vs ceiling |"
    echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    summary_rows "${shown[*]}"
    echo
    echo "## Invariant"
    echo
    echo "After the charge runs, users whose \`balance_krw\` differs from the sum of their history:"
    echo
    echo '```sql'
    echo "SELECT COUNT(*) FROM users u WHERE u.balance_krw <> (SELECT COALESCE(SUM(amount_krw),0) FROM balance_history h WHERE h.user_id=u.id);"
    echo '```'
    echo
    echo "- **$INV_STATUS**: $INV_ALL of $USERS_ALL users in database \`$DB_NAME\` ($INV_BENCH of the $USERS bench users)."
    echo "- Charge history rows of the bench users: $DB_CHARGES (sum $DB_SUM KRW); 2xx charge responses counted by wrk: $WRK_CHARGES;" \
         "difference $INFLIGHT (requests still in flight when a wrk run stopped: at most $CONNECTIONS per run, never negative)."
    echo "- Responses with \`Idempotent-Replayed\`: $REPLAYED (every key is unique, so 0 expected)."
    for s in "${shown[@]}"; do
      echo
      echo "## $s"
      echo
      describe "$s"
      echo
      echo "| run | req/s | p50 ms | p99 ms | non-2xx | socket errors | replayed | raw output |"
      echo "|--:|--:|--:|--:|--:|--:|--:|---|"
      run_rows "$s"
      samples=$(grep -h '^shopd-bench: sample' "$RAW/$s"-*.txt 2>/dev/null | sed 's/^shopd-bench: sample non-2xx: //' | sort | uniq -c | head -n 5 || true)
      if [ -n "$samples" ]; then
        echo
        echo "Sample non-2xx responses (count, status, body):"
        echo
        echo '```'
        echo "$samples"
        echo '```'
      fi
    done
    echo
    echo "## Reproduce"
    echo
    echo "On an idle machine, from the repository root:"
    echo
    echo '```sh'
    echo "DURATION=$DURATION RUNS=$RUNS THREADS=$THREADS CONNECTIONS=$CONNECTIONS USERS=$USERS HOT_USERS=$HOT_USERS SCENARIOS=\"$BAL_SEL\" scripts/bench.sh"
    echo '```'
    echo
    echo "It builds \`build/release/shopd\`, runs \`scripts/services.sh up\`, starts shopd on 127.0.0.1:$BENCH_PORT" \
         "and nginx on 127.0.0.1:$CEILING_PORT, creates the users through \`POST /api/admin/users\`," \
         "writes \`var/bench/tokens.txt\` (\`userId token\` per line, from \`shopd token\`), and runs, $RUNS time(s) each:"
    echo
    echo '```sh'
    commands "${shown[@]}"
    echo '```'
  } > "$DOC"
  log "done: $DOC"
fi

if [ -n "$CAT_SEL" ]; then
  log "writing $CATALOG_DOC"
  read -ra shown <<< "nginx-ceiling-catalog $CAT_SEL"
  {
    echo "# Catalog and cart endpoints: benchmark"
    echo
    echo "Generated by \`scripts/bench.sh\` on $(date -u '+%Y-%m-%d %H:%M:%S UTC'); do not edit by hand." \
         "The balance endpoints are in [balances.md](balances.md)."
    [ -z "$SMOKE" ] || { echo; echo "$SMOKE"; }
    echo
    machine_lines
    echo "- Data: $PRODUCTS products created for this run through \`POST /api/admin/products\`" \
         "(ids $(head -n 1 "$PRODUCT_IDS")…$(tail -n 1 "$PRODUCT_IDS")), used by every catalog scenario and run."
    if wanted cart-get; then
      echo "- Carts: $USERS users created for this run (ids $(head -n 1 "$OUT/user-ids.txt")…$(tail -n 1 "$OUT/user-ids.txt"))," \
           "each with $CART_LINES cart lines (\`POST /api/users/{id}/cart/items\` with the user's own token), read with that token."
    fi
    echo "- Caches (Redis): product 1 h, cart lines 1 day, top products 5 min, each ±10 %. Cached scenarios are warmed" \
         "just before they are measured; no writes happen during the runs, so nothing is invalidated."
    echo
    echo "## Summary"
    echo
    echo "Latencies in ms. p50, p99 and the average are the median over the runs (range in parentheses);" \
         "req/s min/median/max over the runs; non-2xx (wrk's count of statuses >= 400) and socket errors are totals over the runs."
    echo "\"cache hit ratio\" is hits / (hits + misses) of the scenario's cache over its runs, from the" \
         "\`shopd_cache_hits_total\` and \`shopd_cache_misses_total\` counters of \`/metrics\` read before and after each run;" \
         "cart-get reads the cart cache once and the product cache once per line."
    echo "\"vs ceiling\" is the median req/s as a share of the nginx-ceiling-catalog median."
    echo
    echo "| scenario | req/s min | req/s median | req/s max | p50 | p99 | average | non-2xx | socket errors | cache hit ratio | vs ceiling |"
    echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|"
    catalog_summary_rows "${shown[*]}"
    if wanted cart-get; then
      echo
      echo "## cart-get against the reference system"
      echo
      echo "The reference system's figure: cached cart reads averaged $REF_CART_AVG_MS ms at $REF_CART_VUS virtual users." \
           "Our cart-get at $CONNECTIONS connections (medians over the runs):"
      echo
      cart_vs_reference
      echo
      echo "Not a like-for-like comparison: a different machine and load generator, and an average there against" \
           "percentiles here (the average is listed too). $CONNECTIONS wrk connections with no think time match" \
           "$REF_CART_VUS virtual users only if those had none either."
      [ -z "$SMOKE" ] || { echo; echo "This is a smoke run: these figures are not a measurement."; }
    fi
    for s in "${shown[@]}"; do
      echo
      echo "## $s"
      echo
      describe "$s"
      echo
      echo "| run | req/s | p50 ms | p99 ms | avg ms | requests | non-2xx | socket errors | cache: hits / misses / loads / errors | raw output |"
      echo "|--:|--:|--:|--:|--:|--:|--:|--:|---|---|"
      catalog_run_rows "$s"
    done
    echo
    echo "## Reproduce"
    echo
    echo "On an idle machine, from the repository root:"
    echo
    echo '```sh'
    echo "DURATION=$DURATION RUNS=$RUNS THREADS=$THREADS CONNECTIONS=$CONNECTIONS USERS=$USERS PRODUCTS=$PRODUCTS" \
         "CART_LINES=$CART_LINES LIST_LIMIT=$LIST_LIMIT SCENARIOS=\"$CAT_SEL\" scripts/bench.sh"
    echo '```'
    echo
    echo "It builds \`build/release/shopd\`, runs \`scripts/services.sh up\`, starts shopd on 127.0.0.1:$BENCH_PORT" \
         "and nginx on 127.0.0.1:$CEILING_PORT, creates the products through \`POST /api/admin/products\`" \
         "(ids in \`var/bench/product-ids.txt\`)$(wanted cart-get && echo ", the users through \`POST /api/admin/users\` (\`var/bench/tokens.txt\`: \`userId token\` per line) and their cart lines"), warms the caches, and runs, $RUNS time(s) each:"
    echo
    echo '```sh'
    commands "${shown[@]}"
    echo '```'
  } > "$CATALOG_DOC"
  log "done: $CATALOG_DOC"
fi

# ---- coupons.md and orders.md -----------------------------------------------------------------

# rps_stats NAME: "min<TAB>median<TAB>max<TAB>p50 (range)<TAB>p99 (range)" of NAME's runs.
rps_stats() {
  awk -F'\t' -v s="$1" "$AWK_STATS"'$1 == s { rps = rps " " $3; p50 = p50 " " $4; p99 = p99 " " $5 }
    END {
      if (rps == "") exit 1
      printf "%.0f\t%.0f\t%.0f\t%.2f%s\t%.2f%s\n", lo(rps), median(rps), hi(rps), median(p50), range(p50), median(p99), range(p99)
    }' "$RESULTS"
}

# run_field NAME RUN COLUMN: a column of NAME's results.tsv line for RUN (3 rps, 4 p50, 5 p99, 7 socket errors).
run_field() { awk -F'\t' -v s="$1" -v r="$2" -v c="$3" '$1 == s && $2 == r { print $c }' "$RESULTS"; }

# sock_sum NAME: socket errors (connect, read, write, and time-outs: answers slower than wrk's 2 s) over the runs.
sock_sum() { awk -F'\t' -v s="$1" '$1 == s { t += $7 } END { print t + 0 }' "$RESULTS"; }

# xsum NAME KEY: KEY summed over the runs. xall NAME KEY: PASS when every run's KEY is PASS.
xsum() {
  local t=0 r v
  for ((r = 1; r <= RUNS; r++)); do v=$(xget "$1" "$r" "$2"); t=$((t + ${v:-0})); done
  echo "$t"
}
xall() {
  local r v bad=''
  for ((r = 1; r <= RUNS; r++)); do
    v=$(xget "$1" "$r" "$2")
    [ "$v" = PASS ] || bad+="${bad:+, }run $r: ${v:-not run}"
  done
  if [ -z "$bad" ]; then echo PASS; else echo "**FAIL** ($bad)"; fi
}
# xmedian NAME KEY: the median over the runs of a numeric KEY.
xmedian() {
  local r vals=''
  for ((r = 1; r <= RUNS; r++)); do vals+=" $(xget "$1" "$r" "$2")"; done
  awk -v v="$vals" "$AWK_STATS"'BEGIN { printf "%.1f\n", median(v) }'
}
# ceiling_median NAME: the median req/s of a ceiling (0 when it did not run).
ceiling_median() { awk -F'\t' -v s="$1" "$AWK_STATS"'$1 == s { r = r " " $3 } END { print r == "" ? 0 : median(r) }' "$RESULTS"; }
vs_ceiling() { awk -v m="$1" -v c="$2" 'BEGIN { if (c > 0) printf "%.1f %%", 100 * m / c; else printf "–" }'; }

thousands() { sed -E ':a; s/([0-9])([0-9]{3})($|[^0-9])/\1,\2\3/; ta' <<< "$1"; }  # 30000 -> 30,000

# codes_text "409/OUT_OF_STOCK:3,503/UNAVAILABLE:1": "409 OUT_OF_STOCK × 3, 503 UNAVAILABLE × 1" ("–" if none)
codes_text() {
  [ -n "$1" ] && [ "$1" != - ] || { echo "–"; return; }
  tr ',' '\n' <<< "$1" | sed -E 's|^([0-9]+)/([^:]*):([0-9]+)$|\1 \2 × \3|; s| - × | × |' | paste -sd ',' - | sed 's/,/, /g'
}
# codes_except NAME RUN KIND...: the codes of a run other than the KINDs named
codes_except() {
  local codes kind; codes=$(xget "$1" "$2" codes); shift 2
  for kind in "$@"; do codes=$(tr ',' '\n' <<< "$codes" | grep -v "^$kind:" | paste -sd ',' -); done
  codes_text "$codes"
}

# samples_block EXPECTED NAME: the sample non-2xx bodies of NAME's raw outputs, those whose code is
# one of the EXPECTED (a regex, e.g. 'OUT_OF_STOCK|X') left out, as a fenced block (or nothing).
samples_block() {
  local out
  out=$(cat "$RAW/$2"-[0-9]*.txt 2>/dev/null | grep '^shopd-bench: sample' | sed 's/^shopd-bench: sample non-2xx: //' \
        | grep -Ev "\"code\":\"($1)\"" | sort | uniq -c | sort -rn | head -n 12 || true)
  [ -n "$out" ] || return 0
  echo
  echo "Sample unexpected non-2xx responses (the first of each status and code per wrk thread and run; count, status, body):"
  echo
  echo '```'
  echo "$out"
  echo '```'
}

check_note() {  # what `shopd check` is, for both documents
  echo "\`shopd check\` (\`build/release/shopd check\` on the same database) verifies every invariant of the database" \
       "(balances = history, stock bookkeeping, coupon counts, one payment and one \`order.paid\` event per PAID order," \
       "no idempotency key with two effects, ...) after every run; its output is in \`var/bench/raw/<scenario>-<run>.check.txt\`." \
       "It checks the whole database, so a FAIL may come from data that other runs or earlier invocations left."
}

check_failures_block() {  # check_failures_block NAMES...: the failing invariants, if any
  local s r f out=''
  for s in "$@"; do
    for ((r = 1; r <= RUNS; r++)); do
      f=$(xget "$s" "$r" check_failures)
      [ -z "$f" ] || out+="- $s run $r: ${f//;/; }"$'\n'
    done
  done
  [ -n "$out" ] || return 0
  echo
  echo "Failing invariants reported by \`shopd check\`:"
  echo
  printf '%s' "$out"
}

if [ -n "$COUP_SEL" ]; then
  log "writing $COUPON_DOC"
  CEIL=$(ceiling_median nginx-ceiling-coupons)
  {
    echo "# Coupons: benchmark"
    echo
    echo "Generated by \`scripts/bench.sh\` on $(date -u '+%Y-%m-%d %H:%M:%S UTC'); do not edit by hand." \
         "The other endpoints are in [balances.md](balances.md), [catalog.md](catalog.md) and [orders.md](orders.md)."
    [ -z "$SMOKE" ] || { echo; echo "$SMOKE"; }
    echo
    machine_lines
    echo "- Data: $RUSH_USERS users created for this invocation (ids $(head -n 1 "$OUT/rush-user-ids.txt")…$(tail -n 1 "$OUT/rush-user-ids.txt"))," \
         "each request with that user's own token; a new coupon (\`FIXED\` 1,000 KRW, open from its creation, no end)" \
         "created through \`POST /api/admin/coupons\` for every run."
    echo "- Strategies (\`SHOPD_COUPON_STRATEGY\`, read at start-up): $COUPON_STRATEGIES. shopd is stopped and started again" \
         "for each; its runs follow back to back. \`gate\`: an atomic Redis admission step turns away the sold-out and" \
         "the repeats, MariaDB judges the admitted; \`lock\`: the reference system's per-coupon distributed lock around" \
         "the MariaDB transaction; \`db\`: MariaDB alone."
    echo
    echo "## Against the reference system"
    echo
    echo "The reference (NestJS) system served the sold-out coupon rush at about $(thousands "$REF_COUPON_RPS") req/s;" \
         "our target is at least $(thousands "$TARGET_COUPON_RPS") req/s. The nearest scenario here is coupon-rush-50," \
         "where the coupon is gone after 50 issues and nearly every request takes the sold-out (or repeat) path. Median req/s:"
    echo
    for st in $COUPON_STRATEGIES; do
      n=coupon-rush-50-$st
      if IFS=$'\t' read -r _ med _ _ _ < <(rps_stats "$n"); then
        awk -v st="$st" -v m="$med" -v ref="$REF_COUPON_RPS" -v tgt="$TARGET_COUPON_RPS" 'BEGIN {
          printf "- %s: %.0f req/s: %.1f× the reference, %.1f %% of the target (%s)\n", st, m, m / ref, 100 * m / tgt,
            m >= tgt ? "meets it" : "**below it**" }'
      else
        echo "- $st: not run (coupon-rush-50 was not selected)"
      fi
    done
    echo
    echo "Not a like-for-like comparison: a different machine and load generator; here wrk, shopd, MariaDB and Redis" \
         "share $(nproc) CPUs, and wrk counts every response's status and code in Lua, which costs it CPU (see the ceiling)."
    [ -z "$SMOKE" ] || { echo; echo "This is a smoke run: these figures are not a measurement."; }
    echo
    echo "## Summary"
    echo
    echo "Latencies in ms, of every request. p50 and p99 are the median over the runs (range in parentheses);" \
         "req/s min/median/max over the runs. The status mix is counted by \`bench/coupon_rush.lua\` and summed over the runs:" \
         "201 issued, 409 \`COUPON_SOLD_OUT\`, 409 \`COUPON_ALREADY_ISSUED\` (a user asking again after the round-robin" \
         "went through all $RUSH_USERS users), other (anything else; for the ceiling, its 200s). Socket errors include wrk's" \
         "time-outs: answers slower than 2 s, left out of wrk's latencies (so p99 reads low) but counted in the mix." \
         "\"MariaDB\" is the check after every run (next section); \"vs ceiling\" is the median req/s as a share of the" \
         "nginx-ceiling-coupons median."
    echo
    echo "| scenario | strategy | req/s min | req/s median | req/s max | p50 | p99 | 201 | 409 SOLD_OUT | 409 ALREADY_ISSUED | other | socket errors | issued per run (MariaDB) | MariaDB | shopd check | vs ceiling |"
    echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|---|--:|"
    IFS=$'\t' read -r lo med hi p50 p99 < <(rps_stats nginx-ceiling-coupons)
    echo "| nginx-ceiling-coupons | – | $lo | $med | $hi | $p50 | $p99 | 0 | 0 | 0 | $(xsum nginx-ceiling-coupons responses) | $(sock_sum nginx-ceiling-coupons) | – | – | – | $(vs_ceiling "$med" "$CEIL") |"
    for s in $COUP_SEL; do
      for st in $COUPON_STRATEGIES; do
        n=$s-$st
        IFS=$'\t' read -r lo med hi p50 p99 < <(rps_stats "$n")
        issued=''
        for ((r = 1; r <= RUNS; r++)); do issued+="${issued:+, }$(xget "$n" "$r" issued)"; done
        echo "| $s | $st | $lo | $med | $hi | $p50 | $p99 | $(xsum "$n" s201) | $(xsum "$n" sold) | $(xsum "$n" already) | $(xsum "$n" other)" \
             "| $(sock_sum "$n") | $issued of ${s#coupon-rush-} | $(xall "$n" db) | $(xall "$n" check) | $(vs_ceiling "$med" "$CEIL") |"
      done
    done
    echo
    echo "## Strategies side by side"
    echo
    echo "Median req/s, with the median p99 in ms in parentheses."
    echo
    hdr="| scenario |" sep="|---|"
    for st in $COUPON_STRATEGIES; do hdr+=" $st |"; sep+="--:|"; done
    echo "$hdr"; echo "$sep"
    for s in $COUP_SEL; do
      row="| $s |"
      for st in $COUPON_STRATEGIES; do
        IFS=$'\t' read -r _ med _ _ p99 < <(rps_stats "$s-$st")
        row+=" $med (${p99%% *}) |"
      done
      echo "$row"
    done
    echo
    echo "## Checks"
    echo
    echo "After every run, once the requests in flight at wrk's stop have finished:"
    echo
    echo '```sql'
    echo "SELECT issued_quantity, (SELECT COUNT(*) FROM user_coupons WHERE coupon_id = ?) FROM coupons WHERE id = ?;"
    echo '```'
    echo
    echo "PASS when issued_quantity equals the coupons held and never exceeds totalQuantity, and the 201s counted by wrk" \
         "are at most the coupons held and at least that less $CONNECTIONS (the requests still in flight when wrk stopped:" \
         "issued, but their answer never read). Fewer issued than totalQuantity means the run ended before the coupon" \
         "was gone."
    echo
    check_note
    all_names=()
    for s in $COUP_SEL; do for st in $COUPON_STRATEGIES; do all_names+=("$s-$st"); done; done
    check_failures_block "${all_names[@]}"
    for s in $COUP_SEL; do
      for st in $COUPON_STRATEGIES; do
        n=$s-$st
        echo
        echo "## $s, $st"
        echo
        echo "\`POST /api/coupons/{id}/issue\` \`{\"userId\":N}\` on a new coupon of totalQuantity ${s#coupon-rush-} per run," \
             "$RUSH_USERS users dealt out to the $THREADS wrk threads and walked round-robin, each with its own token" \
             "(\`bench/coupon_rush.lua\`), shopd with \`SHOPD_COUPON_STRATEGY=$st\`."
        echo
        echo "| run | coupon | req/s | p50 ms | p99 ms | 201 | 409 SOLD_OUT | 409 ALREADY_ISSUED | other | socket errors | issued / held / total | MariaDB | shopd check | lock waits / time-outs | raw output |"
        echo "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|---|---|---|"
        for ((r = 1; r <= RUNS; r++)); do
          echo "| $r | $(xget "$n" "$r" coupon) | $(run_field "$n" "$r" 3 | awk '{ printf "%.0f", $1 }') | $(run_field "$n" "$r" 4) | $(run_field "$n" "$r" 5)" \
               "| $(xget "$n" "$r" s201) | $(xget "$n" "$r" sold) | $(xget "$n" "$r" already) | $(xget "$n" "$r" other) | $(run_field "$n" "$r" 7)" \
               "| $(xget "$n" "$r" issued) / $(xget "$n" "$r" held) / $(xget "$n" "$r" total) | $(xget "$n" "$r" db) | $(xget "$n" "$r" check) ($(xget "$n" "$r" check_ms) ms)" \
               "| $(xget "$n" "$r" lock_waits) / $(xget "$n" "$r" lock_timeouts) | \`var/bench/raw/$n-$r.txt\` |"
        done
        other=''
        for ((r = 1; r <= RUNS; r++)); do
          o=$(codes_except "$n" "$r" 409/COUPON_SOLD_OUT 409/COUPON_ALREADY_ISSUED)
          [ "$o" = "–" ] || other+="${other:+; }run $r: $o"
        done
        [ -z "$other" ] || { echo; echo "Other non-2xx responses: $other."; }
        samples_block 'COUPON_SOLD_OUT|COUPON_ALREADY_ISSUED' "$n"
      done
    done
    echo
    echo "## Reproduce"
    echo
    echo "On an idle machine, from the repository root:"
    echo
    echo '```sh'
    echo "DURATION=$DURATION RUNS=$RUNS THREADS=$THREADS CONNECTIONS=$CONNECTIONS RUSH_USERS=$RUSH_USERS COUPON_STRATEGIES=\"$COUPON_STRATEGIES\" SCENARIOS=\"$COUP_SEL\" scripts/bench.sh"
    echo '```'
    echo
    echo "It builds \`build/release/shopd\`, runs \`scripts/services.sh up\`, starts shopd on 127.0.0.1:$BENCH_PORT" \
         "and nginx on 127.0.0.1:$CEILING_PORT, creates the users through \`POST /api/admin/users\`" \
         "(\`var/bench/rush-tokens.txt\`: \`userId token\` per line, from \`shopd token\`), and runs, $RUNS time(s) each," \
         "the ceiling and then, for each strategy (shopd restarted with it), each scenario on a new coupon:"
    echo
    echo '```sh'
    commands nginx-ceiling-coupons
    for s in $COUP_SEL; do commands "$s-${COUPON_STRATEGIES%% *}"; done
    echo '```'
  } > "$COUPON_DOC"
  log "done: $COUPON_DOC"
fi

if [ -n "$ORD_SEL" ]; then
  log "writing $ORDER_DOC"
  CEIL=$(ceiling_median nginx-ceiling-orders)
  read -ra shown <<< "$ORD_SEL"
  {
    echo "# Orders and payments: benchmark"
    echo
    echo "Generated by \`scripts/bench.sh\` on $(date -u '+%Y-%m-%d %H:%M:%S UTC'); do not edit by hand." \
         "The other endpoints are in [balances.md](balances.md), [catalog.md](catalog.md) and [coupons.md](coupons.md)."
    [ -z "$SMOKE" ] || { echo; echo "$SMOKE"; }
    echo
    machine_lines
    echo "- Data: $RUSH_USERS users created for this invocation (ids $(head -n 1 "$OUT/rush-user-ids.txt")…$(tail -n 1 "$OUT/rush-user-ids.txt"))," \
         "each request with that user's own token$( [ "$CROWD_ROUNDS" -gt 0 ] && echo ", each charged $ORDER_BALANCE KRW $CROWD_ROUNDS time(s) (before order-pay, and again whenever one ran below half of that)");" \
         "$PRODUCTS products created through \`POST /api/admin/products\` (ids $(head -n 1 "$PRODUCT_IDS")…$(tail -n 1 "$PRODUCT_IDS"))$( (wanted order-pay || wanted order-duplicate-burst) && echo ", their stock set to $ORDER_STOCK by \`PATCH /api/admin/products/{id}\`")."
    echo "- shopd's default coupon strategy; orders stay PENDING for \`SHOPD_ORDER_TTL\` (600 s) unless paid, so the" \
         "expiry sweeper may release some of an earlier run's orders during a later one."
    if wanted order-pay; then
      echo
      echo "## Against the reference system"
      echo
      echo "The reference system did order-then-pay at about $REF_PAIRS pairs/s; our target is at least $(thousands "$TARGET_PAIRS") pairs/s."
      pairs=$(xmedian order-pay pairs_s)
      awk -v m="$pairs" -v ref="$REF_PAIRS" -v tgt="$TARGET_PAIRS" 'BEGIN {
        printf "order-pay, median over the runs: %.0f pairs/s (successful payments per second): %.1f× the reference, %.1f %% of the target (%s).\n",
          m, m / ref, 100 * m / tgt, m >= tgt ? "meets it" : "**below it**" }'
      echo
      echo "Not a like-for-like comparison: a different machine and load generator; here wrk, shopd, MariaDB and Redis share $(nproc) CPUs."
      [ -z "$SMOKE" ] || { echo; echo "This is a smoke run: these figures are not a measurement."; }
    fi
    echo
    echo "## Summary"
    echo
    echo "Latencies in ms, of every request (order-pay mixes its two requests: wrk's Lua cannot time them apart)." \
         "p50 and p99 are the median over the runs (range in parentheses); req/s min/median/max over the runs;" \
         "pairs/s (order-pay) = 200 Payments per second, the median over the runs. non-2xx, 5xx and socket errors are" \
         "totals over the runs. \"MariaDB\" is the scenario's own check after every run (its section says what);" \
         "\"vs ceiling\" is the median req/s as a share of the nginx-ceiling-orders median."
    echo
    echo "| scenario | req/s min | req/s median | req/s max | pairs/s | p50 | p99 | non-2xx | 5xx | socket errors | MariaDB | shopd check | vs ceiling |"
    echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|--:|"
    for n in nginx-ceiling-orders "${shown[@]}"; do
      IFS=$'\t' read -r lo med hi p50 p99 < <(rps_stats "$n")
      sock=$(sock_sum "$n")
      non2xx=$(( $(xsum "$n" responses) - $(xsum "$n" s2xx) ))
      pairs="–"; [ "$n" != order-pay ] || pairs=$(xmedian order-pay pairs_s | awk '{ printf "%.0f", $1 }')
      if [ "$n" = nginx-ceiling-orders ]; then db="–" chk="–"; else db=$(xall "$n" db) chk=$(xall "$n" check); fi
      echo "| $n | $lo | $med | $hi | $pairs | $p50 | $p99 | $non2xx | $(xsum "$n" s5xx) | $sock | $db | $chk | $(vs_ceiling "$med" "$CEIL") |"
    done
    echo
    echo "## Checks"
    echo
    check_note
    check_failures_block "${shown[@]}"
    echo
    echo "## nginx-ceiling-orders"
    echo
    echo "nginx (\`bench/nginx-ceiling.conf.in\`) answering \`200 ok\` to the order-pay script's requests (all of them" \
         "order creations: no orderId ever comes back), with the same Lua response() counting: what wrk and the loopback carry here."
    echo
    echo "| run | req/s | p50 ms | p99 ms | raw output |"
    echo "|--:|--:|--:|--:|---|"
    for ((r = 1; r <= RUNS; r++)); do
      echo "| $r | $(run_field nginx-ceiling-orders "$r" 3 | awk '{ printf "%.0f", $1 }') | $(run_field nginx-ceiling-orders "$r" 4) | $(run_field nginx-ceiling-orders "$r" 5) | \`var/bench/raw/nginx-ceiling-orders-$r.txt\` |"
    done
    if wanted order-pay; then
      n=order-pay
      echo
      echo "## order-pay"
      echo
      echo "\`POST /api/orders\` (1–3 lines of quantity 1 over the $PRODUCTS products, a unique \`Idempotency-Key\`), then" \
           "\`POST /api/orders/{orderId}/payment\` of that order with another unique key, by $RUSH_USERS users dealt out to" \
           "the $THREADS wrk threads, round-robin (\`bench/orders.lua mode=pay\`: each thread queues the orderId of every 201" \
           "and sends the oldest queued payment before any new order, so each connection alternates)." \
           "MariaDB check: the orders and payments created during the run (rows beyond the ids before it) are at least the" \
           "201s and 200s wrk counted and at most $CONNECTIONS more (in flight at the stop)."
      echo
      echo "| run | req/s | pairs/s | p50 ms | p99 ms | 201 orders | 200 payments | non-2xx | orders / payments (MariaDB) | MariaDB | shopd check | deadlock retries | raw output |"
      echo "|--:|--:|--:|--:|--:|--:|--:|---|---|---|---|--:|---|"
      for ((r = 1; r <= RUNS; r++)); do
        echo "| $r | $(run_field "$n" "$r" 3 | awk '{ printf "%.0f", $1 }') | $(xget "$n" "$r" pairs_s) | $(run_field "$n" "$r" 4) | $(run_field "$n" "$r" 5)" \
             "| $(xget "$n" "$r" created) | $(xget "$n" "$r" paid) | $(codes_text "$(xget "$n" "$r" codes)")" \
             "| $(xget "$n" "$r" orders_db) / $(xget "$n" "$r" payments_db) | $(xget "$n" "$r" db) | $(xget "$n" "$r" check) ($(xget "$n" "$r" check_ms) ms)" \
             "| $(xget "$n" "$r" deadlock_retries) | \`var/bench/raw/$n-$r.txt\` |"
      done
      samples_block '^$' "$n"
    fi
    if wanted order-duplicate-burst; then
      n=order-duplicate-burst
      echo
      echo "## order-duplicate-burst"
      echo
      echo "All $CONNECTIONS connections send the same \`POST /api/orders\` (one line, quantity 1) with the same" \
           "\`Idempotency-Key\`; each thread moves to a new key (another user and product) every $BURST requests, and" \
           "the threads agree on key k's body (\`bench/orders.lua mode=burst burst=$BURST\`). Expected: 201 (the first," \
           "then replays with \`Idempotent-Replayed: true\`) or 409 \`IDEMPOTENCY_IN_FLIGHT\`, nothing else." \
           "MariaDB check: orders created during the run = keys stored in \`idempotency_keys\`; first (not replayed) 201s" \
           "at most that (two would be a double effect); keys sent by wrk at least that, and at most $THREADS more (a" \
           "thread's last key may be cut off by the stop)."
      echo
      echo "| run | req/s | p50 ms | p99 ms | keys sent | keys stored | orders created | first 201 | replayed 201 | 409 IN_FLIGHT | other | MariaDB | shopd check | lock waits / time-outs | raw output |"
      echo "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|---|---|"
      for ((r = 1; r <= RUNS; r++)); do
        echo "| $r | $(run_field "$n" "$r" 3 | awk '{ printf "%.0f", $1 }') | $(run_field "$n" "$r" 4) | $(run_field "$n" "$r" 5)" \
             "| $(xget "$n" "$r" keys) | $(xget "$n" "$r" keys_db) | $(xget "$n" "$r" orders_db) | $(xget "$n" "$r" created) | $(xget "$n" "$r" replayed)" \
             "| $(xget "$n" "$r" in_flight) | $(xget "$n" "$r" other) | $(xget "$n" "$r" db) | $(xget "$n" "$r" check) ($(xget "$n" "$r" check_ms) ms)" \
             "| $(xget "$n" "$r" lock_waits) / $(xget "$n" "$r" lock_timeouts) | \`var/bench/raw/$n-$r.txt\` |"
      done
      other=''
      for ((r = 1; r <= RUNS; r++)); do
        o=$(codes_except "$n" "$r" 409/IDEMPOTENCY_IN_FLIGHT)
        [ "$o" = "–" ] || other+="${other:+; }run $r: $o"
      done
      [ -z "$other" ] || { echo; echo "Other non-2xx responses: $other."; }
      samples_block IDEMPOTENCY_IN_FLIGHT "$n"
    fi
    if wanted order-hot-product; then
      n=order-hot-product
      echo
      echo "## order-hot-product"
      echo
      echo "Many buyers, one product: \`POST /api/orders\` of 1 unit of a product created for the run with stock $HOT_STOCK," \
           "$RUSH_USERS users round-robin, unique keys (\`bench/orders.lua mode=hot\`). Expected: 201 until the stock is" \
           "gone, then 409 \`OUT_OF_STOCK\`. MariaDB check: stock never below 0; stock + reserved + sold = $HOT_STOCK;" \
           "the units on order lines = $HOT_STOCK − stock; the 201s at most the orders, and at most $CONNECTIONS fewer" \
           "(in flight at the stop). \"stock = $HOT_STOCK − 201s\" holds exactly unless requests were in flight at the stop."
      echo
      echo "| run | product | req/s | p50 ms | p99 ms | 201 | 409 OUT_OF_STOCK | other | stock / reserved / sold | orders (MariaDB) | stock = $HOT_STOCK − 201s | MariaDB | shopd check | raw output |"
      echo "|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|---|---|---|---|"
      for ((r = 1; r <= RUNS; r++)); do
        st=$(xget "$n" "$r" stock) s201=$(xget "$n" "$r" s201)
        eq="yes"; [ "$st" -eq $((HOT_STOCK - s201)) ] || eq="no ($((HOT_STOCK - st - s201)) in flight)"
        echo "| $r | $(xget "$n" "$r" product) | $(run_field "$n" "$r" 3 | awk '{ printf "%.0f", $1 }') | $(run_field "$n" "$r" 4) | $(run_field "$n" "$r" 5)" \
             "| $s201 | $(xget "$n" "$r" oos) | $(xget "$n" "$r" other) | $st / $(xget "$n" "$r" reserved) / $(xget "$n" "$r" sold) | $(xget "$n" "$r" lines)" \
             "| $eq | $(xget "$n" "$r" db) | $(xget "$n" "$r" check) ($(xget "$n" "$r" check_ms) ms) | \`var/bench/raw/$n-$r.txt\` |"
      done
      other=''
      for ((r = 1; r <= RUNS; r++)); do
        o=$(codes_except "$n" "$r" 409/OUT_OF_STOCK)
        [ "$o" = "–" ] || other+="${other:+; }run $r: $o"
      done
      [ -z "$other" ] || { echo; echo "Other non-2xx responses: $other."; }
      samples_block OUT_OF_STOCK "$n"
    fi
    echo
    echo "## Reproduce"
    echo
    echo "On an idle machine, from the repository root:"
    echo
    echo '```sh'
    echo "DURATION=$DURATION RUNS=$RUNS THREADS=$THREADS CONNECTIONS=$CONNECTIONS RUSH_USERS=$RUSH_USERS PRODUCTS=$PRODUCTS" \
         "ORDER_STOCK=$ORDER_STOCK ORDER_BALANCE=$ORDER_BALANCE BURST=$BURST HOT_STOCK=$HOT_STOCK SCENARIOS=\"$ORD_SEL\" scripts/bench.sh"
    echo '```'
    echo
    echo "It builds \`build/release/shopd\`, runs \`scripts/services.sh up\`, starts shopd on 127.0.0.1:$BENCH_PORT" \
         "and nginx on 127.0.0.1:$CEILING_PORT, creates the users (\`var/bench/rush-tokens.txt\`) and products" \
         "(\`var/bench/product-ids.txt\`), sets the stock and charges the users as above, and runs, $RUNS time(s) each:"
    echo
    echo '```sh'
    commands nginx-ceiling-orders "${shown[@]}"
    echo '```'
  } > "$ORDER_DOC"
  log "done: $ORDER_DOC"
fi

[ -z "$BAL_SEL" ] || [ "$INV_STATUS" = PASS ] || die "balance invariant violated for $INV_ALL users"
[ "$DB_FAILED" = 0 ] || die "a coupon or order check in MariaDB failed (see $COUPON_DOC / $ORDER_DOC)"
[ "$CHECK_FAILED" = 0 ] || die "\`shopd check\` failed after a run (see var/bench/raw/*.check.txt)"
