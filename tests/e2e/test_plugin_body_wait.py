"""Pause inside body and trailer callbacks, and trailers added to a message
that has none, through the real binary (examples/plugins/c/bodywait.c), on
HTTP/1.1 and HTTP/2 clients: a body filter that holds a body
(StopIterationAndBuffer) and returns StopIteration at end_of_stream makes
the exchange wait until proxy_continue_stream (here from
proxy_on_http_call_response), seeing and rewriting the whole body; its
pause_timeout and on_error apply; max_body_buffer bounds what it holds."""
import os
import re
import threading
import time

import pytest

from arcproc import metric, wait_for
from httpraw import chunk_encode
from test_plugin_bodies import cfg as body_cfg, curl, echo, gw, h2s, hdrs  # noqa: F401 (fixtures)

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "plugins")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("plugin-wait-cache")
    os.chmod(d, 0o700)
    return str(d)


def wait_plugin(**kw):
    p = {"name": "bw", "file": os.path.join(FIX, "c_bodywait.wasm"), "budget": "500ms",
         "config": "check", "pause_timeout": "60s"}
    p.update(kw)
    return p


def conf(servers, cache_dir, **kw):
    app = servers.http(name="app")
    check = servers.http(name="check")
    c = body_cfg(app.addr, [wait_plugin(**kw)], cache_dir)
    from arcproc import upstream_conf
    c["upstreams"].append(upstream_conf("check", check.addr))
    return c, app, check


def waiting(a):
    m = re.search(r'^arc_plugin_gauge\{plugin="bw",name="waiting"\} (-?\d+)$', a.metrics()[1], re.M)
    return int(m.group(1)) if m else 0


def in_thread(fn, out):
    def run():
        try:
            out.append(fn())
        except Exception as e:          # reported by the test's assertion
            out.append(("error", repr(e)))
    t = threading.Thread(target=run)
    t.start()
    return t


@pytest.mark.parametrize("proto", ["http1", "http2"])
def test_request_body_waits_for_the_filter_and_continues(arc, servers, cache_dir, proto):
    """The filter buffers the request body, and at end_of_stream calls the
    check upstream and pauses: the upstream attempt waits (the worker serves
    others meanwhile); the answer continues it with the body the filter
    rewrote during the pause (whole, so with its Content-Length)."""
    c, app, check = conf(servers, cache_dir)
    a = arc(c)
    body = b"hello body"
    out = []
    if proto == "http2":
        t = in_thread(lambda: curl(a.port, "/held", ["-H", "X-Body-Wait: /slow?ms=1500"],
                                   data=body), out)
    else:
        t = in_thread(lambda: (lambda r: (r.status, {}, r.body))(
            a.client(timeout=60).request("POST", "/held", headers=[("X-Body-Wait", "/slow?ms=1500")],
                                         body=body)), out)
    assert wait_for(lambda: "/slow?ms=1500" in check.targets(), timeout=30), check.targets()
    assert "/held" not in app.targets()
    assert waiting(a) == 1
    cl = a.client()
    for _ in range(3):                  # the worker goes on meanwhile
        assert cl.request("GET", "/free").status == 200
    assert not out
    t.join(60)
    assert len(out) == 1 and out[0][0] == 200, out
    import json
    e = json.loads(out[0][2])
    want = "hello body[waited 10][checked]"
    assert e["body"] == want, e
    assert hdrs(e).get("content-length") == str(len(want)), hdrs(e)
    assert waiting(a) == 0


