"""A WebSocket upgrade is tunnelled through arc after the 101: a message the
server sends first reaches the client, and text and binary messages echo both
ways (python3-websockets client and server)."""
import asyncio
import os

import websockets

from arcproc import make_config, upstream_conf, route_conf


def test_websocket_echo_with_server_first_message(arc, servers):
    ws = servers.ws()
    up = servers.http(name="echo")
    routes = [route_conf("ws", "/ws", upstream="ws"), route_conf("default", "/{*rest}", upstream="echo")]
    a = arc(make_config([upstream_conf("ws", ws.addr), upstream_conf("echo", up.addr)], routes=routes))
    big = os.urandom(200000)

    async def client():
        async with websockets.connect("ws://127.0.0.1:%d/ws" % a.port, open_timeout=10,
                                      close_timeout=5, max_size=1 << 22) as c:
            first = await asyncio.wait_for(c.recv(), 10)
            assert first == ws.GREETING
            for msg in ("ping-1", "ü-unicode", "x" * 70000):
                await c.send(msg)
                assert await asyncio.wait_for(c.recv(), 10) == msg
            await c.send(big)
            assert await asyncio.wait_for(c.recv(), 10) == big
            await c.ping()
    asyncio.run(asyncio.wait_for(client(), 30))
    # the upstream saw a real upgrade request
    hdrs = {k.lower(): v for k, v in ws.request_headers[0]}
    assert hdrs.get("upgrade", "").lower() == "websocket"
    assert "upgrade" in hdrs.get("connection", "").lower()
    # and ordinary requests still work
    r = a.client().request("GET", "/plain")
    assert r.status == 200


def test_websocket_server_closes_first(arc, servers, arc_bin):
    # The upstream starts the closing handshake and then closes its TCP
    # connection (RFC 6455 §7.1.1: the server closes the TCP connection
    # first). The client must see the close frame and then the TCP close
    # promptly, which only happens if arc passes the upstream's EOF on; the
    # client's own close_timeout and arc's idle_timeout are both far longer,
    # so neither can close the connection in time instead.
    import time
    ws = servers.ws()
    a = arc(make_config([upstream_conf("ws", ws.addr)], node={"idle_timeout": "60s"}))
    budget = 3.0 * arc_bin.slow

    async def client():
        c = await websockets.connect("ws://127.0.0.1:%d/anything" % a.port, open_timeout=10,
                                     close_timeout=30)
        try:
            assert await asyncio.wait_for(c.recv(), 10) == ws.GREETING
            await c.send("one")
            assert await asyncio.wait_for(c.recv(), 10) == "one"
            t0 = time.monotonic()
            await c.send(ws.CLOSE_REQUEST)
            # recv() raises only once the closing handshake is over and the
            # TCP connection is closed (or close_timeout gives up on it).
            try:
                got = await asyncio.wait_for(c.recv(), budget)
                raise AssertionError("expected the server's close, got a message %r" % (got,))
            except websockets.ConnectionClosedOK:
                pass
            except asyncio.TimeoutError:
                raise AssertionError("the server closed first but the client's connection was still "
                                     "open %.1fs later: arc did not pass the upstream's close on"
                                     % budget) from None
            assert c.close_code == 1000 and c.close_reason == ws.CLOSE_REASON, \
                (c.close_code, c.close_reason)
            await asyncio.wait_for(c.wait_closed(), budget)
            return time.monotonic() - t0
        finally:
            c.transport.abort()     # no-op once closed; never wait out close_timeout
    took = asyncio.run(asyncio.wait_for(client(), 60))
    assert took < budget, took
    assert a.alive()


def test_upgrade_tunnel_passes_half_close_both_ways(arc, servers, arc_bin):
    # A raw Upgrade tunnel: the client sends bytes and half-closes; the
    # upstream must see that EOF (arc passes the client's FIN on), answer
    # with what it read, and close; the client must get that answer and
    # then the close. Either FIN not passed on leaves one side waiting for
    # timeouts far longer than the budget.
    import socket
    seen = {}

    def h(req):
        req.conn.send(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: raw-test\r\n\r\n")
        got = bytearray(req.conn.rd.buf)
        req.conn.rd.buf.clear()
        req.conn.sock.settimeout(30)
        while True:
            d = req.conn.sock.recv(65536)
            if not d:
                break
            got += d
        seen["got"] = bytes(got)
        req.conn.send(b"upstream saw EOF after %d bytes" % len(got))
        return False    # the server closes the connection
    up = servers.http(handler=h, name="raw")
    a = arc(make_config([upstream_conf("raw", up.addr)], node={"idle_timeout": "60s"}))
    budget = 3.0 * arc_bin.slow
    c = a.client(timeout=budget)
    c.send(b"GET /raw HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: raw-test\r\n\r\n")
    head = c.rd.read_head()
    assert head.startswith(b"HTTP/1.1 101"), head
    payload = b"0123456789abcdef" * 4096
    c.send(payload)
    c.sock.shutdown(socket.SHUT_WR)
    try:
        answer = c.rd.read_to_close()
    except socket.timeout:
        raise AssertionError("tunnel still open %.1fs after the client half-closed (upstream saw %r bytes)"
                             % (budget, len(seen["got"]) if "got" in seen else None)) from None
    assert seen.get("got") == payload
    assert answer == b"upstream saw EOF after %d bytes" % len(payload), answer[:200]


def test_upgrade_refused_by_upstream_keeps_http(arc, servers):
    # The upstream answers an Upgrade request with a plain 200: no tunnel,
    # the connection goes on as HTTP.
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr)]))
    c = a.client()
    r = c.request("GET", "/not-ws", headers=[("Connection", "Upgrade"), ("Upgrade", "websocket"),
                                             ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                             ("Sec-WebSocket-Version", "13")])
    assert r.status == 200, r
    r = c.request("GET", "/after")
    assert r.status == 200 and r.json()["target"] == "/after"


def test_websocket_large_messages_full_duplex(arc, servers):
    ws = servers.ws()
    a = arc(make_config([upstream_conf("ws", ws.addr)]))
    payload = os.urandom(4 << 20)

    async def client():
        async with websockets.connect("ws://127.0.0.1:%d/big" % a.port, open_timeout=10, close_timeout=5,
                                      max_size=16 << 20) as c:
            assert await asyncio.wait_for(c.recv(), 10) == ws.GREETING
            # several messages in flight both ways at once
            for _ in range(4):
                await c.send(payload)
            for _ in range(4):
                assert await asyncio.wait_for(c.recv(), 30) == payload
    asyncio.run(asyncio.wait_for(client(), 60))


def test_sigterm_with_open_tunnel_exits(arc, servers, arc_bin):
    import signal
    ws = servers.ws()
    a = arc(make_config([upstream_conf("ws", ws.addr)], node={"drain_timeout": "2s"}))

    async def client():
        async with websockets.connect("ws://127.0.0.1:%d/t" % a.port, open_timeout=10, close_timeout=2) as c:
            assert await asyncio.wait_for(c.recv(), 10) == ws.GREETING
            a.signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(c.recv(), 10 * arc_bin.slow)
            except websockets.ConnectionClosed:
                return
            except asyncio.TimeoutError:
                raise AssertionError("tunnel still open 10s after SIGTERM with drain_timeout 2s")
    asyncio.run(asyncio.wait_for(client(), 30 * arc_bin.slow))
    rc = a.wait_exit(10 * arc_bin.slow)
    assert rc is not None, "arc did not exit with an open WebSocket tunnel"
    a.expect_exited = True
    assert rc == 0
