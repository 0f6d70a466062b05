"""The global rate-limit tier (routes[].rate_limit.scope: global,
rate_limits.global) against a real redis-server started here on a loopback
port in a temporary directory and stopped after: two Arc processes sharing
one Redis hold one limit within 5%; stopping Redis mid-run gives no error
and no stall (the fallback decides, the circuit opens and is counted);
starting it again closes the circuit and Redis decides again; a SCRIPT
FLUSH is answered by loading the script again (EVAL after NOSCRIPT); the
password and the database are used; fail_open / fail_closed when Redis
is not there; config errors."""
import shutil
import socket
import subprocess
import threading
import time

import pytest

from arcproc import make_config, metric, route_conf, to_yaml
from httpraw import Client, free_port

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


def wait_for(pred, timeout=10.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


class Redis:
    def __init__(self, workdir, password=None):
        self.dir = workdir
        self.port = free_port()
        self.password = password
        self.proc = None

    def start(self):
        args = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--save", "", "--appendonly", "no", "--databases", "8",
                "--enable-debug-command", "local"]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_for(lambda: self._ping(), timeout=10), "redis-server did not start"

    def _ping(self):
        try:
            return self.cmd("PING") == "PONG"
        except OSError:
            return False

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def cmd(self, *args, db=None):
        """One command (after AUTH / SELECT); a simple parse of the reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            f = s.makefile("rb")
            pre = []
            if self.password:
                pre.append(("AUTH", self.password))
            if db is not None:
                pre.append(("SELECT", str(db)))
            for c in pre + [args]:
                s.sendall(b"*%d\r\n" % len(c) + b"".join(
                    b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in c))
            out = [self._read(f) for _ in pre + [args]]
            return out[-1]

    def _read(self, f):
        line = f.readline().rstrip(b"\r\n")
        t, rest = line[:1], line[1:].decode()
        if t == b"+":
            return rest
        if t == b"-":
            return RuntimeError(rest)
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = f.read(n + 2)[:-2]
            return data.decode()
        if t == b"*":
            return [self._read(f) for _ in range(int(rest))]
        raise AssertionError("bad reply %r" % line)


@pytest.fixture
def redis(tmp_path):
    made = []

    def make(password=None, start=True):
        d = tmp_path / ("redis%d" % len(made))
        d.mkdir()
        r = Redis(d, password)
        made.append(r)
        if start:
            r.start()
        return r
    yield make
    for r in made:
        r.stop()


def global_cfg(r, qps=100, burst=20, workers=1, lease=5, timeout="100ms", fallback=None,
               nodes=1, db=None, password=None, circuit_open="300ms"):
    rl = {"qps": qps, "burst": burst, "scope": "global", "key": {"by": "route"}}
    cfg = make_config([], routes=[dict(route_conf("g", "/g", respond={"status": 200}),
                                       rate_limit=rl)], workers=workers)
    red = {"address": "127.0.0.1:%d" % r.port, "timeout": timeout, "lease": lease,
           "circuit_open": circuit_open}
    if db is not None:
        red["db"] = db
    if password:
        red["password"] = password
    g = {"backend": "redis", "redis": red, "nodes": nodes}
    if fallback:
        g["fallback"] = fallback
    cfg["rate_limits"] = {"global": g}
    return cfg


def hammer(port, stop_at, out, lock, path="/g"):
    seen = []
    c = Client(port)
    try:
        while time.monotonic() < stop_at:
            t = time.monotonic()
            r = c.request("GET", path)
            seen.append((t, time.monotonic() - t, r.status))
    finally:
        c.close()
    with lock:
        out.extend(seen)


def run_load(ports, secs, conns=2):
    stop_at = time.monotonic() + secs
    out, lock = [], threading.Lock()
    ths = [threading.Thread(target=hammer, args=(p, stop_at, out, lock))
           for p in ports for _ in range(conns)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    return out


def gmetric(a, name, **labels):
    return metric(a.metrics()[0], name, **labels) or 0


def test_two_nodes_hold_one_global_limit(arc, redis):
    r = redis()
    cfg1 = global_cfg(r, qps=100, burst=20, workers=2, nodes=2)
    cfg2 = global_cfg(r, qps=100, burst=20, workers=1, nodes=2)
    a1, a2 = arc(cfg1), arc(cfg2)
    assert wait_for(lambda: gmetric(a1, "arc_rate_limit_global_circuit", state="closed") == 1)
    assert wait_for(lambda: gmetric(a2, "arc_rate_limit_global_circuit", state="closed") == 1)
    t0 = time.monotonic()
    seen = run_load([a1.port, a2.port], 5.0)
    span = max(t for t, _, _ in seen) - t0
    statuses = {s for _, _, s in seen}
    assert statuses <= {200, 429}, statuses
    allowed = sum(1 for _, _, s in seen if s == 200)
    admits = 20 + 100 * span
    print("allowed %d, the limit admits %.0f over %.2f s (%+.2f%%)"
          % (allowed, admits, span, 100.0 * (allowed - admits) / admits))
    assert abs(allowed - admits) <= 0.05 * admits, (allowed, admits)
    # both nodes got a share, and Redis saw batches, not one call per request
    assert sum(1 for _, _, s in seen if s == 200) > 0
    calls = gmetric(a1, "arc_rate_limit_global_calls_total") + \
        gmetric(a2, "arc_rate_limit_global_calls_total")
    assert 0 < calls <= allowed, (calls, allowed)
    assert gmetric(a1, "arc_rate_limit_global_fallbacks_total") == 0
    assert gmetric(a2, "arc_rate_limit_global_fallbacks_total") == 0


def test_redis_stopped_and_started_again(arc, redis):
    r = redis()
    a = arc(global_cfg(r, qps=50, burst=10, workers=2, fallback="local_share", nodes=1))
    assert wait_for(lambda: gmetric(a, "arc_rate_limit_global_circuit", state="closed") == 1)
    out, lock = [], threading.Lock()
    stop_at = time.monotonic() + 6.0
    ths = [threading.Thread(target=hammer, args=(a.port, stop_at, out, lock)) for _ in range(2)]
    for t in ths:
        t.start()
    time.sleep(1.5)
    r.stop()
    t_stop = time.monotonic()
    time.sleep(2.0)
    r.start()
    t_start = time.monotonic()
    for t in ths:
        t.join()
    statuses = {s for _, _, s in out}
    assert statuses <= {200, 429}, statuses                     # no errors
    slow = [(t, d) for t, d, _ in out if d > 1.0]
    assert not slow, slow[:5]                                    # no stall
    during = [s for t, _, s in out if t_stop + 0.5 < t < t_start]
    assert during and 200 in during                              # the local share admits
    assert gmetric(a, "arc_rate_limit_global_fallbacks_total") > 0
    assert gmetric(a, "arc_rate_limit_global_circuit_transitions_total", to="open") >= 1
    # Redis back: the circuit closes by itself (within circuit_open plus a
    # handshake), and Redis decides again
    assert wait_for(lambda: gmetric(a, "arc_rate_limit_global_circuit", state="closed") == 1,
                    timeout=5)
    assert gmetric(a, "arc_rate_limit_global_circuit_transitions_total", to="closed") >= 1
    calls = gmetric(a, "arc_rate_limit_global_calls_total")
    fb = gmetric(a, "arc_rate_limit_global_fallbacks_total")
    t1 = time.monotonic()
    seen = run_load([a.port], 3.0)
    span = max(t for t, _, _ in seen) - t1
    allowed = sum(1 for _, _, s in seen if s == 200)
    assert gmetric(a, "arc_rate_limit_global_calls_total") > calls
    assert gmetric(a, "arc_rate_limit_global_fallbacks_total") == fb
    # the key was new in the restarted Redis: burst + qps x t
    admits = 10 + 50 * span
    assert abs(allowed - admits) <= 0.1 * admits + 5, (allowed, admits)


def test_script_flush_password_and_db(arc, redis):
    r = redis(password="s3cret pass")
    a = arc(global_cfg(r, qps=1000, burst=1000, lease=10, db=3, password="s3cret pass"))
    assert wait_for(lambda: gmetric(a, "arc_rate_limit_global_circuit", state="closed") == 1)
    c = a.client()
    for _ in range(25):
        assert c.request("GET", "/g").status == 200
    ns = gmetric(a, "arc_rate_limit_global_errors_total", kind="noscript")
    assert ns >= 1                                  # (a fresh Redis: loaded by EVAL once)
    keys = r.cmd("KEYS", "arc:rl:*", db=3)
    assert keys == ["arc:rl:g:726f757465"], keys    # route "g", key "route" in hex
    assert r.cmd("KEYS", "arc:rl:*", db=0) == []
    assert r.cmd("SCRIPT", "FLUSH") == "OK"
    for _ in range(25):
        assert c.request("GET", "/g").status == 200
    assert gmetric(a, "arc_rate_limit_global_errors_total", kind="noscript") == ns + 1
    assert gmetric(a, "arc_rate_limit_global_errors_total", kind="error") == 0
    assert gmetric(a, "arc_rate_limit_global_fallbacks_total") == 0


def test_slow_redis_adds_at_most_its_timeout(arc, redis):
    """Redis stuck (DEBUG SLEEP): the calls in flight time out after
    redis.timeout, the circuit opens, the waiting requests and the next
    ones are decided by the fallback; none waits for Redis much longer
    than its timeout (a generous margin for a loaded machine), and the
    circuit closes again once Redis answers."""
    r = redis()
    a = arc(global_cfg(r, qps=1000, burst=10, lease=2, timeout="100ms", fallback="fail_open",
                       circuit_open="300ms"))
    assert wait_for(lambda: gmetric(a, "arc_rate_limit_global_circuit", state="closed") == 1)
    c = a.client()
    for _ in range(10):
        assert c.request("GET", "/g").status == 200
    sleeper = threading.Thread(target=lambda: r.cmd("DEBUG", "SLEEP", "2.5"))
    sleeper.start()
    time.sleep(0.2)
    lat = []
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        t = time.monotonic()
        assert c.request("GET", "/g").status == 200
        lat.append(time.monotonic() - t)
    sleeper.join()
    assert max(lat) < 1.0, sorted(lat)[-5:]
    assert gmetric(a, "arc_rate_limit_global_errors_total", kind="timeout") >= 1
    assert gmetric(a, "arc_rate_limit_global_fallbacks_total") >= 1
    assert gmetric(a, "arc_rate_limit_global_circuit_transitions_total", to="open") >= 1
    assert wait_for(lambda: gmetric(a, "arc_rate_limit_global_circuit", state="closed") == 1,
                    timeout=5)
    assert "took longer than timeout" in a.stderr_tail(50)


def test_global_section_is_restart_only(arc, redis):
    import signal
    r = redis()
    cfg = global_cfg(r)
    a = arc(cfg)
    before = gmetric(a, "arc_config_reloads_total", result="refused")
    cfg["rate_limits"]["global"]["redis"]["lease"] = 7
    with open(a.config_path, "w") as f:
        f.write(to_yaml(cfg))
    a.signal(signal.SIGHUP)
    assert wait_for(lambda: gmetric(a, "arc_config_reloads_total", result="refused") > before)
    assert "rate_limits.global" in a.stderr_tail(20)


@pytest.mark.parametrize("fallback,status", [("fail_open", 200), ("fail_closed", 429)])
def test_redis_absent_fallbacks(arc, redis, fallback, status):
    r = redis(start=False)
    a = arc(global_cfg(r, fallback=fallback))
    c = a.client()
    for _ in range(5):
        t = time.monotonic()
        assert c.request("GET", "/g").status == status
        assert time.monotonic() - t < 1.0
    assert gmetric(a, "arc_rate_limit_global_fallbacks_total") >= 5
    assert gmetric(a, "arc_rate_limit_global_circuit", state="closed") == 0
    assert "circuit open" in a.stderr_tail(50)


def test_config_errors(arc_bin, tmp_path):
    cases = {
        "needs section": ({"qps": 5, "scope": "global"}, None, "needs a rate_limits.global"),
        "gcra only": ({"qps": 5, "scope": "global", "algorithm": "token_bucket"},
                      {"redis": {"address": "127.0.0.1:6379"}}, "use gcra"),
        "bad fallback": ({"qps": 5, "scope": "global"},
                         {"redis": {"address": "127.0.0.1:6379"}, "fallback": "maybe"},
                         "fallback"),
        "no address": ({"qps": 5, "scope": "global"}, {"redis": {"lease": 4}}, "address"),
    }
    for name, (rl, g, msg) in cases.items():
        cfg = make_config([], routes=[dict(route_conf("g", "/g", respond={"status": 200}),
                                           rate_limit=rl)])
        if g is not None:
            cfg["rate_limits"] = {"global": g}
        p = tmp_path / ("c-%s.yaml" % name.replace(" ", "_"))
        p.write_text(to_yaml(cfg))
        cp = arc_bin.run(["check", "-c", str(p)])
        assert cp.returncode == 1, (name, cp.stdout, cp.stderr)
        assert msg in cp.stderr and "%s:" % p in cp.stderr, (name, cp.stderr)
