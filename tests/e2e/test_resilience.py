"""Upstream resilience against real upstream processes: consistent_hash and
maglev keep a key on one endpoint; (later in this file) a killed endpoint is
retried around, ejected and re-admitted, a black-holed one times out and is
retried elsewhere, POST is not retried unless allowed, a body up to max_body
is replayed byte-exact, and circuit limits answer 503 fast."""
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from arcproc import make_config, upstream_conf, route_conf, metric, wait_for
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



def resil_config(ups, route_extra=None, workers=1, **up_extra):
    cfg = make_config([upstream_conf("app", [u.addr for u in ups], **up_extra)],
                      routes=[route_conf("r", "/{*rest}", upstream="app", **(route_extra or {}))],
                      workers=workers)
    cfg["control_plane"] = {"enabled": True, "bind": "127.0.0.1:0"}
    return cfg


def test_dead_endpoint_is_ejected_and_readmitted(arc, procs, arc_bin):
    ups = [procs("e%d" % i) for i in range(3)]
    # (the ejection outlasts the 30 requests below even on a loaded machine:
    # re-admitted meanwhile, the dead endpoint would fail twice more)
    a = arc(resil_config(ups, lb={"algorithm": "round_robin"},
                         health={"passive": {"consecutive_failures": 2, "ejection_time": "4s",
                                             "max_ejection_time": "4s"}}))
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
                                  for _ in range(3)), timeout=15 * arc_bin.slow)
    assert served, "e1 never served again after it came back"
    assert ep_health(a, "app", ups[1].addr)["state"] == "healthy"


