"""HTTP/2 and gRPC peers for the upstream-HTTP/2 e2e tests.

- H2Server: an HTTP/2 server on python3-h2, cleartext (h2c, prior knowledge)
  or TLS (ALPN h2), on 127.0.0.1 with a kernel-assigned port. One I/O thread
  per connection owns the socket (so TLS is never used from two threads);
  every request runs its handler in its own thread. It records, per
  connection, every stream (request fields in wire order, body, request
  trailers, RST_STREAM received with its code), the most streams that were
  open at once, streams refused because they broke the advertised
  SETTINGS_MAX_CONCURRENT_STREAMS or arrived after our GOAWAY, and the
  negotiated ALPN. Options: max_concurrent_streams, goaway_after (send
  GOAWAY once that many streams were accepted on a connection, finish them,
  then close), handlers per path.
- H2Client: a python3-h2 client (h2c prior knowledge or TLS with ALPN h2)
  that runs many streams on one connection and reports per stream the
  status, fields, body, trailers, or the RST_STREAM that ended it.
- GrpcServer: a real grpcio server (generic handlers, bytes in and out, no
  protoc), insecure (h2c) or TLS.
- make_pki: a test CA and a leaf for a.test / localhost / 127.0.0.1.

Everything started here is stopped by its stop(): listener closed, every
connection closed, every thread joined.
"""
import hashlib
import json
import os
import select
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse

import h2.config
import pytest
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

from httpraw import pattern_block

NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
REFUSED_STREAM = 0x7
CANCEL = 0x8

# RFC 9113 §8.2.2: connection-specific fields must not appear in HTTP/2.
CONNECTION_SPECIFIC = ("connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade")


# --------------------------------------------------------------------- PKI

def _sh(*args):
    subprocess.run(list(args), check=True, capture_output=True, timeout=30)


