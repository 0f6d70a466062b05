"""Upstream resilience against real upstream processes: consistent_hash and
maglev keep a key on one endpoint; (later in this file) a killed endpoint is
retried around, ejected and re-admitted, a black-holed one times out and is
retried elsewhere, POST is not retried unless allowed, a body up to max_body
is replayed byte-exact, and circuit limits answer 503 fast."""
import os
import signal
import subprocess
import sys
import time

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
