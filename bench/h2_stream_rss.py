#!/usr/bin/python3
"""Streams a large body through Arc over HTTP/2 (h2c, curl) in both
directions and samples Arc's RSS every 50 ms: flow control tied to the
other side's pace means RSS stays flat whatever the body size.

    /usr/bin/python3 bench/h2_stream_rss.py [BYTES]     (default 1 GiB)

Uses the test suite's Python upstream (tests/e2e/upstreams.py) and the
release binary; loopback only; stops everything it started."""
import os
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests", "e2e"))
from upstreams import Upstream  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 30


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sample(pid, out, stop):
    while not stop.is_set():
        out.append(rss_kib(pid))
        time.sleep(0.05)


def main():
    up = Upstream(name="big")
    d = tempfile.mkdtemp()
    cfg = os.path.join(d, "arc.yaml")
    with open(cfg, "w") as f:
        f.write("node: {workers: 1}\nlisteners: [{name: http, kind: http, bind: \"127.0.0.1:0\"}]\n"
                "observability: {metrics_enabled: false}\n"
                "upstreams: [{name: big, discovery: {type: static, endpoints: [{address: \"%s\"}]}}]\n"
                "routes: [{name: all, match: {path: \"/{*rest}\"}, action: {upstream: big}}]\n" % up.addr)
    arc = subprocess.Popen([os.path.join(TOP, "build/release/arc"), "run", "-c", cfg],
                           stderr=subprocess.PIPE, text=True)
    port = None
    for line in arc.stderr:
        if "listener=http" in line:
            port = int(line.rsplit(":", 1)[1])
        if "ready" in line:
            break
    threading.Thread(target=lambda: [None for _ in arc.stderr], daemon=True).start()
    try:
        base = rss_kib(arc.pid)
        for name, cmd in (
            ("download", ["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null",
                          "http://127.0.0.1:%d/stream?bytes=%d" % (port, N)]),
            ("upload", ["sh", "-c", "head -c %d /dev/zero | curl -sS --http2-prior-knowledge "
                        "-T - -X POST -o /dev/null http://127.0.0.1:%d/sink" % (N, port)]),
        ):
            samples, stop = [], threading.Event()
            t = threading.Thread(target=sample, args=(arc.pid, samples, stop))
            t.start()
            t0 = time.monotonic()
            subprocess.run(cmd, check=True, timeout=600)
            secs = time.monotonic() - t0
            stop.set()
            t.join()
            print("%s %d MiB in %.1f s: arc RSS %d KiB before, max %d KiB (+%d KiB)" % (
                name, N >> 20, secs, base, max(samples), max(samples) - base))
    finally:
        arc.terminate()
        arc.wait(20)
        up.stop()


if __name__ == "__main__":
    main()
