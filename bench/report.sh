#!/usr/bin/env bash
# bench/report.sh: writes the performance report (docs/PERFORMANCE.md) from a run's directory:
# results.tsv (one line per wrk run), ceilings.tsv, facts.tsv (checks, lag, topology), commands.tsv
# and the perf summaries. One generic writer: every scenario gets the same table.
# scripts/bench.sh runs it; by hand: bench/report.sh var/bench docs/PERFORMANCE.md docs/perf
# (DURATION, RUNS, CONNECTIONS and SMOKE describe the run in the header).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 3 ] || { sed -n '2,6p' "$0" >&2; exit 2; }
export OUT=$1
DOC=$2
PLOTS=$3
. "$ROOT/bench/lib.sh"
SMOKE=${SMOKE:-0}
STATS=$OUT/plot/stats.tsv
[ -s "$STATS" ] || stats > "$STATS"
CEIL=$OUT/plot/ceilings.tsv
ceiling_stats > "$CEIL"

fact_of() { awk -F'\t' -v t="$1" -v s="$2" -v k="$3" '$1 == t && $2 == s && $3 == k { v = (v == "" ? "" : v "; ") $4 } END { print v }' "$OUT/facts.tsv"; }
stat_of() {  # stat_of TOPOLOGY SCENARIO CONNECTIONS COLUMN(1-based in stats.tsv)
  awk -F'\t' -v t="$1" -v s="$2" -v c="$3" -v k="$4" '$1 == t && $2 == s && $3 == c { print $k }' "$STATS"
}
ceil_of() { awk -F'\t' -v n="$1" '$1 == n { print $4 }' "$CEIL"; }
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b > 0 && a != "") printf "%.1f %%", 100 * a / b; else print "–" }'; }
command_of() { awk -F'\t' -v t="$1" -v s="$2" '$1 == t && $2 == s { c = $4 } END { print c }' "$OUT/commands.tsv"; }
rel() { local p=$1; printf '%s' "${p#$ROOT/}"; }

# The ceilings each scenario is compared with: the HTTP one of its kind of wrk script, and the
# store that bounds its work.
http_ceiling() { case $1 in product-detail|product-list|cart|top-products) echo http-get ;; *) echo http-counted ;; esac; }
store_ceiling() {
  case $1 in
    product-detail|cart|top-products) echo redis-get ;;
    coupon-rush) echo redis-eval ;;
    charge-hot|order-hot) echo mariadb-hot ;;
    charge-distinct|order-pay|order-burst) echo mariadb-spread ;;
    *) echo - ;;
  esac
}
describe() {
  case $1 in
    charge-distinct) echo 'POST /api/users/{id}/balance/charge, a unique Idempotency-Key each, spread over all users (bench/charge.lua hot=0). Expected: 200 only.' ;;
    charge-hot) echo "The same charges on the first 10 users only: row-lock and per-user lock contention (bench/charge.lua hot=10). Expected: 200 only." ;;
    coupon-rush) echo 'POST /api/coupons/{id}/issue by every user, on a new coupon of 50 per run (bench/coupon_rush.lua); after the first 50 every answer is the sold-out path. Expected: 201, 409 COUPON_SOLD_OUT, 409 COUPON_ALREADY_ISSUED. Invariant: issued = held ≤ 50.' ;;
    product-detail) echo 'GET /api/products/{id} round-robin over the bench products, cache warmed (bench/product_detail.lua).' ;;
    product-list) echo 'GET /api/products?limit=20&cursor=C, shuffled cursors, not cached: one MariaDB query each (bench/product_list.lua).' ;;
    cart) echo 'GET /api/users/{id}/cart of the users with 3-line carts, cart and product caches warmed (bench/cart.lua).' ;;
    top-products) echo 'GET /api/products/top?days=3&limit=5 and ?days=7&limit=10 alternating, cached (bench/top_products.lua).' ;;
    order-pay) echo 'POST /api/orders (1–3 lines) then POST /api/orders/{id}/payment of it, distinct users (bench/order_pay.lua); pairs/s = 200 Payments per second. Latencies mix both requests.' ;;
    order-burst) echo 'All connections send the same order with the same Idempotency-Key, a new key every 100 requests per thread (bench/order_burst.lua). Expected: 201 (first and replays), 409 IDEMPOTENCY_IN_FLIGHT. Invariant: one order per key.' ;;
    order-hot) echo 'Orders of 1 unit of one product of stock 5,000 (new per run) by many users (bench/order_hot.lua). Expected: 201, 409 OUT_OF_STOCK. Invariant: stock + reserved + sold = 5,000.' ;;
  esac
}

