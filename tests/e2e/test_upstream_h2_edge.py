"""Edge cases of upstream HTTP/2 (`upstreams[].protocol: http2`): per-stream
deadlines that other streams' traffic must not extend, flow control both
ways (paused uploaders woken after a refused stream is retried, slow
readers that must not starve a connection's other streams), pool limits
(max_connections with max_lifetime), retries (REFUSED_STREAM, GOAWAY
last_stream_id, a connection lost), TLS without ALPN h2, and hostile or
broken upstreams that must never crash arc nor leak into another client's
response. Every test is bounded in time and stops what it starts.
"""
import hashlib
import json
import os
import socket
import threading
import time

import pytest

from arcproc import make_config, metric, route_conf, upstream_conf, wait_until
from h2_upstreams import (CANCEL, INTERNAL_ERROR, NO_ERROR, PROTOCOL_ERROR, REFUSED_STREAM,
                          H2Client, H2Server, H2ServerConn, StreamGone, make_pki, pattern_block)
from h2_upstreams import gw, h2s  # noqa: F401 (pytest fixtures)
from httpraw import build_request, parse_head_lines, stream_sha256

import h2.events
import h2.settings
from hyperframe.frame import GoAwayFrame, RstStreamFrame


# ----------------------------------------------------------------- fixtures

class TunedServer(H2Server):
    """H2Server whose connections advertise extra SETTINGS (e.g. a zero
    INITIAL_WINDOW_SIZE) and may run a hook on each new connection."""

    def __init__(self, settings=None, on_conn=None, conn_cls=H2ServerConn, **kw):
        self.extra_settings = dict(settings or {})
        self.on_conn = on_conn
        self.conn_cls = conn_cls
        super().__init__(**kw)

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                s, addr = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                c = self.conn_cls(self, s, len(self.conns) + 1, addr)
                if self.extra_settings:
                    vals = {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_concurrent_streams,
                            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 65536}
                    vals.update(self.extra_settings)
                    c.h2.local_settings = h2.settings.Settings(client=False, initial_values=vals)
                self.conns.append(c)
            if self.on_conn and not self.on_conn(c):
                continue                    # the hook took the socket over
            t = threading.Thread(target=c.run, name="h2up-%s-conn%d" % (self.name, c.id), daemon=True)
            with self.lock:
                self.threads.append(t)
            t.start()


class SlowAckConn(H2ServerConn):
    """Request body bytes of paths starting with /slow are recorded but not
    acknowledged: the handler opens the windows itself (st.ack)."""

    def _event(self, ev):
        if isinstance(ev, h2.events.DataReceived):
            st = self.streams.get(ev.stream_id)
            if st is not None and st.path.startswith("/slow"):
                st.body += ev.data
                st.body_len += len(ev.data)
                st._sha.update(ev.data)
                st.data_frames += 1
                st.unacked = getattr(st, "unacked", 0) + ev.flow_controlled_length
                if ev.stream_ended is not None:
                    st.ended.set()
                return
        super()._event(ev)


def slow_ack(st, n):
    """Acknowledges up to n received bytes of st; returns how many."""
    with st.conn.lock:
        k = min(n, getattr(st, "unacked", 0))
        if k:
            st.unacked -= k
            try:
                st.conn.h2.acknowledge_received_data(k, st.sid)
            except Exception:                       # noqa: BLE001 (stream gone)
                pass
    st.conn._wake()
    return k




@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("h2edgepki"))


def config(addr, workers=1, node=None, **up_extra):
    return make_config([upstream_conf("h2up", addr, protocol="http2", **up_extra)],
                       routes=[route_conf("h2", "/{*rest}", upstream="h2up")], workers=workers,
                       node=node)


def delta_metrics(a, before):
    after, text = a.metrics()

    def d(name, **labels):
        return (metric(after, name, **labels) or 0) - (metric(before, name, **labels) or 0)
    return d, after, text


def http1_request(port, raw, timeout=10.0):
    """Sends raw bytes on a fresh connection and returns (status, headers,
    body, seconds) of the response, reading to the close when the response
    is close-delimited; status None if the connection closed first."""
    from httpraw import BufReader, read_response, Closed
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    t0 = time.monotonic()
    try:
        s.sendall(raw)
        rd = BufReader(s)
        try:
            r = read_response(rd)
        except (Closed, ConnectionResetError, socket.timeout) as e:
            return None, None, repr(e), time.monotonic() - t0
        return r.status, r.headers, r.body, time.monotonic() - t0
    finally:
        s.close()


# ------------------------------------------------- per-stream deadlines

@pytest.mark.parametrize("phase", ["ttfb", "read"])
def test_stream_deadline_not_extended_by_upstream_pings(gw, h2s, phase):
    """A stream that stalls (no response head: timeouts.ttfb; head and part
    of the body, then nothing: timeouts.read) must end after its deadline
    (504, or a cut response), however busy the connection is otherwise. An
    upstream that sends PING every 100 ms makes arc answer PING ACKs, and
    h2_upstream.c arc_px__h2u_sent re-arms every stream's timer on each
    completed send: the stalled stream never times out."""
    def ping_stall(st):
        st.read_body()
        if phase == "read":
            st.send_headers(200, [("content-length", 1000)])
            st.send_data(b"x" * 100)
        n = 0
        while not st.sleep(0.1):
            n += 1
            st.conn._call(st, lambda h2c: h2c.ping(b"pg%06d" % n))

    srv = h2s(handlers={"/ping-stall": ping_stall})
    a = gw(config(srv.addr, timeouts={"ttfb": "1s", "read": "1s"}))
    s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    t0 = time.monotonic()
    try:
        s.sendall(build_request("GET", "/ping-stall"))
        got, closed = read_any(s, 6 * gw.bin.slow)
    finally:
        s.close()
    took = time.monotonic() - t0
    fr = final_response(got)
    if phase == "ttfb":
        assert fr and fr[0] == 504, "no 504 within %.1fs for a stream without a response head " \
                                    "(ttfb 1s): %r" % (took, got[:200])
    else:
        assert closed and fr and fr[0] == 200 and len(fr[2]) == 100, \
            "a stream stalled mid-body was not cut within %.1fs (read 1s): closed=%s %r" % (
                took, closed, got[:120])
    assert took < 1 + 1.5 * gw.bin.slow, "answer after %.2fs with a 1s deadline" % took


def test_ttfb_deadline_not_extended_by_sibling_download(gw, h2s):
    """Same deadline, legitimate traffic: a sibling stream downloading on the
    same connection makes arc send WINDOW_UPDATEs; the silent stream must
    still get its 504 after ttfb, not after the sibling finished."""
    srv = h2s()
    a = gw(config(srv.addr, timeouts={"ttfb": "1s"}))
    c = H2Client(a.port)
    try:
        # ~6 s of download: 64 KiB every 40 ms
        sib = c.request("/download?bytes=%d&chunk=65536&delay_ms=40" % (150 * 65536))
        srv.wait_stream("/download")
        t0 = time.monotonic()
        hang = c.request("/hang")
        deadline = time.monotonic() + 10 * gw.bin.slow
        while not c.streams[hang].done and time.monotonic() < deadline:
            c.pump(0.5)
        s_hang = c.streams[hang]
        assert s_hang.done, "no answer for the silent stream within 10 s (ttfb 1s) while a " \
                            "sibling downloads on the same upstream connection"
        assert s_hang.status == 504, s_hang
        took = s_hang.t_done - t0
        assert took < 1 + 1.5 * gw.bin.slow, "504 after %.2fs with ttfb 1s" % took
        c.reset(sib)
    finally:
        c.close()


# ------------------------------------------------------ flow control

