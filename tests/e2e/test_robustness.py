"""Arc survives abusive or unlucky peers without crashing or leaking: clients
that vanish mid-upload or mid-download, many concurrent clients, upstreams
that answer before reading the request body, and pipelined requests after a
Connection: close; later requests on fresh connections still work."""
import socket
import threading
import time

from arcproc import make_config, upstream_conf, metric
from httpraw import Client, build_request
from upstreams import response_bytes


def start(arc, servers, **kw):
    up = servers.http(name="echo")
    return arc(make_config([upstream_conf("echo", up.addr)], **kw)), up


def wait_metric(a, name, want, timeout):
    """Polls /metrics until `name` equals want; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        ms, _ = a.metrics()
        v = metric(ms, name)
        if v == want or time.monotonic() > deadline:
            return v
        time.sleep(0.1)


def test_client_aborts_mid_upload(arc, servers, arc_bin):
    # A client that resets mid-upload: the upstream connection carrying the
    # half-sent body is closed (never reused), the client connection is
    # closed, and arc goes on serving.
    a, up = start(arc, servers)
    targets = ["/sink?abort=%d" % i for i in range(5)]
    for t in targets:
        c = Client(a.port)
        c.send(("POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n" % t).encode()
               + b"a" * 300000)
        deadline = time.monotonic() + 5 * arc_bin.slow
        while up.conn_of(t) is None and time.monotonic() < deadline:
            time.sleep(0.02)    # wait until the upload is under way upstream
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()   # RST
    for t in targets:
        uc = up.conn_of(t)
        assert uc is not None, "upload %s never reached the upstream" % t
        assert uc.closed.wait(5 * arc_bin.slow), "upstream connection for %s still open after the client reset" % t
        assert uc.close_reason == "reset", (t, uc.close_reason)
        assert uc.targets == [t], uc.targets
    with Client(a.port) as c:
        r = c.request("GET", "/still-alive")
        assert r.status == 200
    v = wait_metric(a, "arc_connections_active", 0, 5 * arc_bin.slow)
    assert v == 0, "arc_connections_active is %s after every client left" % v


def test_client_aborts_mid_download(arc, servers, arc_bin):
    # A client that vanishes mid-body: arc must close that upstream
    # connection (it is mid-response, so it can never be reused), close the
    # client connection (the gauge returns to its baseline) and go on
    # serving.
    a, up = start(arc, servers)
    ms, _ = a.metrics()
    base_active = metric(ms, "arc_connections_active")
    assert base_active == 0, base_active
    targets = ["/stream?bytes=50000000&abort=%d" % i for i in range(5)]
    for t in targets:
        c = Client(a.port)
        c.send(build_request("GET", t))
        c.rd.read_head()
        c.sock.recv(100000)
        c.close()
    for t in targets:
        uc = up.conn_of(t)
        assert uc is not None, up.targets()
        assert uc.closed.wait(5 * arc_bin.slow), "upstream connection for %s still open after the client left" % t
        assert uc.close_reason == "reset", (t, uc.close_reason)
        assert uc.targets == [t], "the aborted upstream connection carried more requests: %r" % uc.targets
    for i in range(3):
        with Client(a.port) as c:
            r = c.request("GET", "/stream?bytes=100000", store_body=False)
            assert r.status == 200 and r.body_len == 100000
    v = wait_metric(a, "arc_connections_active", base_active, 5 * arc_bin.slow)
    assert v == base_active, "arc_connections_active is %s, baseline %s: aborted connections not closed" % (
        v, base_active)


def test_many_concurrent_clients(arc, servers):
    a, up = start(arc, servers)
    errors = []

    def worker(n):
        try:
            c = Client(a.port, timeout=15)
            for i in range(20):
                if i % 4 == 0:
                    body = b"b" * (1000 * i)
                    r = c.request("POST", "/w/%d/%d" % (n, i), body=body)
                    assert r.json()["body_len"] == len(body)
                else:
                    r = c.request("GET", "/w/%d/%d" % (n, i))
                assert r.status == 200
                assert r.json()["target"] == "/w/%d/%d" % (n, i)
            c.close()
        except Exception as e:   # noqa: BLE001
            errors.append("client %d: %r" % (n, e))
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]
    assert up.accepted <= 60, "opened %d upstream connections for 50 clients" % up.accepted


def test_upstream_answers_before_reading_body(arc, servers):
    def h(req):
        # Reject the upload without reading it (like a 413), then close
        # gracefully: half-close and drain, so no RST destroys the answer.
        req.conn.send(response_bytes(413, [("Connection", "close")], b"too big"))
        req.conn.sock.shutdown(socket.SHUT_WR)
        req.conn.sock.settimeout(3)
        try:
            while req.conn.sock.recv(65536):
                pass
        except OSError:
            pass
        return False
    up = servers.http(handler=h, name="early")
    a = arc(make_config([upstream_conf("early", up.addr)]))
    c = a.client()
    c.send(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 5000000\r\n\r\n")
    try:
        for _ in range(40):
            c.send(b"x" * 65536)
    except (BrokenPipeError, ConnectionResetError):
        pass
    # arc relays the 413 and then lingers (reads and drops the rest of the
    # upload) before closing, so no reset destroys the answer in flight.
    r = c.response()
    assert r.status == 413 and r.body == b"too big", r
    assert "close" in r.headers.tokens("connection"), r
    r = a.client().request("GET", "/after")
    assert r.status == 413   # the handler answers everything with 413


def test_pipelined_request_after_connection_close_is_ignored(arc, servers):
    a, up = start(arc, servers, workers=1)
    c = a.client()
    c.send(build_request("GET", "/first", headers=[("Connection", "close")]) + build_request("GET", "/second"))
    r = c.response()
    assert r.status == 200 and r.json()["target"] == "/first"
    assert c.wait_closed(5)
    assert b"HTTP/1.1" not in c.trailing
    # One worker handles both connections in order, so anything it had
    # forwarded for the closed connection reached the upstream before this.
    with Client(a.port) as c2:
        assert c2.request("GET", "/marker").status == 200
    assert up.targets() == ["/first", "/marker"], up.targets()


def test_zero_length_chunked_and_empty_post(arc, servers):
    a, up = start(arc, servers)
    c = a.client()
    r = c.request("POST", "/z", headers=[("Transfer-Encoding", "chunked")], body=b"0\r\n\r\n")
    assert r.status == 200 and r.json()["body_len"] == 0
    r = c.request("POST", "/z2", headers=[("Content-Length", "0")])
    assert r.status == 200 and r.json()["body_len"] == 0


def test_connection_churn(arc, servers):
    a, up = start(arc, servers)
    for i in range(200):
        c = Client(a.port, timeout=5)
        r = c.request("GET", "/churn/%d" % i, headers=[("Connection", "close")] if i % 2 else None)
        assert r.status == 200
        c.close()
    ms, _ = a.metrics()
    assert metric(ms, "arc_connections_accepted_total") >= 200
