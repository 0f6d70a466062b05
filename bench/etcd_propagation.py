#!/usr/bin/env python3
"""How long a config pushed to etcd takes to be served by a fleet: starts
etcd (Debian's etcd-server) and N Arc nodes on loopback, then pushes
ROUNDS configs with `arc config push` and measures, per node, the time from
the push command's return to the node answering with the new body (polled
every 5 ms). Prints medians and maxima. Usage:
    bench/etcd_propagation.py [ARC_BIN] [NODES] [ROUNDS]
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from arcproc import ArcProcess, make_config, route_conf, to_yaml  # noqa: E402
from test_etcd import Etcd  # noqa: E402


def main():
    binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1
                             else os.path.join(HERE, "..", "build", "release", "arc"))
    nodes = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    with tempfile.TemporaryDirectory() as d:
        import pathlib
        etcd = Etcd(pathlib.Path(d))
        etcd.start()

        def cfg(body):
            c = make_config([], routes=[route_conf("probe", "/probe", respond={"status": 200, "body": body})],
                            workers=1)
            c["control_plane"] = {"enabled": True, "bind": "127.0.0.1:0",
                                  "config_source": {"etcd": {"endpoints": [etcd.url]}}}
            return c
        procs = []
        try:
            for i in range(nodes):
                wd = pathlib.Path(d) / ("n%d" % i)
                wd.mkdir()
                p = ArcProcess(binary, "release", cfg("start"), wd)
                p.start()
                p.wait_ready()
                procs.append(p)
            time.sleep(1.0)                 # the watches are up
            lat = [[] for _ in procs]
            push_file = pathlib.Path(d) / "push.yaml"
            for r in range(rounds):
                body = "round-%d" % r
                push_file.write_text(to_yaml(cfg(body)))
                cp = subprocess.run([binary, "config", "push", "-c", str(push_file)],
                                    capture_output=True, text=True)
                t0 = time.monotonic()
                assert cp.returncode == 0, cp.stderr
                pending = set(range(len(procs)))
                while pending and time.monotonic() - t0 < 10:
                    for i in list(pending):
                        try:
                            b = procs[i].client(timeout=2).request("GET", "/probe").body.decode()
                        except OSError:
                            continue
                        if b == body:
                            lat[i].append((time.monotonic() - t0) * 1000)
                            pending.discard(i)
                    time.sleep(0.005)
                assert not pending, "round %d: nodes %s did not apply it" % (r, pending)
            for i, l in enumerate(lat):
                print("node %d: push -> served: median %.1f ms, max %.1f ms over %d pushes"
                      % (i, statistics.median(l), max(l), len(l)))
        finally:
            for p in procs:
                p.stop()
            etcd.stop()


if __name__ == "__main__":
    main()