def refuse_first_then_read(refused_once):
    """Handler: the first stream is left waiting (its window is 0, so arc
    holds the body and pauses its client), then refused with REFUSED_STREAM;
    later streams get their window opened and answer the body's length and
    sha256."""
    def handler(st):
        with st.conn.lock:
            first = not refused_once
            refused_once.append(st.sid)
        if first:
            if st.sleep(1.0):
                return
            st.reset(REFUSED_STREAM)
            return
        st.conn._call(st, lambda h2c: h2c.increment_flow_control_window(1 << 30, stream_id=st.sid))
        body = st.read_body(timeout=20)
        out = json.dumps({"len": len(body), "sha256": hashlib.sha256(body).hexdigest()}).encode()
        st.respond(200, [("content-type", "application/json"), ("content-length", len(out))], out)
    return handler


def test_refused_stream_retry_wakes_paused_http1_uploader(gw, h2s):
    """A stream refused (REFUSED_STREAM) before the upstream took any body
    byte is retried on the same connection with the body arc queued. The
    HTTP/1.1 client was paused on that queue (node.max_buffered_output):
    once the retried stream drains it, the client must be woken to send the
    rest. (h2_upstream.c attempt: the new stream does not inherit
    client_waits, so wake_clients never resumes the client, and the stream
    ends 408 after node.read_timeout, blaming the client.)"""
    refused = []
    srv = h2s(cls=TunedServer, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0},
              handlers={"/up": refuse_first_then_read(refused)})
    a = gw(config(srv.addr, node={"read_timeout": "2s"}))
    # (a first request, so arc has the upstream's SETTINGS before any DATA)
    assert a.client().request("GET", "/info?warmup=1").status == 200
    body = os.urandom(2 << 20)
    s = socket.create_connection(("127.0.0.1", a.port), timeout=15 * gw.bin.slow)
    sender_err = []

    def send():
        try:
            s.sendall(build_request("POST", "/up", [("Content-Type", "application/octet-stream"),
                                                    ("Content-Length", str(len(body)))], None) + body)
        except OSError as e:
            sender_err.append(e)
    t = threading.Thread(target=send, daemon=True)
    t.start()
    try:
        from httpraw import BufReader, read_response
        r = read_response(BufReader(s))
    finally:
        s.close()
        t.join(5)
    assert len(refused) >= 2, "the refused stream was not retried (streams: %s)" % refused
    assert r.status == 200, "refused-then-retried upload ended %d: %r" % (r.status, r.body[:200])
    j = json.loads(r.body)
    assert j == {"len": len(body), "sha256": hashlib.sha256(body).hexdigest()}, j


