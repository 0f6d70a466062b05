"""Slow or idle clients are cut off: an incomplete head or a stalled body
past node.read_timeout gets 408 with Connection: close and then a close, an
idle keep-alive connection is closed quietly after node.idle_timeout, and a
client that stops reading its response is cut off after node.write_timeout
(its upstream connection closed too)."""
import socket
import time

from arcproc import make_config, upstream_conf, metric


def start(arc, servers):
    up = servers.http(name="echo")
    return arc(make_config([upstream_conf("echo", up.addr)],
                           node={"read_timeout": "1s", "idle_timeout": "1s"})), up


def expect_408_and_close(c, budget):
    """The 408 (with Connection: close) arrives, then the close; returns the
    seconds until the close."""
    t0 = time.monotonic()
    closed = c.wait_closed(budget)
    took = time.monotonic() - t0
    assert closed, "connection still open after %.1fs" % budget
    assert c.trailing.startswith(b"HTTP/1.1 408 "), "expected a 408 before the close, got %r" % c.trailing[:200]
    head = c.trailing.split(b"\r\n\r\n", 1)[0].lower()
    assert b"\r\nconnection: close" in head, c.trailing[:200]
    return took


def test_incomplete_head_times_out(arc, servers, arc_bin):
    a, up = start(arc, servers)
    c = a.client()
    c.send(b"GET /slowloris HTTP/1.1\r\nHost: t\r\nX-Partial: ")
    took = expect_408_and_close(c, 6 * arc_bin.slow)
    assert took >= 0.5, "closed after %.2fs, before read_timeout" % took
    assert up.accepted == 0


def test_stalled_body_times_out(arc, servers, arc_bin):
    a, up = start(arc, servers)
    c = a.client()
    c.send(b"POST /stalled HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
    took = expect_408_and_close(c, 8 * arc_bin.slow)
    assert took >= 0.5, "closed after %.2fs, before read_timeout" % took


def test_idle_keepalive_connection_closed(arc, servers, arc_bin):
    a, up = start(arc, servers)
    c = a.client()
    r = c.request("GET", "/once")
    assert r.status == 200
    t0 = time.monotonic()
    assert c.wait_closed(6 * arc_bin.slow), "idle keep-alive connection not closed"
    assert time.monotonic() - t0 >= 0.5
    assert c.trailing == b"", "an idle keep-alive connection is closed quietly, got %r" % c.trailing[:200]


def test_active_connection_not_cut(arc, servers):
    # Requests every 0.5s keep a connection alive well past read/idle timeouts.
    a, up = start(arc, servers)
    c = a.client()
    for i in range(6):
        r = c.request("GET", "/tick/%d" % i)
        assert r.status == 200, r
        time.sleep(0.5)


def test_client_that_stops_reading_is_cut_off(arc, servers, arc_bin):
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr)], node={"write_timeout": "1s"}))
    c = a.client(timeout=10)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    c.send(b"GET /stream?bytes=200000000 HTTP/1.1\r\nHost: t\r\n\r\n")
    # Never read: arc's sends stall until write_timeout cuts the client off,
    # which arc counts as a client_timeout error.
    deadline = time.monotonic() + 10 * arc_bin.slow
    while True:
        ms, _ = a.metrics()
        if (metric(ms, "arc_errors_total", kind="client_timeout") or 0) >= 1:
            break
        assert time.monotonic() < deadline, "arc did not time out a client that stopped reading"
        time.sleep(0.1)
    # What was already in flight, then the close (EOF or reset); a read that
    # times out means the connection is still open.
    got = 0
    closed = False
    c.sock.settimeout(5 * arc_bin.slow)
    try:
        while got < 200000000:
            d = c.sock.recv(1 << 20)
            if not d:
                closed = True
                break
            got += len(d)
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        pass
    assert closed, "connection still open after arc timed out the client (read %d bytes)" % got
    assert got < 200000000, "arc kept streaming to a client stalled past write_timeout"
    # and the upstream side was released: arc closed the upstream connection
    # mid-response (the upstream, blocked sending, sees a reset), instead of
    # leaving it stalled until the upstream's own 30s socket timeout.
    assert up.accepted == 1
    uc = up.history[1]
    assert uc.closed.wait(5 * arc_bin.slow), \
        "the upstream connection is still open after arc cut the stalled client off"
    assert uc.close_reason == "reset", uc.close_reason
    ms, _ = a.metrics()
    assert metric(ms, "arc_upstream_pool_open") == 0, "arc still counts the upstream connection as open"


def test_silent_new_connection_times_out(arc, servers, arc_bin):
    # A connection that never sends a byte must not be held forever.
    a, up = start(arc, servers)
    c = a.client()
    t0 = time.monotonic()
    assert c.wait_closed(6 * arc_bin.slow), "a silent connection outlived read_timeout and idle_timeout (1s)"
    assert time.monotonic() - t0 >= 0.5


def test_client_timeouts_do_not_cut_a_slow_upstream_response(arc, servers):
    # While arc waits for the upstream the client is not idle or slow.
    a, up = start(arc, servers)
    c = a.client()
    r = c.request("GET", "/slow?ms=2500")
    assert r.status == 200, r
    r = c.request("GET", "/after")
    assert r.status == 200


def test_client_timeouts_do_not_cut_a_long_download(arc, servers):
    # A download that takes longer than read_timeout/idle_timeout, with the
    # client reading steadily, must complete.
    a, up = start(arc, servers)
    c = a.client()
    r = c.request("GET", "/stream?bytes=%d&pause_at=%d&pause_ms=2500" % (4 << 20, 1 << 20), store_body=False)
    assert r.status == 200 and r.body_len == 4 << 20
