#!/usr/bin/env bash
# `make test`: builds the asan preset (AddressSanitizer + UndefinedBehaviorSanitizer) and runs
# every test against the MariaDB and Redis that scripts/services.sh started: the static checks,
# the cmocka unit tests, and the integration tests (real `shopd serve` processes). Each test
# binary's cmocka summary is added up into the last line, "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

log_dir=var/test-logs
mkdir -p "$log_dir"
rm -f "$log_dir"/*.log

cmake --preset asan >/dev/null || exit 1
cmake --build build/asan -j"$(nproc)" >"$log_dir/build.out" 2>&1 || {
  tail -n 50 "$log_dir/build.out"; echo "0 passed, 1 failed"; exit 1; }

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
# The servers are local: their Unix sockets where they have them (scripts/services.sh urls),
# which is how make run reaches them too; either variable may be set to override.
while IFS='=' read -r name url; do
  case $name in
    SHOPD_DB_URL) : "${SHOPD_TEST_DB:=$url}" ;;
    SHOPD_REDIS_URL) : "${SHOPD_TEST_REDIS:=$url}" ;;
  esac
done < <(scripts/services.sh urls)
export SHOPD_TEST_DB=${SHOPD_TEST_DB:-mysql://shop:shop-pass@127.0.0.1:13306/shop}
export SHOPD_TEST_REDIS=${SHOPD_TEST_REDIS:-redis://127.0.0.1:16379/0}
export SHOPD_TEST_LOG_DIR=$PWD/$log_dir

passed=0
failed=0
failures=()

# run NAME COMMAND...: runs one test binary or check and adds its counts.
run() {
  local name=$1; shift
  local out="$log_dir/$(echo "$name" | tr '/' '_').out"
  local start=$SECONDS
  "$@" >"$out" 2>&1
  local rc=$?
  local p f
  p=$(grep -a -oE '^\[  PASSED  \] [0-9]+' "$out" | awk '{s+=$NF} END {print s+0}')
  f=$(grep -a -oE '^\[  FAILED  \] [0-9]+ test' "$out" | awk '{s+=$(NF-1)} END {print s+0}')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # crashed, leaked or a check failed
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then p=1; fi    # a check script: one test
  passed=$((passed + p))
  failed=$((failed + f))
  printf '%-40s %3d passed %3d failed  (%ds)\n' "$name" "$p" "$f" $((SECONDS - start))
  if [ "$f" -ne 0 ]; then
    failures+=("$name")
    grep -a -E 'ERROR|FAILED|Sanitizer|runtime error|LINE' "$out" | head -n 20 | sed 's/^/    /'
    echo "    (full output: $out)"
  fi
}

run check/layers scripts/check-layers.sh
run check/error-codes scripts/check-contract.sh
run check/tidy scripts/tidy.sh                         # clang-tidy over src/, warnings are errors
run check/prometheus scripts/check-prometheus.sh       # promtool: /metrics, deploy/prometheus/
for t in build/asan/unit_test_*; do run "unit/${t##*/unit_}" "$t"; done
run check/mutate-domain scripts/mutate-domain.sh   # each src/domain rule mutated in a copy: test_domain must fail
for t in build/asan/it_test_*; do run "integration/${t##*/it_}" "$t"; done
# The same suites with SHOPD_LOCKS=redis (the default is db): both lock modes keep every
# invariant (README).
for t in build/asan/it_test_*; do
  run "integration-redis/${t##*/it_}" env SHOPD_TEST_LOCKS=redis "$t"
done
run bench/smoke scripts/bench.sh --smoke   # every load scenario for 3 s against a 2-instance cluster (release build)
run fuzz/smoke scripts/fuzz.sh --smoke     # every libFuzzer target for 20 s
run chaos/smoke scripts/chaos.sh --smoke   # the fault suite, short (<= 90 s)
run ha/smoke scripts/test-ha.sh --smoke    # the fault suite on a 3-node Galera cluster, short (<= 2 min)

# A server that leaked or crashed under ASan says so in its log.
if grep -l -a -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log_dir"/*.log 2>/dev/null; then
  echo "sanitizer reports in server logs above"
  failed=$((failed + 1))
fi

echo
[ ${#failures[@]} -eq 0 ] || echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
