"""gRPC through arc: a grpcio client talks to an arc listener (`kind: http`,
HTTP/2 with prior knowledge, which is what an insecure grpcio channel
speaks; or `kind: https` with ALPN h2) and arc forwards to a real grpcio
server over an upstream with `protocol: http2` (h2c, or TLS with ALPN h2).
The generic bytes handlers are in tests/e2e/h2_upstreams.GrpcServer.

Unary, server-streaming, client-streaming and lock-step bidi calls work; a
failing call's status code and details, and trailing metadata, reach the
client; a deadline shorter than the server's work is DEADLINE_EXCEEDED at the
client and the upstream stream is cancelled (RST_STREAM(CANCEL), seen by a
python3-h2 upstream)."""
import queue
import time

import grpc
import pytest

from arcproc import make_config, route_conf, upstream_conf
from h2_upstreams import (CANCEL, GRPC_SERVICE, GrpcServer, H2Server, hang_handler, make_pki,
                          stop_servers)

MODES = ["h2c", "tls"]     # h2c: http listener + h2c upstream; tls: https listener + TLS upstream


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("grpcpki"))


@pytest.fixture
def ups():
    """Upstream servers (GrpcServer, H2Server); stopped after arc (see `gw`).
    An error a server recorded fails the test."""
    started = []

    class Ups:
        def grpc(self, **kw):
            s = GrpcServer(**kw)
            started.append(s)
            return s

        def h2(self, **kw):
            s = H2Server(**kw)
            started.append(s)
            return s
    yield Ups()
    stop_servers(started)


@pytest.fixture
def gw(ups, arc):
    return arc


@pytest.fixture
def chans(gw):
    """Channels opened by a test; closed before arc is stopped."""
    opened = []
    yield opened
    for ch in opened:
        ch.close()


