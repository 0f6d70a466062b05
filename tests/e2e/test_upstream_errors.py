"""Upstream failures become clean errors: a refused connect is 502, a slow
upstream is 504 after the ttfb timeout, a malformed or ambiguous response is
502 and never relayed, and a failure after the response head truncates the
client connection instead of pretending the body completed."""
import socket
import time

import pytest

from arcproc import make_config, upstream_conf, metric
from httpraw import free_port, Closed
from upstreams import raw_handler


def assert_close_consistent(c, r):
    """If the response says Connection: close, the connection must close."""
    if r.conn_close():
        assert c.wait_closed(5), "response said Connection: close but the connection stayed open"


def test_upstream_down_is_502(arc, servers):
    a = arc(make_config([upstream_conf("down", "127.0.0.1:%d" % free_port())]))
    c = a.client()
    t0 = time.monotonic()
    r = c.request("GET", "/x")
    assert r.status == 502, r
    assert time.monotonic() - t0 < 5
    assert_close_consistent(c, r)
    if not r.conn_close():
        r = c.request("GET", "/again")
        assert r.status == 502
    ms, _ = a.metrics()
    v = metric(ms, "arc_upstream_connect_errors_total", upstream="down")
    assert v is not None and v >= 1, "arc_upstream_connect_errors_total{upstream=\"down\"} = %r" % v


def test_slow_upstream_is_504_after_ttfb_timeout(arc, servers, arc_bin):
    up = servers.http(name="slow")
    a = arc(make_config([upstream_conf("slow", up.addr, timeouts={"ttfb": "500ms"})]))
    c = a.client()
    t0 = time.monotonic()
    r = c.request("GET", "/slow?ms=4000")
    took = time.monotonic() - t0
    assert r.status == 504, r
    assert 0.4 <= took < 3.0 * arc_bin.slow, "504 after %.2fs with ttfb 500ms" % took
    assert_close_consistent(c, r)
    ms, _ = a.metrics()
    v = metric(ms, "arc_upstream_timeouts_total", upstream="slow")
    assert v is not None and v >= 1
    # a fast request after the timeout works (on a new connection if needed)
    c2 = a.client()
    r2 = c2.request("GET", "/fast")
    assert r2.status == 200, r2


def test_upstream_read_timeout_truncates_response(arc, servers, arc_bin):
    up = servers.http(name="stall")
    a = arc(make_config([upstream_conf("stall", up.addr, timeouts={"read": "500ms"})]))
    c = a.client(timeout=10)
    t0 = time.monotonic()
    c.send(b"GET /stall?bytes=1000 HTTP/1.1\r\nHost: t\r\n\r\n")
    head = c.rd.read_head()
    assert head.startswith(b"HTTP/1.1 200"), head
    # the body can never be completed: arc must close the client connection
    assert c.wait_closed(5 * arc_bin.slow), "client connection not closed after upstream read timeout"
    assert len(c.trailing) < 2000
    assert time.monotonic() - t0 < 6 * arc_bin.slow


