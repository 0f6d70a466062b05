"""The L7 guards (security.l7) against the real binary: a head trickled
past slowloris.headers_timeout and a new connection that never speaks are
closed without a byte, a head or body below min_recv_rate_bps is cut (the
body with a 408) while normal and slow-but-fair clients are served, a
client address over max_incomplete_per_ip or max_connections_per_ip (IPv4
and IPv6) is refused at once while another address is served, and TLS
handshakes over handshakes_per_ip_per_sec or a worker's
max_handshakes_per_worker are refused; HTTP/2 streams count against
max_incomplete_per_ip (refused with REFUSED_STREAM over it, every place
given back exactly once) and every HTTP/2 header block is under the header
deadline; every trip is counted exactly in arc_guard_trips_total{reason}."""
import os
import select
import signal
import socket
import ssl
import subprocess
import threading
import time

import h2.events
import pytest

from arcproc import make_config, metric, route_conf, to_yaml, upstream_conf, wait_for
from httpraw import Client, read_response, BufReader
from test_http2 import H2Client


def guard_conf(up, l7, workers=2, node=None):
    return make_config([upstream_conf("echo", up.addr)], workers=workers, node=node,
                       extra={"security": {"l7": l7}})


def trips(a, reason):
    ms, _ = a.metrics()
    return metric(ms, "arc_guard_trips_total", reason=reason)


def wait_trips(a, reason, n, timeout):
    """Polls until the counter reaches n; returns its final value."""
    wait_for(lambda: trips(a, reason) >= n, timeout=timeout)
    return trips(a, reason)


def client_from(port, src, timeout=10.0):
    """A raw client connection from source address `src` (127.0.0.x)."""
    c = Client.__new__(Client)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.sock = s
    c.rd = BufReader(s)
    return c


class Trickler(threading.Thread):
    """Sends `data` a few bytes at a time every `every` s until the
    connection closes; records when and what came back."""

    def __init__(self, c, data, step, every):
        super().__init__(daemon=True)
        self.c, self.data, self.step, self.every = c, data, step, every
        self.closed_after = None
        self.t0 = time.monotonic()
        self.stop = False

    def run(self):
        i = 0
        while not self.stop and i < len(self.data):
            try:
                self.c.send(self.data[i:i + self.step])
            except OSError:
                break
            i += self.step
            time.sleep(self.every)

    def wait_closed(self, budget):
        ok = self.c.wait_closed(budget)
        self.closed_after = time.monotonic() - self.t0
        self.stop = True
        return ok


def test_slow_head_and_silent_connection_closed_quietly(arc, servers, arc_bin):
    up = servers.http(name="echo")
    a = arc(guard_conf(up, {"slowloris": {"headers_timeout": "1s"}}))
    head = b"GET /slow HTTP/1.1\r\nHost: t\r\n" + b"X-Pad: " + b"a" * 400 + b"\r\n\r\n"
    slow = Trickler(a.client(), head, 2, 0.1)
    slow.start()
    silent = a.client()
    # normal clients are served meanwhile
    c = a.client()
    for i in range(5):
        r = c.request("GET", "/ok/%d" % i)
        assert r.status == 200, r
    assert slow.wait_closed(8 * arc_bin.slow), "trickling client not cut"
    assert slow.closed_after >= 0.5, "cut after %.2fs, before headers_timeout" % slow.closed_after
    assert slow.c.trailing == b"", "a slowloris client gets no answer, got %r" % slow.c.trailing[:100]
    assert silent.wait_closed(8 * arc_bin.slow), "silent connection not cut"
    assert silent.trailing == b""
    assert wait_trips(a, "headers_timeout", 2, 5) == 2
    # visible in the log: one line for the first trip (later ones are summed)
    assert wait_for(lambda: "guard headers_timeout tripped 1 time" in a.stderr_text(), 5), \
        a.stderr_tail()
    assert up.accepted <= 1                 # only the normal client's requests went upstream


def test_read_timeout_shorter_keeps_its_408(arc, servers, arc_bin):
    # node.read_timeout shorter than headers_timeout: the old behaviour (408).
    up = servers.http(name="echo")
    a = arc(guard_conf(up, {"slowloris": {"headers_timeout": "20s"}}, node={"read_timeout": "1s"}))
    c = a.client()
    c.send(b"GET /x HTTP/1.1\r\nHost: t\r\nX-Partial: ")
    assert c.wait_closed(8 * arc_bin.slow)
    assert c.trailing.startswith(b"HTTP/1.1 408 ")
    assert trips(a, "headers_timeout") == 0


def test_min_recv_rate_head(arc, servers, arc_bin):
    up = servers.http(name="echo")
    a = arc(guard_conf(up, {"slowloris": {"headers_timeout": "60s", "min_recv_rate_bps": 200,
                                          "min_recv_rate_window": "1s"}}))
    head = b"GET /slow HTTP/1.1\r\nHost: t\r\n" + b"X-Pad: " + b"a" * 2000 + b"\r\n\r\n"
    slow = Trickler(a.client(), head, 4, 0.1)     # ~40 B/s
    slow.start()
    c = a.client()
    r = c.request("GET", "/ok", headers={"X-Pad": "b" * 2000})
    assert r.status == 200
    assert slow.wait_closed(10 * arc_bin.slow), "slow head not cut"
    assert slow.c.trailing == b""
    assert wait_trips(a, "min_recv_rate_head", 1, 5) == 1