def start(gw, chans, pki, mode, up_addr):
    up = upstream_conf("grpc", up_addr, protocol="http2")
    if mode == "tls":
        up["tls"] = {"ca_pem": pki("ca.pem"), "server_name": "a.test"}
    cfg = make_config([up], routes=[route_conf("grpc", "/{*rest}", upstream="grpc")])
    if mode == "tls":
        cfg["listeners"] = [{"name": "web", "kind": "https", "bind": "127.0.0.1:0",
                             "tls": {"certificates": [{"cert_pem": pki("a.pem"), "key_pem": pki("a.key")}]}}]
    a = gw(cfg)
    opts = [("grpc.enable_http_proxy", 0), ("grpc.enable_retries", 0)]
    target = "127.0.0.1:%d" % a.port
    if mode == "tls":
        with open(pki("ca.pem"), "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        ch = grpc.secure_channel(target, creds, options=opts + [("grpc.ssl_target_name_override", "a.test")])
    else:
        ch = grpc.insecure_channel(target, options=opts)
    chans.append(ch)
    return a, ch


def grpc_setup(ups, gw, chans, pki, mode):
    srv = ups.grpc(tls=(pki("a.pem"), pki("a.key")) if mode == "tls" else None)
    a, ch = start(gw, chans, pki, mode, srv.addr)
    return srv, a, ch


def method(name):
    return "/%s/%s" % (GRPC_SERVICE, name)


@pytest.mark.parametrize("mode", MODES)
def test_unary(ups, gw, chans, pki, mode):
    srv, a, ch = grpc_setup(ups, gw, chans, pki, mode)
    call = ch.unary_unary(method("Unary"))
    resp, c = call.with_call(b"hello arc", timeout=10, metadata=(("x-md", "one"),))
    assert resp == b"hello arc"
    assert c.code() == grpc.StatusCode.OK
    assert ("x-served-by", "grpc") in [(m.key, m.value) for m in c.initial_metadata()]
    big = bytes(range(256)) * 4096           # 1 MiB: several windows each way
    assert call(big, timeout=20) == big
    name, md = srv.metadata[0]
    md = dict(md)
    assert name == "Unary" and md.get("x-md") == "one", md
    assert md.get("x-forwarded-for") == "127.0.0.1", md
    assert md.get("x-forwarded-proto") == ("https" if mode == "tls" else "http"), md


@pytest.mark.parametrize("mode", MODES)
def test_server_streaming(ups, gw, chans, pki, mode):
    srv, a, ch = grpc_setup(ups, gw, chans, pki, mode)
    it = ch.unary_stream(method("ServerStream"))(b"5", timeout=15)
    # the server holds the rest until the first message arrived here: a
    # proxy that buffers the whole response fails this instead of passing slowly
    first = next(it)
    srv.first_seen.set()
    assert [first] + list(it) == [b"msg-%d" % i for i in range(5)]
    assert it.code() == grpc.StatusCode.OK


@pytest.mark.parametrize("mode", MODES)
def test_client_streaming(ups, gw, chans, pki, mode):
    srv, a, ch = grpc_setup(ups, gw, chans, pki, mode)
    msgs = [b"alpha", b"", b"bravo" * 1000, b"charlie"]
    resp = ch.stream_unary(method("ClientStream"))(iter(msgs), timeout=10)
    assert resp == b"4:" + b"".join(msgs)


@pytest.mark.parametrize("mode", MODES)
def test_bidi_lockstep(ups, gw, chans, pki, mode):
    srv, a, ch = grpc_setup(ups, gw, chans, pki, mode)
    q = queue.Queue()

    def requests():
        while True:
            m = q.get()
            if m is None:
                return
            yield m
    responses = ch.stream_stream(method("Bidi"))(requests(), timeout=15)
    got = []
    try:
        for i in range(5):
            # the next message is only sent once the previous answer came back
            q.put(b"m%d" % i)
            got.append(next(responses))
    finally:
        q.put(None)
    rest = list(responses)
    assert got == [b"echo:m%d" % i for i in range(5)] and rest == []
    assert responses.code() == grpc.StatusCode.OK


@pytest.mark.parametrize("mode", MODES)
def test_error_status_and_details(ups, gw, chans, pki, mode):
    srv, a, ch = grpc_setup(ups, gw, chans, pki, mode)
    with pytest.raises(grpc.RpcError) as ei:
        ch.unary_unary(method("Fail"))(b"k1", timeout=10)
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND, (ei.value.code(), ei.value.details())
    assert ei.value.details() == "no such key: k1"
    # the channel (and arc's connections) carry on
    assert ch.unary_unary(method("Unary"))(b"after", timeout=10) == b"after"


@pytest.mark.parametrize("mode", MODES)
def test_trailing_metadata(ups, gw, chans, pki, mode):
    srv, a, ch = grpc_setup(ups, gw, chans, pki, mode)
    resp, c = ch.unary_unary(method("Trailers")).with_call(b"payload", timeout=10)
    assert resp == b"payload"
    tm = [(m.key, m.value) for m in c.trailing_metadata()]
    assert ("x-trailer", "t1") in tm, tm
    assert ("x-bin-bin", b"\x00\x01\x02\x03") in tm, tm
    assert c.code() == grpc.StatusCode.OK


@pytest.mark.parametrize("mode", MODES)
def test_deadline_exceeded_ends_the_upstream_call(ups, gw, chans, pki, mode):
    srv, a, ch = grpc_setup(ups, gw, chans, pki, mode)
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as ei:
        ch.unary_unary(method("Slow"))(b"5000", timeout=0.5)
    took = time.monotonic() - t0
    assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, (ei.value.code(), ei.value.details())
    assert took < 0.5 + 2 * gw.bin.slow, "DEADLINE_EXCEEDED after %.2fs" % took
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline and not (srv.slow_calls and srv.slow_calls[0]["t_end"]):
        time.sleep(0.02)
    assert srv.slow_calls, "the call never reached the upstream"
    rec = srv.slow_calls[0]
    assert rec["t_end"] is not None and rec["t_end"] - rec["t_start"] < 4, \
        "the upstream call ran on after the client's deadline: %s" % rec
    assert ch.unary_unary(method("Unary"))(b"after", timeout=10) == b"after"


def test_deadline_cancels_upstream_stream(ups, gw, chans, pki):
    # python3-h2 upstream that never answers: it sees exactly what arc sends
    h2up = ups.h2(name="grpc-h2", handlers={method("Hang"): hang_handler})
    a, ch = start(gw, chans, pki, "h2c", h2up.addr)
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as ei:
        ch.unary_unary(method("Hang"))(b"x", timeout=0.5)
    assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, (ei.value.code(), ei.value.details())
    assert time.monotonic() - t0 < 0.5 + 2 * gw.bin.slow
    st = h2up.wait_stream(method("Hang"))
    assert st.gone.wait(5 * gw.bin.slow), "the upstream stream was not cancelled"
    assert st.rst_received == CANCEL, "upstream saw RST_STREAM(%s), want CANCEL" % st.rst_received
    assert st.method == "POST" and st.get("content-type", "").startswith("application/grpc"), st.headers
    assert st.get_all("te") == ["trailers"], "gRPC needs te: trailers upstream: %s" % st.headers
    assert st.get("grpc-timeout"), "grpc-timeout was not forwarded: %s" % st.headers
    assert not st.conn.closed.is_set(), "the upstream connection was closed by the cancel"

