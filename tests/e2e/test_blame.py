"""Deadlines blame the side that stalls: a request body held back because the
upstream does not read it is the upstream's fault (504, upstream_timeout),
not the client's (408), however long the client's read_timeout is shorter;
a client that stops sending its body is still the client's (408)."""
import socket
import threading
import time

from arcproc import make_config, metric, route_conf, upstream_conf


def _never_reads(req):
    # accept the head, never read the body, never answer
    req.conn.server.stopping.wait(30)
    return False


def _send_body(port, n, result):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    result["sock"] = s
    try:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % n)
        block = b"x" * 65536
        sent = 0
        while sent < n:
            s.sendall(block)
            sent += len(block)
    except OSError as e:
        result["send_error"] = e


def test_body_paused_by_upstream_is_an_upstream_timeout(arc, servers):
    up = servers.http(handler=_never_reads, name="stuck")
    a = arc(make_config([upstream_conf("stuck", up.addr, timeouts={"write": "3s"})],
                        routes=[route_conf("default", "/{*rest}", upstream="stuck", max_body=0)],
                        node={"read_timeout": "1s"}))
    result = {}
    t = threading.Thread(target=_send_body, args=(a.port, 64 << 20, result), daemon=True)
    t0 = time.monotonic()
    t.start()
    while "sock" not in result:
        time.sleep(0.01)
    s = result["sock"]
    s.settimeout(20 * arc.bin.slow)
    data = b""
    while b"\r\n" not in data:
        piece = s.recv(4096)
        if not piece:
            break
        data += piece
    elapsed = time.monotonic() - t0
    s.close()
    assert data.startswith(b"HTTP/1.1 504"), (data[:80], elapsed)
    assert elapsed >= 2.5, elapsed          # the upstream's write_timeout, not read_timeout
    ms, _ = a.metrics()
    assert metric(ms, "arc_errors_total", kind="upstream_timeout") == 1
    assert metric(ms, "arc_errors_total", kind="client_timeout") == 0


def test_client_that_stops_sending_its_body_is_a_client_timeout(arc, servers):
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr, timeouts={"write": "30s", "ttfb": "30s"})],
                        node={"read_timeout": "1s"}))
    c = a.client(timeout=20)
    c.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
    r = c.response()
    assert r.status == 408, r
    ms, _ = a.metrics()
    assert metric(ms, "arc_errors_total", kind="client_timeout") == 1