def test_refused_stream_retry_wakes_paused_h2_uploader(gw, h2s):
    """The same with an HTTP/2 client: its request body's window must be
    reopened once the retried stream drained the queue."""
    refused = []
    srv = h2s(cls=TunedServer, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0},
              handlers={"/up": refuse_first_then_read(refused)})
    a = gw(config(srv.addr, node={"read_timeout": "2s"}))
    assert a.client().request("GET", "/info?warmup=1").status == 200
    body = os.urandom(2 << 20)
    c = H2Client(a.port, timeout=15 * gw.bin.slow)
    try:
        sid = c.request("/up", method="POST", headers=[("content-length", len(body))], end=False)
        try:
            c.send_body(sid, body, timeout=10 * gw.bin.slow)
        except AssertionError as e:
            pytest.fail("the client's send window never reopened after the retry: %s (upstream "
                        "streams %s, client stream %r)" % (e, refused, c.streams[sid]), pytrace=False)
        s = c.wait(sid, timeout=10 * gw.bin.slow)[0]
    finally:
        c.close()
    assert len(refused) >= 2, refused
    assert s.status == 200, s
    assert json.loads(bytes(s.body)) == {"len": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_slow_readers_do_not_starve_other_streams_of_the_connection(gw, h2s):
    """docs/http2.md: "a slow client slows its stream, not the connection's
    others". A client that opens 24 downloads and reads nothing leaves up
    to a stream window (64 KiB) unacknowledged per stream; together they
    fill the upstream connection's 1 MiB receive window, and a third
    party's download on the same upstream connection then gets no byte
    until the slow streams time out (timeouts.read)."""
    srv = h2s()
    a = gw(config(srv.addr, node={"max_buffered_output": "64kb"}))
    slow = H2Client(a.port, auto_ack=False)
    try:
        for i in range(24):
            slow.request("/download?bytes=%d&chunk=16384&i=%d" % (8 << 20, i))
        wait_until(lambda: len(srv.streams("/download")) >= 24, 10 * gw.bin.slow, "24 upstream streams")
        time.sleep(1.5 * gw.bin.slow)           # let them fill what arc will take
        n = 1 << 20
        s = socket.create_connection(("127.0.0.1", a.port), timeout=8 * gw.bin.slow)
        try:
            s.sendall(build_request("GET", "/download?bytes=%d&victim=1" % n))
            from httpraw import BufReader, read_response
            t0 = time.monotonic()
            try:
                r = read_response(BufReader(s))
            except (socket.timeout, TimeoutError):
                up = [st for st in srv.streams("/download") if st.params.get("victim")]
                pytest.fail("a 1 MiB download got stuck for %.1fs behind 24 slow readers on the same "
                            "upstream connection (victim reached the upstream: %s, same connection: %s)"
                            % (time.monotonic() - t0, bool(up),
                               bool(up) and up[0].conn is srv.streams("/download")[0].conn),
                            pytrace=False)
        finally:
            s.close()
        assert r.status == 200 and len(r.body) == n, r
        assert hashlib.sha256(r.body).hexdigest() == stream_sha256(n)
    finally:
        slow.close()


# ------------------------------------------------------------------ pool

def test_max_lifetime_at_max_connections_is_not_503(gw, h2s):
    """pool.max_connections: 1 and pool.max_lifetime: 1s. A long stream keeps
    the only connection open past its lifetime; a new request then finds no
    connection that takes streams (conn_pick skips the retiring one) and none
    may be opened (the retiring one holds the cap), and conn_pick offers no
    place to wait: 503 "no endpoint" although the upstream is healthy."""
    srv = h2s()
    a = gw(config(srv.addr, pool={"max_connections": 1, "max_lifetime": "1s"}))
    long_c = a.client(timeout=15 * gw.bin.slow)
    long_c.send(build_request("GET", "/sleep?ms=3000"))
    srv.wait_stream("/sleep")
    time.sleep(1.3)
    t0 = time.monotonic()
    r = a.client(timeout=15 * gw.bin.slow).request("GET", "/info?second=1")
    took = time.monotonic() - t0
    assert r.status == 200, "request while the only connection is past pool.max_lifetime: %d %r " \
                            "after %.2fs" % (r.status, r.body[:100], took)
    assert long_c.response().status == 200


# ------------------------------------------------------------ framing

def test_empty_response_without_length_is_framed_for_http11(gw, h2s):
    """An HTTP/2 response whose HEADERS carry END_STREAM and no
    content-length (an empty 200 or 201: common from HTTP/2 servers) has an
    empty body. An HTTP/1.1 client must get it framed (Content-Length: 0):
    with neither Content-Length nor Transfer-Encoding, RFC 9112 §6.3 makes it
    read until the close, which never comes on a keep-alive connection.
    (h2_upstream.c cb_response maps end_stream to ARC_H1_BODY_NONE, and
    arc_px__build_response_head emits no length for NONE.)"""
    def empty(st):
        st.read_body()
        st.send_headers(int(st.params.get("s", "200")), [("x-empty", "1")], end_stream=True)

    srv = h2s(handlers={"/empty": empty})
    a = gw(config(srv.addr))
    c = a.client(timeout=3)
    for code in (200, 201, 404):
        c.send(build_request("GET" if code != 201 else "POST", "/empty?s=%d" % code,
                             body=b"x" if code == 201 else None))
        head = c.rd.read_head()
        first, hdrs = parse_head_lines(head)
        assert first.split(" ")[1] == str(code), first
        assert hdrs.get("Content-Length") == "0" or "chunked" in hdrs.tokens("transfer-encoding"), \
            "empty %d response reached an HTTP/1.1 client without framing (it must read to the " \
            "close): %r" % (code, head)
        if hdrs.get("Content-Length") != "0":
            assert c.rd.read_until(b"0\r\n\r\n") == b"0\r\n\r\n"
    assert c.request("GET", "/info").status == 200


# ------------------------------------------------------------- retries

@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_stream_reset_before_head_is_not_replayed(gw, h2s, method):
    """docs/http2.md and the stream diagram in h2_upstream.c: a stream the
    server resets (INTERNAL_ERROR) before its response head is a 502; only
    REFUSED_STREAM or a lost connection make a retry safe. cb_close passes
    every reset to stream_failed, whose "connection lost" rule (idempotent,
    nothing received) then replays the request on another connection: the
    service sees it twice, and a second connection is opened for it."""
    srv = h2s()
    a = gw(config(srv.addr))
    r = a.client().request(method, "/reset-before-headers?m=%s" % method)
    assert r.status == 502, r
    seen = srv.streams("/reset-before-headers")
    assert len(seen) == 1, "a request the upstream reset with INTERNAL_ERROR was sent %d times " \
                           "(connections %s)" % (len(seen), [s.conn.id for s in seen])
    assert len(srv.connections()) == 1, "%d upstream connections" % len(srv.connections())


def test_refused_stream_is_retried_then_502_after_four_attempts(gw, h2s):
    """An upstream that refuses every stream: arc retries on the same
    connection up to 4 attempts in all, then answers 502; no crash, no loop."""
    def refuse(st):
        st.reset(REFUSED_STREAM)

    srv = h2s(handlers={"/refuse": refuse})
    a = gw(config(srv.addr))
    assert a.client().request("GET", "/info?warm=1").status == 200
    t0 = time.monotonic()
    r = a.client().request("GET", "/refuse")
    assert r.status == 502, r
    assert time.monotonic() - t0 < 3 * gw.bin.slow
    assert len(srv.streams("/refuse")) == 4, [s.sid for s in srv.streams("/refuse")]
    assert len(srv.connections()) == 1
    assert a.client().request("GET", "/info?after=1").status == 200


def test_goaway_last_stream_id_retries_only_the_streams_above_it(gw, h2s):
    """GOAWAY(NO_ERROR, last_stream_id = the first stream) while three
    streams are open: the first finishes on the old connection, the two
    above are retried on a new one; every client gets its own answer once."""
    lock = threading.Lock()
    first_conn = []

    def g(st):
        with lock:
            if not first_conn:
                first_conn.append(st.conn)
        st.read_body()
        if st.conn is first_conn[0]:
            if st.sid == 5:
                f = GoAwayFrame(0)
                f.last_stream_id = 1
                f.error_code = NO_ERROR
                with st.conn.lock:
                    st.conn.goaway_last = 1
                    st.conn.inject += f.serialize()
                st.conn._wake()
            if st.sid != 1:
                while not st.sleep(0.2):   # refused by the GOAWAY: never answered
                    pass
                return
            st.sleep(0.5)
        body = json.dumps({"conn": st.conn.id, "target": st.target}).encode()
        st.respond(200, [("content-type", "application/json"), ("content-length", len(body))], body)

    srv = h2s(handlers={"/g": g})
    a = gw(config(srv.addr))
    c = H2Client(a.port)
    try:
        sids = []
        for i in range(3):
            sids.append(c.request("/g?i=%d" % i))
            wait_until(lambda: len(srv.streams("/g")) > i, 5 * gw.bin.slow, "stream %d upstream" % i)
        res = c.wait(sids, timeout=10 * gw.bin.slow)
    finally:
        c.close()
    assert [s.status for s in res] == [200, 200, 200], res
    got = [json.loads(bytes(s.body)) for s in res]
    assert [g_["target"] for g_ in got] == ["/g?i=0", "/g?i=1", "/g?i=2"], got
    assert got[0]["conn"] == 1 and got[1]["conn"] != 1 and got[2]["conn"] != 1, got
    assert first_conn[0].closed.wait(5), "the connection that sent GOAWAY stayed open"


@pytest.mark.parametrize("method,want", [("GET", 200), ("POST", 502)])
def test_connection_lost_before_head_retries_idempotent_only(gw, h2s, method, want):
    """The upstream connection dies (TCP close) with a stream open and no
    response: an idempotent request whose body was not sent goes again on a
    new connection; a POST is a 502."""
    def drop_first(st):
        st.read_body()
        if st.conn.id == 1:
            st.sleep(0.2)
            try:
                st.conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        st.respond(200, [("content-length", 2)], b"ok")

    srv = h2s(handlers={"/drop": drop_first})
    a = gw(config(srv.addr))
    before, _ = a.metrics()
    r = a.client().request(method, "/drop")
    assert r.status == want, r
    seen = srv.streams("/drop")
    assert len(seen) == (2 if want == 200 else 1), [(s.conn.id, s.sid) for s in seen]
    d, _, text = delta_metrics(a, before)
    assert d("arc_requests_total", route="h2") == 1, text[:2000]
    assert a.client().request("GET", "/info").status == 200


def test_refused_streams_with_a_body_are_retried(gw, h2s):
    """docs/http2.md: a stream the server refuses was not processed and is
    sent again. A server with SETTINGS_MAX_CONCURRENT_STREAMS 1 refuses the
    streams a fresh connection sent before its SETTINGS arrived; POSTs (every
    gRPC call is one) carry their small bodies in the first flight, so
    stream_failed finds pulled > 0 and answers 502 instead of retrying,
    although REFUSED_STREAM guarantees nothing was processed."""
    srv = h2s(max_concurrent_streams=1)
    a = gw(config(srv.addr))
    c = H2Client(a.port)
    try:
        sids = [c.request("/info?i=%d" % i, method="POST", body=b"payload-%d" % i) for i in range(4)]
        res = c.wait(sids, timeout=10 * gw.bin.slow)
    finally:
        c.close()
    refused = [sid for cn in srv.connections() for sid in cn.refused_limit]
    assert [s.status for s in res] == [200] * 4, "statuses %s (upstream refused streams %s)" % (
        [s.status for s in res], refused)
    assert sorted(json.loads(bytes(s.body))["body"] for s in res) == ["payload-%d" % i for i in range(4)]


# ---------------------------------------------------- hostile upstreams

import struct                                    # noqa: E402

import hpack                                     # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
T_DATA, T_HEADERS, T_PRIORITY, T_RST, T_SETTINGS, T_PUSH, T_PING, T_GOAWAY, T_WU, T_CONT = range(10)
F_END_STREAM, F_ACK, F_END_HEADERS = 0x1, 0x1, 0x4


class RawConn:
    """One upstream connection driven frame by frame by a test script."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.enc = hpack.Encoder()
        self.requests = []                # stream ids of request HEADERS seen
        self.frames = []                  # (type, flags, sid) of every frame received

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            d = self.sock.recv(65536)
        except (socket.timeout, OSError):
            return False
        if not d:
            return False
        self.buf += d
        return True

    def read_preface(self, timeout=5):
        while len(self.buf) < 24:
            if not self._fill(timeout):
                return False
        assert bytes(self.buf[:24]) == PREFACE, bytes(self.buf[:24])
        del self.buf[:24]
        return True

    def frame(self, timeout=5):
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            if not self._fill(timeout):
                return None
        n = int.from_bytes(self.buf[:3], "big")
        t, fl, sid = self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7fffffff
        payload = bytes(self.buf[9:9 + n])
        del self.buf[:9 + n]
        self.frames.append((t, fl, sid))
        if t == T_SETTINGS and not fl & F_ACK:
            self.send_frame(T_SETTINGS, F_ACK, 0, b"")
        if t == T_HEADERS:
            self.requests.append(sid)
        return t, fl, sid, payload

    def wait_request(self, timeout=5):
        """Reads frames until a request's HEADERS arrived; its stream id or None."""
        n = len(self.requests)
        deadline = time.monotonic() + timeout
        while len(self.requests) == n:
            if self.frame(max(0.05, deadline - time.monotonic())) is None:
                return None
        return self.requests[n]

    def drain(self, seconds):
        """Reads (and answers SETTINGS) for a while; False at EOF."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.frame(max(0.05, deadline - time.monotonic())) is None:
                if not self._alive():
                    return False
        return True

    def _alive(self):
        try:
            self.sock.settimeout(0.01)
            d = self.sock.recv(65536, socket.MSG_PEEK)
            return bool(d)
        except socket.timeout:
            return True
        except OSError:
            return False

    def send(self, b):
        try:
            self.sock.sendall(b)
        except OSError:
            pass

    def send_frame(self, t, flags, sid, payload):
        self.send(len(payload).to_bytes(3, "big") + bytes([t, flags]) + sid.to_bytes(4, "big") + payload)

    def settings(self, pairs=()):
        self.send_frame(T_SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))

    def headers(self, sid, hdrs, end_stream=False, end_headers=True):
        block = self.enc.encode([(k.encode() if isinstance(k, str) else k,
                                  v.encode() if isinstance(v, str) else v) for k, v in hdrs])
        self.send_frame(T_HEADERS, (F_END_STREAM if end_stream else 0) | (F_END_HEADERS if end_headers else 0),
                        sid, block)

    def data(self, sid, payload, end_stream=False):
        self.send_frame(T_DATA, F_END_STREAM if end_stream else 0, sid, payload)

    def rst(self, sid, code):
        self.send_frame(T_RST, 0, sid, struct.pack(">I", code))

    def goaway(self, last, code):
        self.send_frame(T_GOAWAY, 0, 0, struct.pack(">II", last, code))

    def window_update(self, sid, inc):
        self.send_frame(T_WU, 0, sid, struct.pack(">I", inc))

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class RawH2Upstream:
    """An HTTP/2 'server' whose every connection runs script(RawConn) after
    the preface and our SETTINGS. Records script exceptions."""

    def __init__(self, script, settings=()):
        self.script = script
        self.settings = settings
        self.errors = []
        self.conns = []
        self.stopping = threading.Event()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.addr = "127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c = RawConn(s)
            self.conns.append(c)
            t = threading.Thread(target=self._run, args=(c,), daemon=True)
            self.threads.append(t)
            t.start()

    def _run(self, c):
        try:
            if not c.read_preface():
                return
            c.settings(self.settings)
            self.script(c)
        except Exception as e:                     # noqa: BLE001
            if not self.stopping.is_set():
                self.errors.append(repr(e))
        finally:
            c.close()

    def stop(self):
        self.stopping.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        for c in list(self.conns):
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self.threads:
            t.join(5)


def ok_head(extra=()):
    return [(":status", "200")] + list(extra)


def _script(kind):
    """Returns script(conn) doing one broken thing to the first request."""
    def run(c):
        sid = c.wait_request()
        if sid is None:
            return
        if kind == "http1_reply":
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        elif kind == "status_letters":
            c.headers(sid, [(":status", "2x0")], end_stream=True)
        elif kind == "status_000":
            c.headers(sid, [(":status", "000")], end_stream=True)
        elif kind == "status_101":
            c.headers(sid, [(":status", "101"), ("upgrade", "websocket")])
        elif kind == "status_4digits":
            c.headers(sid, [(":status", "2000")], end_stream=True)
        elif kind == "no_status":
            c.headers(sid, [("x-a", "1")], end_stream=True)
        elif kind == "uppercase_name":
            c.headers(sid, ok_head([("X-Bad", "1"), ("content-length", "2")]))
            c.data(sid, b"ok", end_stream=True)
        elif kind == "crlf_value":
            c.headers(sid, ok_head([("x-bad", "a\r\nSet-Cookie: evil=1"), ("content-length", "2")]))
            c.data(sid, b"ok", end_stream=True)
        elif kind == "transfer_encoding":
            c.headers(sid, ok_head([("transfer-encoding", "chunked")]))
            c.data(sid, b"2\r\nok\r\n0\r\n\r\n", end_stream=True)
        elif kind == "two_content_lengths":
            c.headers(sid, ok_head([("content-length", "2"), ("content-length", "3")]))
            c.data(sid, b"ok", end_stream=True)
        elif kind == "data_before_headers":
            c.data(sid, b"early", end_stream=True)
        elif kind == "cl_short":
            c.headers(sid, ok_head([("content-length", "10")]))
            c.data(sid, b"12345", end_stream=True)
        elif kind == "cl_long":
            c.headers(sid, ok_head([("content-length", "5")]))
            c.data(sid, b"1234567890", end_stream=True)
        elif kind == "data_on_204":
            c.headers(sid, [(":status", "204")])
            c.data(sid, b"body-of-a-204", end_stream=True)
        elif kind == "trailers_without_end":
            c.headers(sid, ok_head())
            c.data(sid, b"abc")
            c.headers(sid, [("x-t", "1")], end_stream=False)
            c.data(sid, b"def", end_stream=True)
        elif kind == "pseudo_in_trailers":
            c.headers(sid, ok_head())
            c.data(sid, b"abc")
            c.headers(sid, [(":status", "200")], end_stream=True)
        elif kind == "interim_after_final":
            c.headers(sid, ok_head())
            c.headers(sid, [(":status", "103")])
            c.data(sid, b"abc", end_stream=True)
        elif kind == "window_overflow":
            c.window_update(0, 0x7fffffff)
            c.window_update(0, 0x7fffffff)
        elif kind == "stream_window_overflow":
            c.window_update(sid, 0x7fffffff)
            c.window_update(sid, 0x7fffffff)
        elif kind == "push_promise":
            blk = c.enc.encode([(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"x"),
                                (b":path", b"/p")])
            c.send_frame(T_PUSH, F_END_HEADERS, sid, struct.pack(">I", 2) + blk)
        elif kind == "continuation_flood":
            c.headers(sid, ok_head(), end_headers=False)
            for _ in range(200):
                c.send_frame(T_CONT, 0, sid, b"")
        elif kind == "ping_flood":
            for i in range(500):
                c.send_frame(T_PING, 0, 0, struct.pack(">Q", i))
        elif kind == "settings_flood":
            for _ in range(500):
                c.settings([(3, 100)])
        elif kind == "empty_data_flood":
            c.headers(sid, ok_head())
            for _ in range(1000):
                c.data(sid, b"")
        elif kind == "rst_idle_stream":
            c.rst(sid + 100, INTERNAL_ERROR)
        elif kind == "headers_even_stream":
            c.headers(2, ok_head(), end_stream=True)
        elif kind == "headers_unopened_stream":
            c.headers(sid + 2, ok_head(), end_stream=True)
        elif kind == "huge_header":
            c.headers(sid, ok_head([("x-big", "v" * 16000), ("x-big2", "w" * 16000),
                                    ("x-big3", "z" * 16000)]), end_stream=True)
        elif kind == "many_interim":
            for _ in range(300):
                c.headers(sid, [(":status", "103"), ("link", "</a>; rel=preload")])
            c.headers(sid, ok_head([("content-length", "2")]))
            c.data(sid, b"ok", end_stream=True)
        elif kind == "goaway_zero_then_answer":
            c.goaway(0, NO_ERROR)
            c.headers(sid, ok_head([("content-length", "2")]))
            c.data(sid, b"ok", end_stream=True)
        elif kind == "goaway_error_mid_body":
            c.headers(sid, ok_head([("content-length", "100")]))
            c.data(sid, b"x" * 50)
            c.goaway(sid, PROTOCOL_ERROR)
        elif kind == "close_mid_body":
            c.headers(sid, ok_head([("content-length", "100")]))
            c.data(sid, b"x" * 50)
            time.sleep(0.1)
            return
        elif kind == "bad_frame_size_setting":
            c.settings([(5, 100)])          # MAX_FRAME_SIZE below 16384
        elif kind == "zero_window_forever":
            c.settings([(4, 0)])
        elif kind == "rst_no_error_mid_body":
            c.headers(sid, ok_head())
            c.data(sid, b"partial")
            c.rst(sid, NO_ERROR)
        elif kind == "padded_overflow":
            # PADDED flag with a pad length beyond the frame
            c.send_frame(T_DATA, 0x8, sid, bytes([200]) + b"ab")
        else:
            raise AssertionError("unknown script " + kind)
        c.drain(2.0)
    return run


HOSTILE = ["http1_reply", "status_letters", "status_000", "status_101", "status_4digits", "no_status",
           "uppercase_name", "crlf_value", "transfer_encoding", "two_content_lengths",
           "data_before_headers", "cl_short", "cl_long", "data_on_204", "trailers_without_end",
           "pseudo_in_trailers", "interim_after_final", "window_overflow", "stream_window_overflow",
           "push_promise", "continuation_flood", "ping_flood", "settings_flood", "empty_data_flood",
           "rst_idle_stream", "headers_even_stream", "headers_unopened_stream", "huge_header",
           "many_interim", "goaway_zero_then_answer", "goaway_error_mid_body", "close_mid_body",
           "bad_frame_size_setting", "zero_window_forever", "rst_no_error_mid_body", "padded_overflow"]


@pytest.fixture
def raw_up():
    started = []

    def start(script, settings=()):
        s = RawH2Upstream(script, settings)
        started.append(s)
        return s
    yield start
    errors = []
    for s in started:
        s.stop()
        errors += s.errors
    if errors:
        pytest.fail("raw upstream script errors: %s" % errors, pytrace=False)


def final_response(buf):
    """(status, head, body) of the first non-1xx response in buf, or None."""
    rest = bytes(buf)
    while rest.startswith(b"HTTP/1.1 ") and b"\r\n\r\n" in rest:
        head, _, body = rest.partition(b"\r\n\r\n")
        status = int(head[9:12])
        if 100 <= status < 200:
            rest = body
            continue
        return status, head, body
    return None


def read_any(sock, timeout):
    """Reads until a complete final response with Content-Length, the close,
    or the timeout: (bytes, closed)."""
    sock.settimeout(timeout)
    out = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            d = sock.recv(65536)
        except socket.timeout:
            return bytes(out), False
        except ConnectionResetError:
            return bytes(out), True
        if not d:
            return bytes(out), True
        out += d
        fr = final_response(out)
        if fr:
            cl = [ln for ln in fr[1].split(b"\r\n") if ln.lower().startswith(b"content-length:")]
            if cl and len(fr[2]) >= int(cl[0].split(b":")[1]):
                return bytes(out), False
    return bytes(out), False


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_upstream_never_crashes_nor_hangs(gw, raw_up, h2s, kind):
    """Each broken behaviour on the first request of a connection: the HTTP/1.1
    client gets a complete 502/504 (or a 200 the protocol allows), or a
    response cut by a close, within seconds; arc stays up (a sanitizer report
    fails the test in the fixture) and serves the next request from a good
    upstream."""
    bad = raw_up(_script(kind))
    good = h2s()
    cfg = make_config([upstream_conf("bad", bad.addr, protocol="http2", timeouts={"ttfb": "1s", "read": "1s"}),
                       upstream_conf("good", good.addr, protocol="http2")],
                      routes=[route_conf("good", "/good/{*rest}", upstream="good"),
                              route_conf("bad", "/{*rest}", upstream="bad")], workers=1)
    a = gw(cfg)
    s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
    try:
        s.sendall(build_request("GET", "/x"))
        got, closed = read_any(s, 6 * gw.bin.slow)
    finally:
        s.close()
    fr = final_response(got)
    assert fr or closed, "no answer within 6s for %s: %r" % (kind, got[:300])
    if fr:
        assert fr[0] in (200, 204, 502, 504), (kind, got[:300])
        assert b"evil" not in fr[1], got[:300]
    r = a.client().request("GET", "/good/info")
    assert r.status == 200, r


def _answer_all(c, seconds=3.0):
    """Answers every request on c with 200 'ok:<path>' until it closes."""
    dec = hpack.Decoder()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        f = c.frame(0.2)
        if f is None:
            if not c._alive():
                return
            continue
        t, fl, sid, payload = f
        if t == T_HEADERS:
            if fl & 0x8:                            # PADDED
                payload = payload[1:len(payload) - payload[0]]
            if fl & 0x20:                           # PRIORITY
                payload = payload[5:]
            path = dict(dec.decode(payload)).get(":path", "?")
            body = ("ok:" + path).encode()
            c.headers(sid, ok_head([("content-length", str(len(body)))]))
            c.data(sid, body, end_stream=True)


@pytest.mark.parametrize("how", ["goaway_protocol_error", "window_overflow", "tcp_close"])
def test_connection_failure_with_many_streams_each_client_gets_its_own_answer(gw, raw_up, how):
    """Six streams on one upstream connection; three got their head and part
    of the body, three nothing. Then the connection fails. The three
    started responses are cut; the other three (GETs) are retried on a new
    connection and each client gets exactly its own body."""
    state = {"n": 0}
    lock = threading.Lock()

    def script(c):
        with lock:
            state["n"] += 1
            first = state["n"] == 1
        if not first:
            _answer_all(c)
            return
        sids = []
        while len(sids) < 6:
            sid = c.wait_request(10)
            if sid is None:
                return
            sids.append(sid)
        for sid in sids[:3]:
            c.headers(sid, ok_head([("content-length", "1000")]))
            c.data(sid, b"p" * 100)
        time.sleep(0.3)
        if how == "goaway_protocol_error":
            c.goaway(0, PROTOCOL_ERROR)
        elif how == "window_overflow":
            c.window_update(0, 0x7fffffff)
            c.window_update(0, 0x7fffffff)
        c.drain(0.3)

    up = raw_up(script)
    a = gw(config(up.addr, timeouts={"ttfb": "5s"}))
    results = {}

    def one(i):
        s = socket.create_connection(("127.0.0.1", a.port), timeout=8 * gw.bin.slow)
        try:
            s.sendall(build_request("GET", "/m?i=%d" % i))
            results[i] = read_any(s, 8 * gw.bin.slow)
        finally:
            s.close()
    ts = []
    for i in range(6):
        t = threading.Thread(target=one, args=(i,), daemon=True)
        t.start()
        ts.append(t)
        wait_until(lambda: up.conns and len(up.conns[0].requests) > i, 5 * gw.bin.slow, "request %d" % i)
    for t in ts:
        t.join(15 * gw.bin.slow)
    cut, ok = 0, 0
    summary = {i: (final_response(g)[0] if final_response(g) else None, closed, len(g))
               for i, (g, closed) in sorted(results.items())}
    for i, (got, closed) in sorted(results.items()):
        fr = final_response(got)
        assert fr, "client %d: no response: %r" % (i, got[:200])
        if fr[2].startswith(b"p"):
            assert closed and fr[0] == 200 and len(fr[2]) < 1000 and set(fr[2]) == {ord("p")}, (i, got[:300])
            cut += 1
        else:
            assert fr[0] == 200 and fr[2] == b"ok:/m?i=%d" % i, (i, got[:300], summary,
                                                                  len(up.conns))
            ok += 1
    assert (cut, ok) == (3, 3), {i: r[0][:120] for i, r in results.items()}
    assert a.client().request("GET", "/after").status == 200


# ------------------------------------------- re-entrancy under load

def test_pipelined_http1_requests_start_inside_session_callbacks(gw, h2s):
    """20 requests pipelined in one write: each response's END_STREAM ends
    its exchange inside arc_h2_recv, which starts the next pipelined
    request (a stream submitted from inside the callback). Responses come
    back in order, each with its own body."""
    srv = h2s()
    a = gw(config(srv.addr))
    c = a.client(timeout=10 * gw.bin.slow)
    n = 20
    c.send(b"".join(build_request("GET" if i % 3 else "POST", "/info?i=%d" % i,
                                  body=None if i % 3 else b"b%d" % i) for i in range(n)))
    for i in range(n):
        r = c.response()
        assert r.status == 200, (i, r)
        j = r.json()
        assert j["target"] == "/info?i=%d" % i, (i, j["target"])
        assert j["body"] == ("" if i % 3 else "b%d" % i), (i, j["body"])


def test_h2_client_resets_and_upstream_failures_interleaved(gw, raw_up):
    """An HTTP/2 client runs 40 streams; the upstream answers some, resets
    some before and some after the head, and finally kills the connection
    while the client resets others: no crash, every stream ends."""
    dec_lock = threading.Lock()
    conn_n = {"n": 0}

    def script(c):
        with dec_lock:
            conn_n["n"] += 1
            first = conn_n["n"] == 1
        if not first:
            _answer_all(c, 5)
            return
        sids = []
        deadline = time.monotonic() + 5
        while len(sids) < 40 and time.monotonic() < deadline:
            sid = c.wait_request(1)
            if sid is not None:
                sids.append(sid)
        for k, sid in enumerate(sids):
            m = k % 5
            if m == 0:
                c.headers(sid, ok_head([("content-length", "3")]))
                c.data(sid, b"abc", end_stream=True)
            elif m == 1:
                c.rst(sid, INTERNAL_ERROR)
            elif m == 2:
                c.headers(sid, ok_head())
                c.data(sid, b"partial")
                c.rst(sid, CANCEL)
            elif m == 3:
                c.headers(sid, ok_head())
                c.data(sid, b"more")
            # m == 4: nothing
        c.drain(0.3)
        c.window_update(0, 0x7fffffff)
        c.window_update(0, 0x7fffffff)
        c.drain(0.5)

    up = raw_up(script)
    a = gw(config(up.addr, timeouts={"ttfb": "3s", "read": "3s"}))
    c = H2Client(a.port, timeout=10)
    try:
        sids = [c.request("/s?i=%d" % i) for i in range(40)]
        wait_until(lambda: up.conns and len(up.conns[0].requests) >= 40, 5 * gw.bin.slow, "40 streams")
        for sid in sids[4::10]:
            c.reset(sid)
        deadline = time.monotonic() + 10 * gw.bin.slow
        while not all(c.streams[s].done or s in sids[4::10] for s in sids) and time.monotonic() < deadline:
            c.pump(0.5)
        left = [c.streams[s] for s in sids if not (c.streams[s].done or s in sids[4::10])]
        assert not left, left[:3]
        assert c.get("/after").status == 200
    finally:
        c.close()



# ------------------------------------------------ flow-control regressions

def slow_reader(st):
    """Takes the request body at ~1 MB/s (16 KiB per 15 ms), answers its
    length and sha256."""
    while not st.ended.is_set() or getattr(st, "unacked", 0):
        if st.sleep(0.015):
            return
        slow_ack(st, 16384)
    body = bytes(st.body)
    out = json.dumps({"len": len(body), "sha256": hashlib.sha256(body).hexdigest()}).encode()
    st.respond(200, [("content-type", "application/json"), ("content-length", len(out))], out)


@pytest.mark.parametrize("client", ["http1", "h2"])
def test_big_upload_to_slow_upstream_pauses_and_resumes_client(gw, h2s, client):
    """3 MiB up to a service that takes ~1 MB/s: the client is paused on
    node.max_buffered_output and woken as the upstream's window reopens; the
    body arrives whole, no 408 (node.read_timeout 2s)."""
    srv = h2s(cls=TunedServer, conn_cls=SlowAckConn, handlers={"/slow": slow_reader})
    a = gw(config(srv.addr, node={"read_timeout": "2s"}))
    body = os.urandom(3 << 20)
    want = {"len": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    if client == "http1":
        r = a.client(timeout=20 * gw.bin.slow).request("POST", "/slow", body=body)
        assert r.status == 200, r
        assert r.json() == want
    else:
        c = H2Client(a.port, timeout=20 * gw.bin.slow)
        try:
            sid = c.request("/slow", method="POST", body=body)
            s = c.wait(sid, timeout=20 * gw.bin.slow)[0]
        finally:
            c.close()
        assert s.status == 200, s
        assert json.loads(bytes(s.body)) == want


def test_slow_http1_reader_gets_big_download_byte_exact(gw, h2s):
    """A client reading 2 MiB slowly through a small receive buffer: the
    stream's window is reopened as it reads (no stall until timeouts.read)."""
    srv = h2s()
    a = gw(config(srv.addr, timeouts={"read": "2s"}, node={"max_buffered_output": "64kb"}))
    n = 2 << 20
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    s.settimeout(10 * gw.bin.slow)
    s.connect(("127.0.0.1", a.port))
    try:
        s.sendall(build_request("GET", "/download?bytes=%d" % n))
        buf = bytearray()
        while b"\r\n\r\n" not in buf:
            d = s.recv(4096)
            assert d, buf
            buf += d
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        h = hashlib.sha256(rest)
        got = len(rest)
        t0 = time.monotonic()
        while got < n:
            d = s.recv(16384)
            assert d, "closed after %d of %d bytes (%.1fs)" % (got, n, time.monotonic() - t0)
            h.update(d)
            got += len(d)
            time.sleep(0.002)
        assert h.hexdigest() == stream_sha256(n)
    finally:
        s.close()


def test_slow_h2_reader_window_reopened(gw, h2s):
    """The same for an HTTP/2 client that acknowledges DATA slowly."""
    srv = h2s()
    a = gw(config(srv.addr, timeouts={"read": "2s"}, node={"max_buffered_output": "64kb"}))
    n = 2 << 20
    c = H2Client(a.port, timeout=10 * gw.bin.slow, auto_ack=False)
    try:
        sid = c.request("/download?bytes=%d" % n)
        deadline = time.monotonic() + 30 * gw.bin.slow
        st = c.streams[sid]
        acked = 0
        while not st.done and time.monotonic() < deadline:
            c.pump(0.5)
            if len(st.body) > acked:
                k = min(len(st.body) - acked, 16384)
                c.conn.acknowledge_received_data(k, sid)
                c.flush()
                acked += k
                time.sleep(0.003)
        assert st.done and st.ended, st
        assert len(st.body) == n and hashlib.sha256(bytes(st.body)).hexdigest() == stream_sha256(n)
    finally:
        c.close()


# ------------------------------------------------------ pool regressions

def test_idle_ttl_closes_an_idle_connection(gw, h2s):
    srv = h2s()
    a = gw(config(srv.addr, pool={"idle_ttl": "500ms"}))
    assert a.client().request("GET", "/info?a=1").status == 200
    cn = srv.connections()[0]
    assert cn.closed.wait(3 * gw.bin.slow), "an idle upstream connection outlived pool.idle_ttl 500ms"
    assert a.client().request("GET", "/info?a=2").status == 200
    assert len(srv.connections()) == 2


def test_max_lifetime_retires_an_idle_connection(gw, h2s):
    """pool.max_lifetime 1s, idle_ttl 30s: once past its lifetime a
    connection takes no new stream, and having none it should close (docs:
    "it closes when its last stream ends"); it lingers until idle_ttl."""
    srv = h2s()
    a = gw(config(srv.addr, pool={"max_lifetime": "1s", "idle_ttl": "30s"}))
    assert a.client().request("GET", "/info?a=1").status == 200
    time.sleep(1.3)
    assert a.client().request("GET", "/info?a=2").status == 200
    conns = srv.connections()
    assert len(conns) == 2, "a connection past pool.max_lifetime was reused"
    assert conns[0].closed.wait(3 * gw.bin.slow), \
        "the connection past pool.max_lifetime, with no stream, was still open 3s later"


def test_max_connections_queues_streams_on_the_least_busy(gw, h2s):
    """pool.max_connections 1 and a server allowing 2 streams: 8 concurrent
    requests wait for slots on the one connection; a client cancelling a
    queued stream does not disturb the others."""
    srv = h2s(max_concurrent_streams=2)
    a = gw(config(srv.addr, pool={"max_connections": 1}))
    assert a.client().request("GET", "/info?warm=1").status == 200
    c = H2Client(a.port)
    try:
        sids = [c.request("/sleep?ms=300&i=%d" % i) for i in range(8)]
        time.sleep(0.1)
        c.reset(sids[6])
        res = c.wait([s for s in sids if s != sids[6]], timeout=15 * gw.bin.slow)
    finally:
        c.close()
    assert [s.status for s in res] == [200] * 7, res
    assert len(srv.connections()) == 1
    assert all(cn.max_open_acked <= 2 for cn in srv.connections())


def test_goaway_at_max_connections_is_a_prompt_503(gw, h2s):
    """pool.max_connections 1: the server sends GOAWAY(NO_ERROR) while a
    long stream runs. The cap is a hard limit (docs/http2.md): a request
    arriving while the only connection drains gets a prompt 503 (no
    endpoint) rather than a second connection or a hang; the running
    stream finishes; once the old connection closed, requests flow again."""
    srv = h2s(goaway_after=1)
    a = gw(config(srv.addr, pool={"max_connections": 1}))
    long_c = a.client(timeout=15 * gw.bin.slow)
    long_c.send(build_request("GET", "/sleep?ms=1500"))
    srv.wait_stream("/sleep")
    time.sleep(0.3)
    t0 = time.monotonic()
    r = a.client(timeout=15 * gw.bin.slow).request("GET", "/info?during=1")
    assert r.status == 503 and time.monotonic() - t0 < 1.0 * gw.bin.slow, r
    assert long_c.response().status == 200
    wait_until(lambda: a.client().request("GET", "/info?after=1").status == 200, 10 * gw.bin.slow,
             "a request after the draining connection closed")
    assert len(srv.connections()) == 2


# ------------------------------------------------------------------- TLS

class TlsNoH2:
    """A TLS server that does not negotiate h2 (no ALPN, or http/1.1 only);
    records what it received after the handshake and answers HTTP/1.1."""

    def __init__(self, pki, alpn=None):
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki("a.pem"), pki("a.key"))
        if alpn:
            ctx.set_alpn_protocols(alpn)
        self.ctx = ctx
        self.received = []
        self.handshakes = 0
        self.stopping = threading.Event()
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.addr = "127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stopping.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                s.settimeout(2)
                t = self.ctx.wrap_socket(s, server_side=True)
                self.handshakes += 1
                data = b""
                try:
                    while len(data) < 4096:
                        d = t.recv(4096)
                        if not d:
                            break
                        data += d
                        if b"\r\n\r\n" in data:
                            t.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                except OSError:
                    pass
                self.received.append(data)
            except OSError:
                pass
            finally:
                s.close()

    def stop(self):
        self.stopping.set()
        self.lsock.close()
        self.t.join(5)


