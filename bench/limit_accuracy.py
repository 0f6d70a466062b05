#!/usr/bin/env python3
"""Accuracy of every rate-limiting algorithm with real traffic: one route-wide
limit, offered several times its rate from 6 keep-alive connections for
DURATION seconds against arc with 1 and with 2 workers; prints a Markdown row
per run: allowed (and delayed), rejected, and the difference from what the
algorithm's definition admits for the same arrivals (each request timed at
the middle of its round trip and replayed through a reference model, as in
tests/e2e/test_rate_limit.py), except:

  leaky_bucket          burst + qps x elapsed (delayed ones included)
  fixed_window          exactly the limit in every window wholly inside the run

  /usr/bin/python3 bench/limit_accuracy.py [build/release/arc]
"""
import os
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from arcproc import ArcProcess, make_config, metric, route_conf  # noqa: E402
from httpraw import Client  # noqa: E402
from test_rate_limit import model_bucket, model_sliding  # noqa: E402

BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build/release/arc")
DURATION = float(os.environ.get("DURATION", "5"))
QPS = 200


def hammer(port, stop_at, counts, lock, times, seen):
    ok = rej = 0
    mine, all_ = [], []
    c = Client(port)
    while time.monotonic() < stop_at:
        t = time.monotonic()
        st = c.request("GET", "/acc").status
        mid = (t + time.monotonic()) / 2
        all_.append(mid)
        if st == 200:
            ok += 1
            mine.append(mid)
        rej += st == 429
    c.close()
    with lock:
        counts[0] += ok
        counts[1] += rej
        times.extend(mine)
        seen.extend(all_)


def run(algo, workers, tmp):
    lim = {"qps": QPS, "algorithm": algo, "key": {"by": "route"}}
    if algo in ("gcra", "token_bucket", "leaky_bucket"):
        lim["burst"] = QPS // 2             # (a stall shorter than 0.5 s loses nothing)
    if algo == "leaky_bucket":
        lim["max_delay"] = "50ms"
    if algo in ("fixed_window", "sliding_window"):
        lim["window"] = "1s"
    r = route_conf("acc", "/acc", respond={"status": 200})
    r["rate_limit"] = lim
    a = ArcProcess(BIN, "release", make_config([], routes=[r], workers=workers), tmp).start()
    a.wait_ready()
    try:
        counts, lock, times, seen = [0, 0], threading.Lock(), [], []
        t0 = time.monotonic()
        wall0 = time.clock_gettime(time.CLOCK_MONOTONIC)
        ths = [threading.Thread(target=hammer, args=(a.port, t0 + DURATION, counts, lock, times, seen))
               for _ in range(6)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        el = time.monotonic() - t0
        wall1 = wall0 + el
        ms, _ = a.metrics()
        delayed = metric(ms, "arc_rate_limit_decisions_total", route="acc", decision="delayed") or 0
    finally:
        a.stop()
    ok = counts[0]
    seen.sort()
    if algo in ("gcra", "token_bucket"):
        exp = model_bucket(seen, QPS, QPS // 2)
        note = "model %d (naive burst + qps x %.3f s = %.0f)" % (exp, el, QPS // 2 + QPS * el)
    elif algo == "leaky_bucket":
        exp = QPS // 2 + QPS * el
        note = "burst + qps x %.3f s = %.1f" % (el, exp)
    elif algo == "fixed_window":
        # windows are aligned on the monotonic clock: every window wholly
        # inside the run must admit exactly the limit (a response is
        # stamped a fraction of a ms after its decision)
        per = {}
        for t in times:
            per[int(t)] = per.get(int(t), 0) + 1
        full = [per.get(w, 0) for w in range(int(wall0) + 1, int(wall1))]
        exp = QPS * len(full)
        ok_full = sum(full)
        note = "full windows %s (partial edges: %d)" % (full, ok - ok_full)
        ok = ok_full
    else:
        exp = model_sliding(seen, QPS, 1.0)
        note = "model %d" % exp
    diff = "%+.2f%%" % (100.0 * (ok - exp) / exp)
    print("| %s | %d | %d (%d delayed) | %d | %s | %s |" % (algo, workers, ok, delayed, counts[1],
                                                          note, diff), flush=True)


def main():
    print("limit_accuracy: qps %d, %.0f s per run, 6 connections, route-wide key" % (QPS, DURATION))
    print("| algorithm | workers | allowed | rejected | expected | difference |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for algo in ("gcra", "token_bucket", "leaky_bucket", "fixed_window", "sliding_window"):
            for workers in (1, 2):
                run(algo, workers, tmp)


if __name__ == "__main__":
    main()
