"""HTTP/2 from clients, through the same pipeline as HTTP/1.1, to HTTP/1.1
upstreams: h2c with prior knowledge and h2 over TLS (ALPN), with curl,
nghttp, h2load and python3-h2. Requests keep their method, path, query,
authority (as Host) and fields; bodies stream both ways intact (an upload
with no content-length is re-framed as chunked, with its trailers); local
answers (404, 405, respond) work per stream; many streams multiplex on one
connection; a stream the client resets is counted as aborted while its
siblings finish; and the flood guards (rapid reset, CONTINUATION, PING,
SETTINGS) answer GOAWAY(ENHANCE_YOUR_CALM), are counted by reason, and leave
other clients served."""
import hashlib
import json
import os
import socket
import struct
import subprocess
import time

import h2.config
import h2.connection
import h2.events
import pytest

from arcproc import make_config, metric, route_conf, upstream_conf, wait_for


def h2_config(up, **node):
    routes = [route_conf("ping", "/ping", methods=["GET", "HEAD"], respond={"status": 200, "body": "pong"}),
              route_conf("all", "/{*rest}", upstream="echo")]
    return make_config([upstream_conf("echo", up.addr)], routes=routes, node=node or None)


def curl(args, timeout=60):
    r = subprocess.run(["curl", "-sS", "--max-time", str(timeout)] + args, capture_output=True,
                       timeout=timeout + 10)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


class H2Client:
    """A python3-h2 client on a raw socket (h2c prior knowledge)."""

    def __init__(self, port, **cfg):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, **cfg))
        self.conn.initiate_connection()
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def events(self, timeout=10):
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        if not data:
            return None
        evs = self.conn.receive_data(data)
        self.flush()
        return evs

    def request(self, path, method="GET", headers=(), body=None, authority="h2.test"):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", "http"), (":authority", authority),
                (":path", path)] + list(headers)
        self.conn.send_headers(sid, hdrs, end_stream=body is None)
        if body is not None:
            self.conn.send_data(sid, body, end_stream=True)
        self.flush()
        return sid

    def response(self, sid, timeout=10):
        status, hdrs, body = None, [], b""
        self.trailers = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            evs = self.events(timeout)
            if evs is None:
                break
            for e in evs:
                if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid:
                    hdrs = [(k.decode(), v.decode()) for k, v in e.headers]
                    status = int(dict(hdrs)[":status"])
                elif isinstance(e, h2.events.DataReceived) and e.stream_id == sid:
                    body += e.data
                    self.conn.acknowledge_received_data(e.flow_controlled_length, sid)
                    self.flush()
                elif isinstance(e, h2.events.TrailersReceived) and e.stream_id == sid:
                    self.trailers = [(k.decode(), v.decode()) for k, v in e.headers]
                elif isinstance(e, h2.events.StreamEnded) and e.stream_id == sid:
                    return status, hdrs, body
                elif isinstance(e, h2.events.StreamReset) and e.stream_id == sid:
                    return ("reset", e.error_code), hdrs, body
        raise AssertionError("no complete response on stream %d" % sid)

    def close(self):
        self.sock.close()


def test_h2c_prior_knowledge_proxies_to_http1_upstream(arc, servers):
    up = servers.http(name="echo")
    a = arc(h2_config(up))
    rc, out, err = curl(["--http2-prior-knowledge", "-H", "X-Custom: 1",
                         "http://127.0.0.1:%d/some/path?q=1" % a.port, "-w", "\n%{http_version}"])
    assert rc == 0, err
    body, _, ver = out.rpartition(b"\n")
    assert ver == b"2"
    j = json.loads(body)
    assert j["path"] == "/some/path" and j["query"] == "q=1" and j["method"] == "GET"
    hdrs = {k.lower(): v for k, v in j["headers"]}
    assert hdrs["host"] == "127.0.0.1:%d" % a.port
    assert hdrs["x-custom"] == "1"
    assert hdrs["via"].endswith("2 arc")
    assert hdrs["x-forwarded-proto"] == "http"
    ms, _ = a.metrics()
    assert metric(ms, "arc_requests_total", route="all") == 1


