#!/usr/bin/env bash
# XDP program micro-benchmark (bench/xdp_bench.c): ns per packet of the
# filter as the kernel runs it (BPF_PROG_TEST_RUN), per path. Needs root.
# Builds against the release libraries; prints Markdown. Argument: repeats
# per case (default 2,000,000).
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory build/release/lib/libxdp.a build/release/lib/libconfig.a build/release/lib/libcore.a >/dev/null
mkdir -p build/release/bench
gcc -std=c17 -D_GNU_SOURCE -O2 -g -Isrc -Ibuild/bpf -Wall -Wextra -Werror -o build/release/bench/xdp_bench \
    bench/xdp_bench.c build/release/lib/libxdp.a build/release/lib/libconfig.a build/release/lib/libcore.a -lbpf
echo "xdp_bench $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) CPU, kernel $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC')"
exec build/release/bench/xdp_bench "$@"