@pytest.mark.parametrize("alpn", [None, ["http/1.1"]], ids=["no-alpn", "http11-only"])
def test_tls_upstream_without_h2_alpn_is_502(gw, pki, alpn):
    srv = TlsNoH2(pki, alpn)
    try:
        a = gw(make_config([upstream_conf("h2up", srv.addr, protocol="http2",
                                          tls={"ca_pem": pki("ca.pem"), "server_name": "a.test"})],
                           routes=[route_conf("h2", "/{*rest}", upstream="h2up")], workers=1))
        before, _ = a.metrics()
        for i in range(2):
            r = a.client().request("GET", "/info?i=%d" % i)
            assert r.status == 502, r
        d, _, text = delta_metrics(a, before)
        assert d("arc_upstream_connect_errors_total", upstream="h2up") == 2, text[:3000]
        h = H2Client(a.port)
        try:
            assert h.get("/info?h2=1").status == 502
        finally:
            h.close()
    finally:
        srv.stop()


# ----------------------------------------------------------------- drain

def test_shutdown_with_streams_in_flight_is_clean(gw, h2s):
    """SIGTERM while HTTP/1.1 and HTTP/2 clients wait on hanging upstream
    streams and others download: arc drains for node.drain_timeout, then
    closes everything (ending the exchanges, failing the upstream streams)
    and exits 0 with no sanitizer report (leaks included)."""
    import signal as _signal
    srv = h2s()
    a = gw(config(srv.addr, workers=2, node={"drain_timeout": "1s"}))
    # a client that came and went first, so slots get reused in a mixed order
    assert a.client().request("GET", "/info?warm=1").status == 200
    h1 = []
    for i in range(4):
        s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
        s.sendall(build_request("GET", "/hang?i=%d" % i if i % 2 else "/download?bytes=%d&i=%d" % (8 << 20, i)))
        h1.append(s)
    c = H2Client(a.port, auto_ack=False)
    for i in range(6):
        c.request("/hang?h=%d" % i if i % 2 else "/download?bytes=%d&h=%d" % (8 << 20, i))
    wait_until(lambda: len(srv.streams()) >= 11, 10 * gw.bin.slow, "11 upstream streams")
    a.signal(_signal.SIGTERM)
    rc = a.wait_exit(15 * gw.bin.slow)
    for s in h1:
        s.close()
    c.close()
    assert rc == 0, "arc exit status %s after SIGTERM with streams in flight\n%s" % (rc, a.stderr_tail(40))
    a.expect_exited = True


