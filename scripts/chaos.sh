#!/usr/bin/env bash
# scripts/chaos.sh (`make chaos`): the fault-injection suite. A cluster of 3 `shopd serve`
# behind nginx (scripts/cluster.sh) with the data-platform consumer, on a private MariaDB and
# Redis of its own (scripts/services.sh under var/chaos*/, never the shared ones), carries the
# load of tests/chaos/chaos.c (charges, coupon issues, orders, payments, cancels and balance
# reads from CHAOS_THREADS clients, each write retried with its key until definite) while one
# fault after another is injected, each in a phase of its own: steady, fault, recovery.
#
#   kill-instance    SIGKILL of serve-1, restarted after FAULT_S
#   stop-instance    SIGSTOP of serve-2 for STOP_S (past every 10 s lease), then SIGCONT
#   term-instance    SIGTERM of serve-3 (it drains and exits), restarted
#   kill-redis       SIGKILL of Redis, restarted after FAULT_S: it comes back empty
#   slow-redis       Redis answering late: CLIENT PAUSE, then SIGSTOP/SIGCONT of redis-server
#   kill-mariadb     SIGKILL of mariadbd (connections refused), restarted after FAULT_S:
#                    InnoDB crash recovery
#   cut-mariadb      mariadbd unreachable for PARTITION_S: SIGSTOP, so connections hang as
#                    in a network partition and the connectors' time-outs decide; then SIGCONT
#   kill-platform    SIGKILL of `shopd platform`, restarted after FAULT_S
#   kill-galera-node (TOPOLOGY=ha) SIGKILL of the Galera node shopd writes through,
#                    restarted after FAULT_S: it rejoins by IST; shopd moves to the next node
#   kill-redis-master (TOPOLOGY=ha) SIGKILL of the Redis master: the Sentinels promote the
#                    replica and shopd follows; the old master restarts after FAULT_S as a
#                    replica of the new one
#
# TOPOLOGY (single): ha = MariaDB is a 3-node Galera cluster of the suite's own
# (scripts/galera.sh under CHAOS_VAR, SQL ports GALERA_PORT = DB_PORT+5.., group ports
# DB_PORT+1261..), Redis a master and a replica watched by three Sentinels (scripts/sentinel.sh,
# Redis on REDIS_PORT and REDIS_PORT+1, Sentinels on REDIS_PORT+10..), shopd is given all of
# them, and the phases are kill-galera-node, kill-instance and kill-redis-master: what
# `make test-ha` runs.
#
# Then the client resolves every open operation with its key and judges the history against
# MariaDB (tests/chaos/chaos.c: balances, history rows, orders, payments, stock, coupons, the
# platform's copy of every event), `shopd check` runs, and the report is written: per phase the
# requests answered, 5xx, connection errors, p99, the rate before and during the fault and the
# recovery time (end of the fault -> first success), plus the totals.
#
#   make chaos                  the full suite (about 5 minutes); writes docs/RELIABILITY.md
#                               (the block between <!-- fuzz:begin --> and <!-- fuzz:end -->,
#                               which scripts/fuzz.sh fills, is kept as it is)
#   scripts/chaos.sh --smoke    every phase, short, fewer clients (what `make test` runs,
#                               <= 90 s); writes only under var/chaos-smoke/
#
# Settings (environment; smoke values in brackets): THREADS 48 [16], USERS_PER_THREAD 10 [4],
# STEADY_S 10 [1], FAULT_S 5 [1], STOP_S 12 [11], PARTITION_S 10 [4], RECOVER_S 12 [2],
# SLOW_PAUSE_MS 3000 [1000], DB_PORT 23306 [23316], REDIS_PORT 26379 [26389], LB_PORT 28080
# [28090] (instances on the next three ports), CHAOS_DB shopd_t_chaos [shopd_t_chaos_smoke],
# SHOPD (build/shopd, else build/release/shopd), OUT (var/chaos/run [var/chaos-smoke/run]), DOC (docs/RELIABILITY.md
# [$OUT/RELIABILITY.md]), DB_IDLE_TRX_S (1: the idle_transaction_timeout
# shopd sets on its request connections, SHOPD_DB_IDLE_TRX_TIMEOUT; 0 = none), PHASES (all, in the order above but kill-platform fourth; a subset
# for a quicker look, e.g. PHASES=stop-instance), KEEP_SERVICES (0: the private MariaDB and Redis are stopped at the end).
# Everything started here is stopped by pid when the script ends, for any reason; a process left
# SIGSTOPped by a fault is sent SIGCONT first. Exit status 0 when every check passed; the last
# line is "[  PASSED  ] N test(s)." or "[  FAILED  ] N test(s), listed above".
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

