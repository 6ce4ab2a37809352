#!/usr/bin/env bash
# scripts/bench.sh: throughput and latency of the shopd balance endpoints, against a ceiling.
#
# What it measures, each with wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency, $RUNS times:
#   nginx-ceiling     nginx returning a fixed 200 "ok" to the balance-get requests: what wrk and
#                     the loopback can carry on this machine (bench/nginx-ceiling.conf.in)
#   balance-get       GET  /api/users/{id}/balance over $USERS users   (bench/balance_get.lua)
#   charge-distinct   POST /api/users/{id}/balance/charge over $USERS users, unique keys
#   charge-hot        the same, all requests on $HOT_USERS users        (bench/charge.lua)
# then checks the balance invariant (users.balance_krw = SUM(balance_history.amount_krw)) in
# MariaDB, and writes docs/bench/balances.md (min/median/max req/s, median p50/p99, errors,
# ratio to the ceiling, machine, commit, commands). Raw wrk outputs go to var/bench/raw/.
#
# Run:      scripts/bench.sh                      (DURATION=30 RUNS=3: about 7 minutes)
# Smoke:    DURATION=5 RUNS=1 scripts/bench.sh
# Settings (environment): DURATION, RUNS, THREADS (2), CONNECTIONS (100), USERS (1000),
#   HOT_USERS (10), AMOUNT (1000 KRW per charge), SHOPD_THREADS (64), BENCH_PORT (18080),
#   CEILING_PORT (18090), BENCH_DOC (docs/bench/balances.md).
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

DB_HOST=127.0.0.1 DB_PORT=${DB_PORT:-13306} DB_USER=shop DB_PASS=shop-pass DB_NAME=shop
REDIS_PORT=${REDIS_PORT:-16379}
JWT_SECRET=shopd-bench-secret-not-for-production

OUT=$ROOT/var/bench
RAW=$OUT/raw
TOKENS=$OUT/tokens.txt
RESULTS=$OUT/results.tsv       # scenario run rps p50_ms p99_ms non2xx socket_errors replayed 2xx
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

