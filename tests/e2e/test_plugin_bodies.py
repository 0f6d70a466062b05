"""proxy-wasm body and trailer callbacks through the real binary: a C
filter (examples/plugins/c/body.c) rewrites request and response bodies
chunk by chunk without buffering them (a body of several MiB passes in many
small calls), buffers a whole body and rewrites it (Content-Length
recomputed when the whole body was buffered, chunked otherwise, never a
wrong length), adds request and response trailers, and its failures mid-body
get the on_error policy (an answer before the response started, a cut after);
the unmodified AssemblyScript SDK filter (examples/plugins/as/assembly/
body.ts) buffers and rewrites a request body, over HTTP/1.1 and HTTP/2."""
import hashlib
import json
import os
import subprocess

import pytest

from arcproc import make_config, metric, route_conf, upstream_conf
from h2_upstreams import GRPC_SERVICE, GrpcServer, H2Server
from httpraw import chunk_encode, pattern_block

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "plugins")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("plugin-body-cache")
    os.chmod(d, 0o700)
    return str(d)


@pytest.fixture
def h2s():
    """h2s(**H2Server kwargs) -> a started HTTP/2 upstream, stopped after arc
    (see `gw`); an error it recorded fails the test."""
    started = []

    def start(grpc=False, **kw):
        s = GrpcServer(**kw) if grpc else H2Server(**kw)
        started.append(s)
        return s
    yield start
    errors = []
    for s in reversed(started):
        s.stop()
        errors += ["%s: %s" % (s.name, e) for e in s.errors]
    if errors:
        pytest.fail("upstream errors:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture
def gw(h2s, arc):
    """The `arc` launcher, torn down before the HTTP/2 upstreams."""
    return arc


def cfg(up_addr, plugins, cache_dir, protocol=None, routes=None):
    rs = []
    for name, path, pls in routes or [("r", "/{*rest}", [p["name"] for p in plugins])]:
        r = route_conf(name, path, upstream="app")
        if path.count("/") > 1:         # /prefix/{*rest}: the upstream sees /{rest}
            r["action"]["rewrite"] = {"pattern": "^/[a-z]+/", "replace": "/"}
        r["plugins"] = [{"name": p} for p in pls]
        rs.append(r)
    u = upstream_conf("app", up_addr)
    if protocol:
        u["protocol"] = protocol
    return make_config([u], routes=rs, workers=1,
                       extra={"plugins": {"cache_dir": cache_dir, "wasm": plugins}})


def body_plugin(**kw):
    # (a generous budget: the call's deadline is wall-clock time, and a
    # loaded 2-core machine can deschedule the worker mid-call)
    p = {"name": "body", "file": os.path.join(FIX, "c_body.wasm"), "budget": "500ms"}
    p.update(kw)
    return p


def echo(resp):
    return json.loads(resp.body)


def hdrs(e):
    return dict((k.lower(), v) for k, v in e["headers"])


def test_request_body_rewritten_in_chunks_h1(arc, servers, cache_dir):
    up = servers.http(name="app")
    a = arc(cfg(up.addr, [body_plugin()], cache_dir))
    c = a.client()
    r = c.request("POST", "/x", headers=[("X-Body", "upper")], body=b"hello body")
    assert r.status == 200, r
    e = echo(r)
    assert e["body"] == "HELLO BODY"
    h = hdrs(e)
    # the whole body was through the filter before the attempt started
    assert h.get("content-length") == "10" and "transfer-encoding" not in h, h


def curl(port, path, args=(), data=None, http2=True):
    cmd = ["curl", "-sS", "-i", "--max-time", "30"]
    if http2:
        cmd.append("--http2-prior-knowledge")
    cmd += list(args)
    if data is not None:
        cmd += ["--data-binary", "@-"]
    r = subprocess.run(cmd + ["http://127.0.0.1:%d%s" % (port, path)], input=data,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.replace(b"\r\n", b"\n").partition(b"\n\n")
    lines = head.decode("latin-1").split("\n")
    h = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        h[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), h, body


def test_response_body_rewritten_h1_and_h2(arc, servers, cache_dir):
    up = servers.http(name="app")
    a = arc(cfg(up.addr, [body_plugin()], cache_dir))
    c = a.client()
    r = c.request("GET", "/x", headers=[("X-Resp-Body", "upper")])
    assert r.status == 200, r
    assert r.body == r.body.upper() and b'"X-RESP-BODY", "UPPER"' in r.body
    assert r.framing == "length", r        # one call with end_of_stream: its length
    r = c.request("GET", "/stream?bytes=300000", headers=[("X-Resp-Body", "count")])
    assert r.status == 200 and r.body_len == 300000
    st, h, body = curl(a.port, "/x", ["-H", "X-Resp-Body: upper"])
    assert st == 200 and body == body.upper() and b"X-RESP-BODY" in body


def test_buffered_request_body_gets_its_new_length(arc, servers, cache_dir):
    up = servers.http(name="app")
    a = arc(cfg(up.addr, [body_plugin()], cache_dir))
    c = a.client()
    r = c.request("POST", "/x", headers=[("X-Body", "hold")], body=b"abc")
    assert r.status == 200, r
    e = echo(r)
    assert e["body"] == "abc[held 3]"
    h = hdrs(e)
    assert h.get("content-length") == "11" and "transfer-encoding" not in h, h
    # chunked from the client, in pieces: still one length upstream
    c.send(b"POST /x HTTP/1.1\r\nHost: t\r\nX-Body: hold\r\nTransfer-Encoding: chunked\r\n\r\n")
    c.send(chunk_encode([b"one ", b"two ", b"three"]))
    r = c.response()
    e = echo(r)
    assert e["body"] == "one two three[held 13]" and hdrs(e).get("content-length") == "22"
    # HTTP/2 client
    st, h2h, body = curl(a.port, "/x", ["-H", "X-Body: hold"], data=b"0123456789")
    e = json.loads(body)
    assert st == 200 and e["body"] == "0123456789[held 10]"
    assert hdrs(e).get("content-length") == "19"


def test_big_body_streams_through_chunk_by_chunk(arc, servers, cache_dir):
    """4 MiB each way pass in many body calls, none near the body's size:
    the filter sees chunks, nothing is buffered whole."""
    up = servers.http(name="app")
    a = arc(cfg(up.addr, [body_plugin()], cache_dir))
    c = a.client(timeout=60)
    blk = pattern_block()
    big = blk * 64                                  # 4 MiB
    r = c.request("POST", "/x", headers=[("X-Body", "count")], body=big)
    assert r.status == 200, r
    e = echo(r)
    assert e["body_len"] == len(big) and e["body_sha256"] == hashlib.sha256(big).hexdigest()
    r = c.request("GET", "/stream?bytes=%d" % len(big), headers=[("X-Resp-Body", "count")])
    assert r.status == 200 and r.body_len == len(big)
    assert r.body_sha256 == hashlib.sha256(big).hexdigest()
    ms = a.metrics()[0]

    def pm(kind, what):
        want = {("plugin", "body"), ("name", what)}
        found = [v for (n, ls), v in ms.items() if n == "arc_plugin_" + kind and want <= set(ls)]
        assert found, (kind, what)
        return sum(found)
    assert pm("counter", "req_chunks") >= 16 and pm("counter", "resp_chunks") >= 16
    assert 0 < pm("gauge", "req_max_chunk") <= 1 << 20
    assert 0 < pm("gauge", "resp_max_chunk") <= 1 << 20
    # uppercased on the way, streamed (chunked upstream)
    text = (b"abcdefghij" * 6554)[:65536] * 64
    r = c.request("POST", "/x", headers=[("X-Body", "upper")], body=text)
    e = echo(r)
    assert e["body_len"] == len(text)
    assert e["body_sha256"] == hashlib.sha256(text.upper()).hexdigest()


def test_failures_mid_body_get_the_policy(arc, servers, cache_dir):
    """A trap in a body callback: fail_closed answers 500 while the response
    has not started, cuts the response once it has (never a second head);
    fail_open passes the body on unfiltered. A local answer from a request
    body callback is sent instead; a held body over max_body_buffer is 413."""
    up = servers.http(name="app")
    a = arc(cfg(up.addr, [body_plugin(), body_plugin(name="open", on_error="fail_open"),
                          body_plugin(name="small", max_body_buffer="1kb")], cache_dir,
                routes=[("r", "/closed/{*rest}", ["body"]), ("o", "/open/{*rest}", ["open"]),
                        ("s", "/small/{*rest}", ["small"])]))
    c = a.client()
    r = c.request("POST", "/closed/x", headers=[("X-Body", "trap")], body=b"x" * 100)
    assert r.status == 500
    c = a.client()
    r = c.request("POST", "/open/x", headers=[("X-Body", "trap")], body=b"y" * 100)
    assert r.status == 200 and echo(r)["body"] == "y" * 100
    c = a.client()
    r = c.request("POST", "/closed/x", headers=[("X-Body", "local")], body=b"z" * 100)
    assert r.status == 418 and r.body == b"teapot from body\n"
    c = a.client()
    r = c.request("POST", "/small/x", headers=[("X-Body", "hold")], body=b"q" * 5000)
    assert r.status == 413
    c = a.client()
    r = c.request("POST", "/small/x", headers=[("X-Body", "hold")], body=b"q" * 500)
    assert r.status == 200 and echo(r)["body"] == "q" * 500 + "[held 500]"
    # the response: a trap on its second chunk, after bytes went out: cut
    c = a.client()
    c.send(b"GET /closed/stream?bytes=4000000 HTTP/1.1\r\nHost: t\r\nX-Resp-Body: trap\r\n\r\n")
    head = c.rd.read_head()
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"transfer-encoding: chunked" in head.lower()
    assert c.wait_closed(10)             # cut: no last chunk, no second head
    assert b"0\r\n\r\n" not in c.trailing and b"HTTP/1.1 500" not in c.trailing
    # held response over the limit before anything went out: 500
    c = a.client()
    r = c.request("GET", "/small/stream?bytes=400000", headers=[("X-Resp-Body", "hold")])
    assert r.status == 500
    ms = a.metrics()[0]
    assert metric(ms, "arc_errors_total", kind="plugin_trap") >= 3
    assert metric(ms, "arc_errors_total", kind="body_too_large") >= 2
    # the worker goes on
    r = a.client().request("POST", "/closed/x", headers=[("X-Body", "upper")], body=b"ok")
    assert r.status == 200 and echo(r)["body"] == "OK"


def as_body(**kw):
    p = {"name": "asb", "file": os.path.join(FIX, "as_body.wasm"), "root_id": "as_body",
         "config": "world|Arc", "budget": "500ms"}
    p.update(kw)
    return p


@pytest.mark.parametrize("protocol", [None, "http2"])
def test_assemblyscript_filter_buffers_and_rewrites_a_request_body(gw, h2s, servers, cache_dir,
                                                                   protocol):
    """The classic SDK's filter: StopIterationAndBuffer until the end, then
    the whole body replaced; the upstream gets it with its new length, from
    HTTP/1.1 (length or chunked) and HTTP/2 clients, to HTTP/1.1 and HTTP/2
    upstreams."""
    if protocol:
        up = h2s(name="app")
        path = "/info"
    else:
        up = servers.http(name="app")
        path = "/x"
    a = gw(cfg(up.addr, [as_body()], cache_dir, protocol=protocol))
    c = a.client()
    body = b"hello world, " * 1000 + b"bye world"
    want = body.replace(b"world", b"Arc")
    r = c.request("POST", path, body=body)
    assert r.status == 200, r
    e = echo(r)
    assert e["body_len"] == len(want) and e["body_sha256"] == hashlib.sha256(want).hexdigest()
    h = hdrs(e)
    if not protocol:                    # (Arc's HTTP/2 client sends no content-length)
        assert h.get("content-length") == str(len(want)) and "transfer-encoding" not in h, h
    # chunked, in pieces over several sends
    c.send(b"POST %s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" % path.encode())
    pieces = [body[i:i + 3000] for i in range(0, len(body), 3000)]
    enc = chunk_encode(pieces)
    for i in range(0, len(enc), 4096):
        c.send(enc[i:i + 4096])
    e = echo(c.response())
    assert e["body_len"] == len(want) and e["body_sha256"] == hashlib.sha256(want).hexdigest()
    if not protocol:
        assert hdrs(e).get("content-length") == str(len(want))
    # HTTP/2 client
    st, _, out = curl(a.port, path, data=body)
    e = json.loads(out)
    assert st == 200 and e["body_sha256"] == hashlib.sha256(want).hexdigest()
    # the headers-only SDK filter on the same kind of route still works
    r = c.request("GET", path)
    assert r.status == 200


def test_trailers_are_seen_and_extended(gw, h2s, cache_dir):
    """Request trailers (chunked HTTP/1.1 to an HTTP/2 upstream) and
    response trailers (an HTTP/2 upstream's, to HTTP/1.1 and HTTP/2
    clients) go through proxy_on_request_trailers / _response_trailers,
    which add a field to each (map types 1 and 3)."""
    up = h2s(name="app")
    a = gw(cfg(up.addr, [body_plugin()], cache_dir, protocol="http2"))
    c = a.client()
    c.send(b"POST /info HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n")
    c.send(chunk_encode([b"abc", b"def"], trailers=[("x-sum", "6")]))
    r = c.response()
    e = echo(r)
    assert e["body"] == "abcdef"
    tr = dict((k.lower(), v) for k, v in e["trailers"])
    assert tr.get("x-sum") == "6" and tr.get("x-trailer-filter") == "01", tr
    r = c.request("GET", "/trailers", headers=[("TE", "trailers")])
    assert r.status == 200 and r.body == b"first piece, second piece, last piece"
    tr = dict((k.lower(), v) for k, v in r.trailers or [])
    assert tr.get("x-count") == "3" and tr.get("x-resp-trailer-filter") == "02", r.trailers
    st, h, body = curl(a.port, "/trailers", ["-H", "TE: trailers", "-H", "X-Resp-Body: upper"])
    # (curl -i prints the trailers after the body)
    assert st == 200 and body.startswith(b"FIRST PIECE, SECOND PIECE, LAST PIECE")
    assert b"x-resp-trailer-filter: 02" in body and b"x-count: 3" in body


def test_trailers_over_http1_chunked(arc, servers, cache_dir):
    """HTTP/1.1 both sides: a chunked request's trailers reach the upstream
    with the filter's field added; a chunked response's trailers reach the
    client with the filter's field (in the last chunk Arc writes)."""
    up = servers.http(name="app")
    a = arc(cfg(up.addr, [body_plugin()], cache_dir))
    c = a.client()
    c.send(b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nX-Body: upper\r\n\r\n")
    c.send(chunk_encode([b"abc", b"def"], trailers=[("X-Sum", "6")]))
    e = echo(c.response())
    assert e["body"] == "ABCDEF"
    tr = dict((k.lower(), v) for k, v in e["trailers"])
    assert tr.get("x-sum") == "6" and tr.get("x-trailer-filter") == "01", tr
    r = c.request("GET", "/chunked")
    assert r.status == 200 and r.framing == "chunked"
    assert r.body.startswith(b"hello chunked world")
    tr = dict((k.lower(), v) for k, v in r.trailers or [])
    assert tr.get("x-checksum") == "42" and tr.get("x-resp-trailer-filter") == "01", r.trailers
    assert "content-type" not in tr         # (not allowed in trailers: still dropped)


def test_grpc_through_body_and_trailer_filters(gw, h2s, cache_dir):
    """gRPC (HTTP/2 both sides, messages in DATA frames, status in trailers)
    through the body filter: a unary call with its message uppercased, a
    lock-step bidi call (each message must pass before the next is sent:
    nothing waits for the whole body), and trailing metadata that gets the
    filter's field next to the server's."""
    import grpc
    import queue
    srv = h2s(grpc=True)
    ch = None
    try:
        a = gw(cfg(srv.addr, [body_plugin()], cache_dir, protocol="http2"))
        ch = grpc.insecure_channel("127.0.0.1:%d" % a.port,
                                   options=[("grpc.enable_http_proxy", 0), ("grpc.enable_retries", 0)])
        m = "/%s/" % GRPC_SERVICE
        resp, call = ch.unary_unary(m + "Trailers").with_call(
            b"hello", timeout=10, metadata=(("x-body", "count"), ("x-resp-body", "count")))
        assert resp == b"hello" and call.code() == grpc.StatusCode.OK
        md = dict((k, v) for k, v in call.trailing_metadata())
        assert md.get("x-trailer") == "t1" and md.get("x-resp-trailer-filter"), md
        q = queue.Queue()

        def requests():
            while True:
                x = q.get()
                if x is None:
                    return
                yield x
        responses = ch.stream_stream(m + "Bidi")(requests(), timeout=15,
                                                 metadata=(("x-body", "count"),))
        got = []
        try:
            for i in range(4):
                q.put(b"m%d" % i)
                got.append(next(responses))
        finally:
            q.put(None)
        assert got == [b"echo:m%d" % i for i in range(4)] and list(responses) == []
        assert responses.code() == grpc.StatusCode.OK
    finally:
        if ch:
            ch.close()


def test_retry_replays_the_rewritten_body(arc, servers, cache_dir):
    """A request body the filter rewrote is kept for a retry as rewritten:
    the endpoint that answers after a 503 gets the filtered bytes, once
    (the filter does not run again), with the right framing."""
    from upstreams import raw_handler
    bad = servers.http(handler=raw_handler(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"),
                       name="bad")
    good = servers.http(name="good")
    u = upstream_conf("app", [bad.addr, good.addr], lb={"algorithm": "round_robin"})
    r = route_conf("r", "/{*rest}", upstream="app",
                   retry={"backoff": "0ms", "max_body": "64kb", "budget_min": 100})
    r["plugins"] = [{"name": "body"}]
    a = arc(make_config([u], routes=[r], workers=1,
                        extra={"plugins": {"cache_dir": cache_dir, "wasm": [body_plugin()]}}))
    text = b"retry me " * 3000
    for i, mode in enumerate(["upper", "upper", "hold", "hold"]):
        resp = a.client().request("PUT", "/p/%d" % i, headers=[("X-Body", mode)], body=text)
        assert resp.status == 200, resp
        e = resp.json()
        want = text.upper() if mode == "upper" else text + b"[held %d]" % len(text)
        assert e["server"] == "good" and e["body_len"] == len(want), e["body_len"]
        assert e["body_sha256"] == hashlib.sha256(want).hexdigest()
    # round robin: half the first attempts went to the 503 one and were retried
    assert len([t for t in bad.targets() if t.startswith("/p/")]) >= 2, bad.targets()


def test_budget_overrun_mid_body(arc, servers, cache_dir):
    """A body callback that loops forever is stopped by the plugin's budget:
    mid-response the response is cut (no second head), mid-request the
    answer is 500; counted as plugin_budget; the worker goes on."""
    up = servers.http(name="app")
    a = arc(cfg(up.addr, [body_plugin(budget="5ms")], cache_dir))
    c = a.client()
    c.send(b"GET /stream?bytes=4000000 HTTP/1.1\r\nHost: t\r\nX-Resp-Body: loop\r\n\r\n")
    head = c.rd.read_head()
    assert head.startswith(b"HTTP/1.1 200"), head
    assert c.wait_closed(15)
    assert b"HTTP/1.1 500" not in c.trailing
    c = a.client()
    c.send(b"POST /x HTTP/1.1\r\nHost: t\r\nX-Body: loop\r\nTransfer-Encoding: chunked\r\n\r\n")
    c.send(b"3\r\nabc\r\n")
    c.send(b"3\r\ndef\r\n0\r\n\r\n")
    r = c.response()
    assert r.status == 500
    assert metric(a.metrics()[0], "arc_errors_total", kind="plugin_budget") == 2
    r = a.client().request("POST", "/x", headers=[("X-Body", "upper")], body=b"fine")
    assert r.status == 200 and echo(r)["body"] == "FINE"


def test_trailer_only_filter_keeps_bodies_and_their_length(gw, h2s, servers, cache_dir):
    """A filter with trailer callbacks only: bodies stream as they come
    (a Content-Length response keeps one Content-Length, also to an HTTP/2
    client), and the trailers of an HTTP/2 upstream's response get its
    field."""
    p = {"name": "tr", "file": os.path.join(FIX, "c_trailers.wasm"), "budget": "500ms"}
    up = servers.http(name="app")
    a = gw(cfg(up.addr, [p], cache_dir))
    r = a.client().request("GET", "/x")
    assert r.status == 200 and r.framing == "length"
    assert r.headers.get("content-length") == str(len(r.body))
    st, h, body = curl(a.port, "/x")
    assert st == 200 and h.get("content-length") == str(len(body)), (h, len(body))
    h2 = h2s(name="app2")
    b = gw(cfg(h2.addr, [p], cache_dir, protocol="http2"))
    r = b.client().request("GET", "/trailers", headers=[("TE", "trailers")])
    assert r.status == 200 and r.body == b"first piece, second piece, last piece"
    tr = dict((k.lower(), v) for k, v in r.trailers or [])
    assert tr.get("x-resp-trailer-seen") == "02" and tr.get("x-count") == "3", r.trailers
