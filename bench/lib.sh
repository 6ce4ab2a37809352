# bench/lib.sh: shell helpers shared by scripts/bench.sh and the bench/*.sh steps. Sourced, never
# run: `. bench/lib.sh`. It expects ROOT (the repository) and OUT (the run's directory under var/)
# to be set, and provides logging, polling with a deadline, pid bookkeeping, SQL, the shopd
# environment, and one wrk run parsed into a line of $OUT/results.tsv.

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wait_until and port_free: polling, never a fixed sleep.
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/poll.sh"

# stop_pid NAME PID: TERM, up to 15 s to exit, then KILL. For processes this shell started.
stop_pid() {
  local name=$1 pid=$2
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  wait_until 15 bash -c "! kill -0 $pid" || { log "$name (pid $pid) ignored TERM; killing"; kill -KILL "$pid" 2>/dev/null || true; }
  wait "$pid" 2>/dev/null || true
}

# The database every shopd of the run uses, and MariaDB access to it.
DB_HOST=127.0.0.1 DB_PORT=${DB_PORT:-13306} DB_USER=shop DB_PASS=shop-pass
REDIS_PORT=${REDIS_PORT:-16379}
# The servers are local: shopd and the ceilings reach them through the Unix sockets that
# scripts/services.sh gives them (BENCH_TCP=1: over TCP instead), so both pay the same transport.
DB_SOCK= REDIS_SOCK=
if [ "${BENCH_TCP:-0}" != 1 ]; then
  [ -S "$ROOT/var/svc/mariadb/mariadb.sock" ] && DB_SOCK=$ROOT/var/svc/mariadb/mariadb.sock
  [ -S "$ROOT/var/svc/redis/redis.sock" ] && REDIS_SOCK=$ROOT/var/svc/redis/redis.sock
fi
# db_place / redis_place: the client options that reach the servers, for mariadb(-slap) and
# redis-benchmark / redis-cli.
db_place() { if [ -n "$DB_SOCK" ]; then echo "-S $DB_SOCK"; else echo "-h $DB_HOST -P $DB_PORT"; fi; }
redis_place() { if [ -n "$REDIS_SOCK" ]; then echo "-s $REDIS_SOCK"; else echo "-p $REDIS_PORT"; fi; }
# shellcheck disable=SC2046 # db_place is several words on purpose
sql() { MYSQL_PWD=$DB_PASS mariadb $(db_place) -u "$DB_USER" -N -B "$BENCH_DB" -e "$1"; }
shopd_env() {
  # DB_NODES (host:port,...): shopd is given a cluster's nodes (Galera), the first preferred;
  # DB_PORT is then the first node's, for sql() and the ceilings (BENCH_TCP=1).
  if [ -n "${DB_NODES:-}" ]; then
    export SHOPD_DB_URL="mysql://$DB_USER:$DB_PASS@$DB_NODES/$BENCH_DB"
  elif [ -n "$DB_SOCK" ]; then
    export SHOPD_DB_URL="mysql://$DB_USER:$DB_PASS@localhost/$BENCH_DB?socket=$DB_SOCK"
  else
    export SHOPD_DB_URL="mysql://$DB_USER:$DB_PASS@$DB_HOST:$DB_PORT/$BENCH_DB"
  fi
  if [ -n "$REDIS_SOCK" ]; then
    export SHOPD_REDIS_URL="unix://$REDIS_SOCK?db=0"
  else
    export SHOPD_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
  fi
  export SHOPD_JWT_SECRET=${SHOPD_JWT_SECRET:-shopd-bench-secret-not-for-production}
  export SHOPD_ACCESS_LOG=0
}

# ms VALUE: wrk's 812.00us / 1.23ms / 2.01s / 1.50m in milliseconds.
AWK_MS='function ms(v) {
  if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0
  if (v ~ /s$/) return v * 1000; if (v ~ /m$/) return v * 60000; return v + 0 }'

# parse_wrk FILE: "rps p50 p90 p99 avg requests non2xx unexpected socket_errors timeouts created
# paid keys" (latencies in ms). The Lua counters are used when the script printed them; a
# script without response() has wrk's own "Non-2xx or 3xx responses" (statuses >= 400) as both
# non-2xx and unexpected.
parse_wrk() {
  awk "$AWK_MS"'
    /^Requests\/sec:/            { rps = $2 }
    /^[ \t]+Latency[ \t]+[0-9]/   { avg = ms($2) }
    /^[ \t]+50%/                 { p50 = ms($2) }
    /^[ \t]+90%/                 { p90 = ms($2) }
    /^[ \t]+99%/                 { p99 = ms($2) }
    /^[ \t]*[0-9]+ requests in / { requests = $1 }
    /Socket errors:/             { gsub(/,/, ""); sock = $4 + $6 + $8; tmo = $10 }
    /Non-2xx or 3xx responses:/  { wrk_non2xx = $5 }
    /^shopd-bench: (responses=|extra |keys=)/ {
      for (i = 2; i <= NF; i++) if (split($i, kv, "=") == 2) v[kv[1]] = kv[2]
      if ($2 ~ /^responses=/) lua = 1
    }
    END {
      if (rps == "") exit 1
      non2xx = lua ? v["non2xx"] : wrk_non2xx + 0
      unexpected = lua ? v["unexpected"] : wrk_non2xx + 0
      printf "%s %.3f %.3f %.3f %.3f %d %d %d %d %d %d %d %d\n", rps, p50, p90, p99, avg, requests,
        non2xx, unexpected, sock, tmo + 0, v["created"] + 0, v["paid"] + 0, v["keys"] + 0
    }' "$1"
}

