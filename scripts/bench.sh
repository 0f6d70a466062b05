#!/usr/bin/env bash
# Runs ../shared/bench against Arc (1 and 2 workers), nginx and HAProxy.
# Results land in bench/results/<timestamp>/; copy the medians into
# bench/RESULTS.md together with the command line used.
#   make bench                                # full matrix (~25 min)
#   ROUNDS=1 DURATION=5 CONNS=256 BODY_CASES= H2=0 make bench   # quick look
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
harness=${BENCH_HARNESS:-$top/../shared/bench}
if [[ ! -x $harness/run.sh ]]; then
    echo "bench: harness not found at $harness (set BENCH_HARNESS)" >&2
    exit 1
fi
export ARC_BIN=${ARC_BIN:-$top/build/release/arc}
export RESULTS_ROOT=${RESULTS_ROOT:-$top/bench/results}
export PROXIES=${PROXIES:-"arc1 arc2 nginx1 nginxauto haproxy1 haproxy2"}
export H2=${H2:-0}   # Arc has no TLS/HTTP2 listener yet
# arc1 and arc2 run side by side: give each a kernel-assigned admin port.
export ARC_EXTRA_YAML=${ARC_EXTRA_YAML:-"observability: {metrics_bind: \"127.0.0.1:0\"}"}
exec "$harness/run.sh"