def test_kill_endpoint_under_load_every_request_succeeds(arc, procs, arc_bin):
    """Kill one of three endpoints while idempotent requests run: every one
    succeeds (retried elsewhere), the endpoint is ejected, and it serves
    again once it is back."""
    ups = [procs("e%d" % i) for i in range(3)]
    a = arc(resil_config(ups, route_extra={"retry": {"backoff": "10ms"}}, workers=2,
                         lb={"algorithm": "round_robin"},
                         health={"passive": {"consecutive_failures": 2, "ejection_time": "1s",
                                             "max_ejection_time": "1s"}}))
    stop = threading.Event()
    results, errors = [], []

    def load(k):
        c = None
        i = 0
        while not stop.is_set():
            try:
                if c is None:
                    c = a.client(timeout=10)
                r = c.request("GET", "/load/%d/%d" % (k, i))
                results.append(r.status)
                if r.conn_close():
                    c = None
            except Exception as e:      # noqa: BLE001 - reported below
                errors.append(repr(e))
                c = None
            i += 1
    threads = [threading.Thread(target=load, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        ups[1].kill()
        time.sleep(1.0)
        # (each worker judges by its own traffic: a worker that carried none
        # of the load never ejected it)
        assert wait_for(lambda: ep_health(a, "app", ups[1].addr)["ejections"]
                        ["consecutive_failures"] >= 1, timeout=5), ep_health(a, "app", ups[1].addr)
    finally:
        stop.set()
        for t in threads:
            t.join(20)
    bad = [s for s in results if s != 200]
    assert not errors and not bad, (errors[:5], bad[:10], len(results))
    assert len(results) > 50, len(results)
    ms, _ = a.metrics()
    assert metric(ms, "arc_upstream_retries_total", upstream="app") >= 1

    ups[1].start()
    served = wait_for(lambda: any(a.client().request("GET", "/back").json()["server"] == "e1"
                                  for _ in range(6)), timeout=10 * arc_bin.slow)
    assert served, "e1 was not re-admitted after it came back"


def test_blackholed_endpoint_times_out_and_is_retried_elsewhere(arc, procs, arc_bin):
    hole = procs("hole", mode="blackhole")
    good = procs("good")
    a = arc(resil_config([hole, good],
                         route_extra={"retry": {"backoff": "0ms", "budget_min": 100}},
                         lb={"algorithm": "round_robin"}, timeouts={"ttfb": "300ms"}))
    c = a.client()
    took = []
    for i in range(4):
        t0 = time.monotonic()
        r = c.request("GET", "/bh/%d" % i)
        took.append(time.monotonic() - t0)
        assert r.status == 200 and r.json()["server"] == "good", r
    # (round robin: the black hole's turn comes first again after each retry)
    assert sum(1 for t in took if t >= 0.25) >= 1, took
    ms, _ = a.metrics()
    assert metric(ms, "arc_upstream_retries_total", upstream="app") >= 1
    assert metric(ms, "arc_upstream_timeouts_total", upstream="app") >= 1


@pytest.mark.parametrize("allow", [False, True])
def test_post_is_retried_only_when_allowed(arc, procs, allow):
    good = procs("good")
    dead = "127.0.0.1:%d" % free_port()
    retry = {"backoff": "0ms", "budget_min": 100}
    if allow:
        retry["idempotent_only"] = False
    cfg = make_config([upstream_conf("app", [dead, good.addr], lb={"algorithm": "round_robin"})],
                      routes=[route_conf("r", "/{*rest}", upstream="app", retry=retry)], workers=1)
    a = arc(cfg)
    statuses = [a.client().request("POST", "/p/%d" % i, body=b"x" * 100).status for i in range(6)]
    if allow:
        assert statuses == [200] * 6, statuses
    else:
        assert statuses.count(502) == 3 and statuses.count(200) == 3, statuses
    # GET on the same route is retried either way
    assert all(a.client().request("GET", "/g/%d" % i).status == 200 for i in range(4))


def test_body_up_to_max_body_is_replayed_byte_exact(arc, procs):
    bad = procs("bad", mode="fail503")
    good = procs("good")
    cfg = make_config([upstream_conf("app", [bad.addr, good.addr],
                                     lb={"algorithm": "round_robin"})],
                      routes=[route_conf("r", "/{*rest}", upstream="app",
                                         retry={"backoff": "0ms", "max_body": "64kb",
                                                "budget_min": 100})], workers=1)
    a = arc(cfg)
    body = os.urandom(60000)
    want = hashlib.sha256(body).hexdigest()
    for i in range(4):
        r = a.client().request("PUT", "/put/%d" % i, body=body)
        assert r.status == 200, r
        j = r.json()
        assert j["server"] == "good" and j["body_len"] == len(body) and j["body_sha256"] == want
    # chunked, from the client as it was
    for i in range(2):
        c = a.client()
        c.send(b"PUT /chunked/%d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" % i +
               b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:1000], body[1000:30000]))
               + b"0\r\n\r\n")
        r = c.response(method="PUT")
        assert r.status == 200, r
        assert r.json()["body_sha256"] == hashlib.sha256(body[:30000]).hexdigest()
    # over max_body: not kept, not retried (the 503 goes to the client)
    big = os.urandom(70000)
    statuses = [a.client().request("PUT", "/big/%d" % i, body=big).status for i in range(4)]
    assert sorted(statuses) == [200, 200, 503, 503], statuses


def test_reset_before_response_is_retried(arc, procs):
    rst = procs("rst", mode="reset")
    good = procs("good")
    a = arc(resil_config([rst, good], route_extra={"retry": {"backoff": "0ms", "budget_min": 100}},
                         lb={"algorithm": "round_robin"}))
    for i in range(6):
        r = a.client().request("GET", "/r/%d" % i)
        assert r.status == 200 and r.json()["server"] == "good", r


def test_retry_budget_stops_retry_storms(arc, procs):
    """With every attempt failing, retries stop at the budget: budget_min
    per window when the share of requests is smaller."""
    bad = procs("bad", mode="fail503")
    a = arc(resil_config([bad], route_extra={"retry": {"backoff": "0ms", "budget": 0,
                                                        "budget_min": 2, "budget_window": "1h"}}))
    for i in range(6):
        assert a.client().request("GET", "/s/%d" % i).status == 503
    ms, _ = a.metrics()
    assert metric(ms, "arc_upstream_retries_total", upstream="app") == 2
    assert metric(ms, "arc_upstream_retry_budget_exhausted_total", upstream="app") == 4
    assert metric(ms, "arc_upstream_requests_total", upstream="app") == 8