@pytest.mark.parametrize("proto", ["http1", "http2"])
def test_request_body_wait_answered_or_timed_out(arc, servers, cache_dir, proto):
    """The check says no: the filter answers 403 from
    proxy_on_http_call_response and the app never sees the request. A filter
    that never continues gets its pause_timeout: 504 (fail_closed), counted
    as plugin_timeout."""
    c, app, check = conf(servers, cache_dir, pause_timeout="1s")
    a = arc(c)

    def post(path, wait):
        if proto == "http2":
            st, h, b = curl(a.port, path, ["-H", "X-Body-Wait: " + wait], data=b"abc")
            return st, b
        r = a.client(timeout=60).request("POST", path, headers=[("X-Body-Wait", wait)], body=b"abc")
        return r.status, r.body
    st, b = post("/no", "/status/401")
    assert st == 403 and b == b"denied by the check\n"
    t0 = time.monotonic()
    st, b = post("/stalled", "stall")
    assert st == 504 and time.monotonic() - t0 >= 0.9
    assert "/no" not in app.targets() and "/stalled" not in app.targets()
    assert metric(a.metrics()[0], "arc_errors_total", kind="plugin_timeout") == 1
    # continue_stream in its own callback: its StopIteration is a Continue
    st, b = post("/self", "self")
    assert st == 200 and b'abc[waited 3]' in b


def test_request_body_wait_fail_open_passes_the_held_body(arc, servers, cache_dir):
    c, app, check = conf(servers, cache_dir, pause_timeout="500ms", on_error="fail_open")
    a = arc(c)
    r = a.client(timeout=30).request("POST", "/x", headers=[("X-Body-Wait", "stall")], body=b"abc")
    assert r.status == 200 and echo(r)["body"] == "abc[waited 3]", r
    assert metric(a.metrics()[0], "arc_errors_total", kind="plugin_timeout") == 1


def test_request_body_over_max_body_buffer_while_held_is_413(arc, servers, cache_dir):
    c, app, check = conf(servers, cache_dir, max_body_buffer="64kb")
    a = arc(c)
    r = a.client(timeout=30).request("POST", "/big", headers=[("X-Body-Wait", "stall")],
                                     body=b"x" * 200000)
    assert r.status == 413, r
    assert "/big" not in app.targets()
    assert metric(a.metrics()[0], "arc_errors_total", kind="body_too_large") == 1


@pytest.mark.parametrize("proto", ["http1", "http2"])
def test_response_body_waits_for_the_filter(arc, servers, cache_dir, proto):
    """The same on the response: the head waits with the body (nothing goes
    out), the filter continues after its call with the body rewritten (its
    Content-Length: the whole body), answers 403 instead, or its
    pause_timeout answers 504."""
    c, app, check = conf(servers, cache_dir, pause_timeout="1s")
    a = arc(c)

    def get(path, wait):
        if proto == "http2":
            st, h, b = curl(a.port, path, ["-H", "X-Resp-Wait: " + wait])
            return st, h, b
        r = a.client(timeout=60).request("GET", path, headers=[("X-Resp-Wait", wait)])
        assert r.framing == "length", r
        return r.status, dict((k.lower(), v) for k, v in r.headers.items), r.body
    st, h, b = get("/r", "/slow?ms=300")
    assert st == 200, b
    assert re.search(rb'\}\s*\[waited \d+\]\[checked\]$', b), b[-80:]
    assert int(h["content-length"]) == len(b)
    assert "/slow?ms=300" in check.targets()
    st, h, b = get("/r2", "/status/401")
    assert st == 403 and b == b"denied by the check\n"
    t0 = time.monotonic()
    st, h, b = get("/r3", "stall")
    assert st == 504 and time.monotonic() - t0 >= 0.9
    assert metric(a.metrics()[0], "arc_errors_total", kind="plugin_timeout") == 1


def test_response_body_over_max_body_buffer_is_500(arc, servers, cache_dir):
    c, app, check = conf(servers, cache_dir, max_body_buffer="64kb")
    a = arc(c)
    r = a.client(timeout=30).request("GET", "/stream?bytes=300000", headers=[("X-Resp-Wait", "stall")])
    assert r.status == 500, r
    assert metric(a.metrics()[0], "arc_errors_total", kind="body_too_large") == 1


