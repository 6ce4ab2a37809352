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
# The products are created once per invocation (POST /api/admin/products) and used by every
# catalog scenario and run; the users likewise (POST /api/admin/users).
#
# Run:      scripts/bench.sh                      (DURATION=30 RUNS=3: about 15 minutes)
# Smoke:    DURATION=5 RUNS=1 scripts/bench.sh
# Subset:   SCENARIOS="product-detail cart-get" scripts/bench.sh   (space-separated names from
#           the lists above, ceilings excepted: a group's ceiling runs whenever one of its
#           scenarios does, and only the docs of the groups run are rewritten)
# Settings (environment): DURATION, RUNS, THREADS (2), CONNECTIONS (100), USERS (1000),
#   HOT_USERS (10), AMOUNT (1000 KRW per charge), PRODUCTS (1000), CART_LINES (3),
#   LIST_LIMIT (20), SHOPD_THREADS (64), BENCH_PORT (18080), CEILING_PORT (18090),
#   BENCH_DOC (docs/bench/balances.md), CATALOG_DOC (docs/bench/catalog.md), SCENARIOS (all).
# It builds the release binary, starts the project's MariaDB/Redis (scripts/services.sh up, left
# running), and starts its own shopd and nginx on loopback; those two are stopped, by pid, when
# the script exits for any reason (including Ctrl-C). Run it on an otherwise idle machine: wrk,
# shopd, MariaDB and Redis all share its cores.
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
BALANCE_SCENARIOS="balance-get charge-distinct charge-hot"
CATALOG_SCENARIOS="product-detail product-list cart-get top-products"
SCENARIOS=${SCENARIOS:-"$BALANCE_SCENARIOS $CATALOG_SCENARIOS"}
# The reference system's figure for cached cart reads (reported beside cart-get in catalog.md).
REF_CART_AVG_MS=31
REF_CART_VUS=100

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

# The selected scenarios, each group in its own fixed order whatever the order given.
declare -A WANT=()
for s in $SCENARIOS; do
  case " $BALANCE_SCENARIOS $CATALOG_SCENARIOS " in
    *" $s "*) WANT[$s]=1 ;;
    *) die "unknown scenario '$s' in SCENARIOS (known: $BALANCE_SCENARIOS $CATALOG_SCENARIOS; the ceilings run by themselves)" ;;
  esac
done
BAL_SEL='' CAT_SEL=''
for s in $BALANCE_SCENARIOS; do [ -z "${WANT[$s]:-}" ] || BAL_SEL+="${BAL_SEL:+ }$s"; done
for s in $CATALOG_SCENARIOS; do [ -z "${WANT[$s]:-}" ] || CAT_SEL+="${CAT_SEL:+ }$s"; done
[ -n "$BAL_SEL$CAT_SEL" ] || die "SCENARIOS selects nothing"
wanted() { [ -n "${WANT[$1]:-}" ]; }
log "scenarios: ${BAL_SEL:+nginx-ceiling $BAL_SEL }${CAT_SEL:+nginx-ceiling-catalog $CAT_SEL}"

mkdir -p "$RAW" "$(dirname "$DOC")" "$(dirname "$CATALOG_DOC")"
# Only the raw outputs of the scenarios about to run: the other doc still links to its own.
for s in ${BAL_SEL:+nginx-ceiling $BAL_SEL} ${CAT_SEL:+nginx-ceiling-catalog $CAT_SEL}; do
  rm -f "$RAW/$s"-*.txt
done
rm -f "$RESULTS"

log "building release (log: var/bench/build.log)"
# Only the server binary: the benchmark does not need the test targets.
{ cmake --preset release && cmake --build build/release -j"$(nproc)" --target shopd; } \
  > "$OUT/build.log" 2>&1 || { tail -n 30 "$OUT/build.log" >&2; die "build failed"; }

log "starting services"
scripts/services.sh up >&2

for p in "$BENCH_PORT" "$CEILING_PORT"; do
  ! port_in_use "$p" || die "127.0.0.1:$p is already in use (another bench or shopd?)"
done

log "starting shopd on $SHOPD_URL (log: var/bench/shopd.log)"
SHOPD_LISTEN=127.0.0.1:$BENCH_PORT \
SHOPD_DB_URL=mysql://$DB_USER:$DB_PASS@$DB_HOST:$DB_PORT/$DB_NAME \
SHOPD_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0 \
SHOPD_JWT_SECRET=$JWT_SECRET SHOPD_THREADS=$SHOPD_THREADS SHOPD_ACCESS_LOG=0 \
  "$SHOPD" serve > "$OUT/shopd.log" 2>&1 < /dev/null &
SHOPD_PID=$!
wait_until 60 "$SHOPD_PID" curl -fsS "$SHOPD_URL/healthz" \
  || { tail -n 20 "$OUT/shopd.log" >&2; die "shopd did not answer /healthz"; }

