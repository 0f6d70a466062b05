#!/usr/bin/env bash
# TLS 1.3 handshakes per second and server CPU per handshake, full and
# resumed (session tickets / PSK), Arc against nginx and HAProxy in ONE run.
#
#   bench/tls_handshakes.sh                       # 5 interleaved rounds, ~20 min
#   ROUNDS=3 DURATION=5 TARGETS="arc1 nginx1 haproxy1" bench/tls_handshakes.sh
#
# Servers: the shared harness's own definitions (../shared/bench/proxies.sh,
# sourced, so the nginx/HAProxy/Arc configs are exactly the harness's), one
# self-signed ECDSA P-256 certificate made the harness's way, its C backend
# (empty 200 body) behind every server, TLS listener = the harness's TLS+h2
# port (ALPN h2,http/1.1; the client offers http/1.1).  Pinning as in the
# harness: none unless CLIENT_CPUS / PROXY_CPUS / BACKEND_CPUS are set.
#
# Client: bench/tls_hs.c (compiled to build/bench/tls_hs), CLIENTS processes,
# each looping connect -> TLS 1.3 handshake -> GET / -> read the response ->
# close_notify + close for DURATION seconds, counting SSL_session_reused().
#   full    never offers a ticket (tickets the server sends are counted);
#   resume  offers the newest ticket received, each ticket at most once
#           (RFC 8446 C.4, what browsers and OpenSSL's client cache do): a
#           connection resumes only if the previous one brought a new ticket;
#   reuse   offers (a copy of) the newest ticket even if it was used before:
#           the cost of resumed handshakes at ~100 % resumption everywhere;
#   plain   the same loop without TLS on the plaintext port: what a new
#           connection + one proxied GET costs without any TLS (baseline).
#
# Per run: handshakes/s, and server CPU (utime+stime of its process tree from
# /proc, before/after) per 1000 handshakes - robust even when the client is
# the bottleneck.  Rounds are interleaved: r1: full(arc1 nginx1 ..)
# resume(arc1 nginx1 ..) reuse(...), r2: ...  Before measuring, resumption is checked
# independently with `openssl s_client -sess_out` / `-sess_in` ("Reused").
#
# Loopback only; every run is time-bounded; every process started here is
# stopped by its PID (never by name).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$top/bench
harness=${BENCH_HARNESS:-$top/../shared/bench}
if [[ -z ${BENCH_HARNESS:-} && ! -d $harness ]]; then   # in a git worktree: next to the main checkout
    harness=$(git -C "$top" rev-parse --path-format=absolute --git-common-dir)/../../shared/bench
fi
harness=$(cd "$harness" && pwd) || { echo "harness not found (set BENCH_HARNESS)" >&2; exit 1; }
export BENCH_HARNESS=$harness

TARGETS=${TARGETS:-"arc1 nginx1 haproxy1 arc2 nginxauto haproxy2"}
MODES=${MODES:-"full resume reuse plain"}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
COOLDOWN=${COOLDOWN:-1}
CLIENTS=${CLIENTS:-4}                # tls_hs -c: client processes
BACKEND_ADDR=127.0.0.1
BACKEND_PORT=${BACKEND_PORT:-18080}
CLIENT_CPUS=${CLIENT_CPUS:-}
BACKEND_CPUS=${BACKEND_CPUS:-}
PROXY_CPUS=${PROXY_CPUS:-}
ARC_BIN=${ARC_BIN:-$top/build/release/arc}
RESULTS_ROOT=${RESULTS_ROOT:-$top/bench/results}
export ARC_BIN ARC_H2=1             # Arc gets the https listener

OUT=$RESULTS_ROOT/$(date +%Y%m%d-%H%M%S)-tlshs
RUN_DIR=$OUT/run
LOG_DIR=$OUT/logs
mkdir -p "$RUN_DIR" "$LOG_DIR"
export BACKEND_ADDR BACKEND_PORT RUN_DIR

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$OUT/console.log"; }

for tool in gcc nginx haproxy curl openssl ss python3; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[[ -x $ARC_BIN ]] || { echo "no arc binary at $ARC_BIN (make build/release/arc)" >&2; exit 1; }

# ------------------------------------------------------------ processes
declare -A PROXY_PID=() PORT_H1=() PORT_H2=()
BACKEND_PID=""