TOPOS=$(awk -F'\t' '$1 != "ceiling" && $1 != "sweep" && $1 != "profile" && !s[$1]++ { printf "%s ", $1 }' "$STATS")
SCENS=$(awk -F'\t' '$1 != "ceiling" && $1 != "profile" && !s[$2]++ { printf "%s ", $2 }' "$STATS")
topo_name() {
  case $1 in
    single) echo "1 instance" ;;
    cluster) echo "cluster of $(fact_of cluster - instances) behind nginx" ;;
    threads-*) echo "1 instance, SHOPD_THREADS=${1#threads-}" ;;
    flush-2) echo "1 instance, innodb_flush_log_at_trx_commit=2" ;;
    *) echo "$1" ;;
  esac
}

# scenario_table SCENARIO: one row per topology (and per connection count for the tuning runs).
scenario_table() {
  local s=$1 t hc sc line
  hc=$(http_ceiling "$s") sc=$(store_ceiling "$s")
  echo "| topology | runs | req/s min / median / max | pairs/s | p50 | p90 | p99 | non-2xx (unexpected) | socket errors / timeouts | vs $hc | vs $sc | invariants | shopd check |"
  echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|"
  for t in $TOPOS; do
    line=$(awk -F'\t' -v t="$t" -v s="$s" '$1 == t && $2 == s' "$STATS" | head -n 1)
    [ -n "$line" ] || continue
    IFS=$'\t' read -r _ _ _ runs rmin rmed rmax p50 p90 p99 _ non unx sock tmo pairs <<< "$line"
    local basis=$rmed
    [ "$s" != order-pay ] || basis=$pairs
    printf '| %s | %s | %s / **%s** / %s | %s | %s | %s | %s | %s (%s) | %s / %s | %s | %s | %s | %s |\n' \
      "$(topo_name "$t")" "$runs" "$rmin" "$rmed" "$rmax" "$([ "$s" = order-pay ] && echo "**$pairs**" || echo –)" \
      "$p50" "$p90" "$p99" "$non" "$unx" "$sock" "$tmo" "$(ratio "$rmed" "$(ceil_of "$hc")")" \
      "$([ "$sc" = - ] && echo – || ratio "$basis" "$(ceil_of "$sc")")" \
      "$(fact_of "$t" "$s" invariant | sed 's/|/\\|/g' | cut -c1-160)" "$(fact_of "$t" "$s" check)"
  done
}

# target_row NAME SCENARIO COLUMN TARGET UNIT [P99_LIMIT]
target_row() {
  local name=$1 s=$2 col=$3 target=$4 unit=$5 limit=${6:-} t v p99 out=''
  for t in single cluster; do
    v=$(stat_of "$t" "$s" "$CONNECTIONS" "$col")
    p99=$(stat_of "$t" "$s" "$CONNECTIONS" 10)
    if [ -z "$v" ]; then out+=" – |"; continue; fi
    local met=met
    awk -v v="$v" -v t="$target" 'BEGIN { exit !(v + 0 >= t + 0) }' || met="**missed** ($(ratio "$v" "$target") of it)"
    if [ -n "$limit" ] && awk -v p="$p99" -v l="$limit" 'BEGIN { exit !(p + 0 > l + 0) }'; then met="$met; p99 $p99 ms > $limit ms"; fi
    out+=" $v $unit${limit:+, p99 $p99 ms}: $met |"
  done
  echo "| $name | ≥ $target $unit${limit:+, p99 ≤ $limit ms} |$out"
}

perf_by_process() {  # the "by process" lines of a perf summary as "comm share" pairs
  awk '/^## by process/ { on = 1; next } /^## / { on = 0 } on && $1 ~ /%$/ { printf "%s %s, ", $2, $1 }' "$1" | sed 's/, $//'
}

CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
{
echo "# Performance"
echo
echo "Generated by \`make bench\` (\`scripts/bench.sh\`, then \`bench/report.sh\`) from $(fact_of run - started) to $(fact_of run - finished); do not edit by hand. Raw outputs of this run were in \`$(rel "$OUT")\`."
echo
if [ "$SMOKE" = 1 ] || [ "$DURATION" -lt 30 ] || [ "$RUNS" -lt 3 ]; then
  echo "**Short run (DURATION=$DURATION RUNS=$RUNS): it checks the harness; its figures are not a measurement.**"
  echo
fi
echo "- Commit: \`$(fact_of run - commit)\`"
echo "- Machine: $(nproc) CPUs ($CPU), $MEM RAM, Linux $(uname -r). wrk, nginx, every shopd, MariaDB and Redis share these CPUs: every figure here is bounded by that."
echo "- Tools: $(wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}'), nginx $(nginx -v 2>&1 | sed 's|.*nginx/||'), $(redis-server --version | awk '{print $1, $3}'), MariaDB $(sql 'SELECT VERSION()' 2>/dev/null || echo '?')."
echo "- Load: \`wrk -t2 -c$CONNECTIONS -d${DURATION}s --timeout 10s --latency\`, $RUNS run(s) per scenario and topology, back to back; figures are min / median / max of the runs (latencies: the median of the runs' percentiles, in ms)."
echo "- shopd: release build (\`-O2 -g\`), \`SHOPD_THREADS=${SHOPD_THREADS:-64}\`, \`SHOPD_LOCKS=${SHOPD_LOCKS:-db}\`, \`SHOPD_ACCESS_LOG=0\`, a database of its own created afresh (\`$BENCH_DB\`); MariaDB and Redis from \`scripts/services.sh\` (InnoDB flushes its log at every commit: \`innodb_flush_log_at_trx_commit=1\`). The data-platform consumer (\`shopd platform\`) runs beside the instances ($(for t in single cluster; do [ -z "$(fact_of $t - platform)" ] || printf '%s: %s; ' "$(topo_name $t)" "$(fact_of $t - platform)"; done | sed 's/; $//'))."
echo "- Fixtures, made through shopd itself before the runs (\`bench/fixtures.sh\`: admin API and \`shopd token\`): $USERS users with their own tokens, each charged 10,000,000 KRW; $PRODUCTS products; 3-line carts for $CART_USERS users."
echo "- Reproduce everything: \`make bench\`; one scenario: e.g. \`SCENARIOS=order-pay TOPOLOGIES=single SWEEP= PROFILE=0 TUNING=0 scripts/bench.sh\`. The wrk command of every figure is under its table (\`var/bench/...\` files are written by \`bench/fixtures.sh\`)."
echo
echo "## Targets (at $CONNECTIONS connections)"
echo
echo "| target | goal | 1 instance | cluster |"
echo "|---|---|---|---|"
target_row "product detail" product-detail 6 40000 "req/s" 5
target_row "charge, distinct users" charge-distinct 6 3600 "req/s"
target_row "coupon rush, sold-out path" coupon-rush 6 30000 "req/s"
target_row "order then pay" order-pay 16 1700 "pairs/s"
echo
echo "What bounds them is in [Where the time goes](#where-the-time-goes)."
echo
echo "## Ceilings (same run)"
echo
echo "Each shopd figure below is also given as a share of these. The HTTP ceilings are nginx returning a fixed \`200 ok\` (\`bench/nginx-ceiling.conf.in\`) to the very requests of a scenario script: \`http-get\` with \`bench/product_detail.lua\` (no Lua \`response()\`, as the catalog reads), \`http-counted\` with \`bench/charge.lua\` (counts every answer in Lua, as the write scenarios). Redis: \`redis-benchmark\` at $CONNECTIONS clients. MariaDB: autocommit UPDATEs from 64 clients (as \`SHOPD_THREADS\`), one row for all (\`mariadb-hot\`) or a row per client (\`mariadb-spread\`)."
echo
echo "| ceiling | runs | min | median | max | unit | command |"
echo "|---|--:|--:|--:|--:|---|---|"
while IFS=$'\t' read -r name runs lo med hi unit; do
  echo "| $name | $runs | $lo | **$med** | $hi | $unit | \`$(command_of ceiling "$name")\` |"
done < "$CEIL"
echo
echo "## Scenarios"
echo
echo "Columns: req/s min / **median** / max over the runs; p50 / p90 / p99 in ms (median over the runs); non-2xx answers, of which unexpected (not in the scenario's expected set); socket errors and wrk time-outs (10 s); the median as a share of the HTTP ceiling of its kind and of the store ceiling that bounds its work (pairs/s for order + pay); the scenario's own MariaDB invariant after each run; \`shopd check\` (every invariant of the database) after the scenario's runs."
echo
[ ! -f "$PLOTS/latency.png" ] || { echo "![Latency percentiles per scenario]($(realpath --relative-to="$(dirname "$DOC")" "$PLOTS/latency.png"))"; echo; }
for s in $SCENS; do
  echo "### $s"
  echo
  describe "$s"
  echo
  scenario_table "$s"
  echo
  if [ -n "$(command_of single "$s")" ]; then
    echo "Command (1 instance): \`$(command_of single "$s")\`$( [ -z "$(command_of cluster "$s")" ] || echo "; the cluster's is the same against nginx on port $(command_of cluster "$s" | grep -o '127.0.0.1:[0-9]*' | cut -d: -f2)")."
  else
    echo "Command (cluster): \`$(command_of cluster "$s")\`."
  fi
  echo
done
echo "## Connection sweep"
echo
if grep -q '^sweep' "$STATS"; then
  echo "One instance, ${SWEEP_RUNS:-3} runs of ${SWEEP_DURATION:-10} s per point (shorter than the main runs, to keep \`make bench\` under an hour)."
  echo
  echo "| scenario | connections | req/s min / median / max | pairs/s | p50 | p99 | non-2xx | socket errors / timeouts |"
  echo "|---|--:|--:|--:|--:|--:|--:|--:|"
  awk -F'\t' '$1 == "sweep" { printf "| %s | %s | %s / **%s** / %s | %s | %s | %s | %s | %s / %s |\n", $2, $3, $5, $6, $7, ($2 == "order-pay" ? $16 : "–"), $8, $10, $12, $14, $15 }' "$STATS" | sort -t'|' -k2,2 -k3n
  echo
  for p in sweep-throughput sweep-p99; do
    [ ! -f "$PLOTS/$p.png" ] || { echo "![$p]($(realpath --relative-to="$(dirname "$DOC")" "$PLOTS/$p.png"))"; echo; }
  done
else
  echo "Not run in this invocation (SWEEP empty)."
  echo
fi
echo "## Payment to data platform"
echo
echo "Lag per event = \`TIMESTAMPDIFF(MICROSECOND, occurred_at, received_at)\` of \`platform_events\` (occurred_at = the outbox row's time = payment commit; received_at = the platform's commit), over the orders created by the order + pay runs of the topology, measured once the backlog had drained. Every \`serve\` relays its outbox rows to the Redis stream; one \`shopd platform\` consumes it."
echo
echo "| topology | events | p50 ms | p99 ms | max ms | every PAID order's event arrived |"
echo "|---|--:|--:|--:|--:|---|"
for t in single cluster; do
  lag=$(fact_of "$t" order-pay lag)
  [ -n "$lag" ] || continue
  case $lag in
    skipped*) echo "| $(topo_name "$t") | – | – | – | – | $lag |" ;;
    *) read -r n p50 p99 mx <<< "$lag"; echo "| $(topo_name "$t") | $n | $p50 | $p99 | $mx | $(fact_of "$t" order-pay platform) |" ;;
  esac
