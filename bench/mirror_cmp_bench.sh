#!/usr/bin/env bash
# routes[].mirror[].compare: what it costs the primary's worker per response
# (bench/mirror_cmp_bench.c): ns per body byte digested, ns per head summary.
# Builds against the release libraries; prints Markdown. Argument: MiB per run.
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory build/release/lib/libproxy.a build/release/lib/libhttp1.a \
    build/release/lib/libcore.a >/dev/null
mkdir -p build/release/bench
gcc -std=c17 -D_GNU_SOURCE -O2 -g -Isrc -Wall -Wextra -Werror -o build/release/bench/mirror_cmp_bench \
    bench/mirror_cmp_bench.c build/release/lib/libproxy.a build/release/lib/libhttp1.a \
    build/release/lib/libcore.a -ljansson -lm
echo "mirror_cmp_bench $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) CPU, $(date -u '+%Y-%m-%d %H:%M UTC')"
exec build/release/bench/mirror_cmp_bench "$@"
