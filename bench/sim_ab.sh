#!/usr/bin/env bash
# Side-by-side A/B of two Arc builds (or two configs) that holds up on a
# loaded machine: both run AT THE SAME TIME, one worker each, both pinned to
# CPU 1, each driven by its own load generator on CPU 0 against the shared
# harness's backend (also on CPU 0). Whatever else the machine does in a
# round, both sides see it at once, so the per-round ratio of their CPU per
# request (utime+stime from /proc around the run / requests completed) is
# far steadier than sequential rounds (ab.sh) when other work shares the
# cores. The absolute µs are inflated by the two sharing one core; compare
# only the ratio. Each round swaps which side starts first.
#
#   bench/sim_ab.sh A_BIN B_BIN [ROUNDS] [SECONDS]       (6 rounds of 6 s)
#   MODE=h1 bench/sim_ab.sh ...      wrk -c256 over HTTP/1.1 instead of
#                                    h2load -c64 -m8 over TLS + HTTP/2
#   A_EXTRA / B_EXTRA: top-level YAML appended to that side's config
#   (B_EXTRA=$'node:\n  workers: 1\n  http2_header_table_size: 4096'; a
#   side whose extra YAML has a node: or observability: section gets no
#   default one). A_ROUTE / B_ROUTE: keys added to the one route's flow
#   mapping (B_ROUTE='rate_limit: {qps: 1000000, key: {by: client_ip}}').
# Prints one line per round and the median ratio B/A.
#   PERF=1: also `perf record` CPU 1 during the rounds and print, per
#   function (thread, user/kernel), both sides' samples per request as a
#   share of A's total and the difference B-A, largest first (PERF_TOP
#   rows, 30): a side-by-side profile, so the machine's load hits both
#   sides alike. Where a cost moves between functions (a stall absorbed by
#   whatever runs next) only the total and the per-thread sums can be
#   trusted.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
harness=${BENCH_HARNESS:-$top/../shared/bench}
[[ -d $harness ]] || harness=$top/../../shared/bench
A=${1:?A binary}
B=${2:?B binary}
rounds=${3:-6}
secs=${4:-6}
MODE=${MODE:-h2}
port=${PORT_BASE:-28600}
out=$(mktemp -d /tmp/sim_ab.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

gcc -O2 -pthread -o "$out/backend" "$harness/backend.c"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 -subj /CN=localhost \
    -keyout "$out/key.pem" -out "$out/cert.pem" 2>/dev/null
taskset -c 0 "$out/backend" -p "$port" -t 1 >/dev/null 2>&1 &
pids+=($!)

conf() {    # conf SIDE H1PORT H2PORT EXTRA ROUTE_EXTRA
    cat >"$out/$1.yaml" <<YAML
listeners:
  - {name: http, kind: http, bind: "127.0.0.1:$2"}
  - name: https
    kind: https
    bind: "127.0.0.1:$3"
    tls: {certificates: [{sni: localhost, cert_pem: "$out/cert.pem", key_pem: "$out/key.pem"}]}
upstreams:
  - name: backend
    discovery: {type: static, endpoints: [{address: "127.0.0.1:$port"}]}
    pool: {max_idle: 1024}
routes:
  - {name: all, match: {path: "/{*rest}"}, action: {upstream: backend}${5:+, $5}}
$4
YAML
    # one worker and an admin listener on a kernel-assigned port, unless the
    # extra YAML has its own node / observability section
    grep -q '^node:' "$out/$1.yaml" || printf 'node: {workers: 1}\n' >>"$out/$1.yaml"
    grep -q '^observability:' "$out/$1.yaml" ||
        printf 'observability: {metrics_bind: "127.0.0.1:0"}\n' >>"$out/$1.yaml"
}
conf a $((port + 11)) $((port + 12)) "${A_EXTRA:-}" "${A_ROUTE:-}"
conf b $((port + 21)) $((port + 22)) "${B_EXTRA:-}" "${B_ROUTE:-}"
taskset -c 1 "$A" run -c "$out/a.yaml" 2>"$out/a.err" &
pa=$!; pids+=($pa)
taskset -c 1 "$B" run -c "$out/b.yaml" 2>"$out/b.err" &
pb=$!; pids+=($pb)
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$((port + 11))/" && curl -s -o /dev/null "http://127.0.0.1:$((port + 21))/" && break
    sleep 0.1
done

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
load() {    # load PORT_OFFSET SECONDS -> requests completed
    if [[ $MODE == h2 ]]; then
        taskset -c 0 h2load -c64 -m8 -D"$2" "https://127.0.0.1:$((port + $1 + 1))/" 2>/dev/null |
            awk '/^requests:/ {print $8}'
    else
        taskset -c 0 wrk -t1 -c256 -d"${2}s" "http://127.0.0.1:$((port + $1))/" | awk '/requests in/ {print $1}'
    fi
}
load 11 2 >/dev/null & w=$!; load 21 2 >/dev/null; wait $w          # warm-up
tck=$(getconf CLK_TCK)
perfpid=
if [[ ${PERF:-0} == 1 ]]; then
    perf record -C 1 -o "$out/perf.data" -- sleep 100000 >/dev/null 2>&1 &
    perfpid=$!
    sleep 0.5
fi
for r in $(seq "$rounds"); do
    a0=$(cpu $pa) b0=$(cpu $pb)
    if (( r % 2 )); then load 11 "$secs" >"$out/ra" & w1=$!; load 21 "$secs" >"$out/rb" & w2=$!
    else load 21 "$secs" >"$out/rb" & w2=$!; load 11 "$secs" >"$out/ra" & w1=$!; fi
    wait $w1 $w2
    a1=$(cpu $pa) b1=$(cpu $pb)
    na=$(cat "$out/ra") nb=$(cat "$out/rb")
    echo "round $r A $(echo "scale=2; ($a1-$a0)*1000000/$tck/$na" | bc) us/req ($na req)" \
         "B $(echo "scale=2; ($b1-$b0)*1000000/$tck/$nb" | bc) us/req ($nb req)"
done | tee "$out/rounds.txt"
if [[ -n $perfpid ]]; then
    kill -INT "$perfpid"
    wait "$perfpid" 2>/dev/null || true
    perf script -i "$out/perf.data" -F pid,tid,comm,ip,sym 2>/dev/null |
        awk -v pa="$pa" -v pb="$pb" '{split($2, t, "/"); if (t[1] == pa || t[1] == pb)
            print (t[1] == pa ? "A" : "B"), $1, ($3 ~ /^ffff/ ? "k:" : "u:") $4}' >"$out/samples.txt"
