#!/usr/bin/env python3
"""Helper of bench/tls_handshakes.sh: one measured tls_hs run, and the summary.

  tls_handshakes.py measure --out runs.jsonl --target arc1 --mode full --round 1 \
      --server-pids PID --backend-pids PID --log FILE -- tls_hs -p 18445 -c 4 -d 8
  tls_handshakes.py summarize OUT_DIR        # -> OUT_DIR/summary.json, results.md

`measure` brackets the client with utime+stime of the server's whole process
tree (master + workers / all threads), the backend's, the client's own
(RUSAGE_CHILDREN) and /proc/stat, using the shared harness's /proc helpers
(../shared/bench/bench.py), and appends one JSON line.  The figure to compare
is the server's CPU per handshake: it does not depend on how fast the client
is, only on what the server spends per connection.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.environ.get("BENCH_HARNESS") or os.path.join(HERE, "..", "..", "shared", "bench")
if not os.path.isdir(HARNESS):     # in a git worktree: next to the main checkout
    common = subprocess.run(["git", "-C", HERE, "rev-parse", "--path-format=absolute",
                             "--git-common-dir"], capture_output=True, text=True).stdout.strip()
    HARNESS = os.path.join(common, "..", "..", "shared", "bench")
sys.path.insert(0, HARNESS)
import bench as harness  # noqa: E402  (proc_table, tree_ticks, sys_cpu, ...)

CLK_TCK = os.sysconf("SC_CLK_TCK")
# Arc targets and the peers they are compared with (same worker count).
PEERS = {"arc1": ("nginx1", "haproxy1"), "arc2": ("nginxauto", "haproxy2")}


def pids(s):
    return [int(p) for p in s.split()] if s else []


def cmd_measure(a):
    srv, be = pids(a.server_pids), pids(a.backend_pids)
    t0 = harness.proc_table()
    s0, ru0, w0 = harness.sys_cpu(), resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    ics0 = harness.involuntary_ctxsw(harness.tree_pids(t0, srv))
    timeout = a.duration + 30
    try:
        p = subprocess.run(a.client, capture_output=True, text=True, timeout=timeout)
        out, err, rc = p.stdout, p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:   # tls_hs bounds itself; belt and braces
        out, err, rc = e.stdout or "", (e.stderr or "") + "\nTIMEOUT", -1
    wall = time.monotonic() - w0
    t1, s1, ru1 = harness.proc_table(), harness.sys_cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
    ics1 = harness.involuntary_ctxsw(harness.tree_pids(t1, srv))
    with open(a.log, "w") as f:
        f.write(" ".join(a.client) + "\n" + out + err)
    try:
        j = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        j = {"ok": 0, "rate": 0, "errors": 1, "first_error": f"no output (rc={rc}): {err[-200:]}"}
    srv_s = (harness.tree_ticks(t1, srv) - harness.tree_ticks(t0, srv)) / CLK_TCK
    be_s = (harness.tree_ticks(t1, be) - harness.tree_ticks(t0, be)) / CLK_TCK if be else None
    cli_s = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    ds = [y - x for x, y in zip(s0, s1)]
    tot = sum(ds) or 1
    busy = 1 - (ds[3] + ds[4]) / tot                    # idle + iowait
    ok = j.get("ok", 0)
    rec = {
        "target": a.target, "mode": a.mode, "round": a.round, "client": j,
        "wall_s": wall, "server_cpu_s": srv_s, "backend_cpu_s": be_s, "client_cpu_s": cli_s,
        "server_cores": srv_s / wall, "client_cores": cli_s / wall,
        "server_cpu_s_per_1000": srv_s / ok * 1000 if ok else None,
        "client_cpu_s_per_1000": cli_s / ok * 1000 if ok else None,
        "sys_busy": busy, "softirq": ds[6] / tot if len(ds) > 6 else None,
        # everything else on the machine (other users of the 2 cores): busy
        # cores minus server, client and backend
        "other_cores": busy * (os.cpu_count() or 1) - (srv_s + cli_s + (be_s or 0)) / wall,
        "server_invol_ctxsw": ics1 - ics0, "time_wait_after": harness.count_time_wait(),
    }
    with open(a.out, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(f"{a.target:10s} {a.mode:6s} r{a.round}: {j.get('rate', 0):8.1f} hs/s  "
          f"server {rec['server_cpu_s_per_1000'] or 0:6.3f} s/1000  "
          f"({rec['server_cores']:.2f} cores, client {rec['client_cores']:.2f}, other {rec['other_cores']:.2f})  "
          f"resumed {j.get('resumed', 0)}/{ok}  tickets/conn {j.get('tickets_per_conn', 0):.2f}  "
          f"errors {j.get('errors', 0)}", flush=True)
    return 0


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def cmd_summarize(a):
    runs = [json.loads(l) for l in open(os.path.join(a.dir, "runs.jsonl")) if l.strip()]
    by = defaultdict(list)
    order = []
    for r in runs:
        k = (r["target"], r["mode"])
        if k not in by:
            order.append(k)
        by[k].append(r)
    summ = {}
    for k in order:
        rs = by[k]
        c = [r["client"] for r in rs]
        ok = sum(x.get("ok", 0) for x in c)
        cpu = [r["server_cpu_s_per_1000"] for r in rs]
        summ[f"{k[0]}/{k[1]}"] = {
            "target": k[0], "mode": k[1], "rounds": len(rs),
            "rate": med(x.get("rate") for x in c),
            "rate_min": min(x.get("rate", 0) for x in c), "rate_max": max(x.get("rate", 0) for x in c),
            "server_s_per_1000": med(cpu),
            "server_s_per_1000_min": min(x for x in cpu if x is not None) if any(x is not None for x in cpu) else None,
            "server_s_per_1000_max": max(x for x in cpu if x is not None) if any(x is not None for x in cpu) else None,
            "client_s_per_1000": med(r["client_cpu_s_per_1000"] for r in rs),
            "server_cores": med(r["server_cores"] for r in rs),
            "client_cores": med(r["client_cores"] for r in rs),
            "sys_busy": med(r["sys_busy"] for r in rs),
            "other_cores": med(r.get("other_cores") for r in rs),
            "backend_s_per_1000": med(r["backend_cpu_s"] / r["client"]["ok"] * 1000
                                      for r in rs if r.get("backend_cpu_s") is not None and r["client"].get("ok")),
            "lat_p50_us": med(x.get("lat_p50_us") for x in c),
            "lat_p99_us": med(x.get("lat_p99_us") for x in c),
            "ok": ok,
            "resumed": sum(x.get("resumed", 0) for x in c),
            "offered": sum(x.get("offered", 0) for x in c),
            "resumption_rate": sum(x.get("resumed", 0) for x in c) / ok if ok else None,
            "tickets_per_conn": med(x.get("tickets_per_conn") for x in c),
            "errors": sum(x.get("errors", 0) for x in c),
            "first_errors": sorted({x.get("first_error") for x in c if x.get("first_error")}),
            "negotiated": sorted({f"{x.get('proto')} {x.get('cipher')} {x.get('group')} alpn={x.get('alpn')}"
                                  for x in c if x.get("proto")}),
        }
    # ratios: Arc against the better (lower CPU / higher rate) peer of the same worker count
    for k, s in summ.items():
        s["resume_vs_full_cpu"] = None
        f = summ.get(f"{s['target']}/full")
        if s["mode"] in ("resume", "reuse") and f and f["server_s_per_1000"] and s["server_s_per_1000"]:
            s["resume_vs_full_cpu"] = s["server_s_per_1000"] / f["server_s_per_1000"]
        peers = [summ.get(f"{p}/{s['mode']}") for p in PEERS.get(s["target"], ())]
        peers = [p for p in peers if p and p["server_s_per_1000"]]
        if peers and s["server_s_per_1000"]:
            bc = min(peers, key=lambda p: p["server_s_per_1000"])
            br = max(peers, key=lambda p: p["rate"])
            s["cpu_vs_best_peer"] = s["server_s_per_1000"] / bc["server_s_per_1000"]
            s["best_cpu_peer"] = bc["target"]
            s["rate_vs_best_peer"] = s["rate"] / br["rate"] if br["rate"] else None
            s["best_rate_peer"] = br["target"]
    with open(os.path.join(a.dir, "summary.json"), "w") as f:
        json.dump(summ, f, indent=1)

    def n(v, fmt):
        return "—" if v is None else format(v, fmt)

    lines = [f"# TLS handshakes: {os.path.basename(os.path.abspath(a.dir))}", "",
             "Medians over the rounds; server CPU = utime+stime of the server's process tree "
             "per 1000 completed connections (one TLS 1.3 handshake + one GET each); "
             "min–max over the rounds in brackets. Resumed = connections where "
             "SSL_session_reused() was true, summed over all rounds.", ""]
    titles = {"full": "Full handshakes (no ticket offered)",
              "resume": "Resumption, single-use tickets (newest ticket, each offered once)",
              "reuse": "Resumption, ticket reuse allowed (newest ticket, offered until a newer one arrives)",
              "plain": "No TLS: the same connection-per-request loop on the plaintext port (baseline)"}
    for mode in ("full", "resume", "reuse", "plain"):
        rows = [s for s in summ.values() if s["mode"] == mode]
        if not rows:
            continue
        lines += [f"## {titles[mode]}",
                  "",
                  "| target | handshakes/s | server CPU s/1000 [min–max] | vs best peer (CPU) | vs best peer (hs/s) "
                  "| server cores | client s/1000 | other load (cores) | p50 / p99 ms | resumed / ok | tickets/conn | errors |",
                  "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for s in rows:
            lines.append(
                f"| {s['target']} | {n(s['rate'], ',.0f')} | {n(s['server_s_per_1000'], '.3f')} "
                f"[{n(s['server_s_per_1000_min'], '.3f')}–{n(s['server_s_per_1000_max'], '.3f')}] "
                f"| {n(s.get('cpu_vs_best_peer'), '.2f')}{'× ' + s['best_cpu_peer'] if s.get('best_cpu_peer') else ''} "
                f"| {n(s.get('rate_vs_best_peer'), '.2f')}{'× ' + s['best_rate_peer'] if s.get('best_rate_peer') else ''} "
                f"| {n(s['server_cores'], '.2f')} | {n(s['client_s_per_1000'], '.3f')} | {n(s['other_cores'], '.2f')} "
                f"| {n(s['lat_p50_us'] and s['lat_p50_us'] / 1000, '.2f')} / {n(s['lat_p99_us'] and s['lat_p99_us'] / 1000, '.2f')} "
                f"| {s['resumed']:,} / {s['ok']:,} ({n(s['resumption_rate'] and 100 * s['resumption_rate'], '.1f')} %) "
                f"| {n(s['tickets_per_conn'], '.2f')} | {s['errors']} |")
        lines.append("")
    rs = [s for s in summ.values() if s["mode"] in ("full", "resume", "reuse") and s["server_s_per_1000"]]
    if rs:
        lines += ["## TLS modes side by side (server CPU s per 1000 connections, medians)", "",
                  "TLS part = the mode's figure minus the same target's plaintext (`plain`) figure: "
                  "what TLS adds to a connection (handshake, tickets, record layer).", "",
                  "| target | mode | resumed | server s/1000 | vs full | TLS part s/1000 |",
                  "|---|---|--:|--:|--:|--:|"]
        for s_ in sorted(rs, key=lambda x: (order.index((x["target"], "full")) if (x["target"], "full") in order else 0,
                                             ("full", "resume", "reuse").index(x["mode"]))):
            p_ = summ.get(f"{s_['target']}/plain")
            tls = s_["server_s_per_1000"] - p_["server_s_per_1000"] if p_ and p_["server_s_per_1000"] else None
            vs = 1.0 if s_["mode"] == "full" else s_["resume_vs_full_cpu"]
            lines.append(f"| {s_['target']} | {s_['mode']} | {100 * (s_['resumption_rate'] or 0):.1f} % "
                         f"| {s_['server_s_per_1000']:.3f} | {n(vs, '.2f')} | {n(tls, '.3f')} |")
        lines.append("")
    neg = sorted({x for s in summ.values() for x in s["negotiated"]})
    errs = sorted({x for s in summ.values() for x in s["first_errors"]})
    lines += ["Negotiated: " + "; ".join(neg), ""]
    if errs:
        lines += ["First errors: " + "; ".join(errs), ""]
    with open(os.path.join(a.dir, "results.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--out", required=True)
    m.add_argument("--log", required=True)
    m.add_argument("--target", required=True)
    m.add_argument("--mode", required=True)
    m.add_argument("--round", type=int, required=True)
    m.add_argument("--server-pids", default="")
    m.add_argument("--backend-pids", default="")
    m.add_argument("--duration", type=float, required=True)
    m.add_argument("client", nargs=argparse.REMAINDER)
    s = sub.add_parser("summarize")
    s.add_argument("dir")
    a = ap.parse_args()
    if a.cmd == "measure":
        a.client = a.client[1:] if a.client[:1] == ["--"] else a.client
        return cmd_measure(a)
    return cmd_summarize(a)


if __name__ == "__main__":
    sys.exit(main())
