#!/usr/bin/env bash
# Rate-limiter micro-benchmark (bench/limit_bench.c): ns per decision of the
# shared, lock-free key table against a private word, 1 and 2 threads.
# Builds against the release libraries; prints Markdown. Argument:
# decisions per thread per run (default 5,000,000).
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory build/release/lib/liblimit.a build/release/lib/libcore.a >/dev/null
mkdir -p build/release/bench
gcc -std=c17 -D_GNU_SOURCE -O2 -g -mcx16 -Isrc -Wall -Wextra -Werror -o build/release/bench/limit_bench \
    bench/limit_bench.c build/release/lib/liblimit.a build/release/lib/libcore.a -lpthread -lm
echo "limit_bench $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) CPU, $(date -u '+%Y-%m-%d %H:%M UTC')"
exec build/release/bench/limit_bench "$@"