def test_refused_stream_retry_keeps_request_trailers(gw, h2s):
    """A chunked HTTP/1.1 request with a trailer section, whose stream is
    refused before the upstream took its body: the retried stream must carry
    the same trailers (attempt() ends the retried body with none)."""
    seen = []

    def handler(st):
        with st.conn.lock:
            first = not seen
            seen.append(st.sid)
        if first:
            if st.sleep(0.5):
                return
            st.reset(REFUSED_STREAM)
            return
        st.conn._call(st, lambda h2c: h2c.increment_flow_control_window(1 << 20, stream_id=st.sid))
        body = st.read_body(timeout=10)
        out = json.dumps({"body": body.decode(), "trailers": st.trailers}).encode()
        st.respond(200, [("content-type", "application/json"), ("content-length", len(out))], out)

    srv = h2s(cls=TunedServer, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0},
              handlers={"/t": handler})
    a = gw(config(srv.addr))
    assert a.client().request("GET", "/info?warmup=1").status == 200
    from httpraw import chunk_encode
    c = a.client(timeout=10 * gw.bin.slow)
    c.send(build_request("POST", "/t", [("Transfer-Encoding", "chunked"), ("TE", "trailers")], None) +
           chunk_encode([b"grpc-", b"web"], [("X-Sum", "7")]))
    r = c.response()
    assert len(seen) == 2, seen
    assert r.status == 200, r
    j = r.json()
    assert j["body"] == "grpc-web"
    assert j["trailers"] == [["x-sum", "7"]], "trailers after the retry: %s" % j["trailers"]


