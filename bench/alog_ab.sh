#!/usr/bin/env bash
# Access-log cost end to end: one Arc build, two configs in interleaved
# rounds — "on" (logging.access.sample 1.0 to a file, size rotation off,
# histograms on) and "off" (no logging section, histograms off) — one
# worker, wrk -t1 -c64 against the shared harness's backend. Per round and
# config: the process's utime+stime (/proc/PID/stat) around a wrk run,
# divided by the requests wrk completed = CPU µs per request (less sensitive
# to machine load than req/s), and the writer thread's own share (utime+stime
# of the arc-logw task). With PERF=1 the "on" side of the first round
# is also recorded with `perf record -g` (per-thread shares: perf report
# --sort comm / --comm arc-logw). Prints one line per run and a summary.
# With PIN=1 Arc runs on CPU 1 and wrk and the backend on CPU 0, so the
# proxy's CPU time is not inflated by sharing a core with its load (on a
# 2-core machine the round-to-round spread drops several-fold).
#
#   bench/alog_ab.sh [BIN] [ROUNDS] [SECONDS]     (build/release/arc 8 6)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
harness=${BENCH_HARNESS:-$top/../shared/bench}
[[ -d $harness ]] || harness=$top/../../shared/bench
bin=${1:-$top/build/release/arc}
rounds=${2:-8}
secs=${3:-6}
port=${PORT_BASE:-28900}
out=${OUT:-$(mktemp -d /tmp/alog_ab.XXXXXX)}
mkdir -p "$out"
gcc -O2 -pthread -o "$out/backend" "$harness/backend.c"
pin_proxy=() pin_load=()
if [[ ${PIN:-0} == 1 ]]; then pin_proxy=(taskset -c 1) pin_load=(taskset -c 0); fi
"${pin_load[@]}" "$out/backend" -p "$port" -t 1 >/dev/null 2>&1 &
backend=$!
trap 'kill $backend 2>/dev/null || true' EXIT
tck=$(getconf CLK_TCK)

one() {     # one SIDE PORT PERF
    local side=$1 p=$2 perf=$3 d=$out/run-$1
    rm -rf "$d"; mkdir -p "$d"
    {
        printf 'node:\n  workers: 1\n'
        printf 'listeners:\n  - name: http\n    kind: http\n    bind: "127.0.0.1:%s"\n' "$p"
        printf 'upstreams:\n  - name: backend\n    discovery:\n      type: static\n'
        printf '      endpoints:\n        - address: "127.0.0.1:%s"\n    pool:\n      max_idle: 1024\n' "$port"
        printf 'routes:\n  - name: all\n    match:\n      path: "/{*rest}"\n    action:\n      upstream: backend\n'
        printf 'observability:\n  metrics_bind: "127.0.0.1:0"\n  histograms:\n    enabled: %s\n' \
            "$([[ $side == on ]] && echo true || echo false)"
        if [[ $side == on ]]; then
            printf 'logging:\n  output: {file: "%s", rotation: {max_size: 0}}\n' "${LOG_FILE:-$d/access.log}"
            printf '  access: {sample: 1.0}\n'
        fi
    } >"$d/arc.yaml"
    ARC_LOG_FORMAT=text "${pin_proxy[@]}" "$bin" run -c "$d/arc.yaml" 2>"$d/stderr" &
    local pid=$!
    for _ in $(seq 100); do grep -q "ready" "$d/stderr" 2>/dev/null && break; sleep 0.1; done
    "${pin_load[@]}" wrk -t1 -c64 -d2s "http://127.0.0.1:$p/" >/dev/null          # warm-up
    local u0 s0 u1 s1 ppid= wt= w0=0 w1=0
    for t in /proc/$pid/task/*; do [[ $(cat "$t/comm") == arc-logw ]] && wt=$t; done
    [[ -n $wt ]] && w0=$(awk '{print $14 + $15}' "$wt/stat")
    read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
    if [[ $perf == 1 ]]; then
        perf record -g -o "$out/perf-$side.data" -p "$pid" -- sleep "$secs" >/dev/null 2>&1 &
        ppid=$!
    fi
    local res
    res=$("${pin_load[@]}" wrk -t1 -c64 -d"${secs}s" "http://127.0.0.1:$p/")
    read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
    [[ -n $wt ]] && w1=$(awk '{print $14 + $15}' "$wt/stat")
    [[ -n $ppid ]] && wait "$ppid"
    local reqs
    reqs=$(echo "$res" | awk '/requests in/ {print $1}')
    echo "$side reqs=$reqs cpu_us_per_req=$(echo "scale=3; ($u1-$u0+$s1-$s0)*1000000/$tck/$reqs" | bc) writer_us_per_req=$(echo "scale=3; ($w1-$w0)*1000000/$tck/$reqs" | bc) load=$(cut -d' ' -f1 /proc/loadavg)"
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

# The log's page-cache pages: on a VM the first touch of a guest page the
# hypervisor never backed costs ~15x a copy (dd of 1 GB to a new file here:
# 253 MB/s the first time, 3.9 GB/s once the pages had been used and freed),
# and that lands in the writer's write(2). A host that has run for a while
# recycles its page cache, so each round first writes and deletes WARM_MB of
# file in the output directory (freed pages are reused first): the cost
# measured is the log's, not the hypervisor's. WARM_MB=0 skips it. (It
# helps only partly: this VM reports freed pages back to the hypervisor
# within seconds, virtio-balloon free page reporting.) LOG_FILE=/dev/null
# measures Arc's own part: every record formatted and written, no page cache.
warm() {
    [[ ${WARM_MB:-1024} -gt 0 ]] || return 0
    dd if=/dev/zero of="$out/warm" bs=1M count="${WARM_MB:-1024}" status=none
    rm -f "$out/warm"
}

for r in $(seq "$rounds"); do
    warm
    order="on off"; (( r % 2 == 0 )) && order="off on"
    for s in $order; do
        p=$((port + 2)); [[ $s == on ]] && p=$((port + 1))
        one "$s" "$p" "$([[ ${PERF:-0} == 1 && $r == 1 ]] && echo 1 || echo 0)"
    done
done | tee "$out/runs.txt"
/usr/bin/python3 - "$out/runs.txt" <<'PY'
import re, statistics as st, sys
on, off, pairs, cur, wr = [], [], [], {}, []
for l in open(sys.argv[1]):
    m = re.match(r"(on|off) .*cpu_us_per_req=([\d.]+)", l)
    if not m:
        continue
    v = float(m.group(2))
    w = re.search(r"writer_us_per_req=([\d.]+)", l)
    if m.group(1) == "on" and w:
        wr.append(float(w.group(1)))
    (on if m.group(1) == "on" else off).append(v)
    cur[m.group(1)] = v
    if len(cur) == 2:
        pairs.append(cur["on"] / cur["off"] - 1)
        cur = {}
print("on  median %.2f us/req (%.2f-%.2f)" % (st.median(on), min(on), max(on)))
print("off median %.2f us/req (%.2f-%.2f)" % (st.median(off), min(off), max(off)))
if wr:
    print("writer thread (arc-logw) median %.3f us/req (%.3f-%.3f)" % (st.median(wr), min(wr), max(wr)))
print("on/off: medians %+.1f%%, per-round pairs median %+.1f%% (%s)" % (
    (st.median(on) / st.median(off) - 1) * 100, st.median(pairs) * 100,
    " ".join("%+.0f" % (p * 100) for p in pairs)))
PY
echo "results in $out"
