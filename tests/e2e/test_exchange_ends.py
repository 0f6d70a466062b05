"""Every exchange is counted once, where it ends: a WebSocket exchange is
counted as its 101 when the tunnel closes (whichever side closes it), and a
request body held back because the upstream stopped reading stays the
upstream's fault even after the response head went out (the client's read
deadline is paused; the upstream's write_timeout decides)."""
import asyncio
import socket
import threading
import time

import websockets

from arcproc import make_config, metric, route_conf, upstream_conf


def _requests(a, cls):
    ms, _ = a.metrics()
    return metric(ms, "arc_requests_total", **{"class": cls}) or 0


def test_websocket_exchange_counted_once_when_tunnel_closes(arc, servers):
    ws = servers.ws()
    a = arc(make_config([upstream_conf("ws", ws.addr)]))

    async def run():
        async with websockets.connect("ws://127.0.0.1:%d/chat" % a.port) as c:
            assert await asyncio.wait_for(c.recv(), 10) == ws.GREETING
            await c.send("ping")
            assert await asyncio.wait_for(c.recv(), 10) == "ping"
    asyncio.run(run())
    deadline = time.monotonic() + 5
    while _requests(a, "1xx") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _requests(a, "1xx") == 1
    time.sleep(0.3)
    assert _requests(a, "1xx") == 1
    assert _requests(a, "4xx") == 0


def test_body_stalled_by_upstream_after_response_started_is_upstream_timeout(arc, servers):
    def h(req):
        req.conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nearly\r\n")
        req.conn.server.stopping.wait(30)     # never reads the body
        return False
    up = servers.http(handler=h, name="early")
    a = arc(make_config([upstream_conf("early", up.addr, timeouts={"write": "3s"})],
                        routes=[route_conf("default", "/{*rest}", upstream="early", max_body=0)],
                        node={"read_timeout": "1s"}))
    s = socket.create_connection(("127.0.0.1", a.port), timeout=30)
    done = {}

    def send():
        try:
            s.sendall(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (64 << 20))
            block = b"x" * 65536
            for _ in range(1024):
                s.sendall(block)
        except OSError as e:
            done["err"] = e
    t0 = time.monotonic()
    threading.Thread(target=send, daemon=True).start()
    s.settimeout(30)
    got = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
    except (ConnectionResetError, socket.timeout):
        pass
    elapsed = time.monotonic() - t0
    s.close()
    assert got.startswith(b"HTTP/1.1 200 OK"), got[:80]
    assert elapsed >= 2.5, elapsed          # the upstream's write_timeout, not read_timeout (1s)
    ms, _ = a.metrics()
    assert metric(ms, "arc_errors_total", kind="upstream_timeout") == 1
    assert metric(ms, "arc_errors_total", kind="client_timeout") == 0