SMOKE=0
[ "${1:-}" != --smoke ] || SMOKE=1
if [ "$SMOKE" = 1 ]; then
  : "${THREADS:=16}" "${USERS_PER_THREAD:=4}" "${STEADY_S:=1}" "${FAULT_S:=1}" "${STOP_S:=11}"
  : "${PARTITION_S:=4}" "${RECOVER_S:=2}" "${SLOW_PAUSE_MS:=1000}" "${DB_PORT:=23316}"
  : "${REDIS_PORT:=26389}" "${LB_PORT:=28090}" "${CHAOS_DB:=shopd_t_chaos_smoke}"
  : "${CHAOS_VAR:=$ROOT/var/chaos-smoke}" "${SHOPD_THREADS:=16}"
  # The restarted platform takes over its dead predecessor's entries after this idle time.
  : "${SHOPD_EVENTS_CLAIM_IDLE_MS:=3000}"
  export SHOPD_EVENTS_CLAIM_IDLE_MS
fi
THREADS=${THREADS:-48}
USERS_PER_THREAD=${USERS_PER_THREAD:-10}
STEADY_S=${STEADY_S:-10}
FAULT_S=${FAULT_S:-5}
STOP_S=${STOP_S:-12}
PARTITION_S=${PARTITION_S:-10}
RECOVER_S=${RECOVER_S:-12}
SLOW_PAUSE_MS=${SLOW_PAUSE_MS:-3000}
DB_PORT=${DB_PORT:-23306}
REDIS_PORT=${REDIS_PORT:-26379}
LB_PORT=${LB_PORT:-28080}
CHAOS_DB=${CHAOS_DB:-shopd_t_chaos}
CHAOS_VAR=$(realpath -m "${CHAOS_VAR:-$ROOT/var/chaos}")
OUT=$(realpath -m "${OUT:-$CHAOS_VAR/run}")
DOC=${DOC:-}
[ -n "$DOC" ] || { [ "$SMOKE" = 1 ] && DOC=$OUT/RELIABILITY.md || DOC=$ROOT/docs/RELIABILITY.md; }
# `make chaos` builds build/shopd; inside `make test` the bench smoke has just built the release
# preset.
if [ -z "${SHOPD:-}" ]; then
  SHOPD=$ROOT/build/shopd
  [ -x "$SHOPD" ] || SHOPD=$ROOT/build/release/shopd
fi
SHOPD=$(realpath -m "$SHOPD")
KEEP_SERVICES=${KEEP_SERVICES:-0}
export SHOPD_THREADS=${SHOPD_THREADS:-64}
SVC=$CHAOS_VAR/svc
TOPOLOGY=${TOPOLOGY:-single}
export GALERA_PORT=${GALERA_PORT:-$((DB_PORT + 5))} GCOMM_PORT=${GCOMM_PORT:-$((DB_PORT + 1261))}
export REDIS_HA_PORT=$REDIS_PORT SENTINEL_PORT=${SENTINEL_PORT:-$((REDIS_PORT + 10))}
CLUSTER_DIR=$OUT/cluster
CHAOS_BIN=$CHAOS_VAR/chaos
# services.sh and cluster.sh read these.
export SHOPD_VAR=$CHAOS_VAR DB_PORT REDIS_PORT LB_PORT CLUSTER_DIR SHOPD
export FIRST_PORT=$((LB_PORT + 1)) DB_BUFFER_POOL=${DB_BUFFER_POOL:-128M}
# A frozen instance holds the row locks of its open transactions (hot products, idempotency
# keys) until MariaDB rolls them back: shopd sets idle_transaction_timeout on its request
# connections (SHOPD_DB_IDLE_TRX_TIMEOUT, deploy/README.md); the suite runs with shopd's own.
DB_IDLE_TRX_S=${DB_IDLE_TRX_S:-${SHOPD_DB_IDLE_TRX_TIMEOUT:-1}}
export SHOPD_DB_IDLE_TRX_TIMEOUT=$DB_IDLE_TRX_S