# results.tsv, one line per wrk run: topology scenario connections run, then parse_wrk's fields.
RESULT_COLUMNS="topology scenario connections run rps p50 p90 p99 avg requests non2xx unexpected socket_errors timeouts created paid keys"

# run_wrk TOPOLOGY SCENARIO CONNECTIONS RUN DURATION URL SCRIPT ARGS...: one wrk run. Its output
# goes to $OUT/raw/TOPOLOGY-SCENARIO-cCONNECTIONS-RUN.txt and its figures to results.tsv; the
# command (with "run=" completed to a unique run id) is remembered in commands.tsv. An argument
# "run=" becomes run=<invocation>-<topology>-<scenario>-<connections>-<run>, because idempotency
# keys must never repeat between runs.
run_wrk() {
  local topo=$1 name=$2 conns=$3 r=$4 duration=$5 url=$6 script=$7 i raw fields; shift 7
  local -a cmd=(wrk -t"$WRK_THREADS" -c"$conns" -d"${duration}s" --timeout 10s --latency -s "$script" "$url" -- "$@")
  printf '%s\t%s\t%s\t%s\n' "$topo" "$name" "$conns" "${cmd[*]//$ROOT\//}" >> "$OUT/commands.tsv"
  for ((i = 0; i < ${#cmd[@]}; i++)); do
    [ "${cmd[i]}" != run= ] || cmd[i]=run=$RUN_ID-$topo-$name-$conns-$r
  done
  raw=$OUT/raw/$topo-$name-c$conns-$r.txt
  log "$topo $name c=$conns run $r: ${cmd[*]//$ROOT\//}"
  "${cmd[@]}" > "$raw" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || { WRK_PID=; die "wrk failed; see $raw"; }
  WRK_PID=
  fields=$(parse_wrk "$raw") || die "no Requests/sec in $raw"
  printf '%s\t%s\t%s\t%s\t%s\n' "$topo" "$name" "$conns" "$r" "${fields// /$'\t'}" >> "$OUT/results.tsv"
  read -r rps p50 p90 p99 _ _ non2xx unexpected sock tmo _ <<< "$fields"
  log "  $rps req/s, p50 $p50 ms, p99 $p99 ms, non-2xx $non2xx (unexpected $unexpected), socket errors $sock, timeouts $tmo"
  if [ "$unexpected" -gt 0 ] || [ "$sock" -gt 0 ]; then
    UNEXPECTED_RUNS+=("$topo $name c=$conns run $r: $unexpected unexpected answers, $sock socket errors ($raw)")
    grep -a 'sample unexpected' "$raw" | head -n 3 | sed 's/^/    /' >&2 || true
  fi
}

# fact TOPOLOGY SCENARIO KEY VALUE: one fact of the run for the report ($OUT/facts.tsv).
fact() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$OUT/facts.tsv"; }

# settled_sql QUERY: QUERY's answer once it has stopped changing (3 equal answers 0.2 s apart,
# 30 s at most): requests in flight when wrk stopped are still being served.
settled_sql() {
  local prev='' cur same=0 deadline=$(($(date +%s) + 30))
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

# stats: one line per (topology, scenario, connections) of results.tsv, in first-seen order:
#   topology scenario connections runs rps_min rps_median rps_max p50 p90 p99 avg non2xx
#   unexpected socket_errors timeouts pairs_per_s
# Latencies are medians over the runs, errors totals; pairs/s (order-pay) = 200 Payments per
# second, the median over the runs.
stats() {
  awk -F'\t' '
    function sort(s, a,   n, i, j, t) {
      n = split(s, a, " ")
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return n
    }
    function med(s,   a, n) { n = sort(s, a); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    function lo(s,   a) { sort(s, a); return a[1] }
    function hi(s,   a, n) { n = sort(s, a); return a[n] }
    {
      k = $1 "\t" $2 "\t" $3
      if (!(k in runs)) order[++n] = k
      runs[k]++
      rps[k] = rps[k] " " $5; p50[k] = p50[k] " " $6; p90[k] = p90[k] " " $7; p99[k] = p99[k] " " $8; avg[k] = avg[k] " " $9
      non[k] += $11; unx[k] += $12; sock[k] += $13; tmo[k] += $14
      pairs[k] = pairs[k] " " ($10 > 0 ? $16 * $5 / $10 : 0)
    }
    END {
      for (i = 1; i <= n; i++) {
        k = order[i]
        printf "%s\t%d\t%.0f\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%d\t%d\t%d\t%.0f\n", k, runs[k],
          lo(rps[k]), med(rps[k]), hi(rps[k]), med(p50[k]), med(p90[k]), med(p99[k]), med(avg[k]),
          non[k], unx[k], sock[k], tmo[k], med(pairs[k])
      }
    }' "$OUT/results.tsv"
}

# ceiling_stats: name runs min median max unit, from ceilings.tsv.
ceiling_stats() {
  awk -F'\t' '
    { k = $1; if (!(k in n)) order[++m] = k; n[k]++; v[k, n[k]] = $3; unit[k] = $4 }
    END {
      for (i = 1; i <= m; i++) {
        k = order[i]; c = n[k]
        for (a = 2; a <= c; a++) { t = v[k, a]; for (b = a - 1; b >= 1 && v[k, b] + 0 > t + 0; b--) v[k, b + 1] = v[k, b]; v[k, b + 1] = t }
        printf "%s\t%d\t%.0f\t%.0f\t%.0f\t%s\n", k, c, v[k, 1], (c % 2 ? v[k, (c + 1) / 2] : (v[k, c / 2] + v[k, c / 2 + 1]) / 2), v[k, c], unit[k]
      }
    }' "$OUT/ceilings.tsv"
}
