"""CONNECT routes: a route that lists CONNECT in match.methods tunnels the
client's bytes to its upstream endpoint (whatever authority the client
named) once that TCP connection is up, answering 200; bytes sent right
after the CONNECT head are relayed, both directions stream until either side
closes, and the tunnel is counted once when it ends. A route for any method
does not take CONNECT (405), an unreachable endpoint is a 502, and HTTP/2
clients get 501."""
import socket
import threading
import time

import h2.config
import h2.connection
import h2.events
import pytest

from arcproc import make_config, metric, route_conf, upstream_conf, wait_for


class TcpEcho:
    """A raw TCP service (not HTTP): echoes with a prefix, counts bytes."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.received = 0
        self.conns = 0
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        with c:
            while True:
                try:
                    d = c.recv(65536)
                except OSError:
                    return
                if not d:
                    return
                self.received += len(d)
                c.sendall(d.upper())

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.fixture
def echo():
    e = TcpEcho()
    yield e
    e.close()


def config(echo_addr, dead_addr="127.0.0.1:9"):
    routes = [
        route_conf("tunnel", "/", upstream="tcp", methods=["CONNECT"], host=["db.internal"]),
        route_conf("dead", "/", upstream="dead", methods=["CONNECT"], host=["dead.internal"]),
        route_conf("web", "/{*rest}", respond={"status": 200, "body": "web"}),
    ]
    return make_config([upstream_conf("tcp", echo_addr), upstream_conf("dead", dead_addr)],
                       routes=routes)


def read_head(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            break
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def test_connect_tunnels_bytes_both_ways(arc, echo):
    a = arc(config(echo.addr))
    s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    # the first tunnel bytes come in the same packet as the head
    s.sendall(b"CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\nhello ")
    head, rest = read_head(s)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"content-length" not in head.lower() and b"transfer-encoding" not in head.lower()
    got = rest
    while len(got) < 6:
        got += s.recv(4096)
    assert got == b"HELLO ", got
    big = bytes(range(97, 123)) * 40000          # ~1 MB
    t = threading.Thread(target=s.sendall, args=(big,))
    t.start()
    n = 0
    while n < len(big):
        d = s.recv(65536)
        assert d, "tunnel closed early after %d bytes" % n
        assert d == big[n:n + len(d)].upper()
        n += len(d)
    t.join()
    s.close()
    assert wait_for(lambda: (metric(a.metrics()[0], "arc_requests_total", route="tunnel",
                                    code="200") or 0) == 1)
    assert echo.conns == 1




def test_connect_needs_a_route_that_lists_it(arc, echo):
    a = arc(config(echo.addr))
    s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    s.sendall(b"CONNECT other.example:443 HTTP/1.1\r\nHost: other.example:443\r\n\r\n")
    head, _ = read_head(s)
    assert head.startswith(b"HTTP/1.1 405"), head
    allow = [l for l in head.split(b"\r\n") if l.lower().startswith(b"allow:")]
    assert allow and b"GET" in allow[0] and b"CONNECT" not in allow[0], head
    s.close()
    assert echo.conns == 0


def test_connect_to_an_unreachable_endpoint_is_502(arc, echo):
    a = arc(config(echo.addr))
    s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    s.sendall(b"CONNECT dead.internal:1 HTTP/1.1\r\nHost: dead.internal:1\r\n\r\n")
    head, _ = read_head(s)
    assert head.startswith(b"HTTP/1.1 502"), head
    s.close()


def test_connect_from_http2_is_501(arc, echo):
    a = arc(config(echo.addr))
    s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    h = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                 validate_outbound_headers=False))
    h.initiate_connection()
    h.send_headers(1, [(":method", "CONNECT"), (":authority", "db.internal:5432")])
    s.sendall(h.data_to_send())
    status = None
    end = time.monotonic() + 10
    while status is None and time.monotonic() < end:
        d = s.recv(65536)
        if not d:
            break
        for ev in h.receive_data(d):
            if isinstance(ev, h2.events.ResponseReceived):
                status = dict(ev.headers)[b":status"]
            if isinstance(ev, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                status = b"reset"
        s.sendall(h.data_to_send())
    s.close()
    assert status in (b"501", b"reset"), status
    assert echo.conns == 0
