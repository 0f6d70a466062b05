"""action.retry applies to HTTP/2 upstreams (`protocol: http2`) as to
HTTP/1 ones: a status in `on` is dropped unseen and the request goes again
(to another endpoint when there is one), with its body replayed byte-exact;
a reset before the head, a refused connection and a first-byte timeout are
retried; a POST only with idempotent_only: false; a body over max_body is
not retried; the budget caps retries; without action.retry the failure
reaches the client. Retries are counted in arc_upstream_retries_total. The
upstreams are tests/e2e/h2_upstreams.H2Server (python3-h2)."""
import hashlib
import threading

import pytest

from arcproc import make_config, metric, upstream_conf
from h2_upstreams import H2Server, INTERNAL_ERROR
from h2_upstreams import gw, h2s  # noqa: F401 (pytest fixtures)
from httpraw import free_port




class FailFirst:
    """A handler that fails the first `n` streams of each path (status
    `status`, or a reset when status is None, or silence for `hang_s`
    seconds when hang_s is set) and answers the others 200 with the sha256
    of the body it got."""

    def __init__(self, n=1, status=503, hang_s=None):
        self.n, self.status, self.hang_s = n, status, hang_s
        self.seen = {}
        self.lock = threading.Lock()

    def __call__(self, st):
        st.read_body()
        with self.lock:
            k = self.seen[st.path] = self.seen.get(st.path, 0) + 1
        if k <= self.n:
            if self.hang_s:
                st.sleep(self.hang_s)
                return
            if self.status is None:
                st.reset(INTERNAL_ERROR)
                return
            st.respond(self.status, [("content-type", "text/plain")], b"failed")
            return
        body = hashlib.sha256(bytes(st.body)).hexdigest().encode()
        st.respond(200, [("content-type", "text/plain"), ("x-server", st.conn.server.name)], body)


def config(addrs, retry=None, lb="round_robin", timeouts=None):
    up = upstream_conf("h2up", addrs, protocol="http2", lb={"algorithm": lb},
                       **({"timeouts": timeouts} if timeouts else {}))
    action = {"upstream": "h2up"}
    if retry is not None:
        action["retry"] = retry
    return make_config([up], routes=[{"name": "r", "match": {"path": "/{*rest}"},
                                      "action": action}], workers=1)


def retries(a):
    return metric(a.metrics()[0], "arc_upstream_retries_total", upstream="h2up") or 0


def sha(b):
    return hashlib.sha256(b).hexdigest().encode()


def test_status_in_on_is_retried_with_the_body_replayed(gw, h2s):
    fail = FailFirst(n=1, status=503)
    srv = h2s(name="one", handlers={"/a": fail, "/b": fail, "/post": fail})
    a = gw(config(srv.addr, retry={"on": [503], "idempotent_only": False}))
    c = a.client()
    r = c.request("GET", "/a")
    assert r.status == 200 and r.body == sha(b""), r
    body = bytes(range(256)) * 100
    r = c.request("PUT", "/b", body=body)
    assert r.status == 200 and r.body == sha(body), r
    # (a POST with idempotent_only: false)
    r = c.request("POST", "/post", body=b"x" * 1000)
    assert r.status == 200 and r.body == sha(b"x" * 1000), r
    # the same endpoint (the only one) saw each request twice, the body whole both times
    assert [len(srv.streams(p)) for p in ("/a", "/b", "/post")] == [2, 2, 2]
    assert all(bytes(s.body) == body for s in srv.streams("/b"))
    assert retries(a) == 3


def test_next_attempt_goes_to_another_endpoint(gw, h2s):
    bad = h2s(name="bad", handlers={"/x": FailFirst(n=1000, status=503)})
    good = h2s(name="good", handlers={"/x": FailFirst(n=0)})
    a = gw(config([bad.addr, good.addr], retry={"on": [503], "budget": 100}))
    c = a.client()
    for _ in range(8):
        r = c.request("GET", "/x")
        assert r.status == 200 and r.headers.get("x-server") == "good", r
    assert len(bad.streams("/x")) >= 1
    assert retries(a) == len(bad.streams("/x"))


def test_without_retry_the_status_reaches_the_client(gw, h2s):
    srv = h2s(name="one", handlers={"/a": FailFirst(n=1, status=503)})
    a = gw(config(srv.addr))
    assert a.client().request("GET", "/a").status == 503
    assert len(srv.streams("/a")) == 1 and retries(a) == 0


@pytest.mark.parametrize("allow", [False, True])
def test_post_is_retried_only_when_allowed(gw, h2s, allow):
    srv = h2s(name="one", handlers={"/p": FailFirst(n=1, status=None)})
    a = gw(config(srv.addr, retry={"idempotent_only": not allow}))
    r = a.client().request("POST", "/p", body=b"payload")
    if allow:
        assert r.status == 200 and r.body == sha(b"payload"), r
        assert len(srv.streams("/p")) == 2
    else:
        assert r.status == 502, r
        assert len(srv.streams("/p")) == 1


def test_reset_before_head_is_retried(gw, h2s):
    srv = h2s(name="one", handlers={"/r": FailFirst(n=1, status=None)})
    a = gw(config(srv.addr, retry={}))
    r = a.client().request("GET", "/r")
    assert r.status == 200, r
    assert len(srv.streams("/r")) == 2 and retries(a) == 1