class SilentTcp:
    """Accepts TCP connections and never sends a byte."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.addr = "127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.accepted = []
        self.stopping = threading.Event()
        self.lsock.settimeout(0.2)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stopping.is_set():
            try:
                s, _ = self.lsock.accept()
                self.accepted.append(s)
            except socket.timeout:
                continue
            except OSError:
                return

    def stop(self):
        self.stopping.set()
        self.lsock.close()
        self.t.join(5)
        for s in self.accepted:
            s.close()


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])
def test_silent_upstream_is_504(gw, pki, tls):
    """An upstream that accepts TCP and says nothing: with TLS the handshake
    never completes (timeouts.connect), in h2c the stream gets no head
    (timeouts.ttfb); either way a prompt 504, counted as an upstream timeout."""
    srv = SilentTcp()
    try:
        extra = {"tls": {"ca_pem": pki("ca.pem"), "server_name": "a.test"}} if tls else {}
        a = gw(config(srv.addr, timeouts={"connect": "500ms", "ttfb": "500ms"}, **extra))
        before, _ = a.metrics()
        t0 = time.monotonic()
        r = a.client(timeout=10).request("GET", "/x")
        took = time.monotonic() - t0
        assert r.status == 504, r
        assert took < 0.5 + 2 * gw.bin.slow, took
        d, _, text = delta_metrics(a, before)
        assert d("arc_upstream_timeouts_total", upstream="h2up") == 1, text[:2000]
    finally:
        srv.stop()


@pytest.mark.parametrize("client", ["http1", "h2"])
def test_early_response_during_big_upload(gw, h2s, client):
    """The service answers 413 after 64 KiB of a 4 MiB upload and stops the
    stream (RST_STREAM NO_ERROR, RFC 9113 §8.1): the client gets the 413
    whole; arc cancels the rest of the body; the upstream connection lives."""
    def early(st):
        deadline = time.monotonic() + 5
        while st.body_len < 65536 and not st.ended.is_set() and time.monotonic() < deadline:
            if st.sleep(0.01):
                return
        st.respond(413, [("content-length", 8)], b"too big\n")
        try:
            st.reset(NO_ERROR)
        except StreamGone:
            pass

    srv = h2s(handlers={"/early": early})
    a = gw(config(srv.addr))
    body = os.urandom(4 << 20)
    if client == "http1":
        s = socket.create_connection(("127.0.0.1", a.port), timeout=10 * gw.bin.slow)
        t = threading.Thread(target=lambda: _sendall_quiet(s, build_request(
            "POST", "/early", [("Content-Length", str(len(body)))], None) + body), daemon=True)
        t.start()
        try:
            got, closed = read_any(s, 10 * gw.bin.slow)
        finally:
            s.close()
            t.join(5)
        fr = final_response(got)
        assert fr and fr[0] == 413 and fr[2].startswith(b"too big\n"), got[:300]
    else:
        c = H2Client(a.port, timeout=10 * gw.bin.slow)
        try:
            sid = c.request("/early", method="POST", headers=[("content-length", len(body))], end=False)
            try:
                c.send_body(sid, body, timeout=5 * gw.bin.slow)
            except Exception:                       # noqa: BLE001 (the stream ended first)
                pass
            s2 = c.wait(sid, timeout=10 * gw.bin.slow)[0]
            assert s2.status == 413 and bytes(s2.body) == b"too big\n", s2
            assert c.get("/info?after=1").status == 200
        finally:
            c.close()
    assert a.client().request("GET", "/info?next=1").status == 200
    assert len(srv.connections()) == 1


def _sendall_quiet(s, data):
    try:
        s.sendall(data)
    except OSError:
        pass


# ------------------------------------------------------------ chaos

def _chaos_script(seed):
    """A randomised upstream: per connection, random SETTINGS, then for each
    request one of many behaviours (proper answers of every framing, partial
    answers, resets of every kind, GOAWAY, window games, PINGs, 1xx, closes)."""
    import random
    lock = threading.Lock()
    counter = {"n": 0}

    def script(c):
        with lock:
            counter["n"] += 1
            rnd = random.Random(seed * 1000 + counter["n"])
        if rnd.random() < 0.3:
            c.settings([(3, rnd.choice([1, 2, 3, 100])), (4, rnd.choice([0, 1, 100, 65535, 1 << 20]))])
        dec = hpack.Decoder()
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            f = c.frame(0.2)
            if f is None:
                if not c._alive():
                    return
                continue
            t, fl, sid, payload = f
            if t != T_HEADERS:
                if rnd.random() < 0.05:
                    c.window_update(0, rnd.randint(1, 1 << 20))
                continue
            try:
                if fl & 0x8:
                    payload = payload[1:len(payload) - payload[0]]
                if fl & 0x20:
                    payload = payload[5:]
                dec.decode(payload)
            except Exception:                       # noqa: BLE001 (CONTINUATION etc.)
                pass
            k = rnd.randrange(16)
            if k <= 3:
                body = b"b" * rnd.choice([0, 1, 100, 20000])
                hd = ok_head([("content-length", str(len(body)))] if rnd.random() < 0.5 else [])
                c.headers(sid, hd, end_stream=not body)
                if body:
                    c.data(sid, body, end_stream=rnd.random() < 0.8)
                    if rnd.random() < 0.3:
                        c.headers(sid, [("x-trailer", "t")], end_stream=True)
            elif k == 4:
                c.rst(sid, rnd.choice([NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, REFUSED_STREAM, CANCEL]))
            elif k == 5:
                c.headers(sid, ok_head())
                c.data(sid, b"p" * rnd.randint(1, 5000))
                c.rst(sid, rnd.choice([NO_ERROR, INTERNAL_ERROR, CANCEL]))
            elif k == 6:
                c.goaway(max(0, sid - rnd.choice([0, 2, 4])), rnd.choice([NO_ERROR, PROTOCOL_ERROR]))
            elif k == 7:
                c.headers(sid, [(":status", "103")])
                c.headers(sid, ok_head([("content-length", "2")]))
                c.data(sid, b"ok", end_stream=True)
            elif k == 8:
                c.send_frame(T_PING, 0, 0, struct.pack(">Q", sid))
            elif k == 9:
                c.headers(sid, ok_head([("content-length", "10")]))
                c.data(sid, b"short", end_stream=True)
            elif k == 10:
                c.settings([(3, rnd.choice([0, 1, 5]))])
            elif k == 11:
                return                              # drop the connection
            elif k == 12:
                c.window_update(sid, 0x7fffffff)
                c.window_update(sid, 0x7fffffff)
            elif k == 13:
                c.headers(sid, [(":status", "204")], end_stream=True)
            # 14, 15: silence (timeouts)
    return script


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_chaos_upstream_with_mixed_clients(gw, raw_up, seed):
    """A few seconds of random upstream behaviour against HTTP/1.1 clients
    (GET, POST with and without length, pipelining) and an HTTP/2 client that
    also resets streams: arc must stay up with no sanitizer report, answer
    or close every request, and then serve a normal request."""
    import random
    up = raw_up(_chaos_script(seed))
    good_srv = H2Server(name="good")
    try:
        cfg = make_config([upstream_conf("h2up", up.addr, protocol="http2",
                                         timeouts={"ttfb": "300ms", "read": "300ms", "write": "300ms"}),
                           upstream_conf("good", good_srv.addr, protocol="http2")],
                          routes=[route_conf("good", "/good/{*rest}", upstream="good"),
                                  route_conf("h2", "/{*rest}", upstream="h2up")],
                          workers=1, node={"read_timeout": "1s", "max_buffered_output": "16kb"})
        a = gw(cfg)
        stop_at = time.monotonic() + 4
        errors = []

        def h1_worker(i):
            rnd = random.Random(seed * 10 + i)
            while time.monotonic() < stop_at:
                try:
                    s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
                except OSError as e:
                    errors.append(repr(e))
                    return
                try:
                    reqs = []
                    for j in range(rnd.randint(1, 4)):
                        m = rnd.choice(["GET", "POST", "PUT", "HEAD"])
                        body = os.urandom(rnd.choice([0, 10, 70000])) if m in ("POST", "PUT") else None
                        reqs.append(build_request(m, "/c?i=%d&j=%d" % (i, j), body=body))
                    s.sendall(b"".join(reqs))
                    read_any(s, 3)
                except OSError:
                    pass
                finally:
                    s.close()

        def h2_worker():
            rnd = random.Random(seed)
            while time.monotonic() < stop_at:
                try:
                    c = H2Client(a.port, timeout=5)
                except OSError as e:
                    errors.append(repr(e))
                    return
                try:
                    sids = []
                    for j in range(rnd.randint(1, 12)):
                        if rnd.random() < 0.3:
                            sids.append(c.request("/h?j=%d" % j, method="POST", body=os.urandom(rnd.choice([5, 40000]))))
                        else:
                            sids.append(c.request("/h?j=%d" % j))
                    for sid in sids:
                        if rnd.random() < 0.2:
                            c.reset(sid)
                    t_end = time.monotonic() + 2
                    while time.monotonic() < t_end and not all(c.streams[x].done for x in sids):
                        if not c.pump(0.3) and c.eof:
                            break
                except Exception:                   # noqa: BLE001 (the chaos may break the client)
                    pass
                finally:
                    c.close()

        ts = [threading.Thread(target=h1_worker, args=(i,), daemon=True) for i in range(3)]
        ts.append(threading.Thread(target=h2_worker, daemon=True))
        for t in ts:
            t.start()
        for t in ts:
            t.join(20)
        assert not errors, errors
        assert a.alive(), "arc died:\n" + a.stderr_tail(60)
        r = a.client().request("GET", "/good/info")
        assert r.status == 200, r
    finally:
        good_srv.stop()
