"""Upstreams that speak HTTP/2 (`upstreams[].protocol: http2`): h2c with prior
knowledge without `tls`, h2 over TLS (ALPN "h2") with it. The upstream is
tests/e2e/h2_upstreams.H2Server (python3-h2), which records every connection
and stream it saw.

HTTP/1.1 and HTTP/2 clients reach it through arc: methods, bodies (with
Content-Length, chunked: de-chunked on the way), HEAD/204/304, responses
without a length (chunked to an HTTP/1.1 client), status and fields relayed,
forwarding fields added and hop-by-hop fields dropped. Streams multiplex on
one upstream connection, within the upstream's SETTINGS_MAX_CONCURRENT_STREAMS;
a GOAWAY moves arc to a new connection; an upstream reset is a 502 before the
head and a truncated response after it; a silent stream is a 504 after
timeouts.ttfb while a sibling on the same connection finishes; a client that
goes away becomes RST_STREAM(CANCEL) upstream and the connection lives on;
trailers reach an HTTP/2 client; 8 MiB bodies pass byte-exact both ways; and
the requests are counted per upstream in /metrics."""
import hashlib
import json
import math
import os
import socket
import subprocess
import time

import pytest

from arcproc import make_config, metric, route_conf, upstream_conf, wait_until
from h2_upstreams import (CANCEL, CONNECTION_SPECIFIC, H2Client, H2Server, make_pki,
                          stream_piece)
from h2_upstreams import gw, h2s  # noqa: F401 (pytest fixtures)
from httpraw import build_request, chunk_encode, parse_head_lines, stream_sha256


# ----------------------------------------------------------------- fixtures



@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("h2pki"))


def h2_upstream(srv, name="h2up", **extra):
    return upstream_conf(name, srv.addr, protocol="http2", **extra)


def config(srv, workers=2, node=None, **up_extra):
    return make_config([h2_upstream(srv, **up_extra)],
                       routes=[route_conf("h2", "/{*rest}", upstream="h2up")], workers=workers, node=node)


def curl(args, timeout=60):
    r = subprocess.run(["curl", "-sS", "--max-time", str(timeout)] + list(args), capture_output=True,
                       timeout=timeout + 10)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def names_of(st):
    return [k for k, _ in st.fields]


def only_stream(srv, path):
    got = srv.streams(path)
    assert len(got) == 1, "upstream saw %d streams for %s: %s" % (len(got), path, [s.target for s in got])
    return got[0]


def assert_valid_h2_fields(st):
    """RFC 9113 §8.2: lowercase names, no connection-specific fields, te only 'trailers'."""
    bad = [k for k in names_of(st) if k != k.lower()]
    assert not bad, "upper-case field names sent upstream over HTTP/2: %s" % bad
    conn_specific = [k for k in names_of(st) if k in CONNECTION_SPECIFIC]
    assert not conn_specific, "connection-specific fields sent upstream over HTTP/2: %s" % st.fields
    for v in st.get_all("te"):
        assert v.lower() == "trailers", "te: %r sent upstream over HTTP/2 (only 'trailers' is allowed)" % v
    for p in (":method", ":scheme", ":path"):
        assert p in st.pseudo, "request without %s: %s" % (p, st.headers)


# ----------------------------------------------------- HTTP/1.1 client -> h2c

def test_http1_get_is_proxied_over_h2c(gw, h2s):
    srv = h2s()
    a = gw(config(srv))
    c = a.client()
    r = c.request("GET", "/info?x=1&y=two", headers=[("X-Custom", "abc")], host="app.test")
    assert r.status == 200, r
    j = r.json()
    assert j["method"] == "GET" and j["target"] == "/info?x=1&y=two"
    st = only_stream(srv, "/info")
    # RFC 9113 §8.3.1: the authority travels as :authority (or, from an
    # origin-form HTTP/1.1 request, possibly as host); both must agree.
    auth = [v for k, v in st.headers if k in (":authority", "host")]
    assert auth and all(v == "app.test" for v in auth), "the client's Host must arrive: %s" % st.headers
    assert st.pseudo.get(":scheme") in ("http", "https"), st.headers
    assert st.get("x-custom") == "abc"
    assert_valid_h2_fields(st)
    # response fields and framing relayed
    assert r.headers.get("Content-Type") == "application/json"
    assert r.headers.get("X-Conn-Id") == "1" and r.headers.get("X-Stream-Id") == str(st.sid)
    assert r.framing == "length" and int(r.headers.get("Content-Length")) == len(r.body)
    assert srv.alpns == [], "cleartext upstream: no TLS expected"
    assert len(srv.connections()) == 1 and not srv.connections()[0].tls