def test_refused_connection_is_retried_elsewhere(gw, h2s):
    good = h2s(name="good", handlers={"/c": FailFirst(n=0)})
    dead = "127.0.0.1:%d" % free_port()
    a = gw(config([dead, good.addr], retry={"budget": 100}))
    c = a.client()
    for _ in range(6):
        r = c.request("GET", "/c")
        assert r.status == 200, r
    assert retries(a) >= 1


def test_first_byte_timeout_is_retried(gw, h2s):
    srv = h2s(name="one", handlers={"/t": FailFirst(n=1, hang_s=5)})
    a = gw(config(srv.addr, retry={"on": [504]}, timeouts={"ttfb": "300ms"}))
    r = a.client().request("GET", "/t")
    assert r.status == 200, r
    assert len(srv.streams("/t")) == 2 and retries(a) == 1


def test_body_over_max_body_is_not_retried(gw, h2s):
    srv = h2s(name="one", handlers={"/m": FailFirst(n=1, status=503)})
    a = gw(config(srv.addr, retry={"on": [503], "max_body": 100}))
    c = a.client()
    assert c.request("PUT", "/m", body=b"y" * 101).status == 503
    assert c.request("PUT", "/m", body=b"y" * 100).status == 200   # (2nd stream: answered)
    assert retries(a) == 0


def test_budget_caps_retries(gw, h2s):
    srv = h2s(name="one", handlers={"/b": FailFirst(n=1000, status=503)})
    a = gw(config(srv.addr, retry={"on": [503], "budget": 0, "budget_min": 2,
                                   "budget_window": "1h"}))
    c = a.client()
    for _ in range(5):
        assert c.request("GET", "/b").status == 503
    assert retries(a) == 2
    assert (metric(a.metrics()[0], "arc_upstream_retry_budget_exhausted_total",
                   upstream="h2up") or 0) == 3


def test_chunked_body_and_trailers_are_replayed(gw, h2s):
    from httpraw import build_request, chunk_encode
    fail = FailFirst(n=1, status=503)
    srv = h2s(name="one", handlers={"/t": fail})
    a = gw(config(srv.addr, retry={"on": [503]}))
    c = a.client()
    c.send(build_request("PUT", "/t", [("Transfer-Encoding", "chunked"), ("TE", "trailers")], None) +
           chunk_encode([b"part1-", b"part2"], [("X-Sum", "11")]))
    r = c.response()
    assert r.status == 200 and r.body == sha(b"part1-part2"), r
    got = srv.streams("/t")
    assert len(got) == 2
    for st in got:
        assert bytes(st.body) == b"part1-part2"
        assert [list(t) for t in st.trailers] == [["x-sum", "11"]], st.trailers


def test_http2_client_body_replayed_to_http2_upstream(gw, h2s):
    """An HTTP/2 client's body (in two DATA frames) reaches the second
    stream whole after the first was answered 503."""
    from h2_upstreams import H2Client
    srv = h2s(name="one", handlers={"/h": FailFirst(n=1, status=503)})
    a = gw(config(srv.addr, retry={"on": [503], "idempotent_only": False}))
    c = H2Client(a.port)
    try:
        sid = c.request("/h", method="POST", end=False)
        c.send_body(sid, b"a" * 3000, end=False)
        c.send_body(sid, b"b" * 3000, end=True)
        s = c.wait(sid)[0]
    finally:
        c.close()
    assert s.status == 200 and bytes(s.body) == sha(b"a" * 3000 + b"b" * 3000), s
    assert [bytes(st.body) for st in srv.streams("/h")] == [b"a" * 3000 + b"b" * 3000] * 2
    assert retries(a) == 1


def test_body_still_arriving_during_the_retry(gw, h2s):
    """The first stream is answered 503 before the body ended; the client's
    later bytes (sent during the backoff or after the next stream opened)
    reach the next stream after those already kept."""
    import time
    from h2_upstreams import H2Client
    seen = {"n": 0}

    def early(st):
        seen["n"] += 1
        if seen["n"] == 1:
            st.respond(503, [("content-type", "text/plain")], b"early")
            return
        st.read_body()
        st.respond(200, [("content-type", "text/plain")], sha(bytes(st.body)))
    srv = h2s(name="one", handlers={"/e": early})
    a = gw(config(srv.addr, retry={"on": [503], "idempotent_only": False,
                                   "backoff": "200ms"}))
    c = H2Client(a.port)
    try:
        sid = c.request("/e", method="PUT", end=False)
        c.send_body(sid, b"first-", end=False)
        srv.wait_stream("/e", n=1)
        time.sleep(0.1)                 # (inside the backoff)
        c.send_body(sid, b"second-", end=False)
        srv.wait_stream("/e", n=2, timeout=10)
        c.send_body(sid, b"third", end=True)
        s = c.wait(sid)[0]
    finally:
        c.close()
    assert s.status == 200 and bytes(s.body) == sha(b"first-second-third"), s
    assert bytes(srv.streams("/e")[1].body) == b"first-second-third"