launch() {      # the harness's contract (see proxies.sh)
    local name=$1; shift
    if [[ -n $PROXY_CPUS ]]; then set -- taskset -c "$PROXY_CPUS" "$@"; fi
    "$@" >"$RUN_DIR/$name/stdout.log" 2>&1 &
    PROXY_PID[$name]=$!
}

stop_pid() {    # SIGTERM one of OUR children by PID, SIGKILL after 5 s
    local pid=$1 _
    kill -0 "$pid" 2>/dev/null || return 0
    [[ $(ps -o ppid= -p "$pid" | tr -d ' ') == "$$" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local name
    for name in "${!PROXY_PID[@]}"; do stop_pid "${PROXY_PID[$name]}"; done
    PROXY_PID=()
    if [[ -n $BACKEND_PID ]]; then stop_pid "$BACKEND_PID"; fi
    BACKEND_PID=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_ok() {     # wait_ok URL WANT [curl args...]
    local url=$1 want=$2 got="" _; shift 2
    for _ in $(seq 100); do
        got=$(curl -s -o /dev/null --max-time 1 -w '%{http_code} %{http_version}' "$@" "$url" 2>/dev/null || true)
        [[ $got == "$want" ]] && return 0
        sleep 0.1
    done
    echo "no '$want' from $url (last: '$got')" >&2
    return 1
}

# ------------------------------------------------------------ build, cert
mkdir -p "$top/build/bench"
if [[ ! -x $top/build/bench/tls_hs || $HERE/tls_hs.c -nt $top/build/bench/tls_hs ]]; then
    gcc -O2 -Wall -Wextra -o "$top/build/bench/tls_hs" "$HERE/tls_hs.c" -lssl -lcrypto
fi
if [[ ! -x $top/build/bench/backend || $harness/backend.c -nt $top/build/bench/backend ]]; then
    gcc -O2 -Wall -Wextra -pthread -o "$top/build/bench/backend" "$harness/backend.c"
fi
TLS_HS=$top/build/bench/tls_hs

mkdir -p "$RUN_DIR/tls"
TLS_CERT=$RUN_DIR/tls/cert.pem TLS_KEY=$RUN_DIR/tls/key.pem TLS_PEM=$RUN_DIR/tls/combined.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$TLS_KEY" -out "$TLS_CERT" -days 30 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
cat "$TLS_CERT" "$TLS_KEY" >"$TLS_PEM"
export TLS_CERT TLS_KEY TLS_PEM

for p in "$BACKEND_PORT" 18081 18082 18083 18084 18085 18086 18441 18442 18443 18444 18445 18446; do
    if ss -Hltn "sport = :$p" | grep -q .; then echo "port $p already in use; stop that first" >&2; exit 1; fi
done

# shellcheck source=../../shared/bench/proxies.sh
source "$harness/proxies.sh"

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "commit: $(git -C "$top" rev-parse --short HEAD 2>/dev/null) $(git -C "$top" status --porcelain -- src | wc -l) modified src files"
    echo "arc: $ARC_BIN"
    echo "settings: TARGETS='$TARGETS' MODES='$MODES' ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP COOLDOWN=$COOLDOWN CLIENTS=$CLIENTS CLIENT_CPUS='$CLIENT_CPUS' PROXY_CPUS='$PROXY_CPUS' BACKEND_CPUS='$BACKEND_CPUS'"
    echo "kernel: $(uname -r)  cpus: $(nproc)  $(grep -m1 'model name' /proc/cpuinfo)"
    echo "openssl: $(openssl version)"
    echo "nginx: $(nginx -v 2>&1)"
    echo "haproxy: $(haproxy -v | head -1)"
} >"$OUT/meta.txt"
cat "$OUT/meta.txt" | tee -a "$OUT/console.log"

# ------------------------------------------------------------ start
pin=()
if [[ -n $BACKEND_CPUS ]]; then pin=(taskset -c "$BACKEND_CPUS"); fi
"${pin[@]}" "$top/build/bench/backend" -a "$BACKEND_ADDR" -p "$BACKEND_PORT" -b 0 -t 1 >>"$LOG_DIR/backend.log" 2>&1 &
BACKEND_PID=$!
wait_ok "http://$BACKEND_ADDR:$BACKEND_PORT/" "200 1.1"

for t in $TARGETS; do
    mkdir -p "$RUN_DIR/$t"
    "proxy_start_$t"
    wait_ok "http://$BACKEND_ADDR:${PORT_H1[$t]}/" "200 1.1" || { echo "$t did not come up" >&2; exit 1; }
    wait_ok "https://$BACKEND_ADDR:${PORT_H2[$t]}/" "200 1.1" -k --http1.1 --tlsv1.3 || { echo "$t: no TLS" >&2; exit 1; }
    log "started $t pid=${PROXY_PID[$t]} tls=:${PORT_H2[$t]}"
done

# ------------------------------------------------------------ resumption check
# Independent of tls_hs: s_client saves the session (-sess_out) after one
# request, then offers it (-sess_in); "Reused, TLSv1.3" = PSK resumption.
req=$'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'
for t in $TARGETS; do
    s=$OUT/run/$t/session.pem
    a=$(printf '%s' "$req" | timeout 10 openssl s_client -connect "$BACKEND_ADDR:${PORT_H2[$t]}" \
        -servername localhost -tls1_3 -alpn http/1.1 -ign_eof -sess_out "$s" 2>&1 || true)
    b=$(printf '%s' "$req" | timeout 10 openssl s_client -connect "$BACKEND_ADDR:${PORT_H2[$t]}" \
        -servername localhost -tls1_3 -alpn http/1.1 -ign_eof -sess_in "$s" 2>&1 || true)
    printf '%s\n----- second connection (-sess_in) -----\n%s\n' "$a" "$b" >"$LOG_DIR/s_client-$t.txt"
    first=$(grep -m1 -E '^(New|Reused), ' <<<"$a" || echo "?")
    second=$(grep -m1 -E '^(New|Reused), ' <<<"$b" || echo "?")
    tickets=$(grep -c 'Post-Handshake New Session Ticket arrived' <<<"$a" || true)
    log "s_client $t: first '$first' ($tickets tickets), second '$second'" \
        "$(grep -m1 -o 'HTTP/1.1 [0-9]*' <<<"$b" || echo 'no response')"
    echo "$t first=$first second=$second tickets=$tickets" >>"$OUT/s_client.txt"
done

# ------------------------------------------------------------ warmup
for t in $TARGETS; do
    for m in $MODES; do
        flag=(); port=${PORT_H2[$t]}
        case $m in resume) flag=(-r) ;; reuse) flag=(-R) ;; plain) flag=(-n); port=${PORT_H1[$t]} ;; esac
        cpin=(); [[ -n $CLIENT_CPUS ]] && cpin=(taskset -c "$CLIENT_CPUS")
        "${cpin[@]}" "$TLS_HS" -p "$port" -c "$CLIENTS" -d "$WARMUP" "${flag[@]}" \
            >"$LOG_DIR/warmup-$t-$m.txt" 2>&1 || true
    done
