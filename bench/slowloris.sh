#!/usr/bin/env bash
# Slowloris acceptance benchmark (issue 12): normal wrk traffic against a
# 2-worker Arc, nginx and HAProxy, each first unattacked and then while
# 2,000 slow connections attack it, all in ONE run, interleaved per round.
#
#   bench/slowloris.sh                          # 2 rounds, ~8 min
#   ROUNDS=1 DURATION=8 TARGETS="arc nginx" MODE=body bench/slowloris.sh
#   ATTACKER_CPU=0.25 bench/slowloris.sh       # the attacker limited to 25% of a
#                                              # core (bench/attacker_cpu.sh)
#
# Servers (all 2 workers/threads, loopback, one C backend from the shared
# harness, empty 200 body), each with its documented slowloris defence:
#   arc      defaults of security.l7.slowloris (headers_timeout 10s,
#            min_recv_rate_bps 100 over 10s windows, max_incomplete_per_ip 64,
#            over_incomplete: tarpit)
#   arc-close  the same with over_incomplete: close (a connection over the
#            cap is closed at its first byte instead of tarpitted)
#   arc-noinc  the same with max_incomplete_per_ip: 0 (only the deadline and
#            the rate guard: the slow connections are held until cut, as in
#            nginx and HAProxy, instead of refused at their first byte)
#   nginx    client_header_timeout 10s, client_body_timeout 10s
#            (nginx's "Mitigating DDoS Attacks" guide; limit_conn does not
#            count connections whose head is incomplete, so it is not used)
#   haproxy  timeout http-request 10s (the documented slowloris defence),
#            option http-buffer-request, timeout client 30s
# Attacker: bench/slowloris_attack.py from source 127.0.0.2 (so it is a
# different client address than wrk's 127.0.0.1, as on the Internet):
# CONNS slow connections opened at RATE/s, one header line (or body bytes,
# MODE=body) every INTERVAL s, replaced when the server closes them.
# (Debian's slowhttptest, installed by scripts/install-deps.sh --bench,
# cannot choose its source address; on loopback it would share wrk's.)
#
# Per target and round: wrk -c WRK_CONNS for DURATION s unattacked, then the
# attack starts, ramps for RAMP s, wrk runs DURATION s under attack, the
# attack stops. Reported: requests/s and p99 both ways, their ratio, and the
# attacker's view (connections open at peak, closed by the server, median
# lifetime). Every process started here is stopped by its PID.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
harness=${BENCH_HARNESS:-$top/../shared/bench}
if [[ -z ${BENCH_HARNESS:-} && ! -d $harness ]]; then
    harness=$(git -C "$top" rev-parse --path-format=absolute --git-common-dir)/../../shared/bench
fi
harness=$(cd "$harness" && pwd) || { echo "harness not found (set BENCH_HARNESS)" >&2; exit 1; }

TARGETS=${TARGETS:-"arc arc-close arc-noinc nginx haproxy"}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10}
RAMP=${RAMP:-6}
CONNS=${CONNS:-2000}
RATE=${RATE:-1000}
INTERVAL=${INTERVAL:-5}
MODE=${MODE:-headers}
WRK_CONNS=${WRK_CONNS:-32}
BACKEND_PORT=${BACKEND_PORT:-18180}
ARC_BIN=${ARC_BIN:-$top/build/release/arc}
ts=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$top/bench/results/slowloris-$ts}
mkdir -p "$OUT"
declare -A PORT=([arc]=18185 [arc-noinc]=18186 [arc-close]=18187 [nginx]=18181 [haproxy]=18183)
PIDS=()
. "$top/bench/attacker_cpu.sh"
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    attacker_cgroup_fini
}
trap cleanup EXIT

for p in $BACKEND_PORT "${PORT[@]}"; do
    if ss -Htln "sport = :$p" | grep -q .; then echo "port $p in use" >&2; exit 1; fi
done
echo "load before: $(uptime); ATTACKER_CPU=${ATTACKER_CPU:-unlimited}" | tee "$OUT/meta.txt"
attacker_cgroup_init

mkdir -p "$top/build/bench"
gcc -O2 -Wall -Wextra -pthread -o "$top/build/bench/backend" "$harness/backend.c"
"$top/build/bench/backend" -p "$BACKEND_PORT" -t 1 -b 0 >"$OUT/backend.log" 2>&1 &
PIDS+=($!)

cat >"$OUT/arc.yaml" <<Y
node: {workers: 2}
listeners: [{name: http, kind: http, bind: "127.0.0.1:${PORT[arc]}"}]
upstreams:
  - name: backend
    discovery: {type: static, endpoints: [{address: "127.0.0.1:$BACKEND_PORT"}]}
    pool: {max_idle: 1024}
