"""Routing follows the config: no route is 404, a path match with the wrong
method is 405 with Allow, hosts match exactly or by *.suffix (case-insensitive,
port ignored), literals beat captures, redirects substitute {name}, $path and
$query, respond answers locally, and header ops add/set/remove on requests
and responses."""
import pytest

from arcproc import make_config, upstream_conf, route_conf


def routing_config(up):
    routes = [
        route_conf("users", "/users/{id}", upstream="echo", methods=["GET", "HEAD"],
                   headers=[{"op": "set", "name": "X-Route", "value": "users"},
                            {"op": "add", "name": "X-Added", "value": "yes"},
                            {"op": "remove", "name": "X-Secret"}],
                   response_headers=[{"op": "set", "name": "X-Served-By", "value": "arc-test"},
                                     {"op": "remove", "name": "X-Upstream"},
                                     {"op": "add", "name": "X-Extra", "value": "1"}]),
        route_conf("me", "/users/me", respond={"status": 200, "body": "it is me"}),
        route_conf("files", "/files/{*rest}", upstream="echo"),
        route_conf("one-seg", "/one/*/end", upstream="echo"),
        route_conf("old", "/old/{*rest}", redirect={"status": 301, "location": "/new/{rest}?$query"}),
        route_conf("moved", "/moved/{id}", redirect={"location": "https://example.org$path"}),
        route_conf("teapot", "/teapot", respond={"status": 418, "body": "short and stout",
                                                 "headers": {"X-Tea": "earl-grey"}}),
        route_conf("api", "/h", host=["api.example.com"], respond={"status": 200, "body": "api"}),
        route_conf("wild", "/h", host=["*.example.com"], respond={"status": 200, "body": "wild"}),
        route_conf("post-only", "/submit", upstream="echo", methods=["POST"]),
    ]
    return make_config([upstream_conf("echo", up.addr)], routes=routes)


@pytest.fixture
def rt(arc, servers):
    up = servers.http(name="echo")
    return arc(routing_config(up)), up


def test_no_route_is_404(rt):
    a, up = rt
    c = a.client()
    r = c.request("GET", "/nothing/here")
    assert r.status == 404, r
    r = c.request("GET", "/")
    assert r.status == 404, r
    assert up.accepted == 0


def test_wrong_method_is_405_with_allow(rt):
    a, up = rt
    c = a.client()
    r = c.request("DELETE", "/users/42")
    assert r.status == 405, r
    allow = set(r.headers.tokens("allow"))
    assert {"get", "head"} <= allow, r.headers
    assert "delete" not in allow and "post" not in allow
    r = c.request("GET", "/submit")
    assert r.status == 405
    assert "post" in r.headers.tokens("allow")
    assert up.accepted == 0


def test_capture_route_and_request_header_ops(rt):
    a, up = rt
    r = a.client().request("GET", "/users/42", headers=[("X-Secret", "s3cr3t"), ("X-Route", "client-value")])
    assert r.status == 200, r
    hdrs = [(k.lower(), v) for k, v in r.json()["headers"]]
    assert ("x-route", "users") in hdrs and ("x-route", "client-value") not in hdrs
    assert ("x-added", "yes") in hdrs
    assert not any(k == "x-secret" for k, _ in hdrs)


def test_response_header_ops(rt):
    a, up = rt
    r = a.client().request("GET", "/users/7")
    assert r.status == 200
    assert r.headers.get("X-Served-By") == "arc-test"
    assert r.headers.get("X-Upstream") is None
    assert r.headers.get("X-Extra") == "1"
    r = a.client().request("GET", "/files/a")   # other route: no ops
    assert r.headers.get("X-Upstream") == "echo" and r.headers.get("X-Served-By") is None


def test_literal_beats_capture(rt):
    a, up = rt
    r = a.client().request("GET", "/users/me")
    assert r.status == 200 and r.body == b"it is me", r


def test_rest_capture_and_wildcard_segment(rt):
    a, up = rt
    c = a.client()
    r = c.request("GET", "/files/a/b/c.txt")
    assert r.status == 200 and r.json()["target"] == "/files/a/b/c.txt"
    r = c.request("GET", "/one/anything/end")
    assert r.status == 200
    r = c.request("GET", "/one/a/b/end")
    assert r.status == 404
    r = c.request("GET", "/users/1/extra")
    assert r.status == 404


def test_redirect_with_captures_and_query(rt):
    a, up = rt
    c = a.client()
    r = c.request("GET", "/old/x/y?a=1&b=2")
    assert r.status == 301, r
    assert r.headers.get("Location") == "/new/x/y?a=1&b=2"
    r = c.request("GET", "/moved/9?z=1")
    assert r.status == 302, r
    assert r.headers.get("Location") == "https://example.org/moved/9"
    assert up.accepted == 0


def test_respond_action(rt):
    a, up = rt
    r = a.client().request("GET", "/teapot")
    assert r.status == 418
    assert r.body == b"short and stout"
    assert r.headers.get("X-Tea") == "earl-grey"
    assert r.headers.get("Content-Length") == "15"
    r = a.client().request("HEAD", "/teapot")
    assert r.status == 418 and r.body == b""


@pytest.mark.parametrize("host,expect", [
    ("api.example.com", b"api"),
    ("API.Example.COM:8080", b"api"),
    ("foo.example.com", b"wild"),
    ("a.b.example.com", b"wild"),
    ("example.com", None),
    ("other.org", None),
])
def test_host_matching(rt, host, expect):
    a, up = rt
    r = a.client().request("GET", "/h", host=host)
    if expect is None:
        assert r.status == 404, r
    else:
        assert r.status == 200 and r.body == expect, r


def test_absolute_form_host_wins(rt):
    a, up = rt
    c = a.client()
    c.send(b"GET http://api.example.com/h HTTP/1.1\r\nHost: other.org\r\n\r\n")
    r = c.response()
    assert r.status == 200 and r.body == b"api", r
