#!/usr/bin/env bash
# `make test-ha`: shopd on a 3-node MariaDB Galera cluster and a Redis run by three Sentinels
# (issue 14), tested under failure.
#   1. a Galera cluster of the suite's own (scripts/galera.sh, var/ha-test, SQL ports
#      GALERA_PORT 23411..), and the integration suites that matter for it (balances, orders,
#      coupons, events, idempotency) with SHOPD_TEST_DB naming its three nodes, under ASan;
#      then integration/test_sentinel (its own Redis master, replica and Sentinel; a failover);
#   2. the fault suite on both (scripts/chaos.sh TOPOLOGY=ha: its own Galera cluster, Redis
#      pair and Sentinels on other ports): 3 instances behind nginx under load while the
#      Galera node they write through is killed and restarted, an instance is killed, the
#      Redis master is killed (the Sentinels promote the replica); every effect judged exact,
#      `shopd check`, the recovery time of each phase; the report in docs/RELIABILITY-HA.md.
#   scripts/test-ha.sh --smoke   step 2 alone, short (what `make test` runs); writes only under
#                                var/ha-chaos-smoke/
# Needs the shared MariaDB and Redis of scripts/services.sh for step 1's Redis (make services).
# Ends with "[  PASSED  ] N test(s)." or a failure, as the suites it runs.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

SMOKE=0
[ "${1:-}" != --smoke ] || SMOKE=1
log() { printf 'test-ha: %s\n' "$*" >&2; }
passed=0
failed=0

# count FILE RC: adds the cmocka / chaos summary lines of FILE, written by a run that exited RC;
# a run that failed, or said nothing, without a summary of failures counts as one failure.
count() {
  local p f
  p=$(grep -a -oE '^\[  PASSED  \] [0-9]+' "$1" | awk '{s+=$NF} END {print s+0}')
  f=$(grep -a -oE '^\[  FAILED  \] [0-9]+ test' "$1" | awk '{s+=$(NF-1)} END {print s+0}')
  if { [ "$2" -ne 0 ] || [ "$p" -eq 0 ]; } && [ "$f" -eq 0 ]; then
    f=1
    tail -n 15 "$1" | sed 's/^/    /' >&2
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  [ "$f" -eq 0 ] || grep -a -E 'FAILED|ERROR|LINE' "$1" | head -n 20 | sed 's/^/    /' >&2
}

