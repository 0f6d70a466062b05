"""Pipelined requests sent in one write (or split at arbitrary byte
boundaries) are all answered, in request order, even when an earlier request
is slow or a later one is answered locally by arc."""
import json
import time

from arcproc import make_config, upstream_conf, route_conf
from httpraw import build_request


def start(arc, servers, routes=None):
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr)], routes=routes))
    return a, up


def test_pipelined_requests_answered_in_order(arc, servers):
    a, up = start(arc, servers)
    reqs = [("GET", "/p/1", None), ("POST", "/p/2", b"body-two"), ("GET", "/slow?ms=300&id=3", None),
            ("GET", "/p/4", None), ("HEAD", "/p/5", None), ("POST", "/p/6", b"x" * 5000), ("GET", "/p/7", None)]
    c = a.client()
    c.send(b"".join(build_request(m, t, body=b) for m, t, b in reqs))
    for m, t, b in reqs:
        r = c.response(method=m)
        assert r.status == 200, (t, r)
        if m == "HEAD":
            assert r.body == b""
            continue
        j = r.json()
        assert j["target"] == t, "responses out of order"
        assert j["method"] == m
        assert j["body_len"] == (len(b) if b else 0)


def test_pipeline_with_local_responses_keeps_order(arc, servers):
    routes = [route_conf("local", "/local", respond={"status": 200, "body": "local-body"}),
              route_conf("default", "/{*rest}", upstream="echo")]
    a, up = start(arc, servers, routes)
    c = a.client()
    c.send(build_request("GET", "/slow?ms=500") + build_request("GET", "/local")
           + build_request("GET", "/nowhere-but-upstream") + build_request("GET", "/local"))
    r1 = c.response()
    assert r1.status == 200 and r1.json()["path"] == "/slow", r1
    r2 = c.response()
    assert r2.status == 200 and r2.body == b"local-body", r2
    r3 = c.response()
    assert r3.status == 200 and r3.json()["path"] == "/nowhere-but-upstream", r3
    r4 = c.response()
    assert r4.body == b"local-body"


def test_pipeline_split_at_every_byte_boundary(arc, servers):
    # Four pipelined requests (no body, Content-Length body, chunked body)
    # sent in two writes, split once at every byte boundary in turn, then
    # once more a byte at a time: every split point in a request line, a
    # field line, a CRLF pair, the end of a head and a body must give the
    # same four responses in order.
    a, up = start(arc, servers)
    data = (build_request("GET", "/s/1") + build_request("POST", "/s/2", body=b"hello")
            + build_request("POST", "/s/3", headers=[("Transfer-Encoding", "chunked")],
                            body=b"3\r\nabc\r\n0\r\n\r\n") + build_request("GET", "/s/4"))
    expect = (("/s/1", 0), ("/s/2", 5), ("/s/3", 3), ("/s/4", 0))
    c = a.client()

    def check(what):
        for t, n in expect:
            try:
                r = c.response()
            except OSError as e:
                raise AssertionError("%s: no response for %s (%r)" % (what, t, e)) from None
            assert r.status == 200, (what, r)
            j = r.json()
            assert (j["target"], j["body_len"]) == (t, n), (what, j["target"], j["body_len"])

    for k in range(1, len(data)):
        c.send(data[:k])
        time.sleep(0.003)   # let the first part arrive on its own
        c.send(data[k:])
        check("split at byte %d of %d" % (k, len(data)))
    for i in range(len(data)):
        c.send(data[i:i + 1])
        time.sleep(0.001)
    check("one byte per write")


def test_deep_pipeline(arc, servers):
    a, up = start(arc, servers)
    c = a.client()
    n = 100
    c.send(b"".join(build_request("GET", "/d/%d" % i) for i in range(n)))
    for i in range(n):
        r = c.response()
        assert r.status == 200
        assert json.loads(r.body)["target"] == "/d/%d" % i