def _bg_request(a, path, out, key, body=None):
    def run():
        t0 = time.monotonic()
        try:
            r = a.client(timeout=20).request("GET" if body is None else "POST", path, body=body)
            out[key] = (r.status, time.monotonic() - t0)
            if r.status == 200:
                out["%s_sha" % key] = r.json()["body_sha256"]
        except Exception as e:          # noqa: BLE001 - the test reports it
            out[key] = (repr(e), time.monotonic() - t0)
    t = threading.Thread(target=run)
    t.start()
    return t


def _in_flight(a, n):
    ms, _ = a.metrics()
    return metric(ms, "arc_upstream_pool_open", upstream="app") == n and \
        metric(ms, "arc_upstream_pool_idle", upstream="app") == 0


def test_circuit_max_requests_fails_fast(arc, procs, arc_bin):
    up = procs("slow")
    a = arc(resil_config([up], circuit_breaker={"max_requests": 2}))
    out = {}
    ts = [_bg_request(a, "/slow%d?ms=2000" % i, out, i) for i in range(2)]
    assert wait_for(lambda: _in_flight(a, 2), timeout=10), "the two slow requests never started"
    t0 = time.monotonic()
    r = a.client().request("GET", "/third")
    took = time.monotonic() - t0
    assert r.status == 503, r
    assert took < 1.0 * arc_bin.slow, took        # not waiting for the slow ones (2s)
    for t in ts:
        t.join(20)
    assert out[0][0] == 200 and out[1][0] == 200, out
    ms, _ = a.metrics()
    assert metric(ms, "arc_upstream_overflow_total", upstream="app") == 1
    # once they are done, requests pass again
    assert a.client().request("GET", "/after").status == 200


def test_circuit_wait_queue_for_a_connection(arc, procs, arc_bin):
    up = procs("one")
    a = arc(resil_config([up], circuit_breaker={"max_connections": 1, "max_pending": 1,
                                                "pending_timeout": "10s"}))
    out = {}
    first = _bg_request(a, "/slow?ms=1500", out, "a")
    assert wait_for(lambda: _in_flight(a, 1), timeout=10)
    # two more: one waits for the connection (and gets it when the first is
    # done, its body held meanwhile), the other finds the queue full and is
    # answered 503 at once
    body = os.urandom(40000)
    ts = [_bg_request(a, "/q%d" % i, out, i, body=body) for i in range(2)]
    for t in [first] + ts:
        t.join(20)
    assert out["a"][0] == 200, out
    got = sorted([out[0], out[1]], key=lambda x: str(x[0]))
    assert [g[0] for g in got] == [200, 503], out
    assert got[1][1] < 1.0 * arc_bin.slow, out    # the 503 did not wait
    shas = [out[k] for k in ("0_sha", "1_sha") if k in out]
    assert shas == [hashlib.sha256(body).hexdigest()], out
    ms, _ = a.metrics()
    assert metric(ms, "arc_upstream_overflow_total", upstream="app") == 1
    assert metric(ms, "arc_upstream_pool_open", upstream="app") == 1   # never a second one


def test_circuit_pending_timeout(arc, procs, arc_bin):
    up = procs("one")
    a = arc(resil_config([up], circuit_breaker={"max_connections": 1, "max_pending": 4,
                                                "pending_timeout": "300ms"}))
    out = {}
    first = _bg_request(a, "/slow?ms=3000", out, "a")
    assert wait_for(lambda: _in_flight(a, 1), timeout=10)
    t0 = time.monotonic()
    r = a.client().request("POST", "/waits", body=b"b" * 5000)
    took = time.monotonic() - t0
    assert r.status == 503, r
    assert 0.25 <= took < 2.5 * arc_bin.slow, took
    first.join(20)
    assert out["a"][0] == 200
    ms, _ = a.metrics()
    assert metric(ms, "arc_upstream_pending_timeouts_total", upstream="app") == 1