def test_http1_post_with_content_length(gw, h2s):
    srv = h2s()
    a = gw(config(srv))
    body = b"0123456789abcdef" * 4000             # 64000 bytes: more than one DATA frame and window
    r = a.client().request("POST", "/echo", body=body, headers=[("Content-Type", "application/x-test")])
    assert r.status == 200, r
    assert r.body == body
    assert r.headers.get("Content-Type") == "application/x-test"
    st = only_stream(srv, "/echo")
    assert st.method == "POST" and bytes(st.body) == body
    cl = st.get_all("content-length")
    assert cl in ([], [str(len(body))]), "content-length sent upstream: %s" % cl
    assert_valid_h2_fields(st)


def test_http1_chunked_upload_is_dechunked(gw, h2s):
    srv = h2s()
    a = gw(config(srv))
    pieces = [b"alpha-", b"bravo-" * 1000, b"", b"charlie", os.urandom(40000)]
    c = a.client()
    c.send(build_request("POST", "/info", [("Transfer-Encoding", "chunked")], None) +
           chunk_encode(pieces))
    r = c.response()
    assert r.status == 200, r
    want = b"".join(pieces)
    j = r.json()
    assert j["body_len"] == len(want) and j["body_sha256"] == hashlib.sha256(want).hexdigest(), \
        "the upstream must receive the de-chunked bytes"
    st = only_stream(srv, "/info")
    assert bytes(st.body) == want
    assert "transfer-encoding" not in names_of(st)
    assert st.get_all("content-length") in ([], [str(len(want))])
    assert_valid_h2_fields(st)
    # the client connection is still good
    assert c.request("GET", "/info?after=1").status == 200


def test_http1_chunked_upload_trailers_reach_upstream(gw, h2s):
    """The trailer section of a chunked HTTP/1.1 request becomes the
    stream's trailing HEADERS; fields not allowed in trailers are dropped."""
    srv = h2s()
    a = gw(config(srv))
    c = a.client()
    c.send(build_request("POST", "/info", [("Transfer-Encoding", "chunked"), ("TE", "trailers")], None) +
           chunk_encode([b"grpc-", b"web"], [("X-Sum", "  7  "), ("Content-Length", "5")]))
    r = c.response()
    assert r.status == 200, r
    st = only_stream(srv, "/info")
    assert bytes(st.body) == b"grpc-web"
    assert [list(t) for t in st.trailers] == [["x-sum", "7"]], st.trailers


def test_response_trailers_reach_http11_client_in_last_chunk(gw, h2s):
    srv = h2s()
    a = gw(config(srv))
    r = a.client().request("GET", "/trailers")
    assert r.status == 200 and r.framing == "chunked", r
    assert r.body == b"first piece, second piece, last piece"
    t = {k.lower(): v for k, v in r.trailers}
    assert t.get("x-checksum") == hashlib.sha256(r.body).hexdigest(), r.trailers
    assert t.get("x-count") == "3", r.trailers


def test_http1_head_204_304_and_status_relayed(gw, h2s):
    srv = h2s()
    a = gw(config(srv))
    c = a.client()
    r = c.request("HEAD", "/download?bytes=12345")
    assert r.status == 200 and r.body == b"", r
    assert r.headers.get("Content-Length") == "12345", r
    assert only_stream(srv, "/download").method == "HEAD"
    for code in (204, 304):
        r = c.request("GET", "/status/%d" % code)
        assert r.status == code and r.body == b"", r
        assert r.headers.get("ETag") == '"v1"', r
        assert not r.headers.has("Transfer-Encoding"), r
        if code == 204:
            assert r.headers.get("Content-Length") in (None, "0"), r
    r = c.request("GET", "/status/404")
    assert r.status == 404 and r.body == b"status 404\n", r
    assert r.headers.get("X-Upstream") == srv.name
    r = c.request("POST", "/status/201", body=b"x")
    assert r.status == 201 and r.body == b"status 201\n", r
    # all on one keep-alive client connection, which is still usable
    r = c.request("GET", "/info")
    assert r.status == 200 and r.json()["method"] == "GET"


