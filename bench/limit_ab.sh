#!/usr/bin/env bash
# Proxy CPU per request with a per-client-IP GCRA limit on vs off, the same
# arc binary in the same run: two arc processes (one worker each) in front
# of the shared harness's backend, measured alternately with its bench.py
# (wrk; the proxy's utime+stime around each run / completed requests).
# The limit is set so high that it never rejects: every request pays the
# key, the hash, the clock read and the table's compare-and-swap.
#
# SCOPE=global compares instead the same limit of scope local ("off",
# target limit-local) with scope global ("on", target limit-global): a
# redis-server is started here on a loopback port, leases of LEASE tokens;
# the global one calls Redis about once per LEASE/2 requests (counted from
# /metrics at the end). The Redis thread's CPU is part of the proxy's.
#
#   bench/limit_ab.sh                   # ROUNDS=5 DURATION=8 CONNS=256
#   SCOPE=global LEASE=64 bench/limit_ab.sh   (also bench/limit_global_ab.sh)
# PIN=1 runs the proxies on CPU 1 and wrk, the backend and Redis on CPU 0.
# Results in bench/results/<timestamp>-limit[-global]/ (runs.jsonl, summary).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
harness=${BENCH_HARNESS:-$top/../shared/bench}
[[ -d $harness ]] || harness=$top/../../shared/bench
BIN=${BIN:-$top/build/release/arc}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-8}
CONNS=${CONNS:-256}
PORT_BASE=${PORT_BASE:-28380}
SCOPE=${SCOPE:-local}
LEASE=${LEASE:-64}
[[ $SCOPE == local || $SCOPE == global ]] || { echo "SCOPE must be local or global" >&2; exit 2; }
OUT=${1:-$top/bench/results/$(date +%Y%m%d-%H%M%S)-limit$([[ $SCOPE == global ]] && echo -global)}
mkdir -p "$OUT/logs" "$OUT/run"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
pin_proxy=() pin_load=()
if [[ ${PIN:-0} == 1 ]]; then pin_proxy=(taskset -c 1) pin_load=(taskset -c 0); fi
gcc -O2 -Wall -Wextra -pthread -o "$OUT/run/backend" "$harness/backend.c"
"${pin_load[@]}" "$OUT/run/backend" -p "$PORT_BASE" -b 0 -t 1 >"$OUT/logs/backend.log" 2>&1 &
pids+=($!); backend_pid=$!
if [[ $SCOPE == global ]]; then
    REDIS_PORT=$((PORT_BASE + 20))
    mkdir -p "$OUT/redis"
    "${pin_load[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$OUT/redis" --save "" \
        --appendonly no >"$OUT/logs/redis.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

conf() {   # conf NAME PORT ADMIN_PORT LIMIT_YAML
    cat >"$OUT/$1.yaml" <<YAML
node: {workers: 1}
listeners: [{name: http, kind: http, bind: "127.0.0.1:$2"}]
observability: {metrics_bind: "127.0.0.1:$3"}
upstreams:
  - name: b
    discovery: {type: static, endpoints: [{address: "127.0.0.1:$PORT_BASE"}]}
routes:
  - name: r
    match: {path: "/{*rest}"}
    action: {upstream: b}
$4
YAML
}
limit="    rate_limit: {qps: 1000000, burst: 1000000, key: {by: client_ip}"
if [[ $SCOPE == global ]]; then
    conf off $((PORT_BASE + 1)) $((PORT_BASE + 11)) "$limit}"
    conf on $((PORT_BASE + 2)) $((PORT_BASE + 12)) "$limit, scope: global}
rate_limits:
  global: {redis: {address: \"127.0.0.1:$REDIS_PORT\", timeout: 50ms, lease: $LEASE}}"
    label_off=limit-local label_on=limit-global
else
    conf off $((PORT_BASE + 1)) $((PORT_BASE + 11)) ""
    conf on $((PORT_BASE + 2)) $((PORT_BASE + 12)) "$limit}"
    label_off=limit-off label_on=limit-on
fi
for v in off on; do
    "${pin_proxy[@]}" "$BIN" run -c "$OUT/$v.yaml" >"$OUT/logs/arc-$v.log" 2>&1 &
    pids+=($!); eval "pid_$v=$!"
done
sleep 1
for v in off on; do
    port=$((PORT_BASE + $([[ $v == off ]] && echo 1 || echo 2)))
    curl -sf -o /dev/null "http://127.0.0.1:$port/" || { echo "arc ($v) not answering"; exit 1; }
    "${pin_load[@]}" wrk -t1 -c"$CONNS" -d2 "http://127.0.0.1:$port/" >/dev/null   # warmup
done
for r in $(seq 1 "$ROUNDS"); do
    order="off on"; (( r % 2 == 0 )) && order="on off"
    for v in $order; do
        port=$((PORT_BASE + $([[ $v == off ]] && echo 1 || echo 2)))
        pid=$([[ $v == off ]] && echo "$pid_off" || echo "$pid_on")
        sleep 1
        "${pin_load[@]}" python3 "$harness/bench.py" measure --out "$OUT/runs.jsonl" --log "$OUT/logs/wrk-$v-$r.log" \
            --tool wrk --target "$([[ $v == off ]] && echo "$label_off" || echo "$label_on")" --case "c$CONNS" --round "$r" --proxy-pids "$pid" \
            --backend-pids "$backend_pid" --conns "$CONNS" --threads 1 --duration "$DURATION" \
            "http://127.0.0.1:$port/" >/dev/null
    done
done
python3 - "$OUT/runs.jsonl" "$label_on" "$label_off" <<'PY'
import json, statistics, sys
on, off = sys.argv[2], sys.argv[3]
runs = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in runs:
    by.setdefault(r["target"], []).append(r)
med = {}
for t, rs in sorted(by.items()):
    cpu = statistics.median(r["proxy_us_per_req"] for r in rs)
    rps = statistics.median(r.get("rps") or 0 for r in rs)
    med[t] = cpu
    print("%-10s proxy CPU %.2f us/request (median of %d; runs %s), %.0f req/s"
          % (t, cpu, len(rs), ", ".join("%.2f" % r["proxy_us_per_req"] for r in rs), rps))
if on in med and off in med:
    print("%s vs %s: %+.1f%% proxy CPU per request" % (on, off, 100 * (med[on] / med[off] - 1)))
    rounds = {}
    for r in runs:
        rounds.setdefault(r["round"], {})[r["target"]] = r["proxy_us_per_req"]
    ratios = [v[on] / v[off] for v in rounds.values() if len(v) == 2]
    print("paired per round (%s/%s): median %+.1f%%, rounds %s" % (
        on, off, 100 * (statistics.median(ratios) - 1),
        ", ".join("%+.0f%%" % (100 * (x - 1)) for x in ratios)))
PY
if [[ $SCOPE == global ]]; then
    curl -s "http://127.0.0.1:$((PORT_BASE + 12))/metrics" |
        grep -E "^arc_rate_limit_global_(calls|fallbacks|waits)_total" || true
fi
