#!/usr/bin/env bash
# Load-balancer micro-benchmark (bench/lb_bench.c): ns per pick of each
# algorithm at 8 and 64 endpoints, with an ejection mask, and the cost of
# passive-health accounting per attempt. Builds against the release
# libraries; prints Markdown. Argument: picks per timed run (default 2,000,000).
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory build/release/lib/libupstream.a build/release/lib/libcore.a >/dev/null
mkdir -p build/release/bench
gcc -std=c17 -D_GNU_SOURCE -O2 -g -Isrc -Wall -Wextra -Werror -o build/release/bench/lb_bench \
    bench/lb_bench.c build/release/lib/libupstream.a build/release/lib/libcore.a -lm
echo "lb_bench $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) CPU, $(date -u '+%Y-%m-%d %H:%M UTC')"
exec build/release/bench/lb_bench "$@"