def test_response_without_length_is_chunked_to_http1(gw, h2s):
    srv = h2s()
    a = gw(config(srv))
    c = a.client()
    r = c.request("GET", "/stream?n=6&size=3000&delay_ms=30")
    assert r.status == 200, r
    assert r.framing == "chunked", "a response without content-length must reach HTTP/1.1 chunked: %r" % r
    assert r.body == b"".join(stream_piece(i, 3000) for i in range(6))
    assert c.request("GET", "/info").status == 200          # framing ended cleanly: reusable


def test_forwarding_fields_added_and_hop_by_hop_removed(gw, h2s):
    srv = h2s()
    a = gw(config(srv))
    r = a.client().request("GET", "/info?hop=1", headers=[
        ("Connection", "keep-alive, X-Hop"), ("X-Hop", "1"), ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "keep-alive"), ("Upgrade", "foo/1"), ("TE", "trailers"),
        ("X-Forwarded-For", "203.0.113.9"), ("X-End", "kept")])
    assert r.status == 200, r
    st = only_stream(srv, "/info")
    assert st.get_all("x-forwarded-for") == ["127.0.0.1"], st.fields
    assert st.get_all("x-forwarded-proto") == ["http"], st.fields
    assert "arc" in ", ".join(st.get_all("via")), st.fields
    leaked = {"connection", "keep-alive", "proxy-connection", "upgrade", "x-hop", "transfer-encoding"} \
        & set(names_of(st))
    assert not leaked, "hop-by-hop request fields sent upstream: %s" % sorted(leaked)
    assert st.get("x-end") == "kept"
    assert_valid_h2_fields(st)
    # an HTTP/2 client's te: trailers is end-to-end meaningful over HTTP/2 and kept
    c = H2Client(a.port)
    try:
        s = c.get("/info?te=1", headers=[("te", "trailers"), ("x-end", "kept")])
        assert s.status == 200, s
    finally:
        c.close()
    st2 = srv.streams("/info")[-1]
    assert st2.get_all("te") == ["trailers"], st2.fields
    assert st2.get_all("x-forwarded-for") == ["127.0.0.1"], st2.fields
    assert "arc" in ", ".join(st2.get_all("via")), st2.fields
    assert_valid_h2_fields(st2)


# ---------------------------------------------------------- multiplexing

def test_50_concurrent_streams_share_one_upstream_connection(gw, h2s):
    srv = h2s(max_concurrent_streams=128)
    a = gw(config(srv))
    c = H2Client(a.port)
    try:
        sids = [c.request("/sleep?ms=200&i=%d" % i) for i in range(50)]
        res = c.wait(sids, timeout=30 * gw.bin.slow)
    finally:
        c.close()
    bad = [s for s in res if s.status != 200]
    assert not bad, bad[:3]
    assert sorted(json.loads(bytes(s.body))["target"] for s in res) == \
        sorted("/sleep?ms=200&i=%d" % i for i in range(50))
    conns = [cn for cn in srv.connections() if cn.stream_list]
    assert len(conns) == 1, "50 streams spread over %d upstream connections %s (max_concurrent 128)" % (
        len(conns), [len(cn.stream_list) for cn in conns])
    cn = conns[0]
    assert cn.accepted == 50 and not cn.refused_limit, (cn.accepted, cn.refused_limit)
    assert cn.max_open > 1, "streams were not concurrent on the upstream connection"
    assert len(srv.connections()) == 1, "extra upstream connections opened: %d" % len(srv.connections())


