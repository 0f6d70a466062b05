"""Requests answered by arc itself (respond, redirect, 404, 405) have their
bodies consumed or the connection closed: a body is never parsed as the next
request, so such answers cannot be used to desync a keep-alive connection."""
import pytest

from arcproc import make_config, upstream_conf, route_conf
from httpraw import build_request, chunk_encode

EVIL = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"


@pytest.fixture
def local(arc, servers):
    up = servers.http(name="echo")
    routes = [route_conf("local", "/local", respond={"status": 200, "body": "local"}),
              route_conf("redir", "/redir", redirect={"location": "/elsewhere"}),
              route_conf("getonly", "/getonly", upstream="echo", methods=["GET"]),
              route_conf("up", "/up/{*rest}", upstream="echo")]
    return arc(make_config([upstream_conf("echo", up.addr)], routes=routes)), up


@pytest.mark.parametrize("path,status", [("/local", 200), ("/redir", 302), ("/nowhere", 404), ("/getonly", 405)])
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_local_answer_consumes_body(local, path, status, framing):
    a, up = local
    c = a.client(timeout=5)
    if framing == "length":
        req = build_request("POST", path, body=EVIL)
    else:
        req = build_request("POST", path, headers=[("Transfer-Encoding", "chunked")], body=chunk_encode([EVIL]))
    c.send(req + build_request("GET", "/up/next"))
    r = c.response()
    assert r.status == status, r
    if r.conn_close():
        assert c.wait_closed(5)
        assert b"HTTP/1.1" not in c.trailing
    else:
        r2 = c.response()
        assert r2.status == 200 and r2.json()["target"] == "/up/next", \
            "the request body was parsed as a request: %r" % r2
    assert "/smuggled" not in up.targets()


def test_expect_on_local_route_then_body(local):
    a, up = local
    c = a.client(timeout=5)
    c.send(b"POST /local HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(EVIL))
    r = c.response()
    assert r.status == 200 and r.body == b"local", r
    if r.conn_close():
        assert c.wait_closed(5)
        return
    # The client may still send the body (RFC 9110 §10.1.1): it is not a request.
    c.send(EVIL + build_request("GET", "/up/after"))
    r2 = c.response()
    assert r2.status == 200 and r2.json()["target"] == "/up/after", r2
    assert "/smuggled" not in up.targets()