def test_client_leaving_a_held_response_ends_it(arc, servers, cache_dir):
    """A client that leaves while the response's end is held: the exchange
    ends (499), the filter's context is deleted (its gauge back to 0)."""
    import socket
    c, app, check = conf(servers, cache_dir)
    a = arc(c)
    s = socket.create_connection(("127.0.0.1", a.port))
    s.sendall(b"GET /gone HTTP/1.1\r\nHost: x\r\nX-Resp-Wait: stall\r\n\r\n")
    assert wait_for(lambda: waiting(a) == 1, timeout=30)
    s.close()
    ok = wait_for(lambda: waiting(a) == 0, timeout=30)
    assert ok, [l for l in a.metrics()[0].splitlines() if "requests_total" in l or "errors_total" in l]
    assert metric(a.metrics()[0], "arc_requests_total", code="499") == 1, "\n".join([
        l for l in a.metrics()[1].splitlines() if "requests_total" in l])
    assert a.client().request("GET", "/after").status == 200


def test_trailer_callbacks_wait_too(arc, servers, cache_dir):
    """proxy_on_request_trailers / _response_trailers returning
    StopIteration: the message's end waits for the call's answer; the
    fields the filter added (before and during the wait) go out."""
    c, app, check = conf(servers, cache_dir)
    a = arc(c)
    cl = a.client(timeout=60)
    cl.send(b"POST /t HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            b"X-Trailer-Wait: /slow?ms=300\r\n\r\n")
    cl.send(chunk_encode([b"abc", b"def"], trailers=[("X-Sum", "6")]))
    e = echo(cl.response())
    assert e["body"] == "abcdef"
    tr = dict((k.lower(), v) for k, v in e["trailers"])
    assert tr == {"x-sum": "6", "x-trailer-wait": "1", "x-checked": "200"}, tr
    r = cl.request("GET", "/chunked", headers=[("X-Resp-Trailer-Wait", "/slow?ms=300")])
    assert r.status == 200 and r.framing == "chunked" and r.body.startswith(b"hello chunked")
    tr = dict((k.lower(), v) for k, v in r.trailers or [])
    assert tr.get("x-checksum") == "42" and tr.get("x-trailer-wait") == "1", tr
    assert tr.get("x-checked") == "200", tr
    assert len(check.targets()) == 2
    # an HTTP/2 client: the held trailers in the trailing HEADERS frame
    st, h, b = curl(a.port, "/chunked", ["-H", "X-Resp-Trailer-Wait: /slow?ms=300",
                                          "-H", "TE: trailers"])
    assert st == 200 and b.startswith(b"hello chunked"), b
    assert b"x-checked: 200" in b and b"x-trailer-wait: 1" in b and b"x-checksum: 42" in b, b


@pytest.mark.parametrize("proto", ["http1", "http2"])
def test_trailers_added_to_a_response_without_any(arc, servers, cache_dir, proto):
    """A body filter adding a response trailer in the body's last call, to a
    response that has none: an HTTP/1.1 client gets the body chunked with
    the trailer in its last chunk, an HTTP/2 client a trailing HEADERS
    frame."""
    c, app, check = conf(servers, cache_dir)
    a = arc(c)
    if proto == "http2":
        st, h, b = curl(a.port, "/x", ["-H", "X-Resp-Add-Trailer: v1", "-H", "TE: trailers"])
        assert st == 200 and "content-length" not in h, h
        assert b.rstrip().endswith(b"x-resp-added: v1"), b[-100:]
        return
    r = a.client().request("GET", "/x", headers=[("X-Resp-Add-Trailer", "v1")])
    assert r.status == 200 and r.framing == "chunked", r
    assert dict((k.lower(), v) for k, v in r.trailers) == {"x-resp-added": "v1"}, r.trailers
    # with the upstream's own trailers: both
    r = a.client().request("GET", "/chunked", headers=[("X-Resp-Add-Trailer", "v2")])
    tr = dict((k.lower(), v) for k, v in r.trailers or [])
    assert tr.get("x-checksum") == "42" and tr.get("x-resp-added") == "v2", tr


def test_added_trailers_cannot_reach_an_http10_client(arc, servers, cache_dir):
    """HTTP/1.0 has no trailers: the body comes whole (close-delimited),
    the trailer the filter added is dropped."""
    c, app, check = conf(servers, cache_dir)
    a = arc(c)
    cl = a.client()
    cl.send(b"GET /x HTTP/1.0\r\nHost: t\r\nX-Resp-Add-Trailer: v1\r\n\r\n")
    r = cl.response()
    assert r.status == 200 and r.framing == "close", r
    assert echo(r)["method"] == "GET" and b"x-resp-added" not in r.body


@pytest.mark.parametrize("upproto", ["http1", "http2"])
def test_trailers_added_to_a_request_without_any(gw, h2s, servers, cache_dir, upproto):
    """A request body filter adding a request trailer at the body's end: an
    HTTP/1.1 upstream gets the body chunked with the trailer, an HTTP/2
    upstream a trailing HEADERS frame."""
    from arcproc import upstream_conf
    if upproto == "http2":
        up = h2s(name="app")
        c = body_cfg(up.addr, [wait_plugin()], cache_dir, protocol="http2")
        target = "/info"
    else:
        up = servers.http(name="app")
        c = body_cfg(up.addr, [wait_plugin()], cache_dir)
        target = "/x"
    check = servers.http(name="check")
    c["upstreams"].append(upstream_conf("check", check.addr))
    a = gw(c)
    r = a.client().request("POST", target, headers=[("X-Add-Trailer", "v3")], body=b"abcdef")
    assert r.status == 200, r
    e = echo(r)
    assert e["body"] == "abcdef", e
    tr = dict((k.lower(), v) for k, v in e["trailers"])
    assert tr == {"x-added": "v3"}, tr
    # over HTTP/2 from the client too
    st, h, b = curl(a.port, target, ["-H", "X-Add-Trailer: v4"], data=b"xyz")
    import json
    tr = dict((k.lower(), v) for k, v in json.loads(b)["trailers"])
    assert st == 200 and tr == {"x-added": "v4"}, (st, b)


@pytest.mark.parametrize("upproto", ["http1", "http2"])
def test_http_call_sends_a_request_body(gw, h2s, servers, cache_dir, upproto):
    """proxy_http_call with a body: an HTTP/1.1 upstream gets it with its
    Content-Length, an HTTP/2 upstream in DATA frames; the filter appends
    the call's answer (the upstream's echo of the call) to the held body."""
    import json
    from arcproc import upstream_conf
    app = servers.http(name="app")
    c = body_cfg(app.addr, [wait_plugin()], cache_dir)
    if upproto == "http2":
        check = h2s(name="check")
        u = upstream_conf("check", check.addr)
        u["protocol"] = "http2"
        path = "/info"
    else:
        check = servers.http(name="check")
        u = upstream_conf("check", check.addr)
        path = "/cb"
    c["upstreams"].append(u)
    a = gw(c)
    r = a.client(timeout=60).request("POST", "/x", body=b"hello", headers=[
        ("X-Body-Wait", path), ("X-Call-Body", "payload-123")])
    assert r.status == 200, r
    body = echo(r)["body"]
    assert body.startswith("hello[waited 5]{") and body.endswith("}[checked]"), body
    ce, _ = json.JSONDecoder().raw_decode(body, body.index("{"))
    assert ce["method"] == "POST" and ce["body"] == "payload-123" and ce["body_len"] == 11, ce
    if upproto == "http1":
        h = dict((k.lower(), v) for k, v in ce["headers"])
        assert h.get("content-length") == "11" and "transfer-encoding" not in h, h
    # without a body: GET, as before
    r = a.client(timeout=60).request("POST", "/y", body=b"hi", headers=[("X-Body-Wait", path)])
    assert r.status == 200 and echo(r)["body"] == "hi[waited 2][checked]", r


@pytest.mark.parametrize("upproto", ["http1", "http2"])
def test_request_end_waits_after_pieces_went_upstream(gw, h2s, servers, cache_dir, upproto):
    """A filter that lets the body's pieces pass and pauses only at its end:
    the upstream attempt starts with the first piece (chunked to an
    HTTP/1.1 upstream), the request's end waits for the filter's call, then
    goes on with what the filter appended."""
    from arcproc import upstream_conf
    if upproto == "http2":
        up = h2s(name="app")
        c = body_cfg(up.addr, [wait_plugin()], cache_dir, protocol="http2")
        target = "/info"
    else:
        up = servers.http(name="app")
        c = body_cfg(up.addr, [wait_plugin()], cache_dir)
        target = "/x"
    check = servers.http(name="check")
    c["upstreams"].append(upstream_conf("check", check.addr))
    a = gw(c)
    cl = a.client(timeout=60)
    cl.send("POST %s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            "X-Wait-Stream: 1\r\nX-Body-Wait: /slow?ms=500\r\n\r\n" % target)
    cl.send(b"5\r\npart1\r\n")
    time.sleep(0.3)
    cl.send(b"5\r\npart2\r\n0\r\n\r\n")
    r = cl.response()
    assert r.status == 200, r
    e = echo(r)
    assert e["body"] == "part1part2[waited 0][checked]", e
    if upproto == "http1":
        assert hdrs(e).get("transfer-encoding") == "chunked", hdrs(e)
    assert "/slow?ms=500" in check.targets()


def test_request_trailers_from_an_http2_client_wait(arc, servers, cache_dir):
    """An HTTP/2 client's request trailers (a trailing HEADERS frame) held
    by a trailer callback: the request's end waits for the call, then the
    upstream gets the trailers with what the filter added; a body filter
    adding a trailer to an HTTP/2 request without any works the same."""
    import json
    from h2_upstreams import H2Client
    c, app, check = conf(servers, cache_dir)
    a = arc(c)
    cl = H2Client(a.port, timeout=30)
    try:
        sid = cl.request("/t", method="POST", headers=[("x-trailer-wait", "/slow?ms=300")],
                         body=b"abc", end=False)
        cl.conn.send_headers(sid, [("x-sum", "3")], end_stream=True)
        cl.flush()
        s = cl.wait(sid, timeout=60)[0]
        assert s.status == 200, s
        e = json.loads(bytes(s.body))
        tr = dict((k.lower(), v) for k, v in e["trailers"])
        assert tr == {"x-sum": "3", "x-trailer-wait": "1", "x-checked": "200"}, tr
        s = cl.get("/u", method="POST", headers=[("x-add-trailer", "v5")], body=b"xyz")
        e = json.loads(bytes(s.body))
        assert e["body"] == "xyz" and dict((k.lower(), v) for k, v in e["trailers"]) == \
            {"x-added": "v5"}, e
    finally:
        cl.close()


def test_http_call_request_body_over_max_call_body_refused(arc, servers, cache_dir):
    """plugins.wasm[].max_call_body bounds a call's request body too: a
    longer one is refused (BadArgument, the filter answers 503 itself and
    the check upstream sees nothing); one within it is sent (and here the
    upstream's echo, over the same bound, then fails the call)."""
    c, app, check = conf(servers, cache_dir, max_call_body="8b")
    a = arc(c)
    r = a.client(timeout=60).request("POST", "/long", body=b"x", headers=[
        ("X-Body-Wait", "/cb"), ("X-Call-Body", "123456789")])
    assert r.status == 503 and r.body == b"check refused\n", r
    assert not check.targets() and "/long" not in app.targets()
    r = a.client(timeout=60).request("POST", "/short", body=b"x", headers=[
        ("X-Body-Wait", "/cb"), ("X-Call-Body", "12345678")])
    assert r.status == 503 and r.body == b"check unavailable\n", r
    assert check.targets() == ["/cb"]