def test_local_answers_per_stream(arc, servers):
    up = servers.http(name="echo")
    routes = [route_conf("ping", "/ping", methods=["GET", "HEAD"], respond={"status": 200, "body": "pong"})]
    a = arc(make_config([upstream_conf("echo", up.addr)], routes=routes))
    c = H2Client(a.port)
    s1 = c.request("/ping")
    st, hd, body = c.response(s1)
    assert st == 200 and body == b"pong"
    assert dict(hd)["content-length"] == "4"
    s2 = c.request("/ping", method="POST", body=b"x")
    st, hd, _ = c.response(s2)
    assert st == 405 and dict(hd)["allow"] == "GET, HEAD"
    s3 = c.request("/ping", method="HEAD")
    st, hd, body = c.response(s3)
    assert st == 200 and body == b""
    s4 = c.request("/nothing")
    st, _, _ = c.response(s4)
    assert st == 404
    c.close()


def test_h2_over_tls_with_alpn(arc, servers, tmp_path):
    key, cert = str(tmp_path / "k.pem"), str(tmp_path / "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"], check=True, capture_output=True)
    up = servers.http(name="echo")
    cfg = h2_config(up)
    cfg["listeners"] = [{"name": "web", "kind": "https", "bind": "127.0.0.1:0",
                         "tls": {"certificates": [{"cert_pem": cert, "key_pem": key}]}}]
    a = arc(cfg)
    rc, out, err = curl(["--http2", "--cacert", cert, "-w", "\n%{http_version}",
                         "https://localhost:%d/tls?x=2" % a.port])
    assert rc == 0, err
    body, _, ver = out.rpartition(b"\n")
    assert ver == b"2"
    hdrs = {k.lower(): v for k, v in json.loads(body)["headers"]}
    assert hdrs["x-forwarded-proto"] == "https"
    # and an HTTP/1.1-only client on the same listener
    rc, out, err = curl(["--http1.1", "--cacert", cert, "-w", "\n%{http_version}",
                         "https://localhost:%d/one" % a.port])
    assert rc == 0 and out.endswith(b"\n1.1"), err


def test_large_bodies_both_ways(arc, servers, tmp_path):
    up = servers.http(name="echo")
    a = arc(h2_config(up, max_buffered_output="64kb"))
    n = 24 << 20
    rc, out, err = curl(["--http2-prior-knowledge", "http://127.0.0.1:%d/stream?bytes=%d" % (a.port, n)])
    assert rc == 0 and len(out) == n, (len(out), err)
    src = tmp_path / "up.bin"
    data = os.urandom(6 << 20)
    src.write_bytes(data)
    rc, out, err = curl(["--http2-prior-knowledge", "--data-binary", "@" + str(src),
                         "http://127.0.0.1:%d/sink" % a.port])
    assert rc == 0, err
    j = json.loads(out)
    assert j["body_len"] == len(data)
    assert j["body_sha256"] == hashlib.sha256(data).hexdigest()


def test_upload_without_length_is_chunked_with_trailers(arc, servers):
    up = servers.http(name="echo")
    a = arc(h2_config(up))
    c = H2Client(a.port)
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "h2.test"),
                              (":path", "/trail"), ("te", "trailers")])
    c.conn.send_data(sid, b"hello ")
    c.conn.send_data(sid, b"world")
    c.conn.send_headers(sid, [("x-checksum", "42")], end_stream=True)
    c.flush()
    st, _, body = c.response(sid)
    assert st == 200
    j = json.loads(body)
    assert j["body"] == "hello world"
    hdrs = {k.lower(): v for k, v in j["headers"]}
    assert hdrs.get("transfer-encoding") == "chunked"
    assert ["X-Checksum", "42"] in [list(t) for t in j["trailers"]] or \
           ["x-checksum", "42"] in [list(t) for t in j["trailers"]], j["trailers"]
    c.close()


def test_chunked_response_trailers_reach_h2_client(arc, servers):
    """A chunked HTTP/1.1 response's trailer section becomes a trailing
    HEADERS frame; fields not allowed in trailers (RFC 9110 §6.5.1) are
    dropped."""
    up = servers.http(name="echo")
    a = arc(h2_config(up))
    c = H2Client(a.port)
    try:
        st, hdrs, body = c.response(c.request("/chunked", headers=[("te", "trailers")]))
    finally:
        c.close()
    assert st == 200
    assert body == b"hello chunked world" + b"x" * 70000
    assert c.trailers == [("x-checksum", "42")], c.trailers
    assert "x-checksum" not in dict(hdrs)


