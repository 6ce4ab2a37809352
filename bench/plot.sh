#!/usr/bin/env bash
# bench/plot.sh: the report's plots, drawn with gnuplot from a run's results.tsv:
#   latency.png           p50 / p90 / p99 of every scenario at the main connection count, one
#                         instance and the cluster side by side (log scale)
#   sweep-throughput.png  requests/s of product detail and order + pay against connections
#   sweep-p99.png         p99 of the same against connections
# scripts/bench.sh runs it; by hand: bench/plot.sh var/bench docs/perf
# A plot whose data is missing (e.g. no sweep in a smoke run) is not drawn.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 2 ] || { sed -n '2,8p' "$0" >&2; exit 2; }
export OUT=$1
PLOTS=$2
. "$ROOT/bench/lib.sh"
mkdir -p "$PLOTS"
DATA=$OUT/plot
mkdir -p "$DATA"
stats > "$DATA/stats.tsv"

# latency.dat: scenario, then p50 p90 p99 of one instance, then of the cluster ("-" if not run).
awk -F'\t' '
  $1 == "single" || $1 == "cluster" {
    if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 }
    v[$1, $2] = $8 " " $9 " " $10
  }
  END {
    for (i = 1; i <= n; i++) {
      s = order[i]
      printf "%s %s %s\n", s, (("single", s) in v) ? v["single", s] : "- - -", (("cluster", s) in v) ? v["cluster", s] : "- - -"
    }
  }' "$DATA/stats.tsv" > "$DATA/latency.dat"

if [ -s "$DATA/latency.dat" ]; then
  gnuplot 2>> "$DATA/gnuplot.log" <<GP
set terminal pngcairo size 1200,560 font ",10"
set output "$PLOTS/latency.png"
set title "Latency percentiles per scenario (median of the runs; ms, log scale)"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set datafile missing "-"
set logscale y
set ylabel "ms"
set xtics rotate by -30
set key top left
set grid ytics
plot "$DATA/latency.dat" using 2:xtic(1) title "1 instance p50", '' using 3 title "1 instance p90", \
     '' using 4 title "1 instance p99", '' using 5 title "cluster p50", '' using 6 title "cluster p90", \
     '' using 7 title "cluster p99"
GP
fi

# sweep-SCENARIO.dat: connections rps p99, ascending connections.
for s in product-detail order-pay; do
  awk -F'\t' -v s="$s" '$1 == "sweep" && $2 == s { print $3, $6, $10 }' "$DATA/stats.tsv" | sort -n > "$DATA/sweep-$s.dat"
done
if [ -s "$DATA/sweep-product-detail.dat" ] || [ -s "$DATA/sweep-order-pay.dat" ]; then
  for what in throughput p99; do
    col=2 label="requests/s"
    [ "$what" = throughput ] || { col=3; label="p99 latency (ms)"; }
    lines=()
    [ ! -s "$DATA/sweep-product-detail.dat" ] || lines+=("\"$DATA/sweep-product-detail.dat\" using 1:$col with linespoints lw 2 title \"product detail\"")
    [ ! -s "$DATA/sweep-order-pay.dat" ] || lines+=("\"$DATA/sweep-order-pay.dat\" using 1:$col with linespoints lw 2 title \"order + pay (requests)\"")
    gnuplot 2>> "$DATA/gnuplot.log" <<GP
set terminal pngcairo size 900,520 font ",10"
set output "$PLOTS/sweep-$what.png"
set title "$label against connections, one instance (median of the runs)"
set logscale x
set xlabel "connections (wrk -c)"
set ylabel "$label"
set grid
set key top left
plot $(IFS=,; echo "${lines[*]}")
GP
  done
fi