log() { printf 'chaos: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wait_until and port_free: polling, never a fixed sleep.
. "$ROOT/scripts/lib/poll.sh"

now_ms() { date +%s%3N; }
sql() { MYSQL_PWD=shop-pass mariadb -h 127.0.0.1 -P "$(judge_port)" -u shop -N -B "$@"; }
# The node the judge reads: the one MariaDB, or Galera's node 3 (which reads with wsrep_sync_wait,
# and which shopd writes through only when nodes 1 and 2 are both lost).
judge_port() { [ "$TOPOLOGY" = ha ] && echo $((GALERA_PORT + 2)) || echo "$DB_PORT"; }
galera() { scripts/galera.sh "$@" >> "$OUT/galera.log" 2>&1; }
sentinel() { scripts/sentinel.sh "$@" 2>> "$OUT/sentinel.log"; }
services() { scripts/services.sh "$@" >> "$OUT/services.log" 2>&1; }
cluster() { scripts/cluster.sh "$@" 2>> "$OUT/cluster.log"; }
mariadb_pid() { tr -dc 0-9 < "$SVC/mariadb/mariadb.pid"; }
redis_pid() { tr -dc 0-9 < "$SVC/redis/redis.pid"; }
gone() { ! kill -0 "$1" 2>/dev/null || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }

LOAD_PID='' CLUSTER_STARTED='' SERVICES_STARTED='' STOPPED_PIDS=()

# cleanup: whatever ran is stopped by its pid; a process a fault left stopped is resumed first.
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${STOPPED_PIDS[@]}"; do kill -CONT "$p" 2>/dev/null || true; done
  if [ -n "$LOAD_PID" ] && kill -0 "$LOAD_PID" 2>/dev/null; then
    kill -TERM "$LOAD_PID" 2>/dev/null || true
    wait_until 15 gone "$LOAD_PID" || kill -KILL "$LOAD_PID" 2>/dev/null || true
  fi
  [ -z "$CLUSTER_STARTED" ] || cluster down || true
  if [ -n "$SERVICES_STARTED" ] && [ "$KEEP_SERVICES" = 0 ]; then
    if [ "$TOPOLOGY" = ha ]; then sentinel down || true; galera down || true; else services down || true; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT
trap 'log terminated; exit 143' TERM

# ---- set-up ---------------------------------------------------------------------------------

# build_client: tests/chaos/chaos.c with the project's warnings, straight into var/ (the top-level
# CMakeLists.txt stays the build of shopd and its tests).
build_client() {
  local pkgs="libcurl jansson libmariadb"
  pkg-config --exists $pkgs || die "pkg-config cannot find $pkgs (scripts/deps.sh)"
  # shellcheck disable=SC2046
  cc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -g -Wall -Wextra -Werror -Wshadow \
    -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Wcast-qual -Wwrite-strings -Wvla \
    -Wformat=2 -Wimplicit-fallthrough -fno-common -Wno-unused-parameter -I src \
    $(pkg-config --cflags $pkgs) tests/chaos/chaos.c -o "$CHAOS_BIN" $(pkg-config --libs $pkgs) \
    -pthread > "$OUT/build.log" 2>&1 || { cat "$OUT/build.log" >&2; die "tests/chaos/chaos.c does not build"; }
}

# start_services: the private MariaDB and Redis (a fresh database and no keys of a former run).
start_services() {
  SERVICES_STARTED=1
  if [ "$TOPOLOGY" = ha ]; then
    galera up || { tail -n 20 "$OUT/galera.log" >&2; die "the private Galera cluster did not start"; }
    sentinel up || { tail -n 20 "$OUT/sentinel.log" >&2; die "the private Redis and Sentinels did not start"; }
    scripts/galera.sh sql 3 -e 'SET GLOBAL wsrep_sync_wait = 1'
  else
    services up || { tail -n 20 "$OUT/services.log" >&2; die "the private MariaDB/Redis did not start"; }
  fi
  sql -e "DROP DATABASE IF EXISTS \`$CHAOS_DB\`; CREATE DATABASE \`$CHAOS_DB\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
  redis-cli -p "$REDIS_PORT" flushall > /dev/null
}

# admin_post PATH JSON FIELD: the new object's id.
admin_post() {
  local body id
  body=$(curl -sS -m 10 -X POST "$URL$1" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' -d "$2")
  id=$(jq -r ".$3 // empty" <<< "$body" 2>/dev/null || true)
  [[ $id =~ ^[0-9]+$ ]] || die "POST $1 answered: $body"
  echo "$id"
}

# fixtures: users (with tokens), hot products (one of them scarce) and coupons for fewer users
# than want them, through the admin API; written where the client reads them.
fixtures() {
  local users=$((THREADS * USERS_PER_THREAD)) i id ids=() price
  ADMIN_TOKEN=$("$SHOPD" token --admin)
  for ((i = 1; i <= users; i++)); do
    [ "$i" -eq 1 ] || echo next
    printf 'url = "%s/api/admin/users"\nsilent\nrequest = "POST"\nheader = "Authorization: Bearer %s"\n' "$URL" "$ADMIN_TOKEN"
    printf 'header = "Content-Type: application/json"\ndata = "{\\"name\\":\\"chaos-%d\\"}"\nwrite-out = "\\n"\n' "$i"
  done > "$OUT/users.curl"
  curl -K "$OUT/users.curl" | jq -r '.userId // empty' > "$OUT/user-ids.txt"
  [ "$(wc -l < "$OUT/user-ids.txt")" -eq "$users" ] || die "created $(wc -l < "$OUT/user-ids.txt") of $users users"
  mapfile -t ids < "$OUT/user-ids.txt"
  # One token a line, in the order of the ids.
  "$SHOPD" token "${ids[@]}" | paste -d ' ' "$OUT/user-ids.txt" - > "$OUT/users.txt"
  [ "$(awk 'NF == 2' "$OUT/users.txt" | wc -l)" -eq "$users" ] || die "shopd token did not mint $users tokens"
  : > "$OUT/products.txt"
  for i in 1 2 3 4; do
    price=$((1000 * i + 500))
    id=$(admin_post /api/admin/products "{\"name\":\"chaos-hot-$i\",\"price\":$price,\"stock\":1000000}" productId)
    echo "$id $price 1000000" >> "$OUT/products.txt"
  done
  id=$(admin_post /api/admin/products '{"name":"chaos-scarce","price":2500,"stock":40}' productId)
  echo "$id 2500 40" >> "$OUT/products.txt"
  : > "$OUT/coupons.txt"
  for spec in 'RATE 10' 'FIXED 500' 'RATE 5'; do
    id=$(admin_post /api/admin/coupons "{\"name\":\"chaos $spec\",\"discountType\":\"${spec% *}\",\"discountValue\":${spec#* },\"totalQuantity\":$((users / 6 + 1))}" couponId)
    echo "$id $((users / 6 + 1))" >> "$OUT/coupons.txt"
  done
}

# ---- phases -----------------------------------------------------------------------------------

# mark PHASE EVENT: the time of EVENT (start, fault, healed, end) of PHASE, into phases.tsv.
mark() { printf '%s\t%s\t%s\n' "$1" "$2" "$(now_ms)" >> "$OUT/phases.tsv"; }

# phase NAME FAULT HEAL: STEADY_S of steady load, FAULT (injects; may hold the fault for a timed
# duration), HEAL (ends it; returns once the faulty part answers again), then RECOVER_S.
phase() {
  local name=$1
  log "phase $name"
  kill -0 "$LOAD_PID" 2>/dev/null || die "the load client exited early (see $OUT/chaos.log)"
  mark "$name" start
  sleep "$STEADY_S"
  mark "$name" fault
  "$2"
  "$3"
  mark "$name" healed
  sleep "$RECOVER_S"
  mark "$name" end
}

pid_of() { cluster pid "$1"; }

# Each fault: the injection, then what ends it. Fault durations are timed; every wait for a
# process to exit or to answer again is a polled condition.
kill_instance() { kill -KILL "$(pid_of serve-1)"; sleep "$FAULT_S"; }
restart_instance_1() { cluster restart serve-1; }

stop_instance() {
  VICTIM=$(pid_of serve-2); STOPPED_PIDS+=("$VICTIM")
  kill -STOP "$VICTIM"; sleep "$STOP_S"
}
cont_instance() { kill -CONT "$VICTIM"; STOPPED_PIDS=(); }

term_instance() {
  local p; p=$(pid_of serve-3)
  kill -TERM "$p"
  wait_until 30 gone "$p" || die "serve-3 ignored SIGTERM for 30 s"
  sleep "$FAULT_S"
}
restart_instance_3() { cluster restart serve-3; }

kill_redis() { kill -KILL "$(redis_pid)"; sleep "$FAULT_S"; }
restart_services() { services up || { tail -n 20 "$OUT/services.log" >&2; die "services.sh up failed"; }; }

slow_redis() {
  local p; p=$(redis_pid)
  redis-cli -p "$REDIS_PORT" client pause "$SLOW_PAUSE_MS" all > /dev/null
  sleep "$(awk -v ms="$SLOW_PAUSE_MS" 'BEGIN { printf "%.1f", ms / 1000 + 1 }')"
  # Replies held back by a stopped server: the commands run, late, after the clients gave up.
  for _ in 1 2; do
    STOPPED_PIDS+=("$p"); kill -STOP "$p"
    sleep "$(awk -v ms="$SLOW_PAUSE_MS" 'BEGIN { printf "%.1f", ms / 2000 }')"
    kill -CONT "$p"; STOPPED_PIDS=()
    sleep 1
  done
}
redis_answers() { wait_until 10 bash -c "[ \"\$(redis-cli -p $REDIS_PORT ping)\" = PONG ]"; }

kill_mariadb() {
  local p; p=$(mariadb_pid)
  kill -KILL "$p"
  wait_until 10 gone "$p" || die "mariadbd survived SIGKILL"
  sleep "$FAULT_S"
}

cut_mariadb() {
  VICTIM=$(mariadb_pid); STOPPED_PIDS+=("$VICTIM")
  kill -STOP "$VICTIM"; sleep "$PARTITION_S"
}
heal_mariadb() { kill -CONT "$VICTIM"; STOPPED_PIDS=(); wait_until 30 sql -e 'SELECT 1'; }

# The Galera node shopd writes through: the one holding the most of the suite's connections.
galera_writer() {
  local n best=1 most=-1 count
  for n in 1 2 3; do
    count=$(MYSQL_PWD=shop-pass mariadb -h 127.0.0.1 -P $((GALERA_PORT + n - 1)) -u shop -N -B \
      -e "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE db = '$CHAOS_DB'" 2>/dev/null) || continue
    [ "$count" -le "$most" ] || { most=$count; best=$n; }
  done
  echo "$best"
}
kill_galera_node() {
  VICTIM=$(galera_writer)
  log "  Galera node $VICTIM is the writer: killed"
  galera kill "$VICTIM"
  sleep "$FAULT_S"
}
restart_galera_node() { galera start "$VICTIM" || { tail -n 20 "$OUT/galera.log" >&2; die "Galera node $VICTIM did not rejoin"; }; }

kill_redis_master() {
  VICTIM=$(sentinel kill-master)
  log "  Redis $VICTIM was the master: killed"
  sleep "$FAULT_S"
}
restart_redis_master() { sentinel start "$VICTIM" || { tail -n 20 "$OUT/sentinel.log" >&2; die "Redis $VICTIM did not come back"; }; }

kill_platform() { kill -KILL "$(pid_of platform)"; sleep "$FAULT_S"; }
restart_platform() { cluster restart platform; }

# ---- the run ----------------------------------------------------------------------------------

for tool in nginx curl jq mariadb redis-cli cc pkg-config awk; do
  command -v "$tool" > /dev/null || die "$tool is not installed (scripts/deps.sh)"
done
[ -x "$SHOPD" ] || die "$SHOPD is missing: make build (or set SHOPD)"
SINGLE_PHASES="kill-instance stop-instance term-instance kill-platform kill-redis slow-redis kill-mariadb cut-mariadb"
HA_ONLY_PHASES="kill-galera-node kill-redis-master"
ALL_PHASES="$SINGLE_PHASES $HA_ONLY_PHASES"
case $TOPOLOGY in
  single) PHASES=${PHASES:-$SINGLE_PHASES} ;;
  ha) PHASES=${PHASES:-kill-galera-node kill-instance kill-redis-master} ;;
  *) die "TOPOLOGY must be single or ha, not '$TOPOLOGY'" ;;