routes: [{name: all, match: {path: "/{*rest}"}, action: {upstream: backend}}]
observability: {metrics_bind: "127.0.0.1:0"}
Y
sed -e "s/${PORT[arc]}/${PORT[arc-noinc]}/" "$OUT/arc.yaml" >"$OUT/arc-noinc.yaml"
echo 'security: {l7: {slowloris: {max_incomplete_per_ip: 0}}}' >>"$OUT/arc-noinc.yaml"
sed -e "s/${PORT[arc]}/${PORT[arc-close]}/" "$OUT/arc.yaml" >"$OUT/arc-close.yaml"
echo 'security: {l7: {slowloris: {over_incomplete: close}}}' >>"$OUT/arc-close.yaml"
mkdir -p "$OUT/nginx/tmp"
cat >"$OUT/nginx/nginx.conf" <<N
worker_processes 2;
worker_rlimit_nofile 16384;
daemon off;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/error.log warn;
events { use epoll; worker_connections 8192; }
http {
    access_log off;
    client_header_timeout 10s;
    client_body_timeout 10s;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_body_temp_path $OUT/nginx/tmp/cb;
    proxy_temp_path $OUT/nginx/tmp/p;
    fastcgi_temp_path $OUT/nginx/tmp/f;
    uwsgi_temp_path $OUT/nginx/tmp/u;
    scgi_temp_path $OUT/nginx/tmp/s;
    upstream backend { server 127.0.0.1:$BACKEND_PORT; keepalive 256; }
    server {
        listen 127.0.0.1:${PORT[nginx]} reuseport;
        location / { proxy_pass http://backend; proxy_http_version 1.1;
                     proxy_set_header Connection ""; }
    }
}
N
cat >"$OUT/haproxy.cfg" <<H
global
    nbthread 2
    maxconn 9000
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 75s
    option http-buffer-request
frontend fe
    bind 127.0.0.1:${PORT[haproxy]}
    default_backend be
backend be
    http-reuse always
    server s1 127.0.0.1:$BACKEND_PORT maxconn 1000
H

start() {
    case $1 in
        arc|arc-noinc|arc-close) "$ARC_BIN" run -c "$OUT/$1.yaml" >"$OUT/$1.log" 2>&1 & ;;
        nginx) nginx -c "$OUT/nginx/nginx.conf" -p "$OUT/nginx" >"$OUT/nginx.log" 2>&1 & ;;
        haproxy) haproxy -db -f "$OUT/haproxy.cfg" >"$OUT/haproxy.log" 2>&1 & ;;
    esac
    PIDS+=($!)
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:${PORT[$1]}/" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$1 did not start" >&2; exit 1
}
for t in $TARGETS; do start "$t"; done

# wrk --latency: prints "<rps> <p99 ms>"
run_wrk() {
    local out
    out=$(timeout $((DURATION + 20)) wrk -t1 -c"$WRK_CONNS" -d"${DURATION}s" --timeout 5s --latency \
          "http://127.0.0.1:$1/" 2>&1)
    echo "$out" >>"$OUT/wrk.log"
    local rps p99
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
    echo "${rps:-0} ${p99:-0}"
}

echo "round target base_rps base_p99_ms attack_rps attack_p99_ms rps_ratio p99_ratio attacker" >"$OUT/runs.txt"
for r in $(seq "$ROUNDS"); do
    for t in $TARGETS; do
        port=${PORT[$t]}
        read -r brps bp99 < <(run_wrk "$port")
        attacker_run /usr/bin/python3 "$top/bench/slowloris_attack.py" --port "$port" -c "$CONNS" \
            -r "$RATE" -i "$INTERVAL" -d $((RAMP + DURATION + 2)) --mode "$MODE" \
            >"$OUT/attack-$t-$r.json"
        apid=$!
        PIDS+=($apid)
        sleep "$RAMP"
        read -r arps ap99 < <(run_wrk "$port")
        wait "$apid" || true
        att=$(cat "$OUT/attack-$t-$r.json")
        ratio=$(awk -v a="$arps" -v b="$brps" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}')
        pr=$(awk -v a="$ap99" -v b="$bp99" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
        echo "$r $t $brps $bp99 $arps $ap99 $ratio $pr $att" | tee -a "$OUT/runs.txt"
        sleep 2
    done
done
for t in arc arc-close arc-noinc; do
    [[ " $TARGETS " == *" $t "* ]] || continue
    mport=$(sed -n 's/.*arc: admin listening addr=[0-9.]*:\([0-9]*\).*/\1/p' "$OUT/$t.log" | head -1)
    [[ -n $mport ]] && curl -fsS "http://127.0.0.1:$mport/metrics" | grep '^arc_guard_trips_total' \
        | sed "s/^/$t /" | tee -a "$OUT/arc_guard_trips.txt"
done
echo "load after: $(uptime)" | tee -a "$OUT/meta.txt"
echo "results: $OUT"