def make_pki(d):
    """A CA and a leaf certificate (a.test, localhost, 127.0.0.1) in directory
    d; returns a function name -> path ("ca.pem", "a.pem", "a.key",
    "other.pem" for an unrelated CA)."""
    d = str(d)
    p = lambda n: os.path.join(d, n)  # noqa: E731
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _sh("openssl", "req", "-x509", *ec, "-keyout", p("ca.key"), "-out", p("ca.pem"),
        "-days", "30", "-subj", "/CN=Arc H2 Test CA")
    _sh("openssl", "req", *ec, "-keyout", p("a.key"), "-out", p("a.csr"), "-subj", "/CN=a.test")
    with open(p("a.ext"), "w") as f:
        f.write("subjectAltName=DNS:a.test,DNS:localhost,IP:127.0.0.1\n"
                "extendedKeyUsage=serverAuth,clientAuth\n")
    _sh("openssl", "x509", "-req", "-in", p("a.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
        "-CAcreateserial", "-days", "30", "-out", p("a.pem"), "-extfile", p("a.ext"))
    _sh("openssl", "req", "-x509", *ec, "-keyout", p("other.key"), "-out", p("other.pem"),
        "-days", "30", "-subj", "/CN=Other CA")
    return p


# ----------------------------------------------------------------- server

class StreamGone(Exception):
    """The stream was reset (either side), or its connection closed."""


class _UnlimitedInbound(h2.connection.H2Connection):
    # h2 treats a HEADERS beyond our advertised SETTINGS_MAX_CONCURRENT_STREAMS
    # as a connection error. The server enforces the limit itself (counts the
    # breach, refuses the stream), so the test can say what arc did.
    @property
    def open_inbound_streams(self):
        return 0


class ServerStream:
    """One request stream as the upstream saw it, plus the handler's API."""

    def __init__(self, conn, sid, headers):
        self.conn = conn
        self.sid = sid
        self.headers = headers            # [(name, value)] in wire order, pseudo-fields included
        self.pseudo = {k: v for k, v in headers if k.startswith(":")}
        self.fields = [(k, v) for k, v in headers if not k.startswith(":")]
        self.method = self.pseudo.get(":method")
        self.target = self.pseudo.get(":path", "")
        u = urllib.parse.urlsplit(self.target)
        self.path = u.path
        self.params = dict(urllib.parse.parse_qsl(u.query))
        self.body = bytearray()
        self.body_len = 0
        self._sha = hashlib.sha256()
        self.trailers = []                # request trailers
        self.data_frames = 0
        self.ended = threading.Event()    # peer sent END_STREAM
        self.gone = threading.Event()     # reset (either side) or connection closed
        self.local_ended = False
        self.rst_received = None          # error code of a RST_STREAM from the peer
        self.rst_sent = None
        self.refused = None               # "limit" | "goaway" when refused unprocessed
        self.response_status = None
        self.sent_100 = False             # answered expect: 100-continue with a 100
        self.t_open = time.monotonic()
        self.t_gone = None

    # -- what arrived
    def get(self, name, default=None):
        n = name.lower()
        for k, v in self.fields:
            if k == n:
                return v
        return default

    def get_all(self, name):
        n = name.lower()
        return [v for k, v in self.fields if k == n]

    @property
    def body_sha256(self):
        return self._sha.hexdigest()

    @property
    def closed(self):
        return self.gone.is_set() or (self.ended.is_set() and self.local_ended)

    def info(self):
        return {"method": self.method, "target": self.target, "path": self.path,
                "authority": self.pseudo.get(":authority"), "scheme": self.pseudo.get(":scheme"),
                "headers": [list(h) for h in self.headers], "body_len": self.body_len,
                "body_sha256": self.body_sha256, "body": bytes(self.body[:4096]).decode("latin-1"),
                "trailers": self.trailers, "conn_id": self.conn.id, "stream_id": self.sid,
                "server": self.conn.server.name}

    # -- handler side (called from the handler's thread)
    def read_body(self, timeout=30):
        if (self.get("expect") or "").lower() == "100-continue" and not self.ended.is_set() \
                and self.response_status is None and not self.sent_100:
            self.sent_100 = True
            self.conn._call(self, lambda h2c: h2c.send_headers(self.sid, [(":status", "100")]))
        if not self.ended.wait(timeout):
            raise StreamGone("request body did not end within %ss" % timeout)
        return bytes(self.body)

    def send_headers(self, status, headers=(), end_stream=False):
        hdrs = [(":status", str(status))] + [(k.lower(), str(v)) for k, v in headers]
        self.response_status = status
        self.conn._call(self, lambda h2c: h2c.send_headers(self.sid, hdrs, end_stream=end_stream),
                        end=end_stream)

    def send_data(self, data, end_stream=False, timeout=30):
        """Sends data within the flow-control windows, waiting for WINDOW_UPDATE."""
        data = bytes(data)
        deadline = time.monotonic() + timeout
        while True:
            with self.conn.lock:
                while True:
                    if self.gone.is_set() or self.conn.dead:
                        raise StreamGone("stream %d gone" % self.sid)
                    try:
                        win = min(self.conn.h2.local_flow_control_window(self.sid),
                                  self.conn.h2.max_outbound_frame_size)
                    except (h2.exceptions.StreamClosedError, KeyError) as e:
                        raise StreamGone(repr(e))
                    if win > 0 or not data:
                        break
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise StreamGone("flow-control window stayed closed for %ss" % timeout)
                    self.conn.cond.wait(min(left, 0.5))
                piece, data = data[:win], data[win:]
                last = end_stream and not data
                try:
                    self.conn.h2.send_data(self.sid, piece, end_stream=last)
                except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError) as e:
                    raise StreamGone(repr(e))
                if last:
                    self.local_ended = True
            self.conn._wake()
            if not data:
                return

    def send_trailers(self, headers):
        hdrs = [(k.lower(), str(v)) for k, v in headers]
        self.conn._call(self, lambda h2c: h2c.send_headers(self.sid, hdrs, end_stream=True), end=True)

    def respond(self, status, headers=(), body=b"", trailers=None):
        if isinstance(body, str):
            body = body.encode()
        no_body = self.method == "HEAD" or status in (204, 304)
        if no_body:
            self.send_headers(status, headers, end_stream=True)
            return
        self.send_headers(status, headers, end_stream=not body and not trailers)
        if body:
            self.send_data(body, end_stream=not trailers)
        if trailers:
            self.send_trailers(trailers)

    def reset(self, code=INTERNAL_ERROR):
        def do(h2c):
            h2c.reset_stream(self.sid, error_code=code)
        self.rst_sent = code
        self.conn._call(self, do)
        self.gone.set()

    def sleep(self, seconds):
        """Sleeps; True if the stream went away meanwhile."""
        return self.gone.wait(seconds) or self.conn.server.stopping.is_set()


