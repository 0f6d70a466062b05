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
from httpraw import chunk_encode, pattern_block

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "plugins")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("plugin-body-cache")
    os.chmod(d, 0o700)
    return str(d)


def cfg(up_addr, plugins, cache_dir, protocol=None, routes=None):
    rs = []
    for name, path, pls in routes or [("r", "/{*rest}", [p["name"] for p in plugins])]:
        r = route_conf(name, path, upstream="app")
        r["plugins"] = [{"name": p} for p in pls]
        rs.append(r)
    u = upstream_conf("app", up_addr)
    if protocol:
        u["protocol"] = protocol
    return make_config([u], routes=rs, workers=1,
                       extra={"plugins": {"cache_dir": cache_dir, "wasm": plugins}})


def body_plugin(**kw):
    p = {"name": "body", "file": os.path.join(FIX, "c_body.wasm")}
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