done
echo
echo "## Where the time goes"
echo
for s in product-detail order-pay; do
  f=$OUT/perf-$s.txt
  [ -s "$f" ] || continue
  echo "### $s, one instance, \`perf record -a -g\` for ${PERF_SECONDS:-8} s of a separate run"
  echo
  echo "CPU by process: $(perf_by_process "$f")."
  echo
  echo '```'
  cat "$f"
  echo '```'
  echo
done
[ -s "$OUT/perf-product-detail.txt" ] || echo "No profile in this invocation (PROFILE=0)."
# The reading of the profile and of the bounds is written by hand (bench/analysis.md), from a
# full run; regenerating the figures keeps it.
cat "$ROOT/bench/analysis.md"
echo
echo "## What was tuned, and what it costs"
echo
echo "| setting | scenario | req/s (1 run) | pairs/s | p99 ms | durability cost |"
echo "|---|---|--:|--:|--:|---|"
for t in single $(awk -F'\t' '$1 ~ /^(threads-|flush-)/ && !s[$1]++ { print $1 }' "$STATS"); do
  for s in charge-distinct order-pay; do
    line=$(awk -F'\t' -v t="$t" -v s="$s" '$1 == t && $2 == s' "$STATS" | head -n 1)
    [ -n "$line" ] || continue
    IFS=$'\t' read -r _ _ _ _ _ rmed _ _ _ p99 _ _ _ _ _ pairs <<< "$line"
    case $t in
      single) set_name="defaults (SHOPD_THREADS=${SHOPD_THREADS:-64}, flush at commit), median of the runs"; cost="none: a commit is on disk before the answer" ;;
      threads-*) set_name="SHOPD_THREADS=${t#threads-}"; cost="none (more threads = more MariaDB and Redis connections per instance)" ;;
      flush-2) set_name="innodb_flush_log_at_trx_commit=2"; cost="an OS or machine crash loses up to ~1 s of answered commits (a mariadbd crash alone loses nothing)" ;;
    esac
    echo "| $set_name | $s | $rmed | $([ "$s" = order-pay ] && echo "$pairs" || echo –) | $p99 | $cost |"
  done
