"""Upstream peers for the e2e tests: raw-socket HTTP/1.1 servers on port 0,
one thread per connection, and a python3-websockets echo server.

Every server is stopped (listener and all connections closed, threads joined)
by the `servers` fixture in tests/conftest.py.
"""
import asyncio
import hashlib
import json
import select
import socket
import threading
import time
import urllib.parse

from httpraw import BufReader, Closed, parse_head_lines, CRLF, pattern_block


class Request:
    """A request head read by an upstream; the body is read on demand."""

    def __init__(self, conn, method, target, version, headers, head):
        self.conn = conn
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.head = head
        u = urllib.parse.urlsplit(target)
        self.path = u.path
        self.query = u.query
        self.params = dict(urllib.parse.parse_qsl(u.query))
        self.body_read = False
        self.body_len = 0
        self.body_sha256 = hashlib.sha256(b"").hexdigest()
        self.body = b""
        self.trailers = []
        self.sent_100 = False

    @property
    def has_body(self):
        return self.headers.has("transfer-encoding") or int(self.headers.get("content-length", "0") or 0) > 0

    def expects_100(self):
        return (self.headers.get("expect") or "").lower() == "100-continue"

    def read_body(self, keep=1 << 20, on_progress=None, send_100=True):
        """Reads the whole body (CL or chunked), hashing it and keeping at most
        `keep` bytes. on_progress(total_so_far) is called after every piece."""
        if self.body_read:
            return
        self.body_read = True
        if send_100 and self.expects_100() and not self.sent_100 and self.has_body:
            self.conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.sent_100 = True
        h = hashlib.sha256()
        kept = bytearray()
        total = 0
        rd = self.conn.rd

        def take(piece):
            nonlocal total
            total += len(piece)
            h.update(piece)
            if len(kept) < keep:
                kept.extend(piece[:keep - len(kept)])
            if on_progress:
                on_progress(total)

        if "chunked" in self.headers.tokens("transfer-encoding"):
            while True:
                line = rd.read_until(CRLF, 8192)
                size = int(line[:-2].split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while True:
                        t = rd.read_until(CRLF, 65536)
                        if t == CRLF:
                            break
                        n, _, v = t[:-2].decode("latin-1").partition(":")
                        self.trailers.append((n, v.strip()))
                    break
                for piece in rd.read_chunks(size):
                    take(piece)
                if rd.read_exact(2) != CRLF:
                    raise ValueError("bad chunk end")
        else:
            n = int(self.headers.get("content-length", "0") or 0)
            for piece in rd.read_chunks(n):
                take(piece)
        self.body_len = total
        self.body_sha256 = h.hexdigest()
        self.body = bytes(kept)


class ServerConn:
    """One accepted connection. `closed` is set once the server side closed
    it; `close_reason` then says why: "eof" (arc closed first, between
    requests), "reset" (arc closed or reset it while the handler was reading
    or writing), "handler" (the handler or a Connection: close ended it),
    "stop" (the server was stopped)."""

    def __init__(self, server, sock, cid):
        self.server = server
        self.sock = sock
        self.id = cid
        self.rd = BufReader(sock)
        self.served = 0
        self.targets = []           # request targets read on this connection, in order
        self.closed = threading.Event()
        self.close_reason = None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)


