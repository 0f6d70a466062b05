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


def test_client_aborts_mid_upload(arc, servers):
    a, up = start(arc, servers)
    for i in range(5):
        c = a.client()
        c.send(b"POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n" + b"a" * 300000)
        time.sleep(0.05)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()   # RST
    time.sleep(0.3)
    r = a.client().request("GET", "/still-alive")
    assert r.status == 200


def test_client_aborts_mid_download(arc, servers):
    a, up = start(arc, servers)
    for i in range(5):
        c = a.client()
        c.send(build_request("GET", "/stream?bytes=50000000"))
        c.rd.read_head()
        c.sock.recv(100000)
        c.close()
    time.sleep(0.5)
    for i in range(3):
        r = a.client().request("GET", "/stream?bytes=100000", store_body=False)
        assert r.status == 200 and r.body_len == 100000
    ms, _ = a.metrics()
    assert metric(ms, "arc_connections_active") is not None


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
    try:
        r = c.response()
        assert r.status == 413, r
    except (ConnectionResetError, OSError):
        pass   # a reset after the 413 may eat it; arc must just survive
    r = a.client().request("GET", "/after")
    assert r.status == 413   # the handler answers everything with 413


def test_pipelined_request_after_connection_close_is_ignored(arc, servers):
    a, up = start(arc, servers)
    c = a.client()
    c.send(build_request("GET", "/first", headers=[("Connection", "close")]) + build_request("GET", "/second"))
    r = c.response()
    assert r.status == 200 and r.json()["target"] == "/first"
    assert c.wait_closed(5)
    assert b"HTTP/1.1" not in c.trailing
    time.sleep(0.2)
    assert "/second" not in up.targets()


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