def test_upstream_max_concurrent_streams_is_respected(gw, h2s):
    srv = h2s(max_concurrent_streams=2)
    a = gw(config(srv))
    c = H2Client(a.port)
    try:
        # one request first, so arc has the upstream's SETTINGS on a connection
        assert c.get("/info?warmup=1").status == 200
        sids = [c.request("/sleep?ms=300&i=%d" % i) for i in range(10)]
        res = c.wait(sids, timeout=30 * gw.bin.slow)
    finally:
        c.close()
    assert [s.status for s in res] == [200] * 10, res
    assert len(srv.streams("/sleep")) == 10
    report = [(cn.id, cn.accepted, cn.max_open, cn.max_open_acked, cn.refused_before_ack)
              for cn in srv.connections()]
    # Before arc has acknowledged our SETTINGS it cannot know the limit (RFC
    # 9113 §6.5.2: unlimited until then): streams over it then are refused
    # with REFUSED_STREAM and must be retried (all 10 succeeded above). Once
    # it acknowledged them, it must never exceed 2 open streams.
    over = [r for r in report if r[3] > 2]
    assert not over, "upstream connection(s) had more than 2 streams open at once " \
                     "(conn, accepted, max_open, max_open_after_settings_ack, refused_before_ack): %s" % report


def test_goaway_moves_arc_to_new_connections(gw, h2s):
    srv = h2s(goaway_after=3)
    a = gw(config(srv))
    c = a.client()
    for i in range(10):
        r = c.request("GET", "/info?i=%d" % i)
        assert r.status == 200, (i, r)
        assert r.json()["target"] == "/info?i=%d" % i
    assert [s.target for s in srv.streams()] == ["/info?i=%d" % i for i in range(10)], \
        "each request must reach the upstream exactly once, in order"
    used = [cn for cn in srv.connections() if cn.stream_list]
    want = math.ceil(10 / 3)
    assert [len(cn.stream_list) for cn in used] == [3, 3, 3, 1], \
        "expected %d connections carrying 3,3,3,1 streams, got %s" % (
            want, [len(cn.stream_list) for cn in used])
    assert len(used) == want
    late = [(cn.id, cn.refused_goaway) for cn in srv.connections() if cn.refused_goaway]
    assert not late, "arc opened streams after the upstream's GOAWAY: %s" % late
    for cn in used[:3]:
        assert cn.closed.wait(5), "connection %d stayed open after its GOAWAY" % cn.id
        assert cn.close_reason == "goaway", (cn.id, cn.close_reason)


# ----------------------------------------------------------------- resets

def test_reset_before_head_is_502(gw, h2s):
    srv = h2s()
    a = gw(config(srv))
    c = a.client()
    r = c.request("GET", "/reset-before-headers")
    assert r.status == 502, r
    h = H2Client(a.port)
    try:
        s = h.get("/reset-before-headers")
        assert s.status == 502, s
        assert h.get("/info").status == 200
    finally:
        h.close()
    assert srv.streams("/reset-before-headers"), "the upstream never saw the request"
    assert a.client().request("GET", "/info").status == 200


@pytest.mark.parametrize("with_length", [False, True])
def test_reset_after_part_of_body_truncates_http1_response(gw, h2s, with_length):
    srv = h2s()
    a = gw(config(srv))
    c = a.client()
    c.send(build_request("GET", "/reset-after-data?bytes=1000&delay_ms=300&cl=%d" % with_length))
    first, hdrs = parse_head_lines(c.rd.read_head())
    assert first.split(" ")[1] == "200", first
    rest = bytearray()
    try:
        for piece in c.rd.iter_to_close():
            rest += piece
    except ConnectionResetError:
        pass
    # arc must end the connection without completing the message, whatever
    # framing it chose (the upstream announced 2000 bytes, or no length)
    if hdrs.has("content-length"):
        assert hdrs.get("Content-Length") == "2000", hdrs
        assert len(rest) < 2000, "a reset response was completed to the client (%d bytes)" % len(rest)
        assert rest == b"r" * len(rest)
    else:
        assert "chunked" in hdrs.tokens("transfer-encoding"), \
            "no content-length and not chunked: a close-delimited body cannot show the truncation: %s" % hdrs
        assert not rest.endswith(b"0\r\n\r\n"), "a reset response got a terminating chunk: %r" % rest[-40:]
    assert b"r" * 100 in rest, "the part sent before the reset should reach the client"
    st = only_stream(srv, "/reset-after-data")
    assert st.rst_sent is not None


def test_reset_after_part_of_body_resets_h2_client_stream(gw, h2s):
    srv = h2s()
    a = gw(config(srv))
    c = H2Client(a.port)
    try:
        s = c.get("/reset-after-data?bytes=1000&delay_ms=300")
        assert s.status == 200, s
        assert not s.ended and s.reset_code is not None and s.reset_code != "eof", \
            "the client stream must be reset, not ended cleanly: %r" % s
        assert bytes(s.body) == b"r" * 1000
        # the client connection carries on
        assert c.get("/info").status == 200
    finally:
        c.close()


