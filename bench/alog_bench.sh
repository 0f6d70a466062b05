#!/usr/bin/env bash
# Access-log micro-benchmark (bench/alog_bench.c): CPU ns per record for the
# worker's record fill (packed layout, and the old fixed-array layout for
# comparison), the writer's formatting, and request-id/trace-id generation.
# ROUNDS interleaved runs of each, medians. Builds against the release
# libraries; prints Markdown. Argument: operations per run (default 5M).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
make --no-print-directory build/release/lib/libobs.a build/release/lib/libcore.a >/dev/null
mkdir -p build/release/bench
gcc -std=c17 -D_GNU_SOURCE -O2 -g -Isrc -Wall -Wextra -Werror -o build/release/bench/alog_bench \
    bench/alog_bench.c build/release/lib/libobs.a build/release/lib/libcore.a -lz -lm -lpthread
echo "alog_bench $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) CPU, $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg), $ROUNDS rounds"
declare -A runs=()
modes="fill legacy format ids"
for r in $(seq "$ROUNDS"); do
    for m in $modes; do
        v=$(build/release/bench/alog_bench "$m" "$@" | awk '{print $2}')
        runs[$m]="${runs[$m]:-} $v"
    done
    modes=$(echo $modes | awk '{for (i = NF; i; i--) printf "%s ", $i}')
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "| part | ns per record (median) | runs |"
echo "|---|--:|---|"
for m in fill legacy format ids; do
    # shellcheck disable=SC2086
    echo "| $m | $(median ${runs[$m]}) | ${runs[$m]# } |"
done
