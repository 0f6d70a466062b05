#!/usr/bin/env bash
# TLS handshakes and idle-connection memory, Arc against nginx and HAProxy,
# with the exact proxy configs of a ../shared/bench run (its run/ folder).
#
#   bench/tls_idle.sh bench/results/<timestamp>      (after `make bench`)
#
# For each of arc1, nginx1, haproxy1 (one worker/thread each):
#   - full TLS 1.3 handshakes (ECDSA P-256): `openssl s_time -new` for
#     $SECS seconds, and with session resumption (`-reuse`); reports
#     connections/s (bounded by the single-threaded client) and the proxy's
#     CPU per connection from /proc (the figure to compare);
#   - idle keep-alive connections: proxy RSS before and after $IDLE clients
#     each made one request and stayed connected, plaintext and TLS.
# Loopback only; every process it starts is stopped by PID.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
harness=${BENCH_HARNESS:-$top/../shared/bench}
res=${1:?usage: bench/tls_idle.sh RESULTS_DIR}
run=$(cd "$res" && pwd)/run
SECS=${SECS:-8}
IDLE=${IDLE:-8000}
ARC_BIN=${ARC_BIN:-$top/build/release/arc}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

gcc -O2 -pthread -o "$tmp/backend" "$harness/backend.c"
"$tmp/backend" -a 127.0.0.1 -p 18080 -b 0 -t 1 >/dev/null 2>&1 &
pids+=($!)

cpu() {   # utime+stime ticks of PID and its children (threads are in the PID)
    local t=0 p
    for p in "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        t=$((t + $(awk '{print $14 + $15}' /proc/"$p"/stat)))
    done
    echo "$t"
}

start() {   # start NAME -> sets PID
    case $1 in
    arc1) "$ARC_BIN" run -c "$run/arc1/arc.yaml" >"$tmp/arc1.log" 2>&1 & ;;
    nginx1) mkdir -p "$run/nginx1/tmp"; nginx -c "$run/nginx1/nginx.conf" >"$tmp/nginx1.log" 2>&1 & ;;
    haproxy1) haproxy -f "$run/haproxy1/haproxy.cfg" >"$tmp/haproxy1.log" 2>&1 & ;;
    esac
    PID=$!
    pids+=("$PID")
    sleep 1
}

declare -A H1=([arc1]=18085 [nginx1]=18081 [haproxy1]=18083)
declare -A H2=([arc1]=18445 [nginx1]=18441 [haproxy1]=18443)
hz=$(getconf CLK_TCK)
printf '| proxy | full handshakes/s | µs CPU/handshake | resumed/s | µs CPU/resumed | idle KiB/conn (plain) | idle KiB/conn (TLS) |\n|---|--:|--:|--:|--:|--:|--:|\n'
for p in ${PROXIES:-arc1 nginx1 haproxy1}; do
    start "$p"
    row="| $p"
    for mode in -new -reuse; do
        c0=$(cpu "$PID")
        out=$(openssl s_time -connect 127.0.0.1:"${H2[$p]}" $mode -time "$SECS" 2>/dev/null || true)
        c1=$(cpu "$PID")
        n=$(sed -n 's/^\([0-9]*\) connections in [0-9.]*s;.*/\1/p' <<<"$out" | tail -1)
        n=${n:-0}
        rate=$(awk -v n="$n" -v s="$SECS" 'BEGIN{printf "%.0f", n/s}')
        us=$(awk -v d=$((c1 - c0)) -v n="$n" -v hz="$hz" 'BEGIN{ if (n>0) printf "%.1f", d*1e6/hz/n; else print "-" }')
        row="$row | $rate | $us"
    done
    for tls in "" tls; do
        port=${H1[$p]}
        [[ -n $tls ]] && port=${H2[$p]}
        r=$(/usr/bin/python3 "$top/bench/idle.py" "$PID" "$port" "$IDLE" $tls)
        row="$row | $(sed -n 's/.*per_conn_kib=\([0-9.-]*\).*/\1/p' <<<"$r")"
        sleep 2
    done
    echo "$row |"
    kill "$PID"; wait "$PID" 2>/dev/null || true
    sleep 2
done
