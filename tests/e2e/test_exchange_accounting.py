"""Every exchange arc starts is counted once in arc_requests_total (by route
and status class), however it ends: completed, cut by the upstream, or
abandoned by the client mid-response or mid-upload. The class is that of
the status already sent to the client, as for an exchange the upstream cut
(arc_px__client_cut counts those).

On the code these tests were written against, the client-side abort paths
(arc_px__client_abort from a client EOF/reset or a client write timeout)
count nothing, so test_aborted_download_is_counted,
test_aborted_upload_is_counted and test_client_stalled_past_write_timeout_is_counted
fail; test_upstream_cut_mid_body_is_counted is the control that passes.
"""
import socket
import time

from arcproc import make_config, upstream_conf, metric
from httpraw import Client, build_request


def start(arc, servers, node=None, timeouts=None):
    up = servers.http(name="echo")
    return arc(make_config([upstream_conf("echo", up.addr, timeouts=timeouts)], node=node)), up


def counts(a):
    ms, _ = a.metrics()
    return {
        "total": metric(ms, "arc_requests_total") or 0,
        "2xx": metric(ms, "arc_requests_total", route="default", **{"class": "2xx"}) or 0,
        "route": metric(ms, "arc_requests_total", route="default") or 0,
        "upstream": metric(ms, "arc_upstream_requests_total") or 0,
        "active": metric(ms, "arc_connections_active"),
        "client_timeout": metric(ms, "arc_errors_total", kind="client_timeout") or 0,
    }


def wait_counts(a, pred, timeout):
    """Polls /metrics until pred(counts) holds; returns the last counts."""
    deadline = time.monotonic() + timeout
    while True:
        c = counts(a)
        if pred(c) or time.monotonic() > deadline:
            return c
        time.sleep(0.1)


def test_upstream_cut_mid_body_is_counted(arc, servers, arc_bin):
    # Control: the upstream stalls mid-body and its read timeout cuts the
    # exchange (client_cut): counted once, in the class of the 200 sent.
    a, up = start(arc, servers, timeouts={"read": "1s"})
    before = counts(a)
    c = a.client()
    c.send(build_request("GET", "/stall?bytes=1000"))
    head = c.rd.read_head()
    assert head.startswith(b"HTTP/1.1 200"), head
    assert c.wait_closed(10 * arc_bin.slow), "arc did not cut the stalled response"
    after = wait_counts(a, lambda x: x["total"] >= before["total"] + 1, 5 * arc_bin.slow)
    assert after["total"] - before["total"] == 1, (before, after)
    assert after["2xx"] - before["2xx"] == 1, (before, after)


def test_aborted_download_is_counted(arc, servers, arc_bin):
    # The client reads the 200 head and part of the body, then closes.
    a, up = start(arc, servers)
    before = counts(a)
    n = 3
    for i in range(n):
        c = Client(a.port)
        c.send(build_request("GET", "/stream?bytes=50000000&abort=%d" % i))
        assert c.rd.read_head().startswith(b"HTTP/1.1 200")
        c.sock.recv(100000)
        c.close()
    # the aborts are over once arc closed the client connections
    gone = wait_counts(a, lambda x: x["active"] == before["active"], 5 * arc_bin.slow)
    assert gone["active"] == before["active"], (before, gone)
    assert gone["upstream"] - before["upstream"] == n, (before, gone)
    after = wait_counts(a, lambda x: x["total"] >= before["total"] + n, 2 * arc_bin.slow)
    assert after["total"] - before["total"] == n, \
        "%d downloads aborted by the client after a 200 head; arc_requests_total rose by %d" % (
            n, after["total"] - before["total"])
    assert after["2xx"] - before["2xx"] == n, (before, after)


def test_aborted_upload_is_counted(arc, servers, arc_bin):
    # The client resets the connection mid-upload, before any response: the
    # exchange was routed and sent upstream, so it is counted (in whatever
    # class arc files a client abort under), exactly once.
    a, up = start(arc, servers)
    before = counts(a)
    t = "/sink?abort=upload"
    c = Client(a.port)
    c.send(("POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n" % t).encode() + b"a" * 300000)
    deadline = time.monotonic() + 5 * arc_bin.slow
    while up.conn_of(t) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert up.conn_of(t) is not None, "the upload never reached the upstream"
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()   # RST
    gone = wait_counts(a, lambda x: x["active"] == before["active"], 5 * arc_bin.slow)
    assert gone["active"] == before["active"], (before, gone)
    after = wait_counts(a, lambda x: x["route"] >= before["route"] + 1, 2 * arc_bin.slow)
    assert after["route"] - before["route"] == 1, \
        "an upload the client reset after it was sent upstream is not in arc_requests_total: %r -> %r" % (
            before, after)


def test_client_stalled_past_write_timeout_is_counted(arc, servers, arc_bin):
    # The client stops reading a 200 response; write_timeout cuts it off
    # (counted in arc_errors_total{kind="client_timeout"}), and the exchange
    # must be in arc_requests_total as well.
    a, up = start(arc, servers, node={"write_timeout": "1s"})
    before = counts(a)
    c = a.client(timeout=10)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    c.send(build_request("GET", "/stream?bytes=200000000"))
    cut = wait_counts(a, lambda x: x["client_timeout"] > before["client_timeout"], 20 * arc_bin.slow)
    assert cut["client_timeout"] - before["client_timeout"] == 1, \
        "arc did not cut off the client that stopped reading: %r -> %r" % (before, cut)
    after = wait_counts(a, lambda x: x["total"] >= before["total"] + 1, 2 * arc_bin.slow)
    assert after["total"] - before["total"] == 1, \
        "the exchange cut by write_timeout is not in arc_requests_total: %r -> %r" % (before, after)
    assert after["2xx"] - before["2xx"] == 1, (before, after)