def test_h2c_preface_split_across_packets(arc, servers):
    """Prior knowledge whose 24-byte preface arrives in pieces is still
    HTTP/2 (not an HTTP/1 request line with version 2.0 answered 505)."""
    up = servers.http(name="echo")
    a = arc(h2_config(up))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "h2.test"),
                            (":path", "/ping")], end_stream=True)
    data = conn.data_to_send()
    s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in (data[:3], data[3:10], data[10:24], data[24:]):
            s.sendall(piece)
            time.sleep(0.05)
        got, status = b"", None
        deadline = time.monotonic() + 10
        while status is None and time.monotonic() < deadline:
            d = s.recv(65536)
            assert d, "arc closed the connection: %r" % got[:80]
            got += d
            assert not got.startswith(b"HTTP/1."), got[:80]
            for e in conn.receive_data(d):
                if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid:
                    status = dict(e.headers)[b":status"]
    finally:
        s.close()
    assert status == b"200"


def test_many_streams_multiplexed_h2load(arc, servers):
    up = servers.http(name="echo")
    a = arc(h2_config(up))
    r = subprocess.run(["h2load", "-n", "3000", "-c", "4", "-m", "32",
                        "http://127.0.0.1:%d/ping" % a.port], capture_output=True, text=True, timeout=120)
    assert "3000 succeeded, 0 failed" in r.stdout, r.stdout
    r = subprocess.run(["h2load", "-n", "600", "-c", "2", "-m", "16",
                        "http://127.0.0.1:%d/proxied" % a.port], capture_output=True, text=True, timeout=120)
    assert "600 succeeded, 0 failed" in r.stdout, r.stdout


def test_client_reset_counts_abort_and_siblings_finish(arc, servers):
    up = servers.http(name="echo")
    a = arc(h2_config(up))
    c = H2Client(a.port)
    slow = c.request("/slow?ms=5000")   # far longer than the reset takes, even under load
    fast = c.request("/fast")
    time.sleep(0.3)
    c.conn.reset_stream(slow, error_code=8)
    c.flush()
    st, _, body = c.response(fast)
    assert st == 200 and json.loads(body)["path"] == "/fast"
    c.close()
    # (a scrape reads counters a worker is still updating: wait for both,
    # the abort and its request, rather than for the first one only)
    def counted():
        ms, _ = a.metrics()
        return ((metric(ms, "arc_errors_total", kind="client_abort") or 0) >= 1 and
                (metric(ms, "arc_requests_total", route="all", **{"class": "4xx"}) or 0) >= 1)
    assert wait_for(counted, timeout=5), a.metrics()[1]


def test_authority_and_host_must_agree(arc, servers):
    up = servers.http(name="echo")
    a = arc(h2_config(up))
    c = H2Client(a.port, validate_outbound_headers=False, normalize_outbound_headers=False)
    sid = c.request("/x", headers=[("host", "other.test")], authority="h2.test")
    st, _, _ = c.response(sid)
    assert st == 400
    c.close()


def _raw_frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def _goaway_code(sock, timeout=10):
    """Reads frames until GOAWAY; returns its error code (None on EOF)."""
    sock.settimeout(timeout)
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            d = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            return None
        if not d:
            return None
        buf += d
        while len(buf) >= 9:
            ln = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + ln:
                break
            ftype, payload = buf[3], buf[9:9 + ln]
            buf = buf[9 + ln:]
            if ftype == 7:
                return int.from_bytes(payload[4:8], "big")
    return None


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _attack_socket(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(PREFACE + _raw_frame(4, 0, 0))     # empty SETTINGS
    return s


@pytest.mark.parametrize("attack", ["rapid_reset", "continuation_flood", "ping_flood", "settings_flood"])
def test_flood_guards(arc, servers, attack):
    up = servers.http(name="echo")
    a = arc(h2_config(up))
    s = _attack_socket(a.port)
    if attack == "rapid_reset":
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        c.initiate_connection()
        s.close()
        s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
        out = c.data_to_send()
        for _ in range(400):
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "x"),
                                 (":path", "/slow?ms=200")])
            c.reset_stream(sid, error_code=8)
            out += c.data_to_send()
        try:
            s.sendall(out)
        except OSError:
            pass
    elif attack == "continuation_flood":
        # HEADERS without END_HEADERS, then endless CONTINUATION frames
        block = b"\x82\x86\x84\x41\x01x"     # :method GET, :scheme http, :path /, :authority x
        data = _raw_frame(1, 0x1, 1, block)   # END_STREAM, no END_HEADERS
        for _ in range(200):
            data += _raw_frame(9, 0, 1, b"\x40\x01a\x01b")
        try:
            s.sendall(data)
        except OSError:
            pass
    elif attack == "ping_flood":
        try:
            s.sendall(b"".join(_raw_frame(6, 0, 0, b"12345678") for _ in range(2000)))
        except OSError:
            pass
    else:
        try:
            s.sendall(b"".join(_raw_frame(4, 0, 0) for _ in range(2000)))
        except OSError:
            pass
    assert _goaway_code(s) == 11            # ENHANCE_YOUR_CALM
    s.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        ms, _ = a.metrics()
        if (metric(ms, "arc_h2_flood_trips_total", reason=attack) or 0) >= 1:
            break
        time.sleep(0.1)
    assert metric(ms, "arc_h2_flood_trips_total", reason=attack) >= 1
    # a normal client on the same worker is still served
    c = H2Client(a.port)
    st, _, body = c.response(c.request("/ping"))
    assert st == 200 and body == b"pong"
    c.close()


