#!/usr/bin/env bash
# Idle keep-alive connections (issue 6): proxy RSS per idle connection after
# one request each, Arc against nginx and HAProxy in the same run, with the
# shared harness's proxy configs (../shared/bench/proxies.sh: one worker or
# thread each, upstream keep-alive pools at the harness's settings; Arc's is
# its default of 1024 idle).
#
#   bench/idle.sh                     # results in bench/results/<timestamp>-idle/
#   ARC_OLD_BIN=/path/arc PROXIES="arc1 arcold nginx1 haproxy1" ROUNDS=5 bench/idle.sh
#
# For every round, proxy, kind (plain, tls) and mode (burst, serial) the
# proxy is started afresh, warmed up with 3,000 sequential connections, and
# bench/idle.py opens $IDLE connections that each make one request and stay
# open (burst: all requests sent before any response is read, a connect
# storm; serial: one at a time). Reported: KiB of RSS (whole process tree)
# per connection, median over the rounds, and Arc's ratio to each peer.
#
# The peers' connection limits are raised so that all $IDLE connections
# are really served and held (the harness's maxconn 5000 and
# worker_connections 8192 would refuse or queue some of them, and such a
# run used to divide their RSS by connections they never held): nginx
# worker_connections 19000 (worker_rlimit_nofile 19500), HAProxy maxconn
# 9000. idle.py checks every response is a 200 and every connection is
# still open when RSS is read.
#
# Loopback only; every process it starts is stopped by PID.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
harness=${BENCH_HARNESS:-$top/../shared/bench}
[[ -d $harness ]] || harness=$top/../../shared/bench     # from a worktree under /work/wt
PROXIES=${PROXIES:-"arc1 nginx1 haproxy1"}
ROUNDS=${ROUNDS:-3}
IDLE=${IDLE:-8000}
KINDS=${KINDS:-"plain tls"}
MODES=${MODES:-"burst serial"}
ARC_BIN=${ARC_BIN:-$top/build/release/arc}
OUT=${1:-$top/bench/results/$(date +%Y%m%d-%H%M%S)-idle}
RUN_DIR=$OUT/run
mkdir -p "$RUN_DIR"
# Ports: the harness's layout shifted by PORT_BASE - 18080 (another run
# may hold the harness's own ports): backend PORT_BASE, nginx1 +1, haproxy1
# +3, arc1 +5, arcold +10; TLS ports +360 more (18441, ...).
PORT_BASE=${PORT_BASE:-18080}
BACKEND_ADDR=127.0.0.1
BACKEND_PORT=$PORT_BASE
H2=1
export BACKEND_ADDR BACKEND_PORT RUN_DIR ARC_BIN H2

declare -A PROXY_PID=() PORT_H1=() PORT_H2=()
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

ulimit -n "$(ulimit -Hn)"
gcc -O2 -pthread -o "$RUN_DIR/backend" "$harness/backend.c"
"$RUN_DIR/backend" -a "$BACKEND_ADDR" -p "$BACKEND_PORT" -b 0 -t 1 >/dev/null 2>&1 &
pids+=($!)

mkdir -p "$RUN_DIR/tls"
TLS_CERT=$RUN_DIR/tls/cert.pem TLS_KEY=$RUN_DIR/tls/key.pem TLS_PEM=$RUN_DIR/tls/combined.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$TLS_KEY" -out "$TLS_CERT" -days 30 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
cat "$TLS_CERT" "$TLS_KEY" >"$TLS_PEM"
export TLS_CERT TLS_KEY TLS_PEM

# proxies.sh calls `launch NAME CMD...` once a proxy's config is written:
# raise the peers' limits, then start it in the background.
launch() {
    local name=$1 d=$RUN_DIR/$1
    shift
    [[ -f $d/nginx.conf ]] && sed -i -e 's/worker_connections 8192;/worker_connections 19000;/' \
        -e 's/worker_rlimit_nofile 16384;/worker_rlimit_nofile 19500;/' "$d/nginx.conf"
    [[ -f $d/haproxy.cfg ]] && sed -i 's/maxconn 5000/maxconn 9000/' "$d/haproxy.cfg"
    "$@" >"$d/stdout.log" 2>&1 &
    PROXY_PID[$name]=$!
}
# shellcheck source=/dev/null
source "$harness/proxies.sh"
# The harness's definitions, on shifted ports.
proxy_start_nginx1() { _start_nginx nginx1 1 $((PORT_BASE + 1)) $((PORT_BASE + 361)); }
proxy_start_haproxy1() { _start_haproxy haproxy1 1 $((PORT_BASE + 3)) $((PORT_BASE + 363)); }
proxy_start_arc1() { _start_arc arc1 1 $((PORT_BASE + 5)) $((PORT_BASE + 365)); }
proxy_start_arcold() {
    : "${ARC_OLD_BIN:?set ARC_OLD_BIN to measure arcold}"
    ARC_BIN=$ARC_OLD_BIN _start_arc arcold 1 $((PORT_BASE + 10)) $((PORT_BASE + 370))
}

start() {   # start NAME -> PID
    local name=$1 _
    mkdir -p "$RUN_DIR/$name"
    "proxy_start_$name" >/dev/null
    PID=${PROXY_PID[$name]}
    pids+=("$PID")
    for _ in $(seq 100); do
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:${PORT_H1[$name]}/" && return 0
        sleep 0.1
    done
    echo "$name did not come up" >&2
    exit 1
}

stop() {
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
}

runs=$OUT/runs.txt
: >"$runs"
for r in $(seq "$ROUNDS"); do
    for p in $PROXIES; do
        for kind in $KINDS; do
            for mode in $MODES; do
                start "$p"
                port=${PORT_H1[$p]}
                tls=""
                if [[ $kind == tls ]]; then port=${PORT_H2[$p]}; tls=tls; fi
                line=$(/usr/bin/python3 "$top/bench/idle.py" "$PID" "$port" "$IDLE" $tls "--$mode")
                echo "round=$r proxy=$p kind=$kind $line" | tee -a "$runs"
                stop
                sleep 2
            done
        done
    done
done

/usr/bin/python3 - "$runs" "$PROXIES" "$KINDS" "$MODES" >"$OUT/results.md" <<'EOF'
import re, statistics, sys
runs, proxies, kinds, modes = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4].split()
val = {}
for line in open(runs):
    f = dict(re.findall(r"(\w+)=(\S+)", line))
    if int(f["live"]) != int(f["conns"]):
        continue                        # a proxy that dropped connections is not counted
    val.setdefault((f["proxy"], f["kind"], f["mode"]), []).append(float(f["per_conn_kib"]))
cols = [(k, m) for k in kinds for m in modes]
med = {key: statistics.median(v) for key, v in val.items()}
print("| proxy | " + " | ".join("%s %s (KiB/conn)" % c for c in cols) + " |")
print("|---|" + "--:|" * len(cols))
for p in proxies:
    cells = []
    for k, m in cols:
        v = val.get((p, k, m))
        cells.append("%.2f (%s)" % (med[(p, k, m)], ", ".join("%.2f" % x for x in v)) if v else "-")
    print("| %s | %s |" % (p, " | ".join(cells)))
for a in [p for p in proxies if p.startswith("arc")]:
    for peer in [p for p in proxies if not p.startswith("arc")]:
        cells = []
        for k, m in cols:
            x, y = med.get((a, k, m)), med.get((peer, k, m))
            cells.append("%.2f×" % (x / y) if x is not None and y else "-")
        print("| %s / %s | %s |" % (a, peer, " | ".join(cells)))
EOF
echo
cat "$OUT/results.md"
