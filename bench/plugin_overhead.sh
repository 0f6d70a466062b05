#!/usr/bin/env bash
# Proxy CPU per request with a proxy-wasm filter on the route vs none, in
# the same run (issue 11). One Arc worker in front of nginx (return 200),
# wrk -t1 over keep-alive connections, rounds interleaved between the
# routes; Arc's CPU time (utime+stime from /proc/PID/stat) per request.
#
#   bench/plugin_overhead.sh [ROUNDS=5] [SECONDS=5] [CONNS=16]
#
# Routes: /plain (no filter), /c (tests/e2e/plugins/c_headers.wasm: adds and
# removes request and response fields), /as (as_headers.wasm, the
# AssemblyScript SDK filter doing the same).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-5}; secs=${2:-5}; conns=${3:-16}
arc=${ARC:-$root/build/release/arc}
d=$(mktemp -d /tmp/arc-plugin-bench.XXXXXX)
chmod 700 "$d"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$d"; }
trap cleanup EXIT

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
np=$(port); ap=$(port)
mkdir -p "$d/nginx/logs"
cat >"$d/nginx/nginx.conf" <<NG
worker_processes 1; daemon off; pid $d/nginx/nginx.pid; error_log $d/nginx/logs/error.log;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$np; location / { return 200 "ok\n"; } } }
NG
nginx -p "$d/nginx" -c "$d/nginx/nginx.conf" & pids+=($!)
cat >"$d/arc.yaml" <<YML
node: {workers: 1}
listeners: [{name: http, kind: http, bind: "127.0.0.1:$ap"}]
observability: {metrics_bind: "127.0.0.1:0"}
upstreams: [{name: b, discovery: {type: static, endpoints: [{address: "127.0.0.1:$np"}]}}]
plugins:
  cache_dir: $d/cache
  wasm:
    - {name: c, file: $root/tests/e2e/plugins/c_headers.wasm, config: "x"}
    - {name: as, file: $root/tests/e2e/plugins/as_headers.wasm, root_id: as_headers, config: "x"}
routes:
  - {name: plain, match: {path: "/plain"}, action: {upstream: b}}
  - {name: c, match: {path: "/c"}, action: {upstream: b}, plugins: [{name: c}]}
  - {name: as, match: {path: "/as"}, action: {upstream: b}, plugins: [{name: as}]}
YML
"$arc" run -c "$d/arc.yaml" 2>"$d/arc.log" & apid=$!; pids+=($apid)
for _ in $(seq 100); do grep -q -e 'arc: ready' -e '"msg":"ready' "$d/arc.log" && break; sleep 0.1; done
grep -q -e 'arc: ready' -e '"msg":"ready' "$d/arc.log" || { cat "$d/arc.log"; exit 1; }
cpu() { awk '{print $14 + $15}' "/proc/$apid/stat"; }
tck=$(getconf CLK_TCK)
declare -A sum_ns sum_rps
for r in $(seq "$rounds"); do
    for route in plain c as; do
        c0=$(cpu)
        out=$(wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$ap/$route")
        c1=$(cpu)
        reqs=$(echo "$out" | awk '/requests in/ {print $1}')
        non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
        [[ -z $non2xx ]] || { echo "non-2xx answers on /$route: $non2xx"; exit 1; }
        ns=$(( (c1 - c0) * 1000000000 / tck / reqs ))
        printf 'round %d /%-5s %8d req  %6d ns CPU/req\n' "$r" "$route" "$reqs" "$ns"
        sum_ns[$route]=$(( ${sum_ns[$route]:-0} + ns ))
        sum_rps[$route]=$(( ${sum_rps[$route]:-0} + reqs / secs ))
    done
done
for route in plain c as; do
    printf 'mean /%-5s %6d ns CPU/req  %7d req/s\n' "$route" $(( sum_ns[$route] / rounds )) \
        $(( sum_rps[$route] / rounds ))
done
printf 'added by the C filter: %d ns/req; by the AssemblyScript SDK filter: %d ns/req\n' \
    $(( (sum_ns[c] - sum_ns[plain]) / rounds )) $(( (sum_ns[as] - sum_ns[plain]) / rounds ))
