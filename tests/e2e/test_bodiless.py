"""Responses that have no body by definition (HEAD, 204, 304) are relayed
without one even when the upstream announces a Content-Length, so a
keep-alive connection stays in sync for the next request."""
from arcproc import make_config, upstream_conf


def test_head_204_304_keep_connection_in_sync(arc, servers):
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr)]))
    c = a.client(timeout=5)
    r = c.request("HEAD", "/head")
    assert r.status == 200, r
    assert int(r.headers.get("Content-Length")) > 0   # announced length kept
    r = c.request("GET", "/status/204")
    assert r.status == 204, r
    # RFC 9110 §8.6: no Content-Length in a 204, not even 0
    assert r.headers.get("Content-Length") is None, r.headers
    assert r.headers.get("Transfer-Encoding") is None
    r = c.request("GET", "/status/304", headers=[("If-None-Match", '"v1"')])
    assert r.status == 304, r
    assert r.headers.get("ETag") == '"v1"'
    r = c.request("HEAD", "/stream?bytes=5000000")
    assert r.status == 200
    r = c.request("GET", "/final")
    assert r.status == 200 and r.json()["target"] == "/final"
    # nothing stray is left on the wire
    c.sock.settimeout(0.3)
    try:
        extra = c.sock.recv(100)
    except OSError:
        extra = b""
    assert extra == b"", "stray bytes after responses: %r" % extra


def test_pipelined_bodiless_responses(arc, servers):
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr)]))
    c = a.client(timeout=5)
    c.send(b"HEAD /a HTTP/1.1\r\nHost: t\r\n\r\nGET /status/204 HTTP/1.1\r\nHost: t\r\n\r\n"
           b"GET /status/304 HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n")
    assert c.response(method="HEAD").status == 200
    assert c.response().status == 204
    assert c.response().status == 304
    r = c.response()
    assert r.status == 200 and r.json()["target"] == "/b"


def test_chunked_head_response(arc, servers):
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr)]))
    c = a.client(timeout=5)
    r = c.request("HEAD", "/stream?bytes=100000&chunked=1")
    assert r.status == 200
    r = c.request("GET", "/after")
    assert r.status == 200 and r.json()["target"] == "/after"


def test_304_with_content_length_has_no_body(arc, servers):
    # A 304 may carry the Content-Length of the selected representation
    # (RFC 9110 §8.6); it still has no body.
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr)]))
    c = a.client(timeout=5)
    r = c.request("GET", "/status/304?cl=1234")
    assert r.status == 304, r
    r = c.request("GET", "/next")
    assert r.status == 200 and r.json()["target"] == "/next"