done
log "warmup done; $ROUNDS rounds x $(wc -w <<<"$MODES") modes x $(wc -w <<<"$TARGETS") targets x ${DURATION}s"

# ------------------------------------------------------------ measured rounds
for r in $(seq "$ROUNDS"); do
    for m in $MODES; do
        for t in $TARGETS; do
            sleep "$COOLDOWN"
            flag=(); port=${PORT_H2[$t]}
            case $m in resume) flag=(-r) ;; reuse) flag=(-R) ;; plain) flag=(-n); port=${PORT_H1[$t]} ;; esac
            cpin=(); [[ -n $CLIENT_CPUS ]] && cpin=(taskset -c "$CLIENT_CPUS")
            python3 "$HERE/tls_handshakes.py" measure --out "$OUT/runs.jsonl" \
                --log "$LOG_DIR/$t-$m-r$r.txt" --target "$t" --mode "$m" --round "$r" \
                --server-pids "${PROXY_PID[$t]}" --backend-pids "$BACKEND_PID" --duration "$DURATION" \
                -- "${cpin[@]}" "$TLS_HS" -p "$port" -c "$CLIENTS" -d "$DURATION" "${flag[@]}" \
                | tee -a "$OUT/console.log" || log "measure failed: $t $m r$r"
        done
    done
done

cleanup
python3 "$HERE/tls_handshakes.py" summarize "$OUT" >/dev/null
log "done: $OUT/results.md"
cat "$OUT/results.md"