esac
# On ha, MariaDB and Redis are galera.sh's and sentinel.sh's: the single servers' faults do not apply.
for p in $PHASES; do
  case "$TOPOLOGY $p" in
    "single kill-galera-node"|"single kill-redis-master"|"ha kill-mariadb"|"ha cut-mariadb"|"ha kill-redis"|"ha slow-redis")
      die "phase $p needs another TOPOLOGY" ;;
  esac
done
for p in $PHASES; do case " $ALL_PHASES " in *" $p "*) ;; *) die "unknown phase '$p' (known: $ALL_PHASES)" ;; esac; done
[[ $CHAOS_DB =~ ^shopd_t_[a-z0-9_]+$ ]] || die "CHAOS_DB must start with shopd_t_"
for p in $LB_PORT $FIRST_PORT $((FIRST_PORT + 1)) $((FIRST_PORT + 2)); do port_free "$p" || die "127.0.0.1:$p is in use"; done
[ "$DB_PORT" != 13306 ] && [ "$REDIS_PORT" != 16379 ] || die "the faults need a private MariaDB and Redis, not the shared ones"

T0=$(date +%s)
rm -rf "$OUT"
mkdir -p "$OUT" "$CHAOS_VAR"
: > "$OUT/phases.tsv"
log "building the load client (tests/chaos/chaos.c)"
build_client
if [ "$TOPOLOGY" = ha ]; then
  log "private Galera 127.0.0.1:$GALERA_PORT-$((GALERA_PORT + 2)), Redis 127.0.0.1:$REDIS_PORT-$((REDIS_PORT + 1)) and Sentinels 127.0.0.1:$SENTINEL_PORT-$((SENTINEL_PORT + 2)) under ${CHAOS_VAR#$ROOT/}/ha"