@pytest.mark.parametrize("first", ["refused", "fail503"])
def test_http2_client_body_replayed_to_http1_upstream(arc, procs, first):
    """An HTTP/2 client's body keeps flowing into the replay buffer while
    the retry waits (refused: the connect fails before the body came); the
    retried attempt gets all of it, byte-exact."""
    from test_http2 import H2Client
    good = procs("good")
    bad = "127.0.0.1:%d" % free_port() if first == "refused" else procs("bad", mode="fail503").addr
    cfg = make_config([upstream_conf("app", [bad, good.addr], lb={"algorithm": "round_robin"})],
                      routes=[route_conf("r", "/{*rest}", upstream="app",
                                         retry={"backoff": "100ms", "budget_min": 100})],
                      workers=1)
    a = arc(cfg)
    body = os.urandom(50000)
    for i in range(2):
        c = H2Client(a.port)
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "PUT"), (":scheme", "http"),
                                  (":authority", "h2.test"), (":path", "/h2put/%d" % i)])
        c.flush()
        time.sleep(0.03)                # (the body follows the head, as it may)
        for off in range(0, len(body), 16384):
            c.conn.send_data(sid, body[off:off + 16384], end_stream=off + 16384 >= len(body))
            c.flush()
        status, _, rbody = c.response(sid)
        c.close()
        assert status == 200, (status, rbody[:200])
        j = json.loads(rbody)
        assert j["server"] == "good" and j["body_sha256"] == hashlib.sha256(body).hexdigest(), j


def test_active_health_checks_take_an_endpoint_out_and_back(arc, procs, arc_bin):
    bad = procs("bad", mode="fail503")
    good = procs("good")
    a = arc(resil_config([bad, good], lb={"algorithm": "round_robin"},
                         health={"active": {"interval": "200ms", "timeout": "500ms",
                                            "fail_after": 2, "pass_after": 1,
                                            "path": "/health", "expect_status": [200, "204-299"]}}))

    def active(addr):
        for e in ctl_upstreams(a)["app"]["endpoints"]:
            if e["address"] == addr:
                return e["active"]
    assert wait_for(lambda: active(bad.addr)["state"] == "down", timeout=10 * arc_bin.slow), \
        active(bad.addr)
    v = active(bad.addr)
    assert v["last_status"] == 503 and v["fails_in_a_row"] >= 2, v
    assert active(good.addr)["state"] == "up" and active(good.addr)["last_status"] == 200
    ms, _ = a.metrics()
    assert metric(ms, "arc_upstream_endpoint_active_down", upstream="app", endpoint=bad.addr) == 1
    assert metric(ms, "arc_upstream_endpoint_active_down", upstream="app", endpoint=good.addr) == 0
    # down: no traffic goes there (every request answered by good)
    for i in range(8):
        r = a.client().request("GET", "/x/%d" % i)
        assert r.status == 200 and r.json()["server"] == "good", r
    assert a.wait_stderr("endpoint %s is down" % bad.addr), a.stderr_tail(20)
    # it recovers: one passed check brings it back into rotation
    bad.kill()
    bad.mode = "http"
    bad.start()
    assert wait_for(lambda: active(bad.addr)["state"] == "up", timeout=10 * arc_bin.slow)
    servers = {a.client().request("GET", "/y/%d" % i).json()["server"] for i in range(6)}
    assert servers == {"bad", "good"}, servers


def _reload(a, cfg):
    from arcproc import to_yaml
    done = metric(a.metrics()[0], "arc_config_reloads_total", result="ok")
    with open(a.config_path, "w") as f:
        f.write(to_yaml(cfg))
    a.signal(signal.SIGHUP)
    assert wait_for(lambda: metric(a.metrics()[0], "arc_config_reloads_total", result="ok") > done)


