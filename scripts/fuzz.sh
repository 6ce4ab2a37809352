#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets of tests/fuzz/ (the `fuzz` preset: clang-16 with
# ASan + UBSan + LSan) and runs each of them for FUZZ_RUNS executions (10 million by default),
# FUZZ_JOBS at a time (2), then writes the figures into docs/RELIABILITY.md between the markers
# <!-- fuzz:begin --> and <!-- fuzz:end --> (nothing else in that file is touched).
#
# `scripts/fuzz.sh --smoke` (run by `make test`): each target for FUZZ_SMOKE_S seconds (20);
# writes nothing into docs/. Both modes first replay tests/fuzz/regressions/<target>/ (inputs
# that once found a bug) and fail on any crash, leak, UBSan report or broken property; each
# target prints one cmocka-style "[  PASSED  ]" or "[  FAILED  ]" line.
#
# The seed corpus is tests/fuzz/corpus/<target>/ (committed, read only); what the runs find goes
# to var/fuzz/corpus/<target>/, crash inputs to var/fuzz/artifacts/<target>/, logs to
# var/fuzz/logs/. To reproduce a finding: build/fuzz/tests/fuzz/fuzz_<target> <input>
# (SHOPD_FUZZ_VERBOSE=1 makes fuzz_http print each answer).
set -uo pipefail
cd "$(dirname "$0")/.."

mode=full
case "${1:-}" in
  "") ;;
  --smoke) mode=smoke ;;
  *) echo "usage: scripts/fuzz.sh [--smoke]" >&2; exit 2 ;;
esac

runs=${FUZZ_RUNS:-10000000}
smoke_s=${FUZZ_SMOKE_S:-20}
jobs=${FUZZ_JOBS:-2}
bin_dir=build/fuzz/tests/fuzz
work=var/fuzz
doc=docs/RELIABILITY.md
mkdir -p "$work/logs" "$work/corpus" "$work/artifacts"

if ! cmake --preset fuzz >"$work/logs/build.out" 2>&1 ||
   ! cmake --build build/fuzz -j"$jobs" --target fuzzers >>"$work/logs/build.out" 2>&1; then
  tail -n 40 "$work/logs/build.out"
  echo "[  FAILED  ] 1 test: the fuzz targets do not build (see $work/logs/build.out)"
  exit 1
fi

targets=()
for src in tests/fuzz/fuzz_*.c; do
  name=${src##*/fuzz_}
  targets+=("${name%.c}")
done

symbolizer=$(command -v llvm-symbolizer-16 || command -v llvm-symbolizer || true)
export ASAN_SYMBOLIZER_PATH=$symbolizer
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:strict_string_checks=1:print_summary=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0

# dict_of TARGET: the dictionary for a target, if it has one.
dict_of() {
  case $1 in
    http) echo tests/fuzz/http.dict ;;
    json_decode | canonical | jwt) echo tests/fuzz/json.dict ;;
  esac
}