MALFORMED = {
    "cl_and_te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad_status_line": b"HTTP/1.1 2000 OK\r\nContent-Length: 5\r\n\r\nhello",
    "not_http": b"SSH-2.0-OpenSSH_9.2\r\n\r\nhello",
    "differing_content_lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "negative_content_length": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello",
    "header_without_colon": b"HTTP/1.1 200 OK\r\nLEAKED-no-colon\r\nContent-Length: 5\r\n\r\nhello",
    "bare_cr_in_header": b"HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: LEAKED=1\r\nContent-Length: 5\r\n\r\nhello",
    "nul_in_header": b"HTTP/1.1 200 OK\r\nX-A: a\x00LEAKED\r\nContent-Length: 5\r\n\r\nhello",
    "space_before_colon": b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello",
    "empty_response": b"",
    "truncated_head": b"HTTP/1.1 200 OK\r\nContent-Le",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_upstream_response_is_502(arc, servers, case):
    up = servers.http(handler=raw_handler(MALFORMED[case]), name="bad")
    a = arc(make_config([upstream_conf("bad", up.addr)]))
    c = a.client()
    r = c.request("GET", "/m")
    assert r.status == 502, "%s: expected 502, got %r" % (case, r)
    raw = r.head + (r.body or b"")
    assert b"LEAKED" not in raw and b"hello" not in raw and b"SSH-2.0" not in raw, \
        "bytes of the malformed upstream response were relayed: %r" % raw
    assert_close_consistent(c, r)


def test_bad_chunked_framing_mid_body_is_not_completed(arc, servers):
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz-not-hex\r\nmore\r\n0\r\n\r\n"
    up = servers.http(handler=raw_handler(data), name="badchunk")
    a = arc(make_config([upstream_conf("badchunk", up.addr)]))
    c = a.client()
    c.send(b"GET /bc HTTP/1.1\r\nHost: t\r\n\r\n")
    try:
        head = c.rd.read_head()
    except Closed:
        pytest.fail("arc closed the client connection without any response although nothing had been "
                    "relayed yet (expected 502, or the 200 head followed by a truncated body)", pytrace=False)
    if head.startswith(b"HTTP/1.1 502"):
        return
    assert head.startswith(b"HTTP/1.1 200"), head
    assert c.wait_closed(5), "connection left open after an invalid chunk from upstream"
    assert b"more" not in c.trailing and not c.trailing.endswith(b"0\r\n\r\n"), \
        "arc completed a body whose upstream framing was invalid: %r" % c.trailing


def test_upstream_reset_mid_body_truncates(arc, servers):
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"z" * 1000
    up = servers.http(handler=raw_handler(data), name="short")
    a = arc(make_config([upstream_conf("short", up.addr)]))
    c = a.client()
    c.send(b"GET /short HTTP/1.1\r\nHost: t\r\n\r\n")
    head = c.rd.read_head()
    if head.startswith(b"HTTP/1.1 502"):
        return
    assert head.startswith(b"HTTP/1.1 200"), head
    assert c.wait_closed(5), "client connection not closed after upstream EOF mid-body"
    assert len(c.trailing) <= 1000


def test_upstream_accepts_and_closes_is_502(arc, servers):
    def h(req):
        return False   # close without answering
    up = servers.http(handler=h, name="rude")
    a = arc(make_config([upstream_conf("rude", up.addr)]))
    c = a.client()
    r = c.request("GET", "/r")
    assert r.status == 502, r


def test_errors_do_not_break_the_worker(arc, servers):
    good = servers.http(name="good")
    from arcproc import route_conf
    routes = [route_conf("down", "/down/{*r}", upstream="down"),
              route_conf("good", "/{*rest}", upstream="good")]
    a = arc(make_config([upstream_conf("down", "127.0.0.1:%d" % free_port()),
                         upstream_conf("good", good.addr)], routes=routes))
    for i in range(20):
        c = a.client()
        assert c.request("GET", "/down/%d" % i).status == 502
        c.close()
        c = a.client()
        assert c.request("GET", "/ok/%d" % i).status == 200
        c.close()


class Blackhole:
    """A listener whose accept backlog is full, so new connects hang."""

    def __init__(self):
        self.l = socket.socket()
        self.l.bind(("127.0.0.1", 0))
        self.l.listen(0)
        self.port = self.l.getsockname()[1]
        self.fill = []
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fill.append(s)
        time.sleep(0.1)

    def close(self):
        for s in self.fill + [self.l]:
            s.close()


def test_connect_timeout_is_504(arc, servers, arc_bin):
    bh = Blackhole()
    try:
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(("127.0.0.1", bh.port))
            pytest.skip("kernel accepted a connect on a full backlog; cannot simulate a connect timeout")
        except socket.timeout:
            pass
        finally:
            probe.close()
        a = arc(make_config([upstream_conf("bh", "127.0.0.1:%d" % bh.port, timeouts={"connect": "300ms"})]))
        c = a.client()
        t0 = time.monotonic()
        r = c.request("GET", "/ct")
        took = time.monotonic() - t0
        assert r.status == 504, r
        assert took < 3 * arc_bin.slow, "504 after %.2fs with connect timeout 300ms" % took
        assert_close_consistent(c, r)
    finally:
        bh.close()


def test_response_bytes_beyond_content_length_are_not_relayed(arc, servers):
    # An upstream that sends more than Content-Length must not be able to
    # inject a response for the client's next request (response desync).
    evil = (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
            b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Injected: 1\r\n\r\nINJECTED")
    state = {"n": 0}

    def h(req):
        req.read_body()
        state["n"] += 1
        if state["n"] == 1:
            req.conn.send(evil)
        else:
            req.conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
        return True
    up = servers.http(handler=h, name="evil")
    a = arc(make_config([upstream_conf("evil", up.addr)], workers=1))
    c = a.client()
    r1 = c.request("GET", "/first")
    assert r1.status == 200 and r1.body == b"hello", r1
    # The connection that sent the extra bytes is out of sync: arc closes it
    # and the next request gets its own answer on a new upstream connection.
    bad = up.conn_of("/first")
    assert bad.closed.wait(5), "arc kept the upstream connection that sent bytes beyond Content-Length"
    r2 = c.request("GET", "/second")
    assert b"INJECTED" not in (r2.body or b"") and r2.headers.get("X-Injected") is None, \
        "bytes the upstream sent beyond Content-Length were served as the next response: %r" % r2
    assert r2.status == 200 and r2.body == b"second", r2
    assert up.conn_of("/second") is not bad, "the out-of-sync upstream connection was reused"


def test_upstream_response_head_too_large_is_502(arc, servers):
    big = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Big-%d: %s\r\n" % (i, b"v" * 1000) for i in range(100)) + \
          b"Content-Length: 2\r\n\r\nok"
    up = servers.http(handler=raw_handler(big), name="bighead")
    a = arc(make_config([upstream_conf("bighead", up.addr)], limits={"max_header_bytes": "32kb"}))
    r = a.client().request("GET", "/bh")
    assert r.status == 502, r


def test_interim_1xx_from_upstream(arc, servers):
    def h(req):
        req.read_body()
        req.conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                      b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
        return True
    up = servers.http(handler=h, name="hints")
    a = arc(make_config([upstream_conf("hints", up.addr)]))
    c = a.client()
    r = c.request("GET", "/hints")
    assert r.status == 200 and r.body == b"final", r
    r = c.request("GET", "/again")
    assert r.status == 200 and r.body == b"final", r


def test_ttfb_counts_from_end_of_request_body(arc, servers):
    # A client uploading slowly must not trip the upstream ttfb timeout: the
    # upstream cannot answer before it has the body.
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr, timeouts={"ttfb": "500ms", "read": "500ms"})]))
    c = a.client()
    c.send(b"POST /slow-upload HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n")
    for i in range(5):
        time.sleep(0.3)
        c.send(b"x" * 10)
    r = c.response()
    assert r.status == 200, r
    assert r.json()["body_len"] == 50


def test_read_timeout_is_inactivity_not_total(arc, servers):
    def h(req):
        req.read_body()
        req.conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(5):
            req.conn.server.stopping.wait(0.3)
            req.conn.send(b"5\r\npart%d\r\n" % i)
        req.conn.send(b"0\r\n\r\n")
        return True
    up = servers.http(handler=h, name="drip")
    a = arc(make_config([upstream_conf("drip", up.addr, timeouts={"ttfb": "500ms", "read": "500ms"})]))
    r = a.client().request("GET", "/drip")
    assert r.status == 200, r
    assert r.body == b"part0part1part2part3part4"
