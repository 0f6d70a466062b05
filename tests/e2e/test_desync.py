"""Upstream connections that could be out of sync are never reused: after a
ttfb timeout, a client abort, or an upstream that sends a body where none is
allowed (HEAD, 204, 304), the next request still gets its own response."""
from arcproc import make_config, upstream_conf
from upstreams import send_echo


def test_no_reuse_after_ttfb_timeout(arc, servers, arc_bin):
    up = servers.http(name="slow")
    a = arc(make_config([upstream_conf("slow", up.addr, timeouts={"ttfb": "300ms"})], workers=1))
    c = a.client()
    r = c.request("GET", "/slow?ms=700")
    assert r.status == 504, r
    slow = up.conn_of("/slow?ms=700")
    # At once (the late response is still due on the timed-out connection)
    # and after the late response was sent, requests never go to that
    # connection and never get its late response.
    c2 = a.client()
    for i in range(3):
        if i == 1:
            assert slow.closed.wait(5 * arc_bin.slow), "arc kept the upstream connection that timed out"
        r = c2.request("GET", "/fresh/%d" % i)
        assert r.status == 200, r
        assert r.json()["target"] == "/fresh/%d" % i, "got a stale response: %r" % r.body[:200]
        assert r.json()["conn_id"] != slow.id, "request %d went to the timed-out upstream connection" % i


def assert_fresh_connection_serves_next(c, up, bad_target, arc_bin):
    """The upstream connection that carried `bad_target` (and sent bytes past
    its response) is closed by arc, and the following requests on the same
    client connection are each answered 200 with their own response, the
    first of them on a NEW upstream connection."""
    bad = up.conn_of(bad_target)
    assert bad is not None, up.targets()
    assert bad.closed.wait(5 * arc_bin.slow), \
        "arc kept the upstream connection that sent bytes past the end of a response"
    seen = set()
    for i in range(3):
        r = c.request("GET", "/g/%d" % i)
        assert r.status == 200, "request %d after the out-of-sync response: %r" % (i, r)
        j = r.json()
        assert j["target"] == "/g/%d" % i, "got a stale response: %r" % r.body[:200]
        assert j["conn_id"] != bad.id, \
            "request %d reused the out-of-sync upstream connection #%d" % (i, bad.id)
        seen.add(j["conn_id"])
    assert up.conn_of("/g/0").targets[0] == "/g/0", "/g/0 was not the first request of its connection"


def test_body_on_head_response_is_not_relayed_or_reused(arc, servers, arc_bin):
    def h(req):
        req.read_body()
        if req.method == "HEAD":
            # wrong: a body after a HEAD response
            req.conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/")
            return True
        send_echo(req)
        return True
    up = servers.http(handler=h, name="headbody")
    a = arc(make_config([upstream_conf("headbody", up.addr)], workers=1))
    c = a.client()
    r = c.request("HEAD", "/h")
    assert r.status == 200
    assert r.headers.get("Content-Length") == "5"
    assert_fresh_connection_serves_next(c, up, "/h", arc_bin)


def test_body_on_204_is_not_relayed_or_reused(arc, servers, arc_bin):
    def h(req):
        req.read_body()
        if req.path == "/nocontent":
            req.conn.send(b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nINJECTED")
            return True
        send_echo(req)
        return True
    up = servers.http(handler=h, name="b204")
    a = arc(make_config([upstream_conf("b204", up.addr)], workers=1))
    c = a.client()
    r = c.request("GET", "/nocontent")
    assert r.status == 204
    assert r.body == b""
    assert_fresh_connection_serves_next(c, up, "/nocontent", arc_bin)


def test_body_on_304_is_not_relayed_or_reused(arc, servers, arc_bin):
    def h(req):
        req.read_body()
        if req.path == "/notmodified":
            req.conn.send(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n"
                          b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nINJECTED")
            return True
        send_echo(req)
        return True
    up = servers.http(handler=h, name="b304")
    a = arc(make_config([upstream_conf("b304", up.addr)], workers=1))
    c = a.client()
    r = c.request("GET", "/notmodified", headers=[("If-None-Match", '"v1"')])
    assert r.status == 304
    assert r.body == b""
    assert_fresh_connection_serves_next(c, up, "/notmodified", arc_bin)


def test_chunked_case_insensitive_and_leading_zeros(arc, servers):
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr)]))
    c = a.client()
    r = c.request("POST", "/ci", headers=[("Transfer-Encoding", "Chunked")], body=b"0005\r\nhello\r\n0\r\n\r\n")
    assert r.status == 200 and r.json()["body_len"] == 5, r
    r = c.request("POST", "/lz", headers=[("Content-Length", "005")], body=b"hello")
    assert r.status == 200 and r.json()["body_len"] == 5, r
    r = c.request("POST", "/ext", headers=[("Transfer-Encoding", "chunked")],
                  body=b'5;name="quoted value"\r\nhello\r\n0\r\nX-T: 1\r\n\r\n')
    assert r.status == 200 and r.json()["body_len"] == 5, r


def test_ten_thousand_tiny_chunks(arc, servers):
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr)]))
    c = a.client(timeout=20)
    body = b"1\r\nx\r\n" * 10000 + b"0\r\n\r\n"
    r = c.request("POST", "/tiny", headers=[("Transfer-Encoding", "chunked")], body=body)
    assert r.status == 200 and r.json()["body_len"] == 10000, r