# run_target TARGET: replays the regressions, then fuzzes; the log is $work/logs/TARGET.log.
run_target() {
  local t=$1 bin=$bin_dir/fuzz_$1 log=$work/logs/$1.log
  local corpus=$work/corpus/$t seeds=tests/fuzz/corpus/$t
  local max_len=4096 dict opts=()

  mkdir -p "$corpus" "$work/artifacts/$t"
  [ "$t" = http ] && max_len=8192
  dict=$(dict_of "$t")
  [ -n "$dict" ] && opts+=("-dict=$dict")
  if [ "$mode" = smoke ]; then opts+=("-max_total_time=$smoke_s"); else opts+=("-runs=$runs"); fi
  : >"$log"
  rm -f "$work/logs/$t.time"
  if compgen -G "tests/fuzz/regressions/$t/*" >/dev/null; then
    echo "== regressions" >>"$log"
    "$bin" -detect_leaks=1 tests/fuzz/regressions/"$t"/* >>"$log" 2>&1 || return 1
  fi
  echo "== fuzzing" >>"$log"
  local t0 rc
  t0=$(date +%s.%N)
  "$bin" "${opts[@]}" -max_len=$max_len -detect_leaks=1 -timeout=25 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/$t/" "$corpus" "$seeds" >>"$log" 2>&1
  rc=$?
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }' >"$work/logs/$t.time"
  return $rc
}

# stat TARGET KEY: a figure from the log's final statistics.
stat() {
  grep -a -oE "^stat::$2: *[0-9]+" "$work/logs/$1.log" | tail -n 1 | awk '{print $NF}'
}

# summary TARGET RC: prints the target's line and records its figures in $work/figures.
summary() {
  local t=$1 rc=$2 log=$work/logs/$1.log
  local execs rate secs cov ft corp crash=0 leak=0 ubsan=0 done_line
  execs=$(stat "$t" number_of_executed_units)
  secs=$(cat "$work/logs/$t.time" 2>/dev/null || echo 0)
  rate=$(awk -v n="${execs:-0}" -v s="$secs" 'BEGIN { printf "%d\n", (s > 0 ? n / s : 0) }')
  done_line=$(grep -a -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -n 1)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$done_line")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$done_line")
  corp=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$done_line")
  grep -a -qE 'ERROR: LeakSanitizer' "$log" && leak=1
  grep -a -qE 'runtime error:' "$log" && ubsan=1
  if [ "$rc" -ne 0 ] && [ $leak -eq 0 ] && [ $ubsan -eq 0 ]; then crash=1; fi
  echo "$t ${execs:-0} ${rate:-0} ${secs:-0} ${cov:-0} ${ft:-0} ${corp:-0} $crash $leak $ubsan" \
    >>"$work/figures"
  if [ "$rc" -eq 0 ]; then
    printf '[  PASSED  ] 1 test: fuzz_%-12s %10s runs in %3ss (%s/s), cov %s ft %s corpus %s\n' \
      "$t" "${execs:-0}" "${secs:-0}" "${rate:-0}" "${cov:-0}" "${ft:-0}" "${corp:-0}"
  else
    printf '[  FAILED  ] 1 test: fuzz_%s (crash %d, leak %d, UBSan %d); log %s\n' \
      "$t" $crash $leak $ubsan "$log"
    grep -a -E 'fuzz property failed|ERROR: |runtime error:|SUMMARY|Test unit written|^    #[0-9] ' \
      "$log" | head -n 20 | sed 's/^/    /'
  fi
}

: >"$work/figures"
start=$SECONDS
failed=0
declare -A pid_of=()
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n 2>/dev/null || true; done
  run_target "$t" &
  pid_of[$t]=$!
done
for t in "${targets[@]}"; do
  wait "${pid_of[$t]}"
  rc=$?
  [ $rc -eq 0 ] || failed=$((failed + 1))
  summary "$t" $rc
done
total_s=$((SECONDS - start))
echo "fuzz ($mode): ${#targets[@]} targets, $failed failed, ${total_s}s"

# ---- docs/RELIABILITY.md, between the markers only ----
describe() {
  case $1 in
    http) echo "raw HTTP/1.1 over a socket into the server on h2o's event loop: routing, ids, headers, tokens, body limits, handlers, problems (MariaDB and Redis down)" ;;
    router) echo "router_match over the real route table: one canonical spelling per resource, 404/405 and Allow" ;;
    json_decode) echo "json_decode by spec tables shaped as src/api's: bounds, UTF-8, present flags, same result on the canonical text" ;;
    canonical) echo "json_canonical, idem_fingerprint and idem_svc_prepare: stable canonical text, key-independent fingerprint; the JSON writer's round trip" ;;
    jwt) echo "auth_verify on raw headers and on tokens signed over fuzzed claims (HS256/384/512): canonical sub, exp, nbf, role, HS256 only" ;;
    cursor) echo "num_parse_i64 (cursors, ids, query integers) against a 128-bit reference; cursor render/parse round trip" ;;
    rfc3339) echo "clock_parse_rfc3339 against glibc timegm, API.md's time range, format/parse round trip" ;;
    config) echo "SHOPD_DB_URL, SHOPD_REDIS_URL, SHOPD_LISTEN and config_load: rebuild-and-reparse round trip, ranges" ;;
    *) echo "see tests/fuzz/fuzz_$1.c" ;;
  esac
}

write_doc() {
  local section=$work/fuzz-section.md tmp
  {
    echo "<!-- fuzz:begin -->"
    echo "## Fuzzing"
    echo
    echo "\`make fuzz\` (scripts/fuzz.sh) on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'):"
    echo "libFuzzer (clang $(clang-16 -dumpversion 2>/dev/null || echo 16)) with AddressSanitizer,"
    echo "LeakSanitizer and UndefinedBehaviorSanitizer, $runs executions requested per target,"
    echo "$jobs targets at a time on $(nproc) cores, ${total_s} s in all. Every target also replays"
    echo "tests/fuzz/regressions/ first; \`make test\` runs each for ${smoke_s} s. What each target checks"
    echo "is the comment at the top of tests/fuzz/fuzz_<target>.c."
    echo
    echo "| target | what it drives |"
    echo "|---|---|"
    for t in "${targets[@]}"; do echo "| fuzz_$t | $(describe "$t") |"; done
    echo
    echo "| target | executions | exec/s | seconds | coverage (edges) | features | corpus | crashes | leaks | UBSan |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    while read -r t execs rate secs cov ft corp crash leak ubsan; do
      echo "| fuzz_$t | $execs | $rate | $secs | $cov | $ft | $corp | $crash | $leak | $ubsan |"
    done <"$work/figures"
    echo
    if [ "$failed" -eq 0 ]; then
      echo "0 crashes, 0 leaks, 0 UBSan reports."
    else
      echo "**$failed target(s) failed**: see var/fuzz/logs/ and var/fuzz/artifacts/."
    fi
    echo "<!-- fuzz:end -->"
  } >"$section"
  mkdir -p "$(dirname "$doc")"
  [ -f "$doc" ] || printf '# Reliability\n\n<!-- fuzz:begin -->\n<!-- fuzz:end -->\n' >"$doc"
  if ! grep -q '^<!-- fuzz:begin -->' "$doc" || ! grep -q '^<!-- fuzz:end -->' "$doc"; then
    printf '\n<!-- fuzz:begin -->\n<!-- fuzz:end -->\n' >>"$doc"
  fi
  tmp=$(mktemp "$work/reliability.XXXXXX")
  awk -v section="$section" '
    /^<!-- fuzz:begin -->/ { while ((getline line < section) > 0) print line; skip = 1; next }
    /^<!-- fuzz:end -->/ { skip = 0; next }
    !skip { print }
  ' "$doc" >"$tmp" && cat "$tmp" >"$doc" # in place: the file keeps its mode and inode
  rm -f "$tmp"
  echo "figures written to $doc"
}

[ "$mode" = full ] && write_doc
[ "$failed" -eq 0 ]