fi
/usr/bin/python3 - "$out/rounds.txt" <<'PY'
import re, statistics, sys
r = [(float(a), float(b)) for a, b in re.findall(r"A ([\d.]+) us/req .* B ([\d.]+) us/req", open(sys.argv[1]).read())]
q = [b / a for a, b in r]
print("B/A CPU per request: median %.3f (rounds %s)" % (statistics.median(q), " ".join("%.3f" % x for x in q)))
PY
if [[ -n $perfpid ]]; then
    /usr/bin/python3 - "$out/rounds.txt" "$out/samples.txt" "${PERF_TOP:-30}" <<'PY'
import collections, re, sys
rounds = open(sys.argv[1]).read()
n = {"A": sum(int(x) for x in re.findall(r"A [\d.]+ us/req \((\d+) req\)", rounds)),
     "B": sum(int(x) for x in re.findall(r"B [\d.]+ us/req \((\d+) req\)", rounds))}
c = {"A": collections.Counter(), "B": collections.Counter()}
th = {"A": collections.Counter(), "B": collections.Counter()}
for line in open(sys.argv[2]):
    p = line.split()
    if len(p) == 3:
        c[p[0]][p[1] + " " + p[2]] += 1
        th[p[0]][p[1]] += 1
a = {k: v / n["A"] for k, v in c["A"].items()}
b = {k: v / n["B"] for k, v in c["B"].items()}
ta = sum(a.values()) or 1
print("perf samples per request B/A: %.4f" % (sum(b.values()) / ta))
for s in "AB":
    print("  %s by thread (%% of A's samples per request): %s" % (s, ", ".join(
        "%s %.2f" % (k, v / n[s] / ta * 100) for k, v in th[s].most_common())))
d = {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b)}
print("  %8s %8s %8s  function" % ("B-A %", "A %", "B %"))
for k, v in sorted(d.items(), key=lambda x: -abs(x[1]))[:int(sys.argv[3])]:
    print("  %+8.3f %8.3f %8.3f  %s" % (v / ta * 100, a.get(k, 0) / ta * 100, b.get(k, 0) / ta * 100, k))
PY
fi
echo "files in $out"