else
  log "private MariaDB 127.0.0.1:$DB_PORT and Redis 127.0.0.1:$REDIS_PORT under ${CHAOS_VAR#$ROOT/}/svc"
fi
start_services

export SHOPD_DB_URL="mysql://shop:shop-pass@127.0.0.1:$DB_PORT/$CHAOS_DB"
JUDGE_DB_URL=$SHOPD_DB_URL
if [ "$TOPOLOGY" = ha ]; then
  SHOPD_DB_URL="mysql://shop:shop-pass@127.0.0.1:$GALERA_PORT,127.0.0.1:$((GALERA_PORT + 1)),127.0.0.1:$((GALERA_PORT + 2))/$CHAOS_DB"
  JUDGE_DB_URL="mysql://shop:shop-pass@127.0.0.1:$(judge_port)/$CHAOS_DB"
  export SHOPD_REDIS_SENTINELS=$(scripts/sentinel.sh sentinels) SHOPD_REDIS_MASTER=shopd
fi
export SHOPD_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
[ -s "$CHAOS_VAR/jwt-secret" ] || { umask 077; head -c 32 /dev/urandom | base64 | tr -d '\n=' > "$CHAOS_VAR/jwt-secret"; }
SHOPD_JWT_SECRET=$(cat "$CHAOS_VAR/jwt-secret")
export SHOPD_JWT_SECRET SHOPD_ACCESS_LOG=0
# No order expires during the run: every PENDING order is the client's to account for.
export SHOPD_ORDER_TTL=7200