mkdir -p "$RAW" "$(dirname "$DOC")"
rm -f "$RAW"/*.txt "$RESULTS"

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

log "creating $USERS users"
ADMIN_TOKEN=$(token --admin)
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

# ---- running wrk and parsing its output -------------------------------------------------------

declare -A CMDS=()   # scenario -> wrk command line (for the report)

# parse_wrk FILE: prints "rps p50_ms p99_ms non2xx socket_errors replayed 2xx".
# non2xx comes from our Lua counters (every status outside 200..299); if the script printed none,
# from wrk's own "Non-2xx or 3xx responses" line (which counts statuses >= 400).
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
    /^[ \t]+50%/                   { p50 = ms($2) }
    /^[ \t]+99%/                   { p99 = ms($2) }
    /Socket errors:/               { gsub(/,/, ""); sock = $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/    { wrk_non2xx = $5 }
    /^shopd-bench: responses=/ {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      lua = 1
    }
    END {
      if (rps == "") exit 1
      non2xx = lua ? v["non2xx"] : wrk_non2xx + 0
      printf "%s %.3f %.3f %d %d %d %d\n", rps, p50, p99, non2xx, sock + 0, v["replayed"] + 0, v["2xx"] + 0
    }' "$1"
}

# scenario NAME URL SCRIPT ARGS...: RUNS wrk runs; raw output in var/bench/raw/NAME-RUN.txt.
scenario() {
  local name=$1 url=$2 script=$3 r raw fields; shift 3
  local -a cmd=(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$script" "$url" -- "$@")
  CMDS[$name]="${cmd[*]}"
  for ((r = 1; r <= RUNS; r++)); do
    raw=$RAW/$name-$r.txt
    # charge keys must be unique across runs: give every run its own run id
    if [[ $script == *charge.lua ]]; then cmd[${#cmd[@]}-1]=run=$RUN_ID-$name-$r; fi
    log "$name run $r/$RUNS: ${cmd[*]}"
    "${cmd[@]}" > "$raw" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || die "wrk failed (exit $?); see $raw"
    WRK_PID=
    fields=$(parse_wrk "$raw") || die "no Requests/sec in $raw"
    printf '%s\t%s\t%s\n' "$name" "$r" "${fields// /$'\t'}" >> "$RESULTS"
    read -r rps p50 p99 non2xx sock replayed _ <<< "$fields"
    log "$name run $r: $rps req/s, p50 ${p50} ms, p99 ${p99} ms, non-2xx $non2xx, socket errors $sock, replayed $replayed"
  done
}

# ---- the scenarios ----------------------------------------------------------------------------

log "starting nginx ceiling on $CEILING_URL"
mkdir -p "$NGINX_DIR/logs" "$NGINX_DIR/tmp"
sed -e "s|@PREFIX@|$NGINX_DIR|g" -e "s|@LISTEN@|127.0.0.1:$CEILING_PORT|g" \
  bench/nginx-ceiling.conf.in > "$NGINX_DIR/nginx.conf"
nginx -p "$NGINX_DIR" -e "$NGINX_DIR/logs/error.log" -c "$NGINX_DIR/nginx.conf" -g 'daemon off;' \
  < /dev/null > "$NGINX_DIR/logs/stdout.log" 2>&1 &
NGINX_PID=$!
wait_until 10 "$NGINX_PID" curl -fsS "$CEILING_URL/" \
  || { cat "$NGINX_DIR/logs/error.log" >&2; die "nginx did not start"; }

scenario nginx-ceiling "$CEILING_URL" bench/balance_get.lua "tokens=$TOKENS"
stop_pid nginx "$NGINX_PID"; NGINX_PID=

scenario balance-get "$SHOPD_URL" bench/balance_get.lua "tokens=$TOKENS"
scenario charge-distinct "$SHOPD_URL" bench/charge.lua "tokens=$TOKENS" mode=distinct "amount=$AMOUNT" run=
scenario charge-hot "$SHOPD_URL" bench/charge.lua "tokens=$TOKENS" mode=hot "hot=$HOT_USERS" "amount=$AMOUNT" run=

# ---- invariant --------------------------------------------------------------------------------

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

# ---- report -----------------------------------------------------------------------------------

log "writing $DOC"
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || COMMIT="$COMMIT (working tree had uncommitted changes)"
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
SMOKE=
[ "$DURATION" -ge 30 ] && [ "$RUNS" -ge 3 ] \
  || SMOKE="**Smoke run (DURATION=$DURATION RUNS=$RUNS): checks the harness, not a measurement.**"

# summarize: one row per scenario: min/median/max req/s, median and range of p50/p99, errors
summary_rows() {
  awk -F'\t' '
    function sorted(s, a,   n, i, j, t) {      # split "x y z" into a[1..n] ascending
      n = split(s, a, " ")
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t }
      return n
    }
    function median(s,   a, n) { n = sorted(s, a); return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2 }
    function lo(s,   a) { sorted(s, a); return a[1] }
    function hi(s,   a, n) { n = sorted(s, a); return a[n] }
    function range(s) { return lo(s) == hi(s) ? "" : sprintf(" (%.2f–%.2f)", lo(s), hi(s)) }
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

describe() {
  case $1 in
    nginx-ceiling) echo "nginx (\`bench/nginx-ceiling.conf.in\`, one worker per core) answering \`200 ok\` to exactly the balance-get requests: the most wrk and the loopback carry here." ;;
    balance-get) echo "\`GET /api/users/{id}/balance\` with each user's own token, round-robin over $USERS users (\`bench/balance_get.lua\`)." ;;
    charge-distinct) echo "\`POST /api/users/{id}/balance/charge\` \`{\"amount\":$AMOUNT}\`, a unique \`Idempotency-Key\` per request, round-robin over $USERS users (\`bench/charge.lua mode=distinct\`)." ;;
    charge-hot) echo "The same charges, all on $HOT_USERS users: row-lock contention (\`bench/charge.lua mode=hot\`)." ;;
  esac
}

INV_STATUS="PASS"
[ "$INV_ALL" = 0 ] || INV_STATUS="FAIL"

{
  echo "# Balance endpoints: benchmark"
  echo
  echo "Generated by \`scripts/bench.sh\` on $(date -u '+%Y-%m-%d %H:%M:%S UTC'); do not edit by hand."
  [ -z "$SMOKE" ] || { echo; echo "$SMOKE"; }
  echo
  echo "- Commit: \`$COMMIT\`"
  echo "- Machine: $(nproc) CPUs ($CPU), $MEM RAM, Linux $(uname -r)"
  echo "- Tools: $(wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}'), nginx $(nginx -v 2>&1 | sed 's|.*nginx/||'), MariaDB $(sql 'SELECT VERSION()')"
  echo "- Load: \`wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency\`, $RUNS run(s) per scenario, back to back;" \
       "wrk, shopd, MariaDB and Redis share the $(nproc) CPUs."
  echo "- shopd: release build, \`SHOPD_THREADS=$SHOPD_THREADS\`, \`SHOPD_ACCESS_LOG=0\`, on 127.0.0.1:$BENCH_PORT;" \
       "MariaDB and Redis from \`scripts/services.sh\` (InnoDB flushes at every commit)."
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
  summary_rows
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
  for s in nginx-ceiling balance-get charge-distinct charge-hot; do
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
  echo "DURATION=$DURATION RUNS=$RUNS THREADS=$THREADS CONNECTIONS=$CONNECTIONS USERS=$USERS HOT_USERS=$HOT_USERS scripts/bench.sh"
  echo '```'
  echo
  echo "It builds \`build/release/shopd\`, runs \`scripts/services.sh up\`, starts shopd on 127.0.0.1:$BENCH_PORT" \
       "and nginx on 127.0.0.1:$CEILING_PORT, creates the users through \`POST /api/admin/users\`," \
       "writes \`var/bench/tokens.txt\` (\`userId token\` per line, from \`shopd token\`), and runs, $RUNS time(s) each:"
  echo
  echo '```sh'
  for s in nginx-ceiling balance-get charge-distinct charge-hot; do
    line=${CMDS[$s]//$ROOT\//}
    [[ $line != *run= ]] || line+="<run id>"
    echo "$line"
  done
  echo '```'
} > "$DOC"

log "done: $DOC"
[ "$INV_STATUS" = PASS ] || die "balance invariant violated for $INV_ALL users"
