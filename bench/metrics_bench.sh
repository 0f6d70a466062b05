#!/usr/bin/env bash
# Metrics micro-benchmark (bench/metrics_bench.c): CPU ns per exchange
# counted (arc_m_exchange) with histograms on and off, ROUNDS interleaved
# runs of each (order alternating), medians. Builds against the release
# libraries; prints Markdown. Argument: exchanges per run (default 20M).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-7}
make --no-print-directory build/release/lib/libobs.a build/release/lib/libcore.a >/dev/null
mkdir -p build/release/bench
gcc -std=c17 -D_GNU_SOURCE -O2 -g -Isrc -Wall -Wextra -Werror -o build/release/bench/metrics_bench \
    bench/metrics_bench.c build/release/lib/libobs.a build/release/lib/libcore.a -lm -lpthread
echo "metrics_bench $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) CPU, $(date -u '+%Y-%m-%d %H:%M UTC'), $ROUNDS rounds"
on=() off=()
for r in $(seq "$ROUNDS"); do
    order="on off"
    (( r % 2 == 0 )) && order="off on"
    for m in $order; do
        v=$(build/release/bench/metrics_bench "$m" "$@" | awk '{print $2}')
        if [[ $m == on ]]; then on+=("$v"); else off+=("$v"); fi
    done
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "| histograms | ns per exchange (median) | runs |"
echo "|---|--:|---|"
echo "| on | $(median "${on[@]}") | ${on[*]} |"
echo "| off | $(median "${off[@]}") | ${off[*]} |"
