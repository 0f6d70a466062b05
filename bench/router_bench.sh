#!/usr/bin/env bash
# Router micro-benchmark (bench/router_bench.c): ns per arc_rt_match at 10,
# 1,000 and 10,000 routes with and without matchers, and arc_rt_build time
# for 10,000 routes. Builds against the release libraries; prints Markdown.
# Exit status 1 if a match returned the wrong route or a 10,000-route build
# took 1 s or more. Argument: matches per timed run (default 2,000,000).
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory build/release/lib/librouter.a build/release/lib/libcore.a >/dev/null
mkdir -p build/release/bench
gcc -std=c17 -D_GNU_SOURCE -O2 -g -Isrc -Wall -Wextra -Werror -o build/release/bench/router_bench \
    bench/router_bench.c build/release/lib/librouter.a build/release/lib/libcore.a -lpcre2-8 -lpthread
echo "router_bench $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) CPU, $(date -u '+%Y-%m-%d %H:%M UTC')"
exec build/release/bench/router_bench "$@"