def test_min_recv_rate_pipelined_head_judged_from_its_own_start(arc, servers, arc_bin):
    # The second request's first bytes wait behind a slow first exchange
    # (2.5 s, longer than the window): the wait is not the client's.
    up = servers.http(name="echo")
    a = arc(guard_conf(up, {"slowloris": {"min_recv_rate_bps": 100,
                                          "min_recv_rate_window": "1s"}}))
    c = a.client(timeout=20)
    c.send(b"GET /slow?ms=2500 HTTP/1.1\r\nHost: t\r\n\r\nGET /second HTTP/1.1\r\nHost: t\r\n")
    assert c.response().status == 200
    c.send(b"X-A: 1\r\n\r\n")
    r = c.response()
    assert r.status == 200, r
    assert trips(a, "min_recv_rate_head") == 0


def test_min_recv_rate_body_408_while_fair_upload_served(arc, servers, arc_bin):
    up = servers.http(name="echo")
    a = arc(guard_conf(up, {"slowloris": {"min_recv_rate_bps": 1000,
                                          "min_recv_rate_window": "1s"}}))
    n = 100000
    slow = a.client()
    slow.send(b"POST /slowbody HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % n)
    tr = Trickler(slow, b"x" * n, 10, 0.1)        # ~100 B/s
    tr.start()
    # a fair upload: 20 kB at ~10 kB/s, in pieces, over 2 s
    fair = a.client()
    body = b"y" * 20000
    fair.send(b"POST /fair HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
    for i in range(0, len(body), 1000):
        fair.send(body[i:i + 1000])
        time.sleep(0.1)
    r = fair.response(method="POST")
    assert r.status == 200, r
    assert tr.wait_closed(10 * arc_bin.slow), "slow body not cut"
    assert tr.c.trailing.startswith(b"HTTP/1.1 408 "), tr.c.trailing[:100]
    assert wait_trips(a, "min_recv_rate_body", 1, 5) == 1


def test_max_incomplete_per_ip(arc, servers, arc_bin):
    # One worker: which of the four is refused is then exact. (With two,
    # heads reaching both workers at the same instant may refuse one early:
    # see test_max_incomplete_per_ip_node_wide.) The header deadline is
    # far beyond the test, so nothing else closes a client.
    up = servers.http(name="echo")
    a = arc(guard_conf(up, {"slowloris": {"max_incomplete_per_ip": 3, "headers_timeout": "60s",
                                          "min_recv_rate_bps": 0,
                                          "over_incomplete": "close"}},
                       workers=1, node={"read_timeout": "60s"}))
    partial = b"GET /p HTTP/1.1\r\nHost: t\r\n"
    cs = [a.client() for _ in range(4)]
    for c in cs:
        c.send(partial)
    # exactly one of the four (whichever arc saw last) is closed, quietly
    closed = []
    deadline = time.monotonic() + 8 * arc_bin.slow
    while time.monotonic() < deadline and not closed:
        for c in cs:
            if c.wait_closed(0.2):
                closed.append(c)
    assert len(closed) == 1, "expected one refused client, got %d" % len(closed)
    assert closed[0].trailing == b""
    rest = [c for c in cs if c is not closed[0]]
    for c in rest:
        assert not c.wait_closed(0.3)
    # another address is not affected
    o = client_from(a.port, "127.0.0.2")
    o.send(partial + b"\r\n")
    assert read_response(o.rd).status == 200
    o.close()
    # a finished request gives its place back
    rest[0].send(b"\r\n")
    assert read_response(rest[0].rd).status == 200
    n = a.client()
    n.send(partial)
    n.send(b"X-Done: 1\r\n\r\n")
    assert read_response(n.rd).status == 200
    assert trips(a, "max_incomplete_per_ip") == 1


def test_max_incomplete_per_ip_node_wide(arc, servers, arc_bin):
    """Two workers: twelve half-sent heads from one address against a cap
    of 3. However the heads fall on the workers and however they race,
    never more than 3 stay open; every other one is closed without a byte
    and counted. (The check used to read the node-wide sum before counting
    its own: heads reaching both workers at once could all pass.)"""
    up = servers.http(name="echo")
    a = arc(guard_conf(up, {"slowloris": {"max_incomplete_per_ip": 3, "headers_timeout": "60s",
                                          "min_recv_rate_bps": 0,
                                          "over_incomplete": "close"}},
                       workers=2, node={"read_timeout": "60s"}))
    partial = b"GET /p HTTP/1.1\r\nHost: t\r\n"
    cs = [a.client() for _ in range(12)]
    for c in cs:
        c.send(partial)
    n = wait_trips(a, "max_incomplete_per_ip", 9, 10 * arc_bin.slow)
    assert 9 <= n <= 12, n
    closed = [c for c in cs if c.wait_closed(0.3)]
    assert len(closed) == n, (len(closed), n)
    assert all(c.trailing == b"" for c in closed)
    held = [c for c in cs if c not in closed]
    assert 1 <= len(held) <= 3, len(held)
    # the places held are given back: finished requests free them
    for c in held:
        c.send(b"\r\n")
        assert read_response(c.rd).status == 200
    fresh = [a.client() for _ in range(3)]
    for c in fresh:
        c.send(partial)
    for c in fresh:
        c.send(b"\r\n")
        assert read_response(c.rd).status == 200


def _served_and_held(cs, timeout):
    """Completes the heads of two clients whose address is at a cap of one:
    returns (the one answered 200, the one left unanswered)."""
    for c in cs:
        c.send(b"\r\n")
    r, _, _ = select.select([c.sock for c in cs], [], [], timeout)
    assert len(r) == 1, "expected exactly one client answered, got %d" % len(r)
    served = cs[0] if r[0] is cs[0].sock else cs[1]
    assert read_response(served.rd).status == 200
    return served, cs[1] if served is cs[0] else cs[0]


def test_max_incomplete_per_ip_tarpit(arc, servers, arc_bin):
    """The default over_incomplete: tarpit. A connection starting a head
    over the cap is not closed at once (a slowloris client would reconnect
    at once): it is held and nothing it sends is answered, not even a whole
    head, until it is closed without a byte at its header deadline. It does
    not hold a place of the cap, and a tarpitted client that leaves is
    closed at once (arc_connections_active goes back down)."""
    up = servers.http(name="echo")
    a = arc(guard_conf(up, {"slowloris": {"max_incomplete_per_ip": 1, "headers_timeout": "5s",
                                          "min_recv_rate_bps": 0}},
                       workers=1, node={"read_timeout": "60s"}))
    partial = b"GET /p HTTP/1.1\r\nHost: t\r\n"
    cs = [a.client(), a.client()]
    t0 = time.monotonic()
    for c in cs:
        c.send(partial)
    assert wait_trips(a, "max_incomplete_per_ip", 1, 10 * arc_bin.slow) == 1
    served, held = _served_and_held(cs, 5 * arc_bin.slow)
    assert not held.wait_closed(1.0), "tarpitted connection closed at once"
    assert held.trailing == b"", "a tarpitted head was answered"
    # the tarpitted connection holds no place: another head is served
    other = a.client()
    other.send(partial + b"\r\n")
    assert read_response(other.rd).status == 200
    # closed without a byte at its header deadline
    assert held.wait_closed(20 * arc_bin.slow)
    assert held.trailing == b""
    assert time.monotonic() - t0 >= 4.5
    assert trips(a, "max_incomplete_per_ip") == 1
    # a tarpitted client that goes away is closed at once, not at the deadline
    cs = [a.client(), a.client()]
    for c in cs:
        c.send(partial)
    assert wait_trips(a, "max_incomplete_per_ip", 2, 10 * arc_bin.slow) == 2
    _, gone = _served_and_held(cs, 5 * arc_bin.slow)

    def active():
        return metric(a.metrics()[0], "arc_connections_active")
    n = active()
    gone.close()
    assert wait_for(lambda: active() <= n - 1, timeout=3.0), "tarpitted client's close not noticed"
    for c in cs + [served, other]:
        c.close()


def _conn_cap(a, arc_bin, family, host, cap):
    def connect():
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect((host, a.port))
        c = Client.__new__(Client)
        c.sock, c.rd = s, BufReader(s)
        return c
    held = []
    for i in range(cap):
        c = connect()
        r = c.request("GET", "/held/%d" % i)
        assert r.status == 200, r
        held.append(c)
    extra = connect()
    assert extra.wait_closed(8 * arc_bin.slow), "connection over the cap not refused"
    assert extra.trailing == b""
    refused = 1
    held.pop().close()
    # the freed place is taken again (the close reaches arc asynchronously)
    deadline = time.monotonic() + 8 * arc_bin.slow
    while True:
        c = connect()
        try:
            c.send(b"GET /again HTTP/1.1\r\nHost: t\r\n\r\n")
            r = read_response(c.rd)
            assert r.status == 200
            break
        except Exception:
            refused += 1
            assert time.monotonic() < deadline, "place never given back"
            time.sleep(0.1)
        finally:
            c.close()
    return refused, held


def test_max_connections_per_ip_v4(arc, servers, arc_bin):
    up = servers.http(name="echo")
    a = arc(guard_conf(up, {"max_connections_per_ip": 3}))
    refused, held = _conn_cap(a, arc_bin, socket.AF_INET, "127.0.0.1", 3)
    # another address still connects while 127.0.0.1 holds its places
    for c in held:
        assert c.request("GET", "/h").status == 200
    o = client_from(a.port, "127.0.0.2")
    assert o.request("GET", "/other").status == 200
    assert wait_trips(a, "max_connections_per_ip", refused, 5) == refused
    for c in held + [o]:
        c.close()


def test_max_connections_per_ip_v6(arc, servers, arc_bin):
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
    except OSError:
        pytest.skip("no IPv6 loopback (::1) on this host")
    up = servers.http(name="echo")
    cfg = guard_conf(up, {"max_connections_per_ip": 2, "ipv6_prefix": 64})
    cfg["listeners"] = [{"name": "v6", "kind": "http", "bind": "[::1]:0"}]
    a = arc(cfg)
    refused, held = _conn_cap(a, arc_bin, socket.AF_INET6, "::1", 2)
    assert wait_trips(a, "max_connections_per_ip", refused, 5) == refused


def test_tiny_table_full_refuses_early_and_gives_back(arc, servers, arc_bin):
    """security.l7.max_tracked_addresses: 1: every address shares one cell
    per row, so the table is full at once. A collision only counts more:
    with max_connections_per_ip 3, three connections from three addresses
    fill the cell and a fourth address is refused (with the default table
    it would be served); a closed connection gives its place back; changing
    the size is refused by a reload (restart-only)."""
    up = servers.http(name="echo")
    cfg = guard_conf(up, {"max_connections_per_ip": 3, "max_tracked_addresses": 1})
    a = arc(cfg)
    held = []
    for i in range(3):
        c = client_from(a.port, "127.0.0.%d" % (2 + i))
        assert c.request("GET", "/held/%d" % i).status == 200
        held.append(c)
    extra = client_from(a.port, "127.0.0.9")
    assert extra.wait_closed(8 * arc_bin.slow), "a full tiny table let a 4th address in"
    assert extra.trailing == b""
    refused = 1
    held.pop().close()
    deadline = time.monotonic() + 8 * arc_bin.slow
    while True:                             # the place comes back (close is asynchronous)
        c = client_from(a.port, "127.0.0.10")
        try:
            c.send(b"GET /again HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_response(c.rd).status == 200
            break
        except Exception:
            refused += 1
            assert time.monotonic() < deadline, "place never given back"
            time.sleep(0.1)
        finally:
            c.close()
    assert wait_trips(a, "max_connections_per_ip", refused, 5) == refused
    # restart-only: a reload that changes the size is refused, the old one stays
    cfg["security"]["l7"]["max_tracked_addresses"] = 4096
    with open(a.config_path, "w") as f:
        f.write(to_yaml(cfg))
    a.signal(signal.SIGHUP)
    assert wait_for(lambda: (metric(a.metrics()[0], "arc_config_reloads_total",
                                    result="refused") or 0) == 1, 10 * arc_bin.slow)
    # (the log line may reach stderr after the counter moved)
    assert wait_for(lambda: "security.l7.max_tracked_addresses" in a.stderr_text(), 10), \
        a.stderr_tail(10)
    for c in held:
        c.close()


def test_caps_change_on_reload_and_held_connections_count(arc, servers, arc_bin):
    up = servers.http(name="echo")
    a = arc(guard_conf(up, {}))
    held = [a.client() for _ in range(2)]
    for c in held:
        assert c.request("GET", "/held").status == 200
    with open(a.config_path, "w") as f:
        f.write(to_yaml(guard_conf(up, {"max_connections_per_ip": 2})))
    before = metric(a.metrics()[0], "arc_config_reloads_total", result="ok") or 0
    a.signal(signal.SIGHUP)
    assert wait_for(lambda: (metric(a.metrics()[0], "arc_config_reloads_total", result="ok") or 0)
                    > before, 10 * arc_bin.slow), a.stderr_tail(20)
    # the two connections opened before the reload count against the new cap
    # (polled: each worker adopts the new config at its next loop turn)
    served = 0
    deadline = time.monotonic() + 10 * arc_bin.slow
    while True:
        c = a.client()
        try:
            c.send(b"GET /new HTTP/1.1\r\nHost: t\r\n\r\n")
            r = read_response(c.rd)
            assert r.status == 200
            served += 1
            assert time.monotonic() < deadline, "the reloaded cap never applied"
        except Exception:
            break
        finally:
            c.close()
    assert wait_trips(a, "max_connections_per_ip", 1, 5) == 1
    for c in held:
        assert c.request("GET", "/still").status == 200


# ------------------------------------------------------------------ TLS

@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("guardpki")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(d / "k.pem"),
                    "-out", str(d / "c.pem"), "-days", "2", "-subj", "/CN=guard.test"],
                   check=True, capture_output=True, timeout=30)
    return str(d / "c.pem"), str(d / "k.pem")


def tls_conf(up, cert, l7, workers=2):
    cfg = guard_conf(up, l7, workers=workers)
    cfg["listeners"] = [{"name": "web", "kind": "https", "bind": "127.0.0.1:0",
                         "tls": {"certificates": [{"cert_pem": cert[0], "key_pem": cert[1]}],
                                 "session_resumption": False}}]
    return cfg


def tls_get(port):
    """True when a full handshake and one request succeed."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="guard.test") as s:
                s.sendall(b"GET /t HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    data += d
                return data.startswith(b"HTTP/1.1 200 ")
    except (ssl.SSLError, OSError):
        return False


def test_tls_handshake_rate_per_ip(arc, servers, cert):
    up = servers.http(name="echo")
    a = arc(tls_conf(up, cert, {"tls_flood": {"handshakes_per_ip_per_sec": 3}}))
    results = []
    lock = threading.Lock()

    def one():
        ok = tls_get(a.port)
        with lock:
            results.append(ok)
    t0 = time.monotonic()
    ts = [threading.Thread(target=one) for _ in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    took = time.monotonic() - t0
    ok, failed = results.count(True), results.count(False)
    assert ok >= 3, results
    # at most 3 per whole second that the burst spanned
    assert ok <= 3 * (int(took) + 2), (ok, took)
    assert failed >= 1 or took > 5, (ok, took)
    assert wait_trips(a, "tls_handshake_rate", failed, 5) == failed
    # the next second lets the address in again
    assert wait_for(lambda: tls_get(a.port), timeout=10)


def test_tls_handshake_budget_per_worker(arc, servers, cert, arc_bin):
    up = servers.http(name="echo")
    a = arc(tls_conf(up, cert, {"tls_flood": {"max_handshakes_per_worker": 1}}, workers=1))
    # a TCP connection that never sends its ClientHello holds the budget
    holder = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    c2 = Client(a.port)
    # (whichever of the two arc saw second is refused at once)
    assert c2.wait_closed(8 * arc_bin.slow), "handshake over the worker's budget not refused"
    assert c2.trailing == b""
    assert wait_trips(a, "tls_handshake_budget", 1, 5) == 1
    holder.close()
    assert wait_for(lambda: tls_get(a.port), timeout=10 * arc_bin.slow)
    assert trips(a, "tls_handshake_budget") >= 1


# ------------------------------------------------------------------ HTTP/2

def _h2_conn(port, src="127.0.0.1"):
    import h2.config
    import h2.connection
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    s.sendall(conn.data_to_send())
    return s, conn


def _h2_post_headers(conn, sid, path, length):
    conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "t"),
                            (":path", path), ("content-length", str(length))])


def test_h2_stream_body_below_min_rate_408_while_fair_stream_served(arc, servers, arc_bin):
    """min_recv_rate_bps per HTTP/2 stream: on one connection, a stream
    whose body trickles at ~100 B/s is answered 408 (and reset), while a
    fair upload on another stream of the same connection is served; the
    trip is counted once as min_recv_rate_body."""
    import h2.events
    up = servers.http(name="echo")
    a = arc(guard_conf(up, {"slowloris": {"min_recv_rate_bps": 1000,
                                          "min_recv_rate_window": "1s"}}))
    s, conn = _h2_conn(a.port)
    n_slow, fair = 100000, b"y" * 20000
    _h2_post_headers(conn, 1, "/slowbody", n_slow)
    _h2_post_headers(conn, 3, "/fair", len(fair))
    s.sendall(conn.data_to_send())
    got = {1: {}, 3: {}}
    sent_slow, sent_fair = 0, 0
    deadline = time.monotonic() + 15 * arc_bin.slow
    s.settimeout(0.1)
    while time.monotonic() < deadline and not (got[1].get("end") and got[3].get("end")):
        if not got[1].get("end") and sent_slow < n_slow:
            conn.send_data(1, b"x" * 10)                     # ~100 B/s
            sent_slow += 10
        if sent_fair < len(fair):                            # ~10 kB/s over 2 s
            conn.send_data(3, fair[sent_fair:sent_fair + 1000],
                           end_stream=sent_fair + 1000 >= len(fair))
            sent_fair += 1000
        try:
            s.sendall(conn.data_to_send())
        except OSError:
            break
        t_end = time.monotonic() + 0.1
        while time.monotonic() < t_end:
            try:
                data = s.recv(65536)
            except socket.timeout:
                break
            if not data:
                deadline = 0
                break
            for e in conn.receive_data(data):
                sid = getattr(e, "stream_id", None)
                if sid not in got:
                    continue
                if isinstance(e, h2.events.ResponseReceived):
                    got[sid]["status"] = int(dict(e.headers)[b":status"])
                elif isinstance(e, h2.events.DataReceived):
                    conn.acknowledge_received_data(e.flow_controlled_length, sid)
                elif isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
                    got[sid]["end"] = True
                    if isinstance(e, h2.events.StreamReset):
                        got[sid]["reset"] = e.error_code
    s.close()
    assert got[3].get("status") == 200, got
    assert got[1].get("status") == 408, got
    assert sent_slow < n_slow / 10, "the slow stream was not cut early (%d bytes sent)" % sent_slow
    assert wait_trips(a, "min_recv_rate_body", 1, 5) == 1


def test_h2_connection_without_a_request_head_closed_at_header_deadline(arc, servers, arc_bin):
    """An HTTP/2 connection is bounded by headers_timeout until its first
    request's HEADERS are whole: one that sends only the preface and
    SETTINGS, and one that leaves a header block open (HEADERS without
    END_HEADERS), are closed (trip headers_timeout) while a normal h2
    client that got its answer may idle past the deadline."""
    up = servers.http(name="echo")
    a = arc(guard_conf(up, {"slowloris": {"headers_timeout": "1s"}}))
    silent, _ = _h2_conn(a.port)
    open_block, conn = _h2_conn(a.port)
    conn.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":authority", "t"),
                          (":path", "/x")], end_stream=True)
    frames = conn.data_to_send()
    # the HEADERS frame is the last one: clear its END_HEADERS flag (0x4)
    i = len(frames)
    j = 0
    while j < len(frames):                                   # walk to the last frame
        ln = int.from_bytes(frames[j:j + 3], "big")
        i, j = j, j + 9 + ln
    assert frames[i + 3] == 0x1, frames[i:i + 9]            # HEADERS
    frames = frames[:i + 4] + bytes([frames[i + 4] & ~0x4]) + frames[i + 5:]
    open_block.sendall(frames)
    good = H2Client(a.port)
    sid = good.request("/ok")
    assert good.response(sid)[0] == 200
    t0 = time.monotonic()
    for sock in (silent, open_block):
        sock.settimeout(8 * arc_bin.slow)
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass
    took = time.monotonic() - t0
    assert took < 8 * arc_bin.slow, "h2 connections without a request head not cut"
    assert wait_trips(a, "headers_timeout", 2, 5) == 2
    # the client that was served idles past the header deadline and is still served
    time.sleep(1.5)
    sid = good.request("/again")
    assert good.response(sid)[0] == 200
    good.close()
    silent.close()
    open_block.close()


def _tls_ctx(alpn=None):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def _closed_within(sock, budget):
    """Seconds until the peer closes (EOF or reset), or None; what came is dropped."""
    t0 = time.monotonic()
    sock.settimeout(budget)
    try:
        while sock.recv(65536):
            if time.monotonic() - t0 > budget:
                return None
    except socket.timeout:
        return None
    except (OSError, ssl.SSLError):
        pass
    return time.monotonic() - t0


def test_tls_connections_without_a_request_bounded_by_header_deadline(arc, servers, cert, arc_bin):
    """headers_timeout covers a TLS connection from accept: one that never
    sends its ClientHello, one that completes the handshake (HTTP/1.1) and
    then sends nothing, and one that negotiates h2 by ALPN and never sends
    the preface are all closed (trip headers_timeout, no HTTP answer),
    while a normal HTTPS client is served."""
    up = servers.http(name="echo")
    a = arc(tls_conf(up, cert, {"slowloris": {"headers_timeout": "1s"}}))
    no_hello = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    quiet = _tls_ctx().wrap_socket(socket.create_connection(("127.0.0.1", a.port), timeout=10),
                                   server_hostname="guard.test")
    h2q = _tls_ctx(["h2"]).wrap_socket(socket.create_connection(("127.0.0.1", a.port),
                                                                timeout=10),
                                       server_hostname="guard.test")
    assert h2q.selected_alpn_protocol() == "h2"
    assert tls_get(a.port)
    budget = 8 * arc_bin.slow
    for name, s in (("no ClientHello", no_hello), ("silent after handshake", quiet),
                    ("h2 without preface", h2q)):
        took = _closed_within(s, budget)
        assert took is not None, "%s: not closed by the header deadline" % name
        s.close()
    assert wait_trips(a, "headers_timeout", 3, 5) == 3


def test_tls_handshake_rate_is_per_address(arc, servers, cert):
    """handshakes_per_ip_per_sec refuses one address's excess only: while
    127.0.0.1 is over its rate, 127.0.0.2 completes handshakes."""
    up = servers.http(name="echo")
    a = arc(tls_conf(up, cert, {"tls_flood": {"handshakes_per_ip_per_sec": 2}}))
    refused_other = []

    def from_other():
        ctx = _tls_ctx()
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(10)
            s.bind(("127.0.0.2", 0))
            s.connect(("127.0.0.1", a.port))
            with ctx.wrap_socket(s, server_hostname="guard.test") as t:
                t.sendall(b"GET /o HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                return t.recv(65536).startswith(b"HTTP/1.1 200 ")
        except (ssl.SSLError, OSError):
            return False

    # keep 127.0.0.1 over its rate while 127.0.0.2 makes three handshakes, at
    # least 1.1 s apart (so never two in one whole second: under its own
    # rate); counted by tries, not by time, for a loaded machine
    deadline = time.monotonic() + 60
    flood_failed, other_ok, last_other = 0, 0, 0.0
    while len(refused_other) + other_ok < 3 and time.monotonic() < deadline:
        results = [tls_get(a.port) for _ in range(4)]
        flood_failed += results.count(False)
        if time.monotonic() - last_other >= 1.1:
            last_other = time.monotonic()
            if from_other():
                other_ok += 1
            else:
                refused_other.append(last_other)
    assert flood_failed >= 1, "127.0.0.1 was never refused"
    assert refused_other == [] and other_ok == 3, (refused_other, other_ok)
    assert wait_trips(a, "tls_handshake_rate", flood_failed, 5) == flood_failed


class H2Raw:
    """An h2c connection (python3-h2) from source address `src`: what Arc
    answers is gathered per stream (status, reset code, end); sync() is a
    PING round trip, so Arc has processed everything sent before it."""

    def __init__(self, port, src="127.0.0.1"):
        self.sock, self.conn = _h2_conn(port, src)
        self.st = {}
        self.closed = False
        self.goaway = None
        self.acks = 0
        self.got_after = None       # bytes received since mark()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def mark(self):
        self.got_after = b""

    def _recv(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return
        except OSError:
            self.closed = True
            return
        if not data:
            self.closed = True
            return
        if self.got_after is not None:
            self.got_after += data
        for e in self.conn.receive_data(data):
            sid = getattr(e, "stream_id", None)
            if isinstance(e, h2.events.PingAckReceived):
                self.acks += 1
            elif isinstance(e, h2.events.ConnectionTerminated):
                self.goaway = int(e.error_code)
            elif sid:
                d = self.st.setdefault(sid, {})
                if isinstance(e, h2.events.ResponseReceived):
                    d["status"] = int(dict(e.headers)[b":status"])
                elif isinstance(e, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(e.flow_controlled_length, sid)
                elif isinstance(e, h2.events.StreamEnded):
                    d["end"] = True
                elif isinstance(e, h2.events.StreamReset):
                    d["reset"] = int(e.error_code)
                    d["end"] = True
        try:
            self.flush()
        except OSError:
            self.closed = True

    def wait(self, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not pred() and not self.closed and time.monotonic() < deadline:
            self._recv(0.1)
        return pred()

    def sync(self):
        """Two PING round trips: whatever Arc queued while processing what
        was sent before (resets, answers) has arrived too."""
        for _ in range(2):
            n = self.acks
            self.conn.ping(os.urandom(8))
            self.flush()
            assert self.wait(lambda: self.acks > n, 20), "no PING ACK"

    def post(self, path="/p", length=1000):
        """A request whose body is not sent (yet): incomplete."""
        sid = self.conn.get_next_available_stream_id()
        _h2_post_headers(self.conn, sid, path, length)
        self.flush()
        return sid

    def get(self, path="/g"):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                     (":authority", "t"), (":path", path)], end_stream=True)
        self.flush()
        return sid

    def reset(self, sid):
        self.conn.reset_stream(sid, 8)                       # CANCEL
        self.flush()

    def answered(self, sid, timeout=10.0):
        """The stream's final word: its status once ended, or ("reset", code)."""
        self.wait(lambda: self.st.get(sid, {}).get("end"), timeout)
        d = self.st.get(sid, {})
        return ("reset", d["reset"]) if "reset" in d else d.get("status")

    def close(self):
        self.sock.close()


def _h2_guard_conf(up, l7):
    return make_config([upstream_conf("echo", up.addr)],
                       routes=[route_conf("small", "/small", upstream="echo", max_body="1kb"),
                               route_conf("default", "/{*rest}", upstream="echo")],
                       extra={"security": {"l7": l7}})


def _fill(h, n):
    """n requests left incomplete on h: every one must be admitted."""
    sids = [h.post() for _ in range(n)]
    h.sync()
    refused = [s for s in sids if "reset" in h.st.get(s, {})]
    assert not refused, "streams %s refused below the cap: %s" % (refused, h.st)
    return sids


def _refused_next(h):
    """The next request from h's address is over the cap: its stream is
    refused (REFUSED_STREAM), the connection goes on."""
    sid = h.get()
    assert h.answered(sid) == ("reset", 7), h.st.get(sid)
    assert not h.closed and h.goaway is None


def test_h2_max_incomplete_per_ip_refuses_streams_and_gives_back(arc, servers, arc_bin):
    """max_incomplete_per_ip counts HTTP/2 request streams whose request has
    not all arrived, node-wide with HTTP/1 heads: over the cap a new stream
    is refused with REFUSED_STREAM (the connection and its other streams go
    on), an HTTP/1 head from the same address is closed, another address is
    served; every way a stream stops being incomplete gives its place back
    exactly once (reset by the client, many times over; answered early by
    Arc; its body completing; its connection closing), so the cap admits
    exactly as many again."""
    up = servers.http(name="echo")
    a = arc(_h2_guard_conf(up, {"slowloris": {"max_incomplete_per_ip": 3,
                                              "headers_timeout": "60s",
                                              "min_recv_rate_bps": 0,
                                              "over_incomplete": "close"}}))
    h = H2Raw(a.port)
    held = _fill(h, 3)
    _refused_next(h)                                         # trip 1
    # node-wide, the same table as HTTP/1: a head from this address is cut
    c = a.client()
    c.send(b"GET /p HTTP/1.1\r\nHost: t\r\n")
    assert c.wait_closed(5 * arc_bin.slow)                    # trip 2
    assert c.trailing == b""
    o = H2Raw(a.port, "127.0.0.2")                           # another address
    assert o.answered(o.get()) == 200
    o.close()
    # streams reset by the client give their places back, however many
    for sid in held:
        h.reset(sid)
    for i in range(40):
        h.reset(h.post())
        if i % 10 == 9:
            h.sync()                                         # (under the reset-rate guard)
    h.sync()
    held = _fill(h, 3)                                       # no leak ...
    _refused_next(h)                                         # ... and no undercount: trip 3
    for sid in held:
        h.reset(sid)
    # exchanges that end before their request does (413 for a declared
    # body over the route's max_body, the body never sent)
    for _ in range(5):
        sid = h.post("/small", 5000)
        h.wait(lambda: "status" in h.st.get(sid, {}) or "reset" in h.st.get(sid, {}))
        assert h.st.get(sid, {}).get("status") == 413, h.st.get(sid)
    h.sync()
    held = _fill(h, 3)
    _refused_next(h)                                         # trip 4
    # a body that arrives whole gives its place back
    h.conn.send_data(held[0], b"x" * 1000, end_stream=True)
    h.flush()
    assert h.answered(held[0]) == 200
    assert h.answered(h.get()) == 200
    # a closed connection gives back all it held (two incomplete streams);
    # its close reaches arc asynchronously: counted once the closes of the
    # HTTP/1 client and of `o` are (so the next one seen is h's)

    def closed():
        return metric(a.metrics()[0], "arc_connections_closed_total") or 0
    assert wait_for(lambda: closed() >= 2, timeout=10 * arc_bin.slow)
    closed0 = closed()
    h.close()
    assert wait_for(lambda: closed() > closed0, timeout=10 * arc_bin.slow)
    n = H2Raw(a.port)
    _fill(n, 3)
    _refused_next(n)                                         # trip 5
    n.close()
    assert trips(a, "max_incomplete_per_ip") == 5


def _headers_frames(conn, sid, path, pieces, end_stream=True, extra=()):
    """The request head of `sid` as h2 encodes it, re-framed into `pieces`
    frames: HEADERS, then CONTINUATION frames, the last with END_HEADERS.
    Returned as a list of frame byte strings."""
    conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "t"),
                            (":path", path)] + list(extra), end_stream=end_stream)
    data = conn.data_to_send()
    ln = int.from_bytes(data[0:3], "big")
    assert data[3] == 0x1 and len(data) == 9 + ln, data[:9]  # one HEADERS frame
    flags, block = data[4], data[9:]
    assert not flags & 0x28, "padded/priority HEADERS"       # (plain block)
    per = max(1, -(-len(block) // pieces))
    chunks = [block[i:i + per] for i in range(0, len(block), per)]
    out = []
    for i, ch in enumerate(chunks):
        last = i == len(chunks) - 1
        f = (flags & 0x1 if i == 0 else 0) | (0x4 if last else 0)
        out.append(len(ch).to_bytes(3, "big") + bytes([0x1 if i == 0 else 0x9, f]) +
                   sid.to_bytes(4, "big") + ch)
    return out


def test_h2_open_header_block_counts_as_incomplete(arc, servers, arc_bin):
    """A request head whose header block is still arriving (HEADERS without
    END_HEADERS) counts against max_incomplete_per_ip from its first frame
    until its END_HEADERS, then the stream it became is counted only while
    its request is incomplete."""
    up = servers.http(name="echo")
    a = arc(_h2_guard_conf(up, {"slowloris": {"max_incomplete_per_ip": 2,
                                              "headers_timeout": "60s",
                                              "min_recv_rate_bps": 0}}))
    h = H2Raw(a.port)
    _fill(h, 1)
    b = H2Raw(a.port)
    b.sync()
    frames = _headers_frames(b.conn, 1, "/blk", 2, extra=[("x-pad", "p" * 200)])
    b.sock.sendall(frames[0])                                # the block stays open
    # poll until b's open head is counted: then h's next stream is refused
    # (an admitted probe is reset at once and gives its place back)

    def probe():
        sid = h.get("/probe")
        r = h.answered(sid)
        if r == ("reset", 7):
            return True
        assert r == 200, r
        return False
    assert wait_for(probe, timeout=10 * arc_bin.slow, step=0.1)
    b.sock.sendall(frames[1])                                # END_HEADERS: whole
    b.wait(lambda: b.st.get(1, {}).get("end"))
    assert b.st[1].get("status") == 200, b.st
    h.sync()
    held = _fill(h, 1)                                       # b's place is back
    _refused_next(h)
    assert trips(a, "max_incomplete_per_ip") == 2
    h.reset(held[0])
    h.close()
    b.close()


def test_h2_later_header_block_under_header_deadline(arc, servers, arc_bin):
    """headers_timeout applies to every HTTP/2 header block, not only the
    first request's: on a connection that was served and then idled past
    the deadline, a request head whose CONTINUATION frames trickle is cut
    at the deadline from its first byte (closed, nothing more written,
    trip headers_timeout), while a head split over frames that arrive
    promptly is served."""
    up = servers.http(name="echo")
    a = arc(guard_conf(up, {"slowloris": {"headers_timeout": "1s"}}))
    fair = H2Raw(a.port)
    slow = H2Raw(a.port)
    assert fair.answered(fair.get("/first")) == 200
    assert slow.answered(slow.get("/first")) == 200
    time.sleep(1.5)                                          # idle past the deadline: fine
    assert slow.answered(slow.get("/again")) == 200
    # a head in 4 frames sent at once is served
    sid = fair.conn.get_next_available_stream_id()
    fair.sock.sendall(b"".join(_headers_frames(fair.conn, sid, "/split", 4,
                                               extra=[("x-pad", "p" * 300)])))
    assert fair.answered(sid) == 200
    # a head trickled in 6 frames, one a second (5 s in all)
    sid = slow.conn.get_next_available_stream_id()
    frames = _headers_frames(slow.conn, sid, "/trickle", 6, extra=[("x-pad", "p" * 300)])
    slow.sync()
    slow.mark()
    t0 = time.monotonic()
    sent = 0
    for f in frames:
        try:
            slow.sock.sendall(f)
        except OSError:
            break
        sent += 1
        if slow.wait(lambda: False, 1.0):                    # (reads while waiting)
            break
        if slow.closed:
            break
    slow.wait(lambda: False, 8 * arc_bin.slow)               # until closed
    took = time.monotonic() - t0
    assert slow.closed, "a trickled header block was not cut"
    assert sent < len(frames), "the whole trickled head was sent before the cut"
    assert took < 8 * arc_bin.slow
    assert slow.got_after == b"", "something was written: %r" % slow.got_after[:64]
    assert wait_trips(a, "headers_timeout", 1, 5) == 1
    # the other connection is unaffected
    assert fair.answered(fair.get("/after")) == 200
    fair.close()
    slow.close()


def _open_block(h, sid, fields, end_stream):
    """Sends a header block for `sid` (a request head or trailers, as h2
    encodes it) with END_HEADERS cleared: it stays open."""
    h.conn.send_headers(sid, fields, end_stream=end_stream)
    data = h.conn.data_to_send()
    assert data[3] == 0x1 and len(data) == 9 + int.from_bytes(data[0:3], "big"), data[:9]
    h.sock.sendall(data[:4] + bytes([data[4] & ~0x4]) + data[5:])


def _cut_quietly(h, budget):
    """h is closed within budget s and nothing was written since mark()."""
    t0 = time.monotonic()
    h.wait(lambda: False, budget)
    assert h.closed, "an open header block was not cut"
    assert h.got_after == b"", "something was written: %r" % h.got_after[:64]
    return time.monotonic() - t0


def test_h2_trailers_block_under_header_deadline(arc, servers, arc_bin):
    """A stream's trailers block left open (HEADERS without END_HEADERS
    after its body) holds the whole connection like a head: cut at
    headers_timeout from its first byte, nothing written, counted once."""
    up = servers.http(name="echo")
    a = arc(guard_conf(up, {"slowloris": {"headers_timeout": "1s"}}))
    h = H2Raw(a.port)
    assert h.answered(h.get("/first")) == 200
    # no content-length: the upstream gets it chunked and cannot answer
    # before the body's end (which the trailers would bring)
    sid = h.conn.get_next_available_stream_id()
    h.conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "t"),
                              (":path", "/up")])
    h.conn.send_data(sid, b"0123456789")
    h.flush()
    h.sync()
    h.mark()
    _open_block(h, sid, [("x-checksum", "abc")], True)
    _cut_quietly(h, 8 * arc_bin.slow)
    assert wait_trips(a, "headers_timeout", 1, 5) == 1
    h.close()


def test_h2_header_block_bounded_by_read_timeout_without_the_guard(arc, servers, arc_bin):
    """With the slowloris guard off, node.read_timeout bounds a later
    header block instead (closed, nothing written, counted as a
    client_timeout error, not as a guard trip)."""
    up = servers.http(name="echo")
    a = arc(guard_conf(up, {"slowloris": {"enabled": False}}, node={"read_timeout": "1s"}))
    h = H2Raw(a.port)
    assert h.answered(h.get("/first")) == 200
    ms, _ = a.metrics()
    before = metric(ms, "arc_errors_total", kind="client_timeout") or 0
    h.mark()
    sid = h.conn.get_next_available_stream_id()
    _open_block(h, sid, [(":method", "GET"), (":scheme", "http"), (":authority", "t"),
                         (":path", "/late")], True)
    _cut_quietly(h, 8 * arc_bin.slow)
    wait_for(lambda: (metric(a.metrics()[0], "arc_errors_total", kind="client_timeout") or 0)
             > before, timeout=5)
    ms, _ = a.metrics()
    assert metric(ms, "arc_errors_total", kind="client_timeout") == before + 1
    assert (trips(a, "headers_timeout") or 0) == 0
    h.close()
