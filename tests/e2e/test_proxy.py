"""Arc proxies GET and POST requests with Content-Length and chunked bodies
to an upstream and relays Content-Length, chunked and close-delimited
responses byte-exact, over keep-alive client connections."""
import hashlib
import json
import os
import time

from arcproc import make_config, route_conf, upstream_conf
from httpraw import chunk_encode, stream_sha256


def start(arc, servers, **kw):
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr)], **kw))
    return a, up


def test_get_is_proxied(arc, servers):
    a, up = start(arc, servers)
    c = a.client()
    r = c.request("GET", "/hello/world?x=1&y=two")
    assert r.status == 200, r
    j = r.json()
    assert j["method"] == "GET"
    assert j["target"] == "/hello/world?x=1&y=two"
    assert j["body_len"] == 0
    assert r.headers.get("X-Upstream") == "echo"
    assert r.headers.get("Content-Type") == "application/json"


def test_post_content_length_body(arc, servers):
    a, up = start(arc, servers)
    body = bytes(range(256)) * 40 + b"tail"
    r = a.client().request("POST", "/upload", body=body, headers=[("Content-Type", "application/octet-stream")])
    assert r.status == 200, r
    j = r.json()
    assert j["method"] == "POST"
    assert j["body_len"] == len(body)
    assert j["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_post_empty_body_with_content_length_zero(arc, servers):
    a, up = start(arc, servers)
    r = a.client().request("POST", "/empty", body=b"")
    assert r.status == 200, r
    assert r.json()["body_len"] == 0


def test_post_chunked_body(arc, servers):
    a, up = start(arc, servers)
    pieces = [b"a" * 1, b"b" * 100, b"c" * 70000, b"d" * 3]
    body = b"".join(pieces)
    r = a.client().request("POST", "/chunked-upload", headers=[("Transfer-Encoding", "chunked")],
                           body=chunk_encode(pieces))
    assert r.status == 200, r
    j = r.json()
    assert j["body_len"] == len(body)
    assert j["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_post_chunked_with_extensions_and_trailers(arc, servers):
    a, up = start(arc, servers)
    raw = b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    r = a.client().request("POST", "/ext", headers=[("Transfer-Encoding", "chunked")], body=raw)
    assert r.status == 200, r
    j = r.json()
    assert j["body_len"] == 11
    assert j["body_sha256"] == hashlib.sha256(b"hello world").hexdigest()


def test_chunked_response_is_relayed(arc, servers):
    a, up = start(arc, servers)
    c = a.client()
    r = c.request("GET", "/chunked")
    assert r.status == 200, r
    assert r.body == b"hello chunked world" + b"x" * 70000
    # the connection stays usable afterwards
    r2 = c.request("GET", "/after")
    assert r2.status == 200 and r2.json()["target"] == "/after"


def test_close_delimited_response_is_relayed(arc, servers):
    a, up = start(arc, servers)
    c = a.client()
    r = c.request("GET", "/close-delimited")
    assert r.status == 200, r
    expected = b"".join(b"part%d-" % i + b"y" * 10000 for i in range(5))
    assert r.body == expected
    if r.framing == "close":
        assert c.wait_closed(5)


def test_many_requests_on_one_keepalive_connection(arc, servers):
    a, up = start(arc, servers)
    c = a.client()
    for i in range(30):
        if i % 3 == 0:
            body = b"x" * (i * 100)
            r = c.request("POST", "/k/%d" % i, body=body)
            assert r.json()["body_len"] == len(body)
        else:
            r = c.request("GET", "/k/%d" % i)
        assert r.status == 200, r
        assert r.json()["target"] == "/k/%d" % i
        assert not r.conn_close()


def test_request_target_bytes_preserved(arc, servers):
    a, up = start(arc, servers)
    target = "/a%20b/./c/../d;p=1?q=%2F&r=a+b&s"
    r = a.client().request("GET", target)
    assert r.status == 200, r
    assert r.json()["target"] == target


def test_http10_client_gets_response_and_close(arc, servers):
    a, up = start(arc, servers)
    c = a.client()
    c.send(b"GET /old HTTP/1.0\r\n\r\n")
    r = c.response()
    assert r.status == 200, r
    assert json.loads(r.body)["path"] == "/old"
    assert c.wait_closed(5), "HTTP/1.0 connection without keep-alive must be closed"


def test_request_and_response_headers_pass_through(arc, servers):
    a, up = start(arc, servers)
    r = a.client().request("GET", "/h", headers=[("X-Custom", "v1"), ("X-Custom", "v2"),
                                                 ("Accept", "*/*"), ("Cookie", "a=b; c=d")])
    assert r.status == 200
    hdrs = [(k.lower(), v) for k, v in r.json()["headers"]]
    assert ("x-custom", "v1") in hdrs and ("x-custom", "v2") in hdrs
    assert ("cookie", "a=b; c=d") in hdrs
    assert ("host", "test.local") in hdrs


def test_20mb_chunked_both_directions(arc, servers):
    # (max_body 0: over the 10mb default)
    a, up = start(arc, servers, routes=[route_conf("default", "/{*rest}", upstream="echo",
                                                   max_body=0)])
    c = a.client(timeout=30)
    block = bytes(range(256)) * 256   # 64 KiB
    n = 320
    h = hashlib.sha256()
    c.send(b"POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(n):
        c.send(b"%x\r\n" % len(block) + block + b"\r\n")
        h.update(block)
    c.send(b"0\r\n\r\n")
    r = c.response()
    assert r.status == 200, r
    assert r.json()["body_len"] == n * len(block)
    assert r.json()["body_sha256"] == h.hexdigest()
    r = c.request("GET", "/stream?bytes=%d&chunked=1" % (20 << 20), store_body=False)
    assert r.status == 200
    assert r.body_len == 20 << 20
    assert r.body_sha256 == stream_sha256(20 << 20)


def test_chunked_response_to_http10_client_is_not_chunked(arc, servers):
    # HTTP/1.0 recipients don't understand chunked (RFC 9112 §7): arc must
    # decode it and delimit the body by closing the connection.
    a, up = start(arc, servers)
    c = a.client()
    c.send(b"GET /chunked HTTP/1.0\r\nHost: t\r\n\r\n")
    r = c.response()
    assert r.status == 200
    assert "chunked" not in r.headers.tokens("transfer-encoding"), r.headers
    assert r.body == b"hello chunked world" + b"x" * 70000


def test_absolute_form_forwarded_as_origin_form(arc, servers):
    # RFC 9112 §3.2.2: the target's authority replaces Host; the upstream
    # gets an origin-form request-target.
    a, up = start(arc, servers)
    c = a.client()
    c.send(b"GET http://api.example.com/abs/path?q=1 HTTP/1.1\r\nHost: ignored.example\r\n\r\n")
    r = c.response()
    assert r.status == 200, r
    j = r.json()
    assert j["target"] == "/abs/path?q=1"
    hosts = [v for k, v in j["headers"] if k.lower() == "host"]
    assert hosts == ["api.example.com"], hosts


def test_many_headers_forwarded_intact(arc, servers):
    a, up = start(arc, servers)
    sent = [("X-Many-%02d" % i, "value-%d-" % i + "v" * 200) for i in range(90)]
    r = a.client().request("GET", "/many", headers=sent)
    assert r.status == 200, r
    got = [(k, v) for k, v in r.json()["headers"] if k.lower().startswith("x-many-")]
    assert [(k.lower(), v) for k, v in got] == [(k.lower(), v) for k, v in sent]


def test_client_disconnect_releases_slow_upstream_request(arc, servers, arc_bin):
    # A client that goes away while its request is in flight: arc must not
    # use that upstream connection for someone else's request while the
    # abandoned response is still due on it (a half-closed client is still
    # owed its response, so once that response is complete the connection
    # may be pooled again).
    a, up = start(arc, servers, workers=1)
    c = a.client()
    c.send(b"GET /slow?ms=800 HTTP/1.1\r\nHost: t\r\n\r\n")
    deadline = time.monotonic() + 5 * arc_bin.slow
    while up.conn_of("/slow?ms=800") is None and time.monotonic() < deadline:
        time.sleep(0.02)
    slow = up.conn_of("/slow?ms=800")
    assert slow is not None, "the request never reached the upstream"
    c.close()
    c2 = a.client()
    r = c2.request("GET", "/fresh")
    assert r.status == 200 and r.json()["target"] == "/fresh", r
    assert r.json()["conn_id"] != slow.id, "/fresh was sent on the busy upstream connection"
    deadline = time.monotonic() + 5 * arc_bin.slow
    while slow.served == 0 and not slow.closed.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)    # until the upstream has sent the abandoned response
    assert slow.served == 1 or slow.closed.is_set()
    r = c2.request("GET", "/fresh2")
    assert r.status == 200 and r.json()["target"] == "/fresh2", r


def test_workers_zero_means_one_per_cpu(arc, servers):
    a, up = start(arc, servers, workers=0)
    assert a.workers == os.cpu_count()


def test_two_listeners(arc, servers):
    up = servers.http(name="echo")
    cfg = make_config([upstream_conf("echo", up.addr)])
    cfg["listeners"].append({"name": "second", "kind": "http", "bind": "127.0.0.1:0"})
    a = arc(cfg)
    assert set(a.listeners) == {"http", "second"}
    assert a.listeners["http"] != a.listeners["second"]
    for name in ("http", "second"):
        r = a.client(listener=name).request("GET", "/via-" + name)
        assert r.status == 200 and r.json()["target"] == "/via-" + name


def test_round_robin_spreads_over_endpoints(arc, servers):
    u1 = servers.http(name="one")
    u2 = servers.http(name="two")
    a = arc(make_config([upstream_conf("pair", [u1.addr, u2.addr], lb={"algorithm": "round_robin"})], workers=1))
    seen = set()
    c = a.client()
    for i in range(10):
        r = c.request("GET", "/rr/%d" % i)
        assert r.status == 200
        seen.add(r.headers.get("X-Upstream"))
    assert seen == {"one", "two"}


def test_obs_text_and_tabs_in_values_are_accepted(arc, servers):
    # RFC 9110 §5.5: field values may contain HTAB, SP and obs-text bytes.
    a, up = start(arc, servers)
    c = a.client()
    c.send(b"GET /o HTTP/1.1\r\nHost: t\r\nX-Latin: caf\xe9\r\nX-Tab: a\tb\r\nX-Empty:\r\n\r\n")
    r = c.response()
    assert r.status == 200, r
    hdrs = {k.lower(): v for k, v in r.json()["headers"]}
    assert hdrs["x-latin"] == "caf\xe9"
    assert hdrs["x-tab"] == "a\tb"
    assert hdrs.get("x-empty") == ""


def test_http10_keepalive_is_honoured(arc, servers):
    # HTTP/1.0 with Connection: keep-alive (RFC 9112 §9.3 / appendix C.2.2):
    # arc answers with an explicit "Connection: keep-alive" and a length-
    # delimited body, and the connection carries the next request.
    a, up = start(arc, servers)
    c = a.client()
    c.send(b"GET /k10 HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n")
    r = c.response()
    assert r.status == 200
    assert "keep-alive" in r.headers.tokens("connection"), r.headers
    assert r.framing == "length", r.framing
    c.send(b"GET /k10b HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n")
    r2 = c.response()
    assert r2.status == 200 and r2.json()["target"] == "/k10b"
    assert "keep-alive" in r2.headers.tokens("connection"), r2.headers
    # and without keep-alive the last one closes the connection
    c.send(b"GET /k10c HTTP/1.0\r\nHost: t\r\n\r\n")
    r3 = c.response()
    assert r3.status == 200 and r3.json()["target"] == "/k10c"
    assert c.wait_closed(5), "HTTP/1.0 response without keep-alive but the connection stayed open"