class H2ServerConn:
    def __init__(self, server, sock, cid, addr):
        self.server = server
        self.sock = sock
        self.id = cid
        self.peer = addr
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8",
                                        validate_inbound_headers=False,
                                        normalize_inbound_headers=False)
        self.h2 = _UnlimitedInbound(config=cfg)
        self.h2.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: server.max_concurrent_streams,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
        })
        self.streams = {}                 # sid -> ServerStream (every stream the peer opened)
        self.accepted = 0                 # streams handed to a handler
        self.max_open = 0                 # most streams open at once (as the peer opened them)
        self.settings_acked = False       # the peer acknowledged our SETTINGS (knows the limit)
        self.max_open_acked = 0           # most open at once among streams opened after that ACK
        self.refused_before_ack = []      # sids refused over the limit before the peer knew it
        self.refused_limit = []           # sids refused: beyond MAX_CONCURRENT_STREAMS
        self.refused_goaway = []          # sids refused: above our GOAWAY's last stream id
        self.goaway_last = None           # last_stream_id of the GOAWAY we sent
        self.goaway_received = None       # error code of a GOAWAY from the peer
        self.settings_received = 0
        self.alpn = None
        self.tls = False
        self.errors = []
        self.dead = False
        self.closed = threading.Event()
        self.close_reason = None          # "eof" | "goaway" | "error" | "stop" | "tls"
        self.outbuf = bytearray()
        self.inject = bytearray()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)

    # -- called with or without the lock from handler threads
    def _wake(self):
        with self.lock:                   # the pipe is closed (and its fds reusable) once dead
            if self.wake_w is None:
                return
            try:
                os.write(self.wake_w, b"x")
            except (BlockingIOError, OSError):
                pass

    def _call(self, stream, fn, end=False):
        with self.lock:
            if self.dead:
                raise StreamGone("connection %d closed" % self.id)
            if stream.gone.is_set():
                raise StreamGone("stream %d reset" % stream.sid)
            try:
                fn(self.h2)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError) as e:
                raise StreamGone(repr(e))
            if end:
                stream.local_ended = True
        self._wake()

    def open_streams(self):
        return [s for s in self.streams.values() if not s.closed]

    @property
    def stream_list(self):
        """Accepted (handled) streams, in arrival order."""
        with self.lock:
            return [s for s in self.streams.values() if s.refused is None]

    # -- the I/O thread
    def run(self):
        reason = "error"
        try:
            if self.server.ssl_ctx is not None:
                self.sock.settimeout(5)
                try:
                    self.sock = self.server.ssl_ctx.wrap_socket(self.sock, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    # a peer that refuses our certificate: recorded, not a server error
                    self.server.tls_failures.append(repr(e))
                    reason = "tls"
                    return
                self.tls = True
                self.alpn = self.sock.selected_alpn_protocol()
                self.server._record_alpn(self.alpn)
            self.sock.setblocking(False)
            with self.lock:
                self.h2.initiate_connection()
            reason = self._loop()
        except Exception as e:          # handshake failures, protocol errors
            if not self.server.stopping.is_set():
                self.errors.append(repr(e))
                self.server.errors.append("conn %d: %r" % (self.id, e))
            reason = "stop" if self.server.stopping.is_set() else "error"
        finally:
            with self.lock:
                self.dead = True
                for s in self.streams.values():
                    if not s.gone.is_set():
                        s.t_gone = time.monotonic()
                        s.gone.set()
                self.cond.notify_all()
            try:
                self.sock.close()
            except OSError:
                pass
            with self.lock:
                os.close(self.wake_r)
                os.close(self.wake_w)
                self.wake_r = self.wake_w = None
            self.close_reason = reason
            self.closed.set()

    def _loop(self):
        eof = False
        while True:
            if self.server.stopping.is_set():
                return "stop"
            with self.lock:
                self.outbuf += self.h2.data_to_send()
                if self.inject:
                    self.outbuf += self.inject
                    self.inject.clear()
                done_after_goaway = (self.goaway_last is not None and not self.open_streams()
                                     and not self.outbuf)
            if done_after_goaway:
                return "goaway"
            if eof:
                return "eof"
            pending = getattr(self.sock, "pending", lambda: 0)()
            if pending:
                r, w = [self.sock], []
            else:
                r, w, _ = select.select([self.sock, self.wake_r], [self.sock] if self.outbuf else [],
                                        [], 0.2)
            if self.wake_r in r:
                try:
                    while os.read(self.wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            if self.sock in r:
                eof = self._read()
            if self.outbuf:
                self._write()

    def _read(self):
        """Reads what is there; True at EOF."""
        while True:
            try:
                data = self.sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                return False
            except ssl.SSLWantWriteError:
                return False
            except (ConnectionResetError, ssl.SSLError, OSError) as e:
                if not self.server.stopping.is_set():
                    self.errors.append("recv: %r" % e)
                return True
            if not data:
                return True
            with self.lock:
                try:
                    events = self.h2.receive_data(data)
                except h2.exceptions.ProtocolError as e:
                    self.errors.append("protocol error from peer: %r" % e)
                    self.server.errors.append("conn %d: protocol error %r" % (self.id, e))
                    self.outbuf += self.h2.data_to_send()
                    self._write(block=True)
                    raise
                for ev in events:
                    self._event(ev)
                self.cond.notify_all()

    def _write(self, block=False):
        deadline = time.monotonic() + 5
        while self.outbuf:
            try:
                n = self.sock.send(self.outbuf[:262144])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                if not block or time.monotonic() > deadline:
                    return
                select.select([], [self.sock], [], 0.1)
                continue
            except OSError:
                self.outbuf.clear()
                return
            del self.outbuf[:n]

    def _event(self, ev):
        srv = self.server
        if isinstance(ev, h2.events.RequestReceived):
            st = ServerStream(self, ev.stream_id, [(k, v) for k, v in ev.headers])
            self.streams[ev.stream_id] = st
            n_open = len(self.open_streams())
            self.max_open = max(self.max_open, n_open)
            if self.settings_acked:
                self.max_open_acked = max(self.max_open_acked, n_open)
            if self.goaway_last is not None and ev.stream_id > self.goaway_last:
                st.refused = "goaway"
                self.refused_goaway.append(ev.stream_id)
                self._refuse(st)
            elif n_open > srv.max_concurrent_streams:
                st.refused = "limit"
                self.refused_limit.append(ev.stream_id)
                if not self.settings_acked:
                    self.refused_before_ack.append(ev.stream_id)
                self._refuse(st)
            else:
                self.accepted += 1
                with srv.lock:
                    srv.order.append(st)
                if srv.goaway_after and self.accepted == srv.goaway_after:
                    f = GoAwayFrame(0)
                    f.last_stream_id = ev.stream_id
                    f.error_code = NO_ERROR
                    self.goaway_last = ev.stream_id
                    self.inject += f.serialize()
                t = threading.Thread(target=srv._handle, args=(st,), daemon=True,
                                     name="h2up-%s-%d-%d" % (srv.name, self.id, ev.stream_id))
                with srv.lock:
                    srv.threads.append(t)
                t.start()
            if ev.stream_ended is not None:
                st.ended.set()
        elif isinstance(ev, h2.events.DataReceived):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                st.body += ev.data
                st.body_len += len(ev.data)
                st._sha.update(ev.data)
                st.data_frames += 1
            try:
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                pass
            if ev.stream_ended is not None and st is not None:
                st.ended.set()
        elif isinstance(ev, h2.events.TrailersReceived):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                st.trailers = [[k, v] for k, v in ev.headers]
        elif isinstance(ev, h2.events.StreamEnded):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                st.ended.set()
        elif isinstance(ev, h2.events.StreamReset):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                if ev.remote_reset:
                    st.rst_received = int(ev.error_code)
                st.t_gone = time.monotonic()
                st.gone.set()
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway_received = int(ev.error_code)
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            self.settings_received += 1
        elif isinstance(ev, h2.events.SettingsAcknowledged):
            self.settings_acked = True

    def _refuse(self, st):
        try:
            self.h2.reset_stream(st.sid, error_code=REFUSED_STREAM)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass
        st.rst_sent = REFUSED_STREAM
        st.gone.set()


def default_handler(st):
    """Behaviour by path (query parameters in brackets):

    /info                    200, JSON of the request (fields, body length and sha256), CL known
    /echo                    200, the request body back, CL known (also any unknown path)
    /status/NNN              NNN; 204/304 without a body
    /stream[n,size,delay_ms] 200 without content-length, n DATA frames of size bytes
    /trailers                200, body in 3 DATA frames, then trailers x-checksum (sha256), x-count
    /reset-before-headers    RST_STREAM(INTERNAL_ERROR) before any response
    /reset-after-data[bytes,cl,delay_ms]
                             200 (content-length 2*bytes when cl=1, none otherwise),
                             `bytes` bytes, pause delay_ms, RST_STREAM(INTERNAL_ERROR)
    /hang                    never answers (until reset or stop)
    /sleep[ms]               waits ms, then /info
    /download[bytes,chunk,delay_ms]
                             200 with CL, `bytes` of the pattern_block() stream (see
                             httpraw.stream_sha256), chunk bytes per write, delay_ms between
                             writes, within the peer's flow-control windows
    """
    seg = st.path.split("/")[1] if st.path.startswith("/") else ""
    p = st.params
    if seg == "info":
        st.read_body()
        body = json.dumps(st.info()).encode()
        st.respond(200, [("content-type", "application/json"), ("content-length", len(body)),
                         ("x-conn-id", st.conn.id), ("x-stream-id", st.sid)], body)
    elif seg == "status":
        st.read_body()
        code = int(st.path.split("/")[2])
        body = b"" if code in (204, 304) else ("status %d\n" % code).encode()
        hdrs = [("etag", '"v1"'), ("x-upstream", st.conn.server.name)]
        if code not in (204, 304):
            hdrs.append(("content-length", len(body)))
        st.respond(code, hdrs, body)
    elif seg == "stream":
        st.read_body()
        n, size = int(p.get("n", "5")), int(p.get("size", "1000"))
        delay = int(p.get("delay_ms", "20")) / 1000.0
        st.send_headers(200, [("content-type", "application/octet-stream")])
        for i in range(n):
            st.send_data(stream_piece(i, size))
            if st.sleep(delay):
                return
        st.send_data(b"", end_stream=True)
    elif seg == "trailers":
        st.read_body()
        pieces = [b"first piece, ", b"second piece, ", b"last piece"]
        h = hashlib.sha256(b"".join(pieces)).hexdigest()
        st.send_headers(200, [("content-type", "text/plain")])
        for piece in pieces:
            st.send_data(piece)
            st.sleep(0.02)
        st.send_trailers([("x-checksum", h), ("x-count", str(len(pieces)))])
    elif seg == "reset-before-headers":
        st.ended.wait(5)
        st.reset(INTERNAL_ERROR)
    elif seg == "reset-after-data":
        st.read_body()
        n = int(p.get("bytes", "1000"))
        hdrs = [("content-type", "application/octet-stream")]
        if p.get("cl") == "1":
            hdrs.append(("content-length", 2 * n))
        st.send_headers(200, hdrs)
        st.send_data(b"r" * n)
        if st.sleep(int(p.get("delay_ms", "300")) / 1000.0):
            return
        st.reset(INTERNAL_ERROR)
    elif seg == "hang":
        hang_handler(st)
    elif seg == "sleep":
        st.read_body()
        if st.sleep(int(p.get("ms", "1000")) / 1000.0):
            return
        body = json.dumps(st.info()).encode()
        st.respond(200, [("content-type", "application/json"), ("content-length", len(body))], body)
    elif seg == "download":
        st.read_body()
        n = int(p.get("bytes", str(1 << 20)))
        chunk = int(p.get("chunk", "65536"))
        delay = int(p.get("delay_ms", "0")) / 1000.0
        st.send_headers(200, [("content-type", "application/octet-stream"), ("content-length", n)],
                        end_stream=st.method == "HEAD" or n == 0)
        if st.method == "HEAD" or n == 0:
            return
        block = pattern_block()
        sent = 0
        while sent < n:
            piece = block[:min(chunk, len(block), n - sent)]
            sent += len(piece)
            st.send_data(piece, end_stream=sent == n, timeout=60)
            if delay and sent < n and st.sleep(delay):
                return
    else:   # echo
        body = st.read_body()
        hdrs = [("content-type", st.get("content-type", "application/octet-stream")),
                ("content-length", len(body)), ("x-conn-id", st.conn.id), ("x-stream-id", st.sid),
                ("x-request-method", st.method)]
        st.respond(200, hdrs, body)


def hang_handler(st):
    """Never answers; returns once the stream is reset or the server stops."""
    while not st.sleep(0.5):
        pass


def stream_piece(i, size):
    head = b"piece-%d:" % i
    return (head + b"abcdefghijklmnopqrstuvwxyz" * (size // 26 + 1))[:size]


class H2Server:
    """HTTP/2 upstream on 127.0.0.1:0. tls=(cert_pem, key_pem) for h2 over TLS
    (ALPN "h2" only). handlers: {path: fn(ServerStream)} checked before
    default_handler."""

    def __init__(self, name="h2up", tls=None, max_concurrent_streams=128, goaway_after=None,
                 handlers=None):
        self.name = name
        self.max_concurrent_streams = max_concurrent_streams
        self.goaway_after = goaway_after
        self.handlers = dict(handlers or {})
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.conns = []                   # every H2ServerConn, in accept order
        self.order = []                   # accepted streams in arrival order (all connections)
        self.threads = []
        self.errors = []                  # unexpected handler / connection errors
        self.alpns = []                   # ALPN negotiated on each TLS connection
        self.tls_failures = []            # TLS handshakes that failed
        self.ssl_ctx = None
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls[0], tls[1])
            ctx.set_alpn_protocols(["h2"])
            self.ssl_ctx = ctx
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        t = threading.Thread(target=self._accept_loop, name="h2up-%s-accept" % name, daemon=True)
        t.start()
        self.threads.append(t)

    def _record_alpn(self, alpn):
        with self.lock:
            self.alpns.append(alpn)

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
                c = H2ServerConn(self, s, len(self.conns) + 1, addr)
                self.conns.append(c)
            t = threading.Thread(target=c.run, name="h2up-%s-conn%d" % (self.name, c.id), daemon=True)
            with self.lock:
                self.threads.append(t)
            t.start()

    def _handle(self, st):
        fn = self.handlers.get(st.path) or default_handler
        try:
            fn(st)
        except StreamGone:
            pass
        except Exception as e:
            if not self.stopping.is_set():
                self.errors.append("handler %s (conn %d stream %d): %r" % (st.path, st.conn.id, st.sid, e))

    # -- inspection
    def connections(self):
        with self.lock:
            return list(self.conns)

    def streams(self, path=None):
        """Accepted streams in arrival order, optionally only those for `path` (no query)."""
        with self.lock:
            out = list(self.order)
        return [s for s in out if path is None or s.path == path]

    def wait_stream(self, path, timeout=10, n=1):
        """The n-th accepted stream for `path` once it arrived (AssertionError otherwise)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.streams(path)
            if len(got) >= n:
                return got[n - 1]
            time.sleep(0.02)
        raise AssertionError("upstream %s: no stream #%d for %s within %ss (saw %s)" % (
            self.name, n, path, timeout, [s.target for s in self.streams()]))

    def stop(self):
        self.stopping.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        for c in self.connections():
            c._wake()
            with c.lock:
                c.cond.notify_all()
        deadline = time.monotonic() + 10
        while True:
            with self.lock:
                threads = [t for t in self.threads if t.is_alive()]
            if not threads or time.monotonic() > deadline:
                break
            for t in threads:
                t.join(max(0.0, min(1.0, deadline - time.monotonic())))
        for c in self.connections():
            for s in list(c.streams.values()):
                s.gone.set()


# ----------------------------------------------------------------- client

class _GoawayTolerantClient(h2.connection.H2Connection):
    # h2 moves the whole connection to CLOSED on a received GOAWAY and then
    # rejects the responses to streams the GOAWAY let finish (those at or
    # below its last stream id). Keep the state; H2Client opens no new
    # streams after a GOAWAY.
    def _receive_goaway_frame(self, frame):
        saved = self.state_machine.state
        out = super()._receive_goaway_frame(frame)
        self.state_machine.state = saved
        return out


class ClientStream:
    def __init__(self, sid):
        self.sid = sid
        self.status = None
        self.headers = []
        self.interim = []
        self.body = bytearray()
        self.trailers = None
        self.ended = False
        self.reset_code = None
        self.t_head = None
        self.t_done = None

    @property
    def done(self):
        return self.ended or self.reset_code is not None

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def __repr__(self):
        b = bytes(self.body[:200])
        return "<ClientStream %d status=%s ended=%s reset=%s headers=%s trailers=%s body[%d]=%r>" % (
            self.sid, self.status, self.ended, self.reset_code, self.headers, self.trailers,
            len(self.body), b)


class H2Client:
    """python3-h2 client: h2c prior knowledge, or TLS with ALPN h2 when ca is set."""

    def __init__(self, port, ca=None, server_name="a.test", timeout=10, auto_ack=True):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.alpn = None
        if ca:
            ctx = ssl.create_default_context(cafile=ca)
            ctx.set_alpn_protocols(["h2"])
            raw = ctx.wrap_socket(raw, server_hostname=server_name)
            self.alpn = raw.selected_alpn_protocol()
        self.sock = raw
        self.auto_ack = auto_ack
        self.conn = _GoawayTolerantClient(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.streams = {}
        self.goaway = None
        self.eof = False
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path, method="GET", headers=(), body=None, authority="h2.test",
                scheme="http", end=True):
        assert self.goaway is None, "client: the server sent GOAWAY(%s); open a new connection" % self.goaway
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", scheme), (":authority", authority),
                (":path", path)] + [(k.lower(), str(v)) for k, v in headers]
        self.streams[sid] = ClientStream(sid)
        self.conn.send_headers(sid, hdrs, end_stream=end and body is None)
        self.flush()
        if body is not None:
            self.send_body(sid, body, end=end)
        return sid

    def send_body(self, sid, data, end=True, timeout=30):
        data = bytes(data)
        if not data:
            if end:
                self.conn.end_stream(sid)
                self.flush()
            return
        deadline = time.monotonic() + timeout
        while data:
            win = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if win <= 0:
                if time.monotonic() > deadline:
                    raise AssertionError("client: send window closed for %ss" % timeout)
                self.pump(0.5)
                continue
            piece, data = data[:win], data[win:]
            self.conn.send_data(sid, piece, end_stream=end and not data)
            self.flush()

    def end(self, sid):
        self.conn.end_stream(sid)
        self.flush()

    def reset(self, sid, code=CANCEL):
        self.conn.reset_stream(sid, error_code=code)
        self.flush()

    def pump(self, timeout=10):
        """Reads once (up to timeout) and processes events; False at EOF/timeout."""
        if self.eof:
            return False
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, ssl.SSLError, OSError):
            data = b""
        if not data:
            self.eof = True
            for s in self.streams.values():
                if not s.done:
                    s.reset_code = s.reset_code if s.reset_code is not None else "eof"
            return False
        for e in self.conn.receive_data(data):
            self._event(e)
        self.flush()
        return True

    def _event(self, e):
        s = self.streams.get(getattr(e, "stream_id", None))
        if isinstance(e, h2.events.ResponseReceived) and s:
            s.headers = [(k, v) for k, v in e.headers if k != ":status"]
            s.status = int(dict(e.headers)[":status"])
            s.t_head = time.monotonic()
        elif isinstance(e, h2.events.InformationalResponseReceived) and s:
            s.interim.append(dict(e.headers).get(":status"))
        elif isinstance(e, h2.events.DataReceived) and s:
            s.body += e.data
            if self.auto_ack:
                self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        elif isinstance(e, h2.events.TrailersReceived) and s:
            s.trailers = [(k, v) for k, v in e.headers]
        elif isinstance(e, h2.events.StreamEnded) and s:
            s.ended = True
            s.t_done = time.monotonic()
        elif isinstance(e, h2.events.StreamReset) and s:
            s.reset_code = int(e.error_code)
            s.t_done = time.monotonic()
        elif isinstance(e, h2.events.ConnectionTerminated):
            self.goaway = int(e.error_code)

    def wait(self, sids, timeout=15):
        """Pumps until every stream in sids ended or was reset; returns them."""
        if isinstance(sids, int):
            sids = [sids]
        deadline = time.monotonic() + timeout
        while not all(self.streams[s].done for s in sids):
            left = deadline - time.monotonic()
            if left <= 0 or (not self.pump(min(left, 1.0)) and self.eof):
                break
        missing = [self.streams[s] for s in sids if not self.streams[s].done]
        assert not missing, "streams not finished within %ss: %s" % (timeout, missing)
        return [self.streams[s] for s in sids]

    def get(self, path, **kw):
        return self.wait(self.request(path, **kw))[0]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ------------------------------------------------------------------- gRPC

GRPC_SERVICE = "arc.test.Echo"


class GrpcServer:
    """grpcio server with generic bytes handlers for service arc.test.Echo:

    Unary          echoes the request; initial metadata x-served-by; records the
                   invocation metadata
    ServerStream   request = decimal n; sends n messages b"msg-<i>"; after the first
                   it waits (up to 10s) for `first_seen` to be set by the test, so a
                   proxy that buffers the response makes the test fail, not pass slowly
    ClientStream   concatenates every request message, answers b"<count>:<concat>"
    Bidi           answers each message m with b"echo:" + m as it arrives (lock-step)
    Fail           aborts with NOT_FOUND, details "no such key: <request>"
    Trailers       echoes, with trailing metadata x-trailer: t1 and x-bin-bin: bytes 0..3
    Slow           request = decimal ms; sleeps that long unless the RPC ends first;
                   records when the server saw the RPC end (cancellation)
    """

    def __init__(self, tls=None, name="grpc"):
        import grpc
        from concurrent import futures
        self.grpc = grpc
        self.name = name
        self.metadata = []                # invocation metadata of each call: (method, [(k, v)])
        self.first_seen = threading.Event()
        self.slow_calls = []              # dicts: t_start, t_end, cancelled (seen inactive)
        self.lock = threading.Lock()
        self.errors = []
        self.pool = futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="grpc-up")
        self.server = grpc.server(self.pool, options=[("grpc.so_reuseport", 0)])
        u = grpc.unary_unary_rpc_method_handler
        us = grpc.unary_stream_rpc_method_handler
        su = grpc.stream_unary_rpc_method_handler
        ss = grpc.stream_stream_rpc_method_handler
        handlers = {"Unary": u(self._unary), "ServerStream": us(self._server_stream),
                    "ClientStream": su(self._client_stream), "Bidi": ss(self._bidi),
                    "Fail": u(self._fail), "Trailers": u(self._trailers), "Slow": u(self._slow)}
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(GRPC_SERVICE, handlers),))
        if tls:
            with open(tls[0], "rb") as f:
                cert = f.read()
            with open(tls[1], "rb") as f:
                key = f.read()
            creds = grpc.ssl_server_credentials([(key, cert)])
            self.port = self.server.add_secure_port("127.0.0.1:0", creds)
        else:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        assert self.port, "grpc server could not bind"
        self.addr = "127.0.0.1:%d" % self.port
        self.server.start()

    def _md(self, method, ctx):
        with self.lock:
            self.metadata.append((method, [(m.key, m.value) for m in ctx.invocation_metadata()]))

    def _unary(self, req, ctx):
        self._md("Unary", ctx)
        ctx.send_initial_metadata((("x-served-by", self.name),))
        return req

    def _server_stream(self, req, ctx):
        self._md("ServerStream", ctx)
        n = int(req.decode() or "3")
        for i in range(n):
            yield b"msg-%d" % i
            if i == 0 and not self.first_seen.wait(10):
                self.errors.append("ServerStream: the client never saw the first message")
                return

    def _client_stream(self, it, ctx):
        self._md("ClientStream", ctx)
        msgs = list(it)
        return b"%d:" % len(msgs) + b"".join(msgs)

    def _bidi(self, it, ctx):
        self._md("Bidi", ctx)
        for m in it:
            yield b"echo:" + m

    def _fail(self, req, ctx):
        self._md("Fail", ctx)
        ctx.abort(self.grpc.StatusCode.NOT_FOUND, "no such key: %s" % req.decode(errors="replace"))

    def _trailers(self, req, ctx):
        self._md("Trailers", ctx)
        ctx.set_trailing_metadata((("x-trailer", "t1"), ("x-bin-bin", b"\x00\x01\x02\x03")))
        return req

    def _slow(self, req, ctx):
        self._md("Slow", ctx)
        rec = {"t_start": time.monotonic(), "t_end": None, "cancelled": False}
        with self.lock:
            self.slow_calls.append(rec)
        done = threading.Event()

        def ended():
            rec["t_end"] = time.monotonic()
            done.set()
        ctx.add_callback(ended)
        ms = int(req.decode() or "5000")
        deadline = time.monotonic() + ms / 1000.0
        while time.monotonic() < deadline:
            if not ctx.is_active():
                rec["cancelled"] = True
                return b""
            done.wait(0.05)
        return b"slept %d" % ms

    def stop(self):
        self.first_seen.set()
        self.server.stop(grace=0).wait(10)
        self.pool.shutdown(wait=True)


# ------------------------------------------------------------------ fixtures
# Imported by the test modules that start HTTP/2 upstreams:
#     from h2_upstreams import gw, h2s  # noqa: F401 (pytest fixtures)

def stop_servers(started):
    """Stops the servers (last started first); fails the test if any of them
    recorded an unexpected error (a handler crash, an HTTP/2 protocol error
    from arc)."""
    errors = []
    for s in reversed(started):
        s.stop()
        errors += ["%s: %s" % (s.name, e) for e in getattr(s, "errors", [])]
    if errors:
        pytest.fail("upstream errors:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture
def h2s():
    """h2s(cls=H2Server, **kwargs) -> a started server; all are stopped at
    teardown, after arc (see `gw`)."""
    started = []

    def start(cls=H2Server, **kw):
        s = cls(**kw)
        started.append(s)
        return s
    yield start
    stop_servers(started)


@pytest.fixture
def gw(h2s, arc):
    """The arc launcher, set up after (so torn down before) the upstreams."""
    return arc