done
echo
echo "SHOPD_THREADS is the size of each instance's MariaDB and Redis pools (requests served at once against them): too few and requests queue for a connection while the CPU idles; too many and MariaDB runs more concurrent transactions than it has CPUs, adding lock and scheduling overhead. \`innodb_flush_log_at_trx_commit=2\` writes the redo log at commit but flushes it to disk once a second; the default stays 1 (money must not be lost), and the row shows what the flush costs. Other settings kept as \`scripts/services.sh\` has them (buffer pool 512M, 256M redo log, binary log off: a replica or Galera set-up adds a binlog or certification cost per commit, see deploy/README.md)."
echo
echo "## Against the reference system"
echo
echo "The reference system's published figures (k6 against it; a different machine) and a NestJS peer measured with the same wrk settings, beside ours at $CONNECTIONS connections (medians):"
echo
ours() { local v; v=$(stat_of "$1" "$2" "$CONNECTIONS" "$3"); echo "${v:-–}"; }
echo "| scenario | reference | NestJS peer (wrk) | shopd, 1 instance | shopd, cluster |"
echo "|---|---|---|---|---|"
echo "| balance charge | 87 req/s, p95 229 ms, 99.94 % success | ≈720 req/s | $(ours single charge-distinct 6) req/s, p99 $(ours single charge-distinct 10) ms, $(ours single charge-distinct 12) non-2xx | $(ours cluster charge-distinct 6) req/s, p99 $(ours cluster charge-distinct 10) ms |"
echo "| cached cart | 31 ms average, 11.96 % HTTP failures | – | $(ours single cart 11) ms average, $(ours single cart 6) req/s, $(ours single cart 12) non-2xx | $(ours cluster cart 11) ms average |"
echo "| duplicate orders | 7.34 % failures, p95 30 s | – | $(ours single order-burst 6) req/s, p99 $(ours single order-burst 10) ms, $(ours single order-burst 13) unexpected | $(ours cluster order-burst 6) req/s, p99 $(ours cluster order-burst 10) ms |"
echo "| product detail | – | ≈4,000 req/s | $(ours single product-detail 6) req/s | $(ours cluster product-detail 6) req/s |"
echo "| coupon sold-out | – | ≈3,000 req/s | $(ours single coupon-rush 6) req/s | $(ours cluster coupon-rush 6) req/s |"
echo "| order + pay | – | ≈170 pairs/s | $(ours single order-pay 16) pairs/s | $(ours cluster order-pay 16) pairs/s |"
echo
echo "## Problems seen in this run"
echo
if [ -s "$OUT/failures.txt" ] || [ -s "$OUT/unexpected.txt" ]; then
  sed 's/^/- /' "$OUT/failures.txt" "$OUT/unexpected.txt" | sed "s|$ROOT/||g"
else
  echo "None: every invariant and \`shopd check\` passed, and no run had an unexpected answer."
fi
} > "$DOC"