suites() {
  local out=var/ha-test/logs t
  export SHOPD_VAR=$ROOT/var/ha-test GALERA_PORT=${GALERA_PORT:-23411} GCOMM_PORT=${GCOMM_PORT:-24667}
  mkdir -p "$out"
  trap 'scripts/galera.sh down >> var/ha-test/logs/galera.log 2>&1' EXIT
  log "Galera cluster on 127.0.0.1:$GALERA_PORT-$((GALERA_PORT + 2))"
  scripts/galera.sh up >> "$out/galera.log" 2>&1 || { tail -n 20 "$out/galera.log" >&2; failed=$((failed + 1)); return; }
  # As scripts/test.sh runs them.
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export LSAN_OPTIONS=suppressions=$ROOT/tests/lsan.supp:print_suppressions=0
  export SHOPD_TEST_DB="mysql://shop:shop-pass@127.0.0.1:$GALERA_PORT,127.0.0.1:$((GALERA_PORT + 1)),127.0.0.1:$((GALERA_PORT + 2))/shop"
  export SHOPD_TEST_REDIS=${SHOPD_TEST_REDIS:-redis://127.0.0.1:16379/0}
  export SHOPD_TEST_LOG_DIR=$ROOT/$out
  for t in balances orders coupons events idempotency sentinel; do
    build/asan/it_test_$t > "$out/$t.out" 2>&1
    count "$out/$t.out" $?
    log "integration/$t on Galera: $(grep -a -cE '^\[       OK \]' "$out/$t.out") ok"
  done
  suite_passed=$passed suite_failed=$failed
  scripts/galera.sh down >> "$out/galera.log" 2>&1
  trap - EXIT
  unset SHOPD_VAR GALERA_PORT GCOMM_PORT
}

# write_summary: the run's summary into docs/RELIABILITY.md, between <!-- ha:begin --> and
# <!-- ha:end --> (nothing else there is touched): the suites' counts, then the fault table
# and the checks of docs/RELIABILITY-HA.md, which has the whole report.
write_summary() {
  local doc=docs/RELIABILITY.md section tmp
  section=$(mktemp) tmp=$(mktemp)
  {
    echo "<!-- ha:begin -->"
    echo "## On Galera and Redis Sentinel (\`make test-ha\`)"
    echo
    echo "\`scripts/test-ha.sh\` on $(date -u '+%F %T UTC'), commit $(git rev-parse --short HEAD), $((SECONDS / 60)) min in all:"
    echo "the integration suites balances, orders, coupons, events and idempotency against a 3-node Galera cluster"
    echo "(SHOPD_TEST_DB naming its three nodes) and integration/test_sentinel (a Sentinel failover) under ASan:"
    echo "$suite_passed passed, $suite_failed failed. Then the fault suite on Galera + Sentinel under load"
    echo "(the whole report, with the rate during each fault: [RELIABILITY-HA.md](RELIABILITY-HA.md)):"
    echo
    awk '/^\| phase \|/ { on = 1 } on && !/^\|/ { exit } on { print }' docs/RELIABILITY-HA.md
    echo
    awk '/^\| check \|/ { on = 1 } on && !/^\|/ { exit } on { print }' docs/RELIABILITY-HA.md
    echo "<!-- ha:end -->"
  } > "$section"
  grep -q '^<!-- ha:begin -->' "$doc" || printf '\n<!-- ha:begin -->\n<!-- ha:end -->\n' >> "$doc"
  awk -v section="$section" '
    /^<!-- ha:begin -->/ { while ((getline line < section) > 0) print line; skip = 1; next }
    /^<!-- ha:end -->/ { skip = 0; next }
    !skip { print }
  ' "$doc" > "$tmp" && cat "$tmp" > "$doc"
  rm -f "$section" "$tmp"
  log "wrote the summary into $doc"
}

if [ "$SMOKE" = 0 ]; then
  cmake --preset asan > /dev/null && cmake --build build/asan -j"$(nproc)" > /dev/null || { log "the asan build failed"; exit 1; }
  suites
  chaos_env=(THREADS=32 USERS_PER_THREAD=8 STEADY_S=8 FAULT_S=5 RECOVER_S=12 CHAOS_VAR=$ROOT/var/ha-chaos DOC=$ROOT/docs/RELIABILITY-HA.md)
else
  chaos_env=(THREADS=16 USERS_PER_THREAD=4 STEADY_S=3 FAULT_S=2 RECOVER_S=6 CHAOS_VAR=$ROOT/var/ha-chaos-smoke DOC=$ROOT/var/ha-chaos-smoke/RELIABILITY-HA.md)
fi
mkdir -p var
# Every port below 32768: the kernel hands out 32768-60999 as the local ports of outgoing
# connections, and one of those held by a client made a node's listen fail (EADDRINUSE).
chaos_started=$(date +%s)
env TOPOLOGY=ha DB_PORT=30306 REDIS_PORT=30379 LB_PORT=30080 CHAOS_DB=shopd_t_chaos_ha \
  "${chaos_env[@]}" scripts/chaos.sh > var/test-ha-chaos.out 2>&1
count var/test-ha-chaos.out $?
grep -a -E '^\[ ' var/test-ha-chaos.out | grep -v PASSED >&2 || true
# A run whose fault suite wrote no report leaves the last summary alone: count has failed it.
[ "$SMOKE" = 1 ] || [ "$(stat -c %Y docs/RELIABILITY-HA.md 2>/dev/null || echo 0)" -lt "$chaos_started" ] ||
  write_summary

if [ "$failed" -gt 0 ]; then
  echo "[  PASSED  ] $passed test(s)."
  echo "[  FAILED  ] $failed test(s), listed above"
  exit 1
fi
echo "[  PASSED  ] $passed test(s)."