def test_connect_is_refused(arc, servers):
    up = servers.http(name="echo")
    a = arc(h2_config(up))
    c = H2Client(a.port, validate_outbound_headers=False)
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid, [(":method", "CONNECT"), (":authority", "example.com:443")])
    c.flush()
    st, _, _ = c.response(sid)
    assert st == 405 or (isinstance(st, tuple) and st[0] == "reset"), st
    c.close()


def test_upgrade_h2c(arc, servers):
    # RFC 7540 §3.2: a body-less request with Upgrade: h2c and HTTP2-Settings
    # is answered on stream 1 after 101; the connection then speaks HTTP/2.
    up = servers.http(name="echo")
    a = arc(h2_config(up))
    rc, out, err = curl(["--http2", "-w", "\n%{http_version}", "http://127.0.0.1:%d/up?x=1" % a.port])
    assert rc == 0, err
    body, _, ver = out.rpartition(b"\n")
    assert ver == b"2", out[-200:]
    j = json.loads(body)
    assert j["path"] == "/up" and j["query"] == "x=1"
    names = {k.lower() for k, _ in j["headers"]}
    assert "upgrade" not in names and "http2-settings" not in names
    # with a body the upgrade is declined: plain HTTP/1.1
    rc, out, err = curl(["--http2", "-d", "abc", "-w", "\n%{http_version}",
                         "http://127.0.0.1:%d/post" % a.port])
    assert rc == 0 and out.endswith(b"\n1.1"), (out[-100:], err)
    assert json.loads(out.rpartition(b"\n")[0])["body"] == "abc"


def test_stalled_stream_body_is_a_client_timeout(arc, servers):
    # One stream stops sending its body: it alone is answered 408 after
    # node.read_timeout; the connection and its other streams carry on.
    up = servers.http(name="echo")
    a = arc(h2_config(up, read_timeout="1s"))
    c = H2Client(a.port)
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "h2.test"),
                              (":path", "/stall"), ("content-length", "100")])
    c.conn.send_data(sid, b"x" * 10)
    c.flush()
    st, _, _ = c.response(sid, timeout=15)
    assert st == 408, st
    st, _, body = c.response(c.request("/ping"))
    assert st == 200 and body == b"pong"
    c.close()
    ms, _ = a.metrics()
    assert metric(ms, "arc_errors_total", kind="client_timeout") == 1
    assert (metric(ms, "arc_errors_total", kind="upstream_timeout") or 0) == 0


def test_bodiless_upstream_responses(arc, servers):
    # A response without a body ends the stream with its HEADERS frame; the
    # exchange must still end exactly once (regression: it was freed while
    # the upstream side was still using it).
    up = servers.http(name="echo")
    a = arc(h2_config(up))
    c = H2Client(a.port)
    for path, method in (("/status/204", "GET"), ("/x", "HEAD"), ("/stream?bytes=0", "GET"),
                         ("/status/304", "GET")):
        st, hd, body = c.response(c.request(path, method=method))
        assert st in (200, 204, 304) and body == b"", (path, st, body)
    st, _, body = c.response(c.request("/after"))
    assert st == 200 and json.loads(body)["path"] == "/after"
    c.close()
    r = subprocess.run(["h2load", "-n", "2000", "-c", "8", "-m", "8",
                        "http://127.0.0.1:%d/status/204" % a.port], capture_output=True, text=True,
                       timeout=120)
    assert "2000 succeeded, 0 failed" in r.stdout, r.stdout
    ms, _ = a.metrics()
    assert metric(ms, "arc_requests_total", route="all", **{"class": "2xx"}) == 2004
    assert metric(ms, "arc_requests_total", route="all", **{"class": "3xx"}) == 1