# --------------------------------------------------------------- timeouts

def test_silent_stream_is_504_after_ttfb_while_sibling_finishes(gw, h2s):
    srv = h2s()
    a = gw(config(srv, timeouts={"ttfb": "500ms"}))
    c = H2Client(a.port)
    try:
        t0 = time.monotonic()
        hang = c.request("/hang")
        srv.wait_stream("/hang")
        # head at once (within ttfb), then the body over ~1.5 s, past the 504
        sib = c.request("/stream?n=8&size=500&delay_ms=200")
        s_hang, s_sib = c.wait([hang, sib], timeout=20 * gw.bin.slow)
    finally:
        c.close()
    assert s_hang.status == 504, s_hang
    took = s_hang.t_done - t0
    assert 0.4 <= took < 0.5 + 3 * gw.bin.slow, "504 after %.2fs with ttfb 500ms" % took
    assert s_sib.status == 200 and s_sib.ended, s_sib
    assert bytes(s_sib.body) == b"".join(stream_piece(i, 500) for i in range(8))
    assert s_hang.t_done < s_sib.t_done, "the sibling should still be streaming when the 504 comes"
    up_hang, up_sib = srv.wait_stream("/hang"), srv.wait_stream("/stream")
    assert up_hang.conn is up_sib.conn, "both requests should share the upstream connection"
    assert not up_sib.conn.closed.is_set(), "the upstream connection was closed by the timeout"
    # the timed-out stream is reset upstream (its slot freed), not left open
    assert up_hang.gone.wait(5), "the timed-out upstream stream was never reset"
    assert up_hang.rst_received is not None, "the timed-out upstream stream was never reset"
    ms, _ = a.metrics()
    assert (metric(ms, "arc_upstream_timeouts_total", upstream="h2up") or 0) >= 1
    # an HTTP/1.1 client gets the same 504
    r = a.client().request("GET", "/hang")
    assert r.status == 504, r


# ---------------------------------------------------------- client cancel

def test_h2_client_reset_cancels_upstream_stream(gw, h2s):
    srv = h2s()
    a = gw(config(srv))
    c = H2Client(a.port)
    try:
        sid = c.request("/hang")
        up = srv.wait_stream("/hang")
        c.reset(sid, CANCEL)
        assert up.gone.wait(5 * gw.bin.slow), "the upstream stream was not reset after the client's RST_STREAM"
        assert up.rst_received == CANCEL, "upstream saw RST_STREAM(%s), want CANCEL" % up.rst_received
        s = c.get("/info?next=1")
        assert s.status == 200, s
    finally:
        c.close()
    nxt = srv.wait_stream("/info")
    assert nxt.conn is up.conn, "the upstream connection should serve the next request"
    assert not up.conn.closed.is_set() and up.conn.goaway_received is None
    assert len(srv.connections()) == 1


def test_http1_client_gone_mid_download_cancels_upstream_stream(gw, h2s):
    srv = h2s()
    a = gw(config(srv, workers=1))
    s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    s.sendall(build_request("GET", "/download?bytes=%d&chunk=32768&delay_ms=20" % (8 << 20)))
    got = b""
    while len(got) < 100000:
        d = s.recv(65536)
        assert d, "arc closed the client connection early"
        got += d
    assert got.startswith(b"HTTP/1.1 200"), got[:100]
    up = srv.wait_stream("/download")
    s.close()
    assert up.gone.wait(5 * gw.bin.slow), "the upstream stream was not reset after the client left"
    assert up.rst_received == CANCEL, "upstream saw RST_STREAM(%s), want CANCEL" % up.rst_received
    r = a.client().request("GET", "/info?next=1")
    assert r.status == 200, r
    nxt = srv.wait_stream("/info")
    assert nxt.conn is up.conn, "the upstream connection should serve the next request"
    assert not up.conn.closed.is_set() and up.conn.goaway_received is None


# ---------------------------------------------------------------- trailers