token() { SHOPD_JWT_SECRET=$JWT_SECRET "$SHOPD" token "$@"; }
ADMIN_TOKEN=$(token --admin)

# Users: for the balance scenarios and for cart-get.
if [ -n "$BAL_SEL" ] || wanted cart-get; then
  log "creating $USERS users"
  # One curl process, one kept-alive connection, $USERS POSTs; each prints its body and a newline.
  for ((i = 1; i <= USERS; i++)); do
    printf 'url = "%s/api/admin/users"\nsilent\nshow-error\nrequest = "POST"\n' "$SHOPD_URL"
    printf 'header = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\n' "$ADMIN_TOKEN"
    printf 'data = "{\\"name\\":\\"bench-%s-%d\\"}"\nwrite-out = "\\n"\n' "$RUN_ID" "$i"
    [ "$i" -eq "$USERS" ] || printf 'next\n'
  done > "$OUT/create-users.curl"
  curl -K "$OUT/create-users.curl" > "$OUT/created-users.json"
  jq -r '.userId // empty' "$OUT/created-users.json" > "$OUT/user-ids.txt"
  [ "$(wc -l < "$OUT/user-ids.txt")" -eq "$USERS" ] \
    || die "created $(wc -l < "$OUT/user-ids.txt") of $USERS users; see var/bench/created-users.json"

  log "minting $USERS user tokens"
  # One `shopd token` per user, in parallel (process start-up dominates); each token names its
  # user in the `sub` claim, which jq decodes to pair them up again.
  SHOPD_JWT_SECRET=$JWT_SECRET xargs -P "$(nproc)" -n 1 "$SHOPD" token \
    < "$OUT/user-ids.txt" > "$TOKENS.unordered"
  jq -rR '. as $t | split(".")[1] | gsub("-"; "+") | gsub("_"; "/")
          | (. + ("=" * ((4 - length % 4) % 4))) | @base64d | fromjson | "\(.sub) \($t)"' \
    "$TOKENS.unordered" > "$TOKENS.paired"
  # Keep creation order (the hot users are the first $HOT_USERS created).
  awk 'NR == FNR { tok[$1] = $2; next } { print $1, tok[$1] }' "$TOKENS.paired" "$OUT/user-ids.txt" > "$TOKENS"
  rm -f "$TOKENS.unordered" "$TOKENS.paired"
  [ "$(awk 'NF == 2' "$TOKENS" | wc -l)" -eq "$USERS" ] || die "token file is incomplete"
  BENCH_IDS=$(paste -sd, "$OUT/user-ids.txt")
fi

# Products: for every catalog scenario (cart lines, and the catalog ceiling's requests too).
if [ -n "$CAT_SEL" ]; then
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
  local name=$1 url=$2 script=$3 r raw fields before after delta; shift 3
  local -a cmd=(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$script" "$url" -- "$@")
  CMDS[$name]="${cmd[*]}"
  for ((r = 1; r <= RUNS; r++)); do
    raw=$RAW/$name-$r.txt
    # charge keys must be unique across runs: give every run its own run id
    if [[ $script == *charge.lua ]]; then cmd[${#cmd[@]}-1]=run=$RUN_ID-$name-$r; fi
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
  done
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

# ---- invariant --------------------------------------------------------------------------------

if [ -n "$BAL_SEL" ]; then
  log "checking the balance invariant"
  INV_ALL=$(sql "SELECT COUNT(*) FROM users u WHERE u.balance_krw <> (SELECT COALESCE(SUM(amount_krw),0) FROM balance_history h WHERE h.user_id=u.id)")
  USERS_ALL=$(sql "SELECT COUNT(*) FROM users")
  INV_BENCH=$(sql "SELECT COUNT(*) FROM users u WHERE u.id IN ($BENCH_IDS) AND u.balance_krw <> (SELECT COALESCE(SUM(amount_krw),0) FROM balance_history h WHERE h.user_id=u.id)")
  read -r DB_CHARGES DB_SUM < <(sql "SELECT COUNT(*), COALESCE(SUM(amount_krw),0) FROM balance_history WHERE type='CHARGE' AND user_id IN ($BENCH_IDS)")
  WRK_CHARGES=$(awk -F'\t' '$1 ~ /^charge-/ { s += $9 } END { print s + 0 }' "$RESULTS")
  REPLAYED=$(awk -F'\t' '{ s += $8 } END { print s + 0 }' "$RESULTS")
  INFLIGHT=$((DB_CHARGES - WRK_CHARGES))
  log "invariant: $INV_ALL of $USERS_ALL users violate it ($INV_BENCH of the $USERS bench users)"
  log "charges: $DB_CHARGES history rows for bench users, $WRK_CHARGES 2xx counted by wrk"
fi

# ---- report -----------------------------------------------------------------------------------

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || COMMIT="$COMMIT (working tree had uncommitted changes)"
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

[ -z "$BAL_SEL" ] || [ "$INV_STATUS" = PASS ] || die "balance invariant violated for $INV_ALL users"
