#!/usr/bin/env bash
# CPU per request of two Arc builds, A/B in one run: the shared harness's
# measurement (../shared/bench/bench.py measure: wrk or h2load, the proxy's
# utime+stime from /proc around each run), its backend, and the config
# proxies.sh writes for arc1 (bench/arc_peer.sh), on ports shifted by
# PORT_BASE so it can run while another run holds the harness's own.
#
#   OLD_BIN=/path/to/old/arc bench/ab.sh          # NEW_BIN: build/release/arc
#   OLD_BIN=build/release/arc OLD_ENV=ARC_PEER_HISTOGRAMS=false bench/ab.sh
#       (NEW_ENV / OLD_ENV: VAR=value words for arc_peer.sh: here the same
#       build with histograms off as the old side)
#   CASES="wrk:0:256 wrk:1024:256" ROUNDS=7 OLD_BIN=... bench/ab.sh
#   NEW_EXTRA="$(printf 'logging:\n  output: {file: \"@DIR@/access.log\"}')" \
#       OLD_BIN=build/release/arc bench/ab.sh     # one build, a config key on vs off
#
# NEW_EXTRA / OLD_EXTRA: top-level YAML appended to that side's config
# (@DIR@ = its run directory).
# CASES: tool:body_bytes:connections (h2load = TLS + HTTP/2, 8 streams per
# connection). Rounds alternate the order (new old, old new, ...). Results
# in bench/results/<timestamp>-ab/ (results.md, summary.json, runs.jsonl).
# PIN=1: both Arc builds (one worker each) on CPU 1, the load generator
# and the backend on CPU 0 (a 2-core machine: less noise from sharing).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
harness=${BENCH_HARNESS:-$top/../shared/bench}
[[ -d $harness ]] || harness=$top/../../shared/bench     # from a worktree under /work/wt
NEW_BIN=${NEW_BIN:-$top/build/release/arc}
OLD_BIN=${OLD_BIN:?set OLD_BIN to the build to compare against}
CASES=${CASES:-"wrk:0:256 wrk:0:512 wrk:1024:256 h2load:0:64"}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
PORT_BASE=${PORT_BASE:-28180}
OUT=${1:-$top/bench/results/$(date +%Y%m%d-%H%M%S)-ab}
RUN_DIR=$OUT/run
LOG_DIR=$OUT/logs
mkdir -p "$RUN_DIR" "$LOG_DIR"
BACKEND_ADDR=127.0.0.1
BACKEND_PORT=$PORT_BASE
export BACKEND_ADDR BACKEND_PORT RUN_DIR

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

gcc -O2 -Wall -Wextra -pthread -o "$RUN_DIR/backend" "$harness/backend.c"
mkdir -p "$RUN_DIR/tls"
TLS_CERT=$RUN_DIR/tls/cert.pem TLS_KEY=$RUN_DIR/tls/key.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$TLS_KEY" -out "$TLS_CERT" -days 30 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
export TLS_CERT TLS_KEY

declare -A PID=() H1=() H2=()
H1[new]=$((PORT_BASE + 1)) H2[new]=$((PORT_BASE + 2))
H1[old]=$((PORT_BASE + 3)) H2[old]=$((PORT_BASE + 4))
for p in $PORT_BASE "${H1[@]}" "${H2[@]}"; do
    if ss -Hltn "sport = :$p" | grep -q .; then echo "port $p in use; set PORT_BASE" >&2; exit 1; fi
done

wait_ok() {
    local _
    for _ in $(seq 100); do
        curl -s -o /dev/null --max-time 1 "$@" && return 0
        sleep 0.1
    done
    echo "no answer from $*" >&2
    exit 1
}

pin_proxy=() pin_load=()
if [[ ${PIN:-0} == 1 ]]; then pin_proxy=(taskset -c 1) pin_load=(taskset -c 0); fi
BACKEND=""
start_backend() {
    if [[ -n $BACKEND ]]; then kill "$BACKEND"; wait "$BACKEND" 2>/dev/null || true; fi
    "${pin_load[@]}" "$RUN_DIR/backend" -a "$BACKEND_ADDR" -p "$BACKEND_PORT" -b "$1" -t 1 >/dev/null 2>&1 &
    BACKEND=$!
    pids+=("$BACKEND")
    wait_ok "http://127.0.0.1:$BACKEND_PORT/"
}

start_backend 0
for t in new old; do
    bin=$NEW_BIN peer_env=${NEW_ENV:-}
    [[ $t == old ]] && bin=$OLD_BIN peer_env=${OLD_ENV:-}
    extra=${NEW_EXTRA:-}
    [[ $t == old ]] && extra=${OLD_EXTRA:-}
    # shellcheck disable=SC2086
    "${pin_proxy[@]}" env $peer_env ARC_PEER_EXTRA="$extra" "$top/bench/arc_peer.sh" "$bin" "${H1[$t]}" "${H2[$t]}" >"$RUN_DIR/$t.log" 2>&1 &
    PID[$t]=$!
    pids+=("${PID[$t]}")
    wait_ok "http://127.0.0.1:${H1[$t]}/"
    wait_ok -k --http2 "https://127.0.0.1:${H2[$t]}/"
done

BENCH_PROXIES="new old" BENCH_NEW_BIN=$NEW_BIN BENCH_OLD_BIN=$OLD_BIN BENCH_CASES=$CASES \
BENCH_ROUNDS=$ROUNDS BENCH_DURATION=$DURATION python3 "$harness/bench.py" meta "$OUT"

body_now=0
for cs in $CASES; do
    IFS=: read -r tool body conns <<<"$cs"
    if [[ $body != "$body_now" ]]; then start_backend "$body"; body_now=$body; fi
    if [[ $tool == wrk ]]; then case="h1-b$body-c$conns"; else case="h2tls-b$body-c${conns}x8"; fi
    url() { if [[ $tool == wrk ]]; then echo "http://127.0.0.1:${H1[$1]}/"; else echo "https://127.0.0.1:${H2[$1]}/"; fi; }
    for t in new old; do   # warm-up: pools, caches, TLS sessions
        if [[ $tool == wrk ]]; then "${pin_load[@]}" wrk -t1 -c"$conns" -d"${WARMUP}s" "$(url "$t")" >/dev/null 2>&1 || true
        else "${pin_load[@]}" h2load -t1 -c"$conns" -m8 -D"$WARMUP" "$(url "$t")" >/dev/null 2>&1 || true; fi
    done
    for r in $(seq "$ROUNDS"); do
        order="new old"
        (( r % 2 == 0 )) && order="old new"
        for t in $order; do
            sleep 1
            "${pin_load[@]}" python3 "$harness/bench.py" measure --out "$OUT/runs.jsonl" \
                --log "$LOG_DIR/$case-$t-r$r.txt" --tool "$tool" --target "$t" --case "$case" \
                --round "$r" --proxy-pids "${PID[$t]}" --backend-pids "$BACKEND" \
                --conns "$conns" --body "$body" --duration "$DURATION" --threads 1 \
                --streams 8 "$(url "$t")"
        done
    done
done
python3 "$harness/bench.py" summarize "$OUT" >/dev/null
cat "$OUT/results.md"
