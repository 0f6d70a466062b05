#!/usr/bin/env bash
# TLS handshake flood vs established HTTPS clients (issue 12): wrk keeps
# WRK_CONNS keep-alive HTTPS connections to a 2-worker Arc (one handshake
# each, then requests) for DURATION s unattacked, then again while
# bench/tls_hs.c floods the same listener with full TLS 1.3 handshakes
# (FLOOD_PROCS processes, each connect -> handshake -> GET -> close in a
# loop) from source address 127.0.0.2. Reported: established clients'
# requests/s and p99 before and during, and the flood's handshakes/s and
# refusals.
#
#   bench/tls_flood.sh
#   ROUNDS=1 DURATION=8 TARGETS="arc-rate" bench/tls_flood.sh
#   ATTACKER_CPU=0.25 bench/tls_flood.sh     # the flood limited to 25% of a core
#                                            # (bench/attacker_cpu.sh)
#
# Targets: arc       guard defaults (max_handshakes_per_worker 256, no
#                    per-address rate)
#          arc-rate  plus tls_flood.handshakes_per_ip_per_sec: RATE_LIMIT
# Every process started here is stopped by its PID.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
harness=${BENCH_HARNESS:-$top/../shared/bench}
if [[ -z ${BENCH_HARNESS:-} && ! -d $harness ]]; then
    harness=$(git -C "$top" rev-parse --path-format=absolute --git-common-dir)/../../shared/bench
fi
harness=$(cd "$harness" && pwd) || { echo "harness not found (set BENCH_HARNESS)" >&2; exit 1; }

TARGETS=${TARGETS:-"arc arc-rate"}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10}
FLOOD_PROCS=${FLOOD_PROCS:-4}
RATE_LIMIT=${RATE_LIMIT:-20}
WRK_CONNS=${WRK_CONNS:-32}
BACKEND_PORT=${BACKEND_PORT:-18190}
ARC_BIN=${ARC_BIN:-$top/build/release/arc}
OUT=${OUT:-$top/bench/results/tls_flood-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT" "$top/build/bench"
declare -A PORT=([arc]=18195 [arc-rate]=18196)
PIDS=()
. "$top/bench/attacker_cpu.sh"
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    attacker_cgroup_fini
}
trap cleanup EXIT
attacker_cgroup_init
echo "load before: $(uptime); ATTACKER_CPU=${ATTACKER_CPU:-unlimited}" | tee "$OUT/meta.txt"

gcc -O2 -Wall -Wextra -pthread -o "$top/build/bench/backend" "$harness/backend.c"
gcc -O2 -Wall -Wextra -o "$top/build/bench/tls_hs" "$top/bench/tls_hs.c" -lssl -lcrypto
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$OUT/key.pem" \
    -out "$OUT/cert.pem" -days 2 -subj /CN=localhost 2>/dev/null
"$top/build/bench/backend" -p "$BACKEND_PORT" -t 1 -b 0 >"$OUT/backend.log" 2>&1 &
PIDS+=($!)

for t in $TARGETS; do
    {
        printf 'node: {workers: 2}\n'
        printf 'listeners:\n  - name: https\n    kind: https\n    bind: "127.0.0.1:%s"\n' "${PORT[$t]}"
        printf '    tls: {certificates: [{cert_pem: "%s", key_pem: "%s"}]}\n' "$OUT/cert.pem" "$OUT/key.pem"
        printf 'upstreams:\n  - name: backend\n    discovery: {type: static, endpoints: [{address: "127.0.0.1:%s"}]}\n' "$BACKEND_PORT"
        printf 'routes: [{name: all, match: {path: "/{*rest}"}, action: {upstream: backend}}]\n'
        printf 'observability: {metrics_bind: "127.0.0.1:0"}\n'
        [[ $t == arc-rate ]] && printf 'security: {l7: {tls_flood: {handshakes_per_ip_per_sec: %s}}}\n' "$RATE_LIMIT"
    } >"$OUT/$t.yaml"
    "$ARC_BIN" run -c "$OUT/$t.yaml" >"$OUT/$t.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        curl -kfsS -o /dev/null "https://127.0.0.1:${PORT[$t]}/" 2>/dev/null && break
        sleep 0.1
    done
done

run_wrk() {
    local out
    out=$(timeout $((DURATION + 20)) wrk -t1 -c"$WRK_CONNS" -d"${DURATION}s" --timeout 5s --latency \
          "https://127.0.0.1:$1/" 2>&1)
    echo "$out" >>"$OUT/wrk.log"
    local rps p99
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
    echo "${rps:-0} ${p99:-0}"
}

echo "round target base_rps base_p99_ms flood_rps flood_p99_ms rps_ratio p99_ratio flood" >"$OUT/runs.txt"
for r in $(seq "$ROUNDS"); do
    for t in $TARGETS; do
        port=${PORT[$t]}
        read -r brps bp99 < <(run_wrk "$port")
        attacker_run "$top/build/bench/tls_hs" -p "$port" -b 127.0.0.2 -c "$FLOOD_PROCS" \
            -d $((DURATION + 3)) -t 2000 >"$OUT/flood-$t-$r.json" 2>"$OUT/flood-$t-$r.err"
        fpid=$!
        PIDS+=($fpid)
        sleep 1
        read -r frps fp99 < <(run_wrk "$port")
        wait "$fpid" || true
        ratio=$(awk -v a="$frps" -v b="$brps" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}')
        pr=$(awk -v a="$fp99" -v b="$bp99" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
        echo "$r $t $brps $bp99 $frps $fp99 $ratio $pr $(cat "$OUT/flood-$t-$r.json")" | tee -a "$OUT/runs.txt"
        sleep 2
    done
done
for t in $TARGETS; do
    mport=$(sed -n 's/.*arc: admin listening addr=[0-9.]*:\([0-9]*\).*/\1/p' "$OUT/$t.log" | head -1)
    [[ -n $mport ]] && curl -fsS "http://127.0.0.1:$mport/metrics" | grep '^arc_guard_trips_total{reason="tls' \
        | sed "s/^/$t /" | tee -a "$OUT/arc_guard_trips.txt"
done
echo "load after: $(uptime)" | tee -a "$OUT/meta.txt"
echo "results: $OUT"