def test_response_trailers_reach_h2_client(gw, h2s):
    srv = h2s()
    a = gw(config(srv))
    c = H2Client(a.port)
    try:
        s = c.get("/trailers", headers=[("te", "trailers")])
    finally:
        c.close()
    assert s.status == 200 and s.ended, s
    body = bytes(s.body)
    assert body == b"first piece, second piece, last piece"
    assert s.trailers is not None, "no trailers reached the client: %r" % s
    t = dict(s.trailers)
    assert t.get("x-checksum") == hashlib.sha256(body).hexdigest(), s.trailers
    assert t.get("x-count") == "3", s.trailers
    assert "x-checksum" not in dict(s.headers), "trailers were folded into the head"


# ------------------------------------------------------------ big bodies

@pytest.mark.parametrize("client", ["http1", "h2"])
def test_8mib_download_and_upload_byte_exact(gw, h2s, tmp_path, client):
    srv = h2s()
    a = gw(config(srv))
    flag = "--http1.1" if client == "http1" else "--http2-prior-knowledge"
    n = 8 << 20
    rc, out, err = curl([flag, a.url("/download?bytes=%d" % n)])
    assert rc == 0, err
    assert len(out) == n and hashlib.sha256(out).hexdigest() == stream_sha256(n), \
        "download: %d bytes, sha256 mismatch=%s" % (len(out), hashlib.sha256(out).hexdigest() != stream_sha256(n))
    data = os.urandom(n)
    src = tmp_path / "up.bin"
    src.write_bytes(data)
    rc, out, err = curl([flag, "--data-binary", "@" + str(src), "-H", "Content-Type: application/octet-stream",
                         a.url("/info")])
    assert rc == 0, err
    j = json.loads(out)
    assert j["body_len"] == n and j["body_sha256"] == hashlib.sha256(data).hexdigest(), \
        {k: j[k] for k in ("body_len", "body_sha256")}
    assert only_stream(srv, "/info").body_sha256 == hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------- TLS

def test_tls_upstream_negotiates_h2(gw, h2s, pki):
    srv = h2s(tls=(pki("a.pem"), pki("a.key")))
    a = gw(config(srv, tls={"ca_pem": pki("ca.pem"), "server_name": "a.test"}))
    c = a.client()
    for i in range(3):
        r = c.request("POST" if i else "GET", "/info?i=%d" % i, body=b"tls body" if i else None)
        assert r.status == 200, r
    assert r.json()["body"] == "tls body"
    assert srv.alpns and all(p == "h2" for p in srv.alpns), "ALPN negotiated: %s" % srv.alpns
    used = [cn for cn in srv.connections() if cn.stream_list]
    assert used and all(cn.tls for cn in used)
    for st in srv.streams():
        assert_valid_h2_fields(st)
    h = H2Client(a.port)
    try:
        assert h.get("/info?h2=1").status == 200
    finally:
        h.close()
    ms, _ = a.metrics()
    assert metric(ms, "arc_tls_handshakes_total", side="upstream", result="ok") >= 1


def test_tls_upstream_with_wrong_ca_is_502(gw, h2s, pki):
    srv = h2s(tls=(pki("a.pem"), pki("a.key")))
    a = gw(config(srv, tls={"ca_pem": pki("other.pem"), "server_name": "a.test"}))
    r = a.client().request("GET", "/info")
    assert r.status == 502, r
    assert srv.streams() == []


# --------------------------------------------------------------- metrics

def test_metrics_count_requests_to_the_h2_upstream(gw, h2s):
    srv = h2s()
    a = gw(config(srv))
    before, _ = a.metrics()
    c = a.client()
    for i in range(4):
        assert c.request("GET", "/info?i=%d" % i).status == 200
    h = H2Client(a.port)
    try:
        res = h.wait([h.request("/info?h=%d" % i) for i in range(3)])
        assert [s.status for s in res] == [200] * 3
    finally:
        h.close()
    assert len(srv.streams()) == 7
    after, text = a.metrics()

    def delta(name, **labels):
        return (metric(after, name, **labels) or 0) - (metric(before, name, **labels) or 0)
    assert delta("arc_upstream_requests_total", upstream="h2up") == 7, text[:3000]
    assert delta("arc_requests_total", route="h2", **{"class": "2xx"}) == 7
    assert (metric(after, "arc_upstream_connect_errors_total", upstream="h2up") or 0) == 0
    assert metric(after, "arc_upstream_pool_open", upstream="h2up") >= 1
