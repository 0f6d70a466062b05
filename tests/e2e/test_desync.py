"""Upstream connections that could be out of sync are never reused: after a
ttfb timeout, a client abort, or an upstream that sends a body where none is
allowed (HEAD, 204, 304), the next request still gets its own response."""
import time

from arcproc import make_config, upstream_conf
from upstreams import send_echo


def test_no_reuse_after_ttfb_timeout(arc, servers):
    up = servers.http(name="slow")
    a = arc(make_config([upstream_conf("slow", up.addr, timeouts={"ttfb": "300ms"})], workers=1))
    c = a.client()
    r = c.request("GET", "/slow?ms=700")
    assert r.status == 504, r
    time.sleep(0.8)     # the late response has now arrived on that upstream connection
    c2 = a.client()
    for i in range(3):
        r = c2.request("GET", "/fresh/%d" % i)
        assert r.status == 200, r
        assert r.json()["target"] == "/fresh/%d" % i, "got a stale response: %r" % r.body[:200]


def test_body_on_head_response_is_not_relayed_or_reused(arc, servers):
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
    time.sleep(0.1)
    for i in range(3):
        r = c.request("GET", "/g/%d" % i)
        assert r.status in (200, 502), r
        if r.status == 200:
            assert r.json()["target"] == "/g/%d" % i


def test_body_on_204_is_not_relayed_or_reused(arc, servers):
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
    time.sleep(0.1)
    for i in range(3):
        r = c.request("GET", "/g/%d" % i)
        assert b"INJECTED" not in (r.body or b""), "bytes after a 204 were served as a response: %r" % r
        assert r.status in (200, 502), r
        if r.status == 200:
            assert r.json()["target"] == "/g/%d" % i


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