log "cluster of 3 behind nginx on 127.0.0.1:$LB_PORT (${CLUSTER_DIR#$ROOT/})"
CLUSTER_STARTED=1
cluster up 3 || { tail -n 20 "$OUT/cluster.log" >&2; die "the cluster did not start"; }
URL=http://127.0.0.1:$LB_PORT
fixtures
log "fixtures: $((THREADS * USERS_PER_THREAD)) users, 5 products, 3 coupons; start-up took $(($(date +%s) - T0)) s"

CHAOS_URL=$URL CHAOS_DB_URL=$JUDGE_DB_URL CHAOS_RUN=chaos-$$-$(date +%s) CHAOS_THREADS=$THREADS \
  CHAOS_USERS_PER_THREAD=$USERS_PER_THREAD "$CHAOS_BIN" "$OUT" 2> "$OUT/chaos.log" &
LOAD_PID=$!

# The platform goes early: the entries its dead consumer held are claimed by the restarted one
# after SHOPD_EVENTS_CLAIM_IDLE_MS, while the other phases run.
for p in $PHASES; do
  case $p in
    kill-instance) phase "$p" kill_instance restart_instance_1 ;;
    stop-instance) phase "$p" stop_instance cont_instance ;;
    term-instance) phase "$p" term_instance restart_instance_3 ;;
    kill-platform) phase "$p" kill_platform restart_platform ;;
    kill-redis) phase "$p" kill_redis restart_services ;;
    slow-redis) phase "$p" slow_redis redis_answers ;;
    kill-mariadb) phase "$p" kill_mariadb restart_services ;;
    cut-mariadb) phase "$p" cut_mariadb heal_mariadb ;;
    kill-galera-node) phase "$p" kill_galera_node restart_galera_node ;;
    kill-redis-master) phase "$p" kill_redis_master restart_redis_master ;;
  esac