def test_balancer_state_survives_a_reload_that_does_not_change_it(arc, procs):
    """Smooth WRR 5,1,1 picks a a b a c a a: a reload that changes only a
    route keeps the balancer (the sequence goes on), one that changes a
    weight rebuilds it (the sequence starts over)."""
    ups = [procs("a"), procs("b"), procs("c")]

    def cfg(extra_route=None, wb=1):
        # (only /s picks: a probe of the new route on the old config is a 404)
        c = make_config([upstream_conf("app", [], lb={"algorithm": "weighted_round_robin"})],
                        routes=[route_conf("r", "/s", upstream="app")], workers=1)
        c["upstreams"][0]["discovery"]["endpoints"] = [
            {"address": ups[0].addr, "weight": 5}, {"address": ups[1].addr, "weight": wb},
            {"address": ups[2].addr, "weight": 1}]
        if extra_route:
            c["routes"].append(route_conf("x", extra_route, respond={"status": 204}))
        return c
    a = arc(cfg())
    c = a.client()

    def seq(n):
        return "".join(c.request("GET", "/s").json()["server"] for _ in range(n))
    assert seq(3) == "aab"
    _reload(a, cfg(extra_route="/x"))
    assert wait_for(lambda: a.client().request("GET", "/x").status == 204)  # adopted
    assert seq(4) == "acaa"             # (the /x requests did not pick)
    _reload(a, cfg(extra_route="/y", wb=2))
    assert wait_for(lambda: a.client().request("GET", "/y").status == 204)
    # weights 5,2,1: the rebuilt balancer starts over
    assert seq(3) == "aba"


@pytest.mark.parametrize("where", ["backoff", "queue"])
def test_client_gone_while_waiting_for_an_attempt(arc, procs, where):
    """A client that leaves while its request waits (retry backoff, or the
    circuit-breaker queue) ends the exchange cleanly: counted as 499, the
    wait cancelled, and the upstream keeps serving."""
    good = procs("good")
    if where == "backoff":
        # /leave goes to an upstream that refuses: the retry waits 3 s
        cfg = make_config([upstream_conf("app", [good.addr]),
                           upstream_conf("dead", ["127.0.0.1:%d" % free_port()])],
                          routes=[route_conf("l", "/leave/{n}", upstream="dead",
                                             retry={"backoff": "3s", "budget_min": 100}),
                                  route_conf("r", "/{*rest}", upstream="app")], workers=1)
    else:
        cfg = resil_config([good], circuit_breaker={"max_connections": 1, "max_pending": 2,
                                                    "pending_timeout": "10s"})
    a = arc(cfg)
    out, first = {}, None
    if where == "queue":
        first = _bg_request(a, "/slow?ms=2000", out, "a")
        assert wait_for(lambda: _in_flight(a, 1), timeout=10)
    for i in range(2):
        c = a.client()
        c.send(b"PUT /leave/%d HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234" % i)
        time.sleep(0.3)                 # (it is waiting now: 3 s backoff / the queue)
        c.close()
    route = "l" if where == "backoff" else "r"
    assert wait_for(lambda: metric(a.metrics()[0], "arc_requests_total", route=route,
                                   **{"class": "4xx"}) == 2, timeout=10)
    ms, _ = a.metrics()
    if where == "backoff":
        # (a retry is counted on the endpoint it goes to, when it is made:
        # these clients left during the backoff, so none was made)
        assert (metric(ms, "arc_upstream_retries_total", upstream="dead") or 0) == 0
        assert metric(ms, "arc_upstream_connect_errors_total", upstream="dead") == 2
    else:
        assert metric(ms, "arc_upstream_overflow_total", upstream="app") == 0
    if first:
        first.join(20)
        assert out["a"][0] == 200
    for i in range(2):
        r = a.client().request("GET", "/after/%d" % i)
        assert r.status == 200, r
