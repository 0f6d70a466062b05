"""Raw-socket HTTP/1.1 framing shared by the test clients and upstream servers.

Nothing here is lenient on purpose: the tests must see exactly the bytes arc
sends, so parsing is strict and every socket operation has a timeout.
"""
import hashlib
import socket
import time

CRLF = b"\r\n"


class Closed(Exception):
    """The peer closed the connection before a complete message arrived."""


class BufReader:
    """Buffered reads over a socket (timeouts are the socket's)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    def _fill(self, n=65536):
        if self.eof:
            return False
        data = self.sock.recv(n)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_until(self, delim, limit=1 << 20):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = bytes(self.buf[:i + len(delim)])
                del self.buf[:i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise ValueError("line too long")
            if not self._fill():
                raise Closed(bytes(self.buf))

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill(max(65536, min(n - len(self.buf), 1 << 20))):
                raise Closed(bytes(self.buf))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_chunks(self, n, size=1 << 18):
        """Yields exactly n bytes in pieces without holding them all."""
        left = n
        while left > 0:
            if self.buf:
                take = min(left, len(self.buf))
                piece = bytes(self.buf[:take])
                del self.buf[:take]
            else:
                piece = self.sock.recv(min(left, size))
                if not piece:
                    self.eof = True
                    raise Closed(b"")
            left -= len(piece)
            yield piece

    def read_to_close(self):
        while self._fill():
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def iter_to_close(self, size=1 << 18):
        if self.buf:
            yield bytes(self.buf)
            self.buf.clear()
        while True:
            piece = self.sock.recv(size)
            if not piece:
                self.eof = True
                return
            yield piece

    def read_head(self, limit=1 << 20):
        """Reads up to and including CRLFCRLF; returns the head bytes."""
        return self.read_until(b"\r\n\r\n", limit)


class Headers:
    """Ordered multi-map with case-insensitive lookup."""

    def __init__(self, items=None):
        self.items = list(items or [])

    def get(self, name, default=None):
        n = name.lower()
        for k, v in self.items:
            if k.lower() == n:
                return v
        return default

    def get_all(self, name):
        n = name.lower()
        return [v for k, v in self.items if k.lower() == n]

    def joined(self, name):
        vals = self.get_all(name)
        return ", ".join(vals) if vals else None

    def has(self, name):
        return self.get(name) is not None

    def tokens(self, name):
        out = []
        for v in self.get_all(name):
            out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out

    def __iter__(self):
        return iter(self.items)

    def __repr__(self):
        return "Headers(%r)" % (self.items,)


def parse_head_lines(head):
    text = head.decode("latin-1")
    lines = text.split("\r\n")
    while lines and lines[-1] == "":
        lines.pop()
    first = lines[0]
    hdrs = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError("bad header line %r" % line)
        hdrs.append((name, value.strip(" \t")))
    return first, Headers(hdrs)


class Response:
    def __init__(self, version, status, reason, headers, body, head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.head = head
        self.body_len = None
        self.body_sha256 = None
        self.framing = None   # "length" | "chunked" | "close" | "none"
        self.trailers = None

    def json(self):
        import json
        return json.loads(self.body)

    def conn_close(self):
        return "close" in self.headers.tokens("connection") or self.version == "HTTP/1.0" \
            and "keep-alive" not in self.headers.tokens("connection")

    def __repr__(self):
        b = self.body if self.body is None or len(self.body) < 300 else self.body[:300] + b"..."
        return "<Response %s %s %r body=%r>" % (self.status, self.reason, self.headers.items, b)


def read_chunked(rd, sink):
    """Decodes a chunked body from rd, feeding data to sink; returns trailers."""
    while True:
        line = rd.read_until(CRLF, 8192)
        size_s = line[:-2].split(b";", 1)[0].strip()
        size = int(size_s, 16)
        if size == 0:
            trailers = []
            while True:
                t = rd.read_until(CRLF, 65536)
                if t == CRLF:
                    return trailers
                name, _, value = t[:-2].decode("latin-1").partition(":")
                trailers.append((name, value.strip()))
        for piece in rd.read_chunks(size):
            sink(piece)
        if rd.read_exact(2) != CRLF:
            raise ValueError("missing CRLF after chunk data")


def read_response(rd, method="GET", skip_1xx=True, store_body=True, on_data=None):
    """Reads one response from rd. With store_body=False the body is only
    counted and hashed (for very large bodies); on_data(piece) sees every piece."""
    while True:
        head = rd.read_head()
        first, hdrs = parse_head_lines(head)
        parts = first.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError("bad status line %r" % first)
        version, status = parts[0], int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        if 100 <= status < 200 and status != 101 and skip_1xx:
            continue
        break
    body = bytearray() if store_body else None
    h = hashlib.sha256()
    count = [0]

    def sink(piece):
        count[0] += len(piece)
        h.update(piece)
        if body is not None:
            body.extend(piece)
        if on_data:
            on_data(piece)

    resp = Response(version, status, reason, hdrs, None, head)
    te = hdrs.tokens("transfer-encoding")
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        resp.framing = "none"
    elif te:
        resp.framing = "chunked"
        resp.trailers = read_chunked(rd, sink)
    elif hdrs.has("content-length"):
        resp.framing = "length"
        n = int(hdrs.get("content-length"))
        for piece in rd.read_chunks(n):
            sink(piece)
    else:
        resp.framing = "close"
        for piece in rd.iter_to_close():
            sink(piece)
    resp.body = bytes(body) if body is not None else None
    resp.body_len = count[0]
    resp.body_sha256 = h.hexdigest()
    return resp


class Client:
    """One raw client connection to arc."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rd = BufReader(self.sock)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def request(self, method, target, headers=None, body=None, host="test.local",
                read=True, **kw):
        self.send(build_request(method, target, headers, body, host))
        if read:
            return self.response(method=method, **kw)

    def response(self, method="GET", **kw):
        return read_response(self.rd, method=method, **kw)

    def wait_closed(self, timeout=5.0):
        """True if the peer closes (EOF or RST) within timeout; extra bytes
        received before the close are kept in self.trailing."""
        self.sock.settimeout(0.2)
        deadline = time.monotonic() + timeout
        self.trailing = bytes(self.rd.buf)
        self.rd.buf.clear()
        try:
            while time.monotonic() < deadline:
                try:
                    d = self.sock.recv(65536)
                except socket.timeout:
                    continue
                if not d:
                    return True
                self.trailing += d
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        finally:
            try:
                self.sock.settimeout(10.0)
            except OSError:
                pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def build_request(method, target, headers=None, body=None, host="test.local"):
    lines = ["%s %s HTTP/1.1" % (method, target)]
    hdrs = list(headers.items() if isinstance(headers, dict) else (headers or []))
    names = {k.lower() for k, _ in hdrs}
    if host is not None and "host" not in names:
        lines.append("Host: %s" % host)
    if isinstance(body, str):
        body = body.encode()
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        hdrs.append(("Content-Length", str(len(body))))
    for k, v in hdrs:
        lines.append("%s: %s" % (k, v))
    out = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if body:
        out += body
    return out


def chunk_encode(pieces, trailers=None):
    out = bytearray()
    for p in pieces:
        if p:
            out += b"%x\r\n" % len(p) + p + CRLF
    out += b"0\r\n"
    for k, v in (trailers or []):
        out += ("%s: %s\r\n" % (k, v)).encode()
    out += CRLF
    return bytes(out)


def pattern_block(size=65536, seed=7):
    """Deterministic incompressible-looking block used for big bodies."""
    out = bytearray()
    x = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < size:
        out += x
        x = hashlib.sha256(x).digest()
    return bytes(out[:size])


def free_port():
    """A port nobody listens on (bound then closed; good for refused-connect tests)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def stream_sha256(n):
    """sha256 of the first n bytes of the repeated pattern_block() stream
    served by the upstream's /stream endpoint."""
    block = pattern_block()
    h = hashlib.sha256()
    while n > 0:
        piece = block[:min(n, len(block))]
        h.update(piece)
        n -= len(piece)
    return h.hexdigest()