def response_bytes(status, headers=(), body=b"", reason=None):
    reasons = {200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently",
               302: "Found", 304: "Not Modified", 400: "Bad Request", 404: "Not Found",
               418: "I'm a teapot", 500: "Internal Server Error", 503: "Service Unavailable"}
    if isinstance(body, str):
        body = body.encode()
    lines = ["HTTP/1.1 %d %s" % (status, reason or reasons.get(status, "Status"))]
    names = {k.lower() for k, _ in headers}
    for k, v in headers:
        lines.append("%s: %s" % (k, v))
    if "content-length" not in names and "transfer-encoding" not in names and status not in (204, 304):
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Upstream:
    """Threaded raw HTTP/1.1 server on 127.0.0.1:0.

    handler(req) -> bool|None is called for every request head (see
    `smart_handler`); it must send the response itself via req.conn.send and
    returns False to close the connection. With idle_close_ms the server
    closes a keep-alive connection that stays idle that long after a response
    (without announcing it), to exercise arc's pool.
    """

    def __init__(self, handler=None, name="up", idle_close_ms=None):
        self.handler = handler or smart_handler
        self.name = name
        self.idle_close_ms = idle_close_ms
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.accepted = 0
        self.requests = []          # (conn_id, method, target, headers)
        self.errors = []
        self.conns = {}             # open connections by id
        self.history = {}           # every connection ever accepted, by id (kept after close)
        self.threads = []
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        t = threading.Thread(target=self._accept_loop, name="up-%s-accept" % name, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            s.settimeout(30)
            with self.lock:
                self.accepted += 1
                cid = self.accepted
                c = ServerConn(self, s, cid)
                self.conns[cid] = c
                self.history[cid] = c
            t = threading.Thread(target=self._serve, args=(c,), name="up-%s-%d" % (self.name, cid), daemon=True)
            t.start()
            with self.lock:
                self.threads.append(t)

    def _serve(self, c):
        reason = "handler"
        try:
            while not self.stopping.is_set():
                if self.idle_close_ms is not None and c.served > 0 and not c.rd.buf:
                    r, _, _ = select.select([c.sock], [], [], self.idle_close_ms / 1000.0)
                    if not r:
                        return
                try:
                    head = c.rd.read_head(1 << 20)
                except Closed:
                    reason = "eof"
                    return
                first, hdrs = parse_head_lines(head)
                method, target, version = first.split(" ", 2)
                req = Request(c, method, target, version, hdrs, head)
                with self.lock:
                    self.requests.append((c.id, method, target, hdrs))
                    c.targets.append(target)
                keep = self.handler(req)
                c.served += 1
                if keep is False or "close" in hdrs.tokens("connection"):
                    return
                if not req.body_read:
                    req.read_body(keep=0)
        except (OSError, Closed, ValueError) as e:
            reason = "reset"
            if not self.stopping.is_set():
                self.errors.append(repr(e))
        finally:
            if self.stopping.is_set() and reason != "eof":
                reason = "stop"
            with self.lock:
                self.conns.pop(c.id, None)
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.sock.close()
            c.close_reason = reason
            c.closed.set()

    def targets(self):
        with self.lock:
            return [t for _, _, t, _ in self.requests]

    def conn_of(self, target):
        """The ServerConn that read the (first) request for `target`, or None."""
        with self.lock:
            for c in self.history.values():
                if target in c.targets:
                    return c
        return None

    def wait_all_closed(self, timeout):
        """True once every connection ever accepted is closed (within timeout)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            conns = list(self.history.values())
        return all(c.closed.wait(max(0.0, deadline - time.monotonic())) for c in conns)

    def stop(self):
        self.stopping.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns.values())
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self.lock:
            threads = list(self.threads)
        for t in threads:
            t.join(5)


# ------------------------------------------------------------------ handlers

def echo_payload(req):
    return {
        "method": req.method,
        "target": req.target,
        "path": req.path,
        "query": req.query,
        "version": req.version,
        "headers": req.headers.items,
        "body_len": req.body_len,
        "body_sha256": req.body_sha256,
        "body": req.body[:4096].decode("latin-1"),
        "trailers": req.trailers,
        "conn_id": req.conn.id,
        "conn_request_no": req.conn.served + 1,
        "server": req.conn.server.name,
        "sent_100": req.sent_100,
    }


def send_echo(req, status=200, extra_headers=()):
    body = json.dumps(echo_payload(req)).encode()
    hdrs = [("Content-Type", "application/json"), ("X-Upstream", req.conn.server.name)] + list(extra_headers)
    if req.method == "HEAD":
        hdrs.append(("Content-Length", str(len(body))))
        req.conn.send(response_bytes(status, hdrs, b""))
    else:
        req.conn.send(response_bytes(status, hdrs, body))


def smart_handler(req):
    """Keep-alive echo server whose behaviour is picked by the path:

    /slow?ms=N            sleep N ms before answering (echo)
    /status/NNN           answer NNN (204/304 without body)
    /stream?bytes=N[&chunked=1|&close=1][&pause_at=B&pause_ms=M]
                          N bytes of pattern_block, CL, chunked or close-delimited
    /sink?pause_at=B&pause_ms=M   read the body pausing once, then echo
    /chunked              a chunked response in several delayed pieces + trailer
    /close-delimited      body without CL/TE, then close
    /hop                  a response carrying hop-by-hop headers
    /stall?bytes=N        send head with CL 2N, N bytes, then stall
    anything else         echo (method, target, headers, body length/sha256) as JSON
    """
    stop = req.conn.server.stopping
    seg = req.path.split("/")[1] if req.path.startswith("/") else ""
    if seg == "slow":
        req.read_body()
        stop.wait(int(req.params.get("ms", "1000")) / 1000.0)
        send_echo(req)
        return True
    if seg == "status":
        req.read_body()
        code = int(req.path.split("/")[2])
        if code in (204, 304):
            hdrs = [("ETag", '"v1"'), ("X-Upstream", req.conn.server.name)]
            if code == 304 and "cl" in req.params:
                hdrs.append(("Content-Length", req.params["cl"]))
            req.conn.send(response_bytes(code, hdrs, b""))
        else:
            send_echo(req, status=code)
        return True
    if seg == "stream":
        req.read_body()
        n = int(req.params.get("bytes", "1048576"))
        chunked = req.params.get("chunked") == "1"
        pause_at = int(req.params.get("pause_at", "-1"))
        pause_ms = int(req.params.get("pause_ms", "0"))
        block = pattern_block()
        close = req.params.get("close") == "1"
        hdrs = [("Content-Type", "application/octet-stream")]
        if close:
            # close-delimited: no CL, no TE (response_bytes would add a CL)
            req.conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n")
        else:
            hdrs.append(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(n)))
            req.conn.send(response_bytes(200, hdrs, b""))
        if req.method == "HEAD":
            return True
        sent = 0
        paused = False
        while sent < n:
            piece = block[:min(len(block), n - sent)]
            if chunked:
                req.conn.send(b"%x\r\n" % len(piece) + piece + CRLF)
            else:
                req.conn.send(piece)
            sent += len(piece)
            if not paused and pause_at >= 0 and sent >= pause_at:
                paused = True
                stop.wait(pause_ms / 1000.0)
        if chunked:
            req.conn.send(b"0\r\n\r\n")
        return not close
    if seg == "sink":
        pause_at = int(req.params.get("pause_at", "-1"))
        pause_ms = int(req.params.get("pause_ms", "0"))
        state = {"paused": False}

        def prog(total):
            if not state["paused"] and pause_at >= 0 and total >= pause_at:
                state["paused"] = True
                stop.wait(pause_ms / 1000.0)
        req.read_body(keep=0, on_progress=prog)
        send_echo(req)
        return True
    if seg == "chunked":
        req.read_body()
        req.conn.send(response_bytes(200, [("Transfer-Encoding", "chunked"), ("Trailer", "X-Checksum")], b""))
        for piece in (b"hello ", b"chunked ", b"world", b"x" * 70000):
            req.conn.send(b"%x\r\n" % len(piece) + piece + CRLF)
            stop.wait(0.05)
        # (Content-Type is not allowed in trailers: proxies drop it)
        req.conn.send(b"0\r\nX-Checksum: 42\r\nContent-Type: text/evil\r\n\r\n")
        return True
    if seg == "close-delimited":
        req.read_body()
        req.conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
        for i in range(5):
            req.conn.send(b"part%d-" % i + b"y" * 10000)
            stop.wait(0.02)
        return False
    if seg == "hop":
        req.read_body()
        body = json.dumps(echo_payload(req)).encode()
        req.conn.send(response_bytes(200, [
            ("Connection", "X-Resp-Hop, keep-alive"),
            ("X-Resp-Hop", "secret"),
            ("Keep-Alive", "timeout=5, max=100"),
            ("Proxy-Connection", "keep-alive"),
            ("Upgrade", "h2c"),
            ("X-End-To-End", "kept"),
        ], body))
        return True
    if seg == "stall":
        req.read_body()
        n = int(req.params.get("bytes", "1000"))
        req.conn.send(response_bytes(200, [("Content-Length", str(2 * n))], b"") + b"s" * n)
        stop.wait(15)
        return False
    req.read_body()
    send_echo(req)
    return True


def raw_handler(data, close=True, read_body=True):
    """Answers every request with the fixed bytes `data` (e.g. a malformed
    response), then closes the connection."""
    def h(req):
        if read_body:
            req.read_body()
        req.conn.send(data)
        if close:
            try:
                req.conn.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            # let arc read everything before the socket goes away
            req.conn.server.stopping.wait(0.3)
            return False
        return True
    return h


# --------------------------------------------------------------- websockets

class WsServer:
    """python3-websockets server in its own asyncio loop thread. Sends a
    greeting first (server-initiated message), then echoes every message,
    except CLOSE_REQUEST: that makes the server start the closing handshake
    itself (close code 1000, reason CLOSE_REASON), so the server closes
    first."""

    GREETING = "hello from server"
    CLOSE_REQUEST = "server, close please"
    CLOSE_REASON = "server closes first"

    def __init__(self):
        import websockets
        self.websockets = websockets
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error = None
        self.request_headers = []
        self.thread = threading.Thread(target=self._run, name="ws-server", daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("websocket server did not start")
        if self.error:
            raise self.error

    async def _handler(self, ws, path=None):
        self.request_headers.append(list(ws.request_headers.raw_items()))
        await ws.send(self.GREETING)
        async for msg in ws:
            if msg == self.CLOSE_REQUEST:
                await ws.close(1000, self.CLOSE_REASON)
                return
            await ws.send(msg)

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def main():
            try:
                self.server = await self.websockets.serve(self._handler, "127.0.0.1", 0, max_size=32 << 20)
                self.port = self.server.sockets[0].getsockname()[1]
                self.addr = "127.0.0.1:%d" % self.port
            except Exception as e:  # pragma: no cover
                self.error = e
            finally:
                self.ready.set()
        self.loop.run_until_complete(main())
        if self.error:
            return
        self.loop.run_forever()
        self.server.close()
        try:
            self.loop.run_until_complete(asyncio.wait_for(self.server.wait_closed(), 5))
        except Exception:
            pass
        self.loop.close()

    def stop(self):
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