done

log "load stopped; the clients resolve what is open, then the history is judged"
kill -USR1 "$LOAD_PID"
load_rc=0
wait "$LOAD_PID" || load_rc=$?
LOAD_PID=''
[ -s "$OUT/checks.tsv" ] || { tail -n 20 "$OUT/chaos.log" >&2; die "the load client exited ($load_rc) without judging"; }
if "$SHOPD" check > "$OUT/shopd-check.txt" 2>&1; then
  printf 'shopd-check\tPASS\tevery invariant of shopd check\n' >> "$OUT/checks.tsv"
else
  printf 'shopd-check\tFAIL\tsee %s\n' "${OUT#$ROOT/}/shopd-check.txt" >> "$OUT/checks.tsv"
fi

ELAPSED=$(($(date +%s) - T0))
TOPOLOGY=$TOPOLOGY THREADS=$THREADS USERS_PER_THREAD=$USERS_PER_THREAD SMOKE=$SMOKE ELAPSED=$ELAPSED STOP_S=$STOP_S \
  PARTITION_S=$PARTITION_S FAULT_S=$FAULT_S DB_IDLE_TRX_S=$DB_IDLE_TRX_S SLOW_PAUSE_MS=$SLOW_PAUSE_MS tests/chaos/report.sh "$OUT" "$DOC"
log "wrote ${DOC#$ROOT/} (raw: ${OUT#$ROOT/}); $ELAPSED s in all"

passed=$(awk -F'\t' '$2 == "PASS"' "$OUT/checks.tsv" | wc -l)
failed=$(awk -F'\t' '$2 != "PASS"' "$OUT/checks.tsv" | wc -l)
awk -F'\t' '{ printf "[ %s ] %s: %s\n", ($2 == "PASS" ? "      OK" : " FAILED "), $1, $3 }' "$OUT/checks.tsv"
if [ "$failed" -gt 0 ]; then
  echo "[  PASSED  ] $passed test(s)."
  echo "[  FAILED  ] $failed test(s), listed above"
  exit 1
fi
echo "[  PASSED  ] $passed test(s)."
