#!/usr/bin/env bash
# Plugin micro-benchmark (bench/plugin_bench.c): host + guest time of one
# exchange's filter callbacks, in process. Builds against the release
# libraries; prints Markdown. Argument: exchanges per timed run (200,000).
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory build/release/arc >/dev/null
mkdir -p build/release/bench
L=build/release/lib
gcc -std=c17 -D_GNU_SOURCE -O2 -g -Isrc -Wall -Wextra -Werror -o build/release/bench/plugin_bench \
    bench/plugin_bench.c -Wl,--start-group $L/libplugin.a $L/libconfig.a $L/librouter.a \
    $L/libhttp1.a $L/libtls.a $L/libloop.a $L/libcore.a -Wl,--end-group \
    $(pkg-config --libs jansson yaml-0.1 libssl libcrypto) -lpcre2-8 -lpthread -ldl -lm
echo "plugin_bench $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) CPU, $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1 /proc/loadavg)"
exec build/release/bench/plugin_bench "$@"
