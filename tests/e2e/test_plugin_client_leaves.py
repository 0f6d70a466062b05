"""A client that leaves while a filter holds its exchange is noticed at
once, on HTTP/1.1 (closing its connection) and HTTP/2 (resetting its
stream, or closing the connection): with the response head paused
(proxy_on_response_headers returning Pause, the upstream held back and
still sending), with the request head paused, and while a body filter
holds the request's end. The exchange ends as a client abort (access log
499 / client_abort, counted once, no upstream_timeout), the upstream
connection is closed (not pooled mid-response), and the filter's context
gets its end callbacks (the plugin's gauge drops back)."""
import json
import os
import re
import socket
import threading
import time

import h2.config
import h2.connection
import pytest

from arcproc import make_config, metric, route_conf, upstream_conf, wait_for
from test_access_log import access_lines, log_config

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "plugins")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("plugin-leave-cache")
    os.chmod(d, 0o700)
    return str(d)


def gauge(a, plugin, name):
    m = re.search(r'^arc_plugin_gauge\{plugin="%s",name="%s"\} (-?\d+)$' % (plugin, name),
                  a.metrics()[1], re.M)
    return int(m.group(1)) if m else 0


def stuck_handler(req):
    """A response head and the start of a body, then nothing: the
    upstream waits (up to 60 s) for Arc to close the connection."""
    if req.target.startswith("/check"):
        req.conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True
    if req.has_body:
        req.read_body(keep=0)
    req.conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
    req.conn.sock.settimeout(60)
    try:
        while req.conn.sock.recv(4096):
            pass
    except OSError:
        pass
    return False


def start(arc, servers, cache_dir, tmp_path, plugin):
    up = servers.http(handler=stuck_handler, name="app")
    p = {"pause": {"name": "pause", "file": os.path.join(FIX, "c_pause.wasm"),
                   "pause_timeout": "60s"},
         "bw": {"name": "bw", "file": os.path.join(FIX, "c_bodywait.wasm"), "config": "app",
                "pause_timeout": "60s"}}[plugin]
    r = route_conf("r", "/{*rest}", upstream="app")
    r["plugins"] = [{"name": plugin}]
    c = log_config(tmp_path, [upstream_conf("app", up.addr, timeouts={"read": "60s"})],
                   routes=[r], workers=1,
                   extra={"plugins": {"cache_dir": cache_dir, "wasm": [p]}})
    return up, arc(c)


def h2_open(port, path, headers, body=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, [(":method", "POST" if body else "GET"), (":scheme", "http"),
                         (":authority", "x"), (":path", path)] + headers,
                   end_stream=body is None)
    if body:
        c.send_data(sid, body, end_stream=True)
    s.sendall(c.data_to_send())
    return s, c, sid


def h1_open(port, path, headers, body=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = "%s %s HTTP/1.1\r\nHost: x\r\n" % ("POST" if body else "GET", path)
    for k, v in headers:
        head += "%s: %s\r\n" % (k, v)
    if body:
        head += "Content-Length: %d\r\n" % len(body)
    s.sendall(head.encode() + b"\r\n" + (body or b""))
    return s


def leave(how, a, path, headers, body=None):
    """Opens the exchange; returns a function that makes the client leave."""
    if how.startswith("h2"):
        s, c, sid = h2_open(a.port, path, headers, body)

        def go():
            if how == "h2-reset":
                c.reset_stream(sid, error_code=8)
                s.sendall(c.data_to_send())
                time.sleep(0.2)     # (the reset is read before the close)
            s.close()
        return go
    s = h1_open(a.port, path, headers, body)

    def go():
        if how == "h1-rst":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    return go


def check_abort(a, tmp_path, path, left_at):
    """The exchange ended as a client abort, soon after the client left."""
    def logged():
        try:
            text = (tmp_path / "access.log").read_text()
        except OSError:
            return None
        recs = [json.loads(ln) for ln in access_lines(text)]
        return [r for r in recs if r["path"] == path] or None
    assert wait_for(logged, timeout=20), "no access record for %s" % path
    took = time.monotonic() - left_at
    rec = logged()
    assert len(rec) == 1, rec
    assert rec[0]["status"] == 499 and rec[0]["error"] == "client_abort", rec
    assert took < 15, took              # (not the upstream's 60 s read timeout)
    ms = a.metrics()[0]
    assert metric(ms, "arc_errors_total", kind="client_abort") == 1
    assert (metric(ms, "arc_errors_total", kind="upstream_timeout") or 0) == 0
    assert metric(ms, "arc_requests_total", code="499") == 1


@pytest.mark.parametrize("how", ["h1-close", "h1-rst", "h2-reset", "h2-close"])
def test_client_leaving_a_paused_response_head_is_an_abort(arc, servers, cache_dir, tmp_path,
                                                          how):
    up, a = start(arc, servers, cache_dir, tmp_path, "pause")
    go = leave(how, a, "/resp", [("x-pause-response", "hold")])
    assert wait_for(lambda: gauge(a, "pause", "held_responses") == 1, timeout=30)
    t0 = time.monotonic()
    go()
    assert wait_for(lambda: gauge(a, "pause", "held_responses") == 0, timeout=20), \
        "the filter's context was not deleted"
    check_abort(a, tmp_path, "/resp", t0)
    conn = up.conn_of("/resp")
    assert conn.closed.wait(20), "the upstream connection was kept"
    # the worker goes on, and the next exchange gets a fresh upstream connection
    assert a.client(timeout=30).request("GET", "/check").status == 200
    assert up.conn_of("/check").id != conn.id


@pytest.mark.parametrize("how", ["h1-close", "h2-reset"])
def test_client_leaving_a_paused_request_head_is_an_abort(arc, servers, cache_dir, tmp_path, how):
    up, a = start(arc, servers, cache_dir, tmp_path, "pause")
    go = leave(how, a, "/req", [("x-pause", "hold")])
    assert wait_for(lambda: gauge(a, "pause", "held") == 1, timeout=30)
    t0 = time.monotonic()
    go()
    assert wait_for(lambda: gauge(a, "pause", "held") == 0, timeout=20)
    check_abort(a, tmp_path, "/req", t0)
    assert "/req" not in up.targets()


@pytest.mark.parametrize("how", ["h1-close", "h2-reset"])
@pytest.mark.parametrize("stream", [False, True])
def test_client_leaving_a_held_request_end_is_an_abort(arc, servers, cache_dir, tmp_path, how,
                                                       stream):
    """A body filter holds the request's end (StopIteration at
    end_of_stream, never continued); with x-wait-stream the body's first
    pieces already went upstream."""
    up, a = start(arc, servers, cache_dir, tmp_path, "bw")
    hs = [("x-body-wait", "stall")] + ([("x-wait-stream", "1")] if stream else [])
    go = leave(how, a, "/body", hs, body=b"b" * 5000)
    assert wait_for(lambda: gauge(a, "bw", "waiting") == 1, timeout=30)
    t0 = time.monotonic()
    go()
    assert wait_for(lambda: gauge(a, "bw", "waiting") == 0, timeout=20)
    check_abort(a, tmp_path, "/body", t0)
    conn = up.conn_of("/body")
    if conn is not None:
        assert conn.closed.wait(20), "the upstream connection was kept"
