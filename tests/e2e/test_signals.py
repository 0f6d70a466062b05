"""SIGTERM/SIGINT shut arc down gracefully: listeners stop accepting, an
in-flight request still completes with 200, idle connections don't hold the
exit up, the drain is bounded by node.drain_timeout, and a second signal
exits at once with status 1 (an exit, not a crash). SIGHUP and SIGUSR1, which
operators send out of habit, are logged and ignored (also during a drain),
and SIGPIPE is ignored: arc keeps serving."""
import pytest
import signal
import socket
import time

from arcproc import make_config, upstream_conf, wait_for
from httpraw import Client


def new_connection_refused(port, budget=3.0):
    """True once a fresh connection is refused or closed without a response."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < budget:
        try:
            c = Client(port, timeout=2)
        except (ConnectionRefusedError, ConnectionResetError):
            return True
        try:
            c.send(b"GET /after-sigterm HTTP/1.1\r\nHost: t\r\n\r\n")
            try:
                data = c.sock.recv(100)
            except socket.timeout:
                data = None
            except ConnectionResetError:
                data = b""
            if data == b"":
                return True
            if data:
                assert not data.startswith(b"HTTP/1.1 2"), "a new request was served after SIGTERM: %r" % data
                return True
        except (BrokenPipeError, ConnectionResetError):
            return True
        finally:
            c.close()
        time.sleep(0.1)
    return False


def test_sigterm_drains_inflight_request(arc, servers, arc_bin):
    up = servers.http(name="slow")
    a = arc(make_config([upstream_conf("slow", up.addr)], node={"drain_timeout": "10s"}))
    c = a.client(timeout=15)
    c.send(b"GET /slow?ms=2000 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert wait_for(lambda: "/slow?ms=2000" in up.targets()), "request never reached the upstream"
    a.signal(signal.SIGTERM)
    time.sleep(0.2)
    assert new_connection_refused(a.port), "arc still accepts connections after SIGTERM"
    r = c.response()
    assert r.status == 200, r
    assert r.json()["path"] == "/slow"
    rc = a.wait_exit(8 * arc_bin.slow)
    assert rc is not None, "arc did not exit after draining"
    a.expect_exited = True
    assert rc == 0, "arc exited with %s after a graceful drain" % rc


def test_sigint_is_graceful_too(arc, servers, arc_bin):
    up = servers.http(name="slow")
    a = arc(make_config([upstream_conf("slow", up.addr)]))
    c = a.client(timeout=15)
    c.send(b"GET /slow?ms=1000 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert wait_for(lambda: len(up.targets()) == 1)
    a.signal(signal.SIGINT)
    r = c.response()
    assert r.status == 200, r
    rc = a.wait_exit(6 * arc_bin.slow)
    a.expect_exited = True
    assert rc == 0


def test_idle_connections_do_not_delay_exit(arc, servers, arc_bin):
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr)], node={"drain_timeout": "20s"}))
    idle = [a.client() for _ in range(5)]
    for c in idle:
        assert c.request("GET", "/warm").status == 200
    t0 = time.monotonic()
    a.signal(signal.SIGTERM)
    rc = a.wait_exit(5 * arc_bin.slow)
    assert rc is not None, "idle keep-alive connections kept arc alive after SIGTERM"
    a.expect_exited = True
    assert rc == 0
    assert time.monotonic() - t0 < 5 * arc_bin.slow
    for c in idle:
        assert c.wait_closed(2)


def test_drain_is_bounded_by_drain_timeout(arc, servers, arc_bin):
    up = servers.http(name="slow")
    a = arc(make_config([upstream_conf("slow", up.addr)], node={"drain_timeout": "1s"}))
    c = a.client(timeout=15)
    c.send(b"GET /slow?ms=30000 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert wait_for(lambda: len(up.targets()) == 1)
    t0 = time.monotonic()
    a.signal(signal.SIGTERM)
    rc = a.wait_exit(6 * arc_bin.slow)
    took = time.monotonic() - t0
    assert rc is not None, "arc ignored drain_timeout 1s"
    a.expect_exited = True
    assert 0.8 <= took, "exited after %.2fs, before drain_timeout" % took
    assert rc == 0, "exit status %s after the drain timed out" % rc
    assert c.wait_closed(2)


def test_second_signal_exits_at_once(arc, servers, arc_bin):
    up = servers.http(name="slow")
    a = arc(make_config([upstream_conf("slow", up.addr)], node={"drain_timeout": "30s"}))
    c = a.client(timeout=15)
    c.send(b"GET /slow?ms=20000 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert wait_for(lambda: len(up.targets()) == 1)
    a.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert a.alive(), "arc exited before the in-flight request finished"
    t0 = time.monotonic()
    a.signal(signal.SIGTERM)
    rc = a.wait_exit(10 * arc_bin.slow)
    took = time.monotonic() - t0
    assert rc is not None, "second SIGTERM did not make arc exit"
    a.expect_exited = True
    a.expect_nonzero_exit = True
    # Exactly the documented status: 0 would hide the cut-off request, and a
    # negative status is death by a signal (a crash, or the default action).
    assert rc == 1, "second signal: exit status %s, expected 1:\n%s" % (rc, a.stderr_tail(20))
    assert a.wait_stderr("second signal, exiting now"), a.stderr_tail(20)
    assert took < 2 * arc_bin.slow, "arc took %.2fs to exit after the second signal" % took


def test_response_during_drain_says_connection_close(arc, servers, arc_bin):
    up = servers.http(name="slow")
    a = arc(make_config([upstream_conf("slow", up.addr)], node={"drain_timeout": "10s"}))
    c = a.client(timeout=15)
    c.send(b"GET /slow?ms=1000 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert wait_for(lambda: len(up.targets()) == 1)
    a.signal(signal.SIGTERM)
    r = c.response()
    assert r.status == 200
    assert "close" in r.headers.tokens("connection"), \
        "a response sent while draining should announce Connection: close: %r" % r
    assert c.wait_closed(5)
    rc = a.wait_exit(6 * arc_bin.slow)
    a.expect_exited = True
    assert rc == 0


SIGNAL_LOG = {
    signal.SIGHUP: "arc: reloaded (SIGHUP)",  # a reload (same file: unchanged), never a stop
    signal.SIGUSR1: "arc: SIGUSR1 received: no access log to reopen; ignored",
    signal.SIGPIPE: None,           # ignored silently: a closed peer is routine
}


@pytest.mark.parametrize("sig", sorted(SIGNAL_LOG), ids=lambda s: signal.Signals(s).name)
def test_habitual_signals_are_ignored(arc, servers, arc_bin, sig):
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr)]))
    c = a.client()
    assert c.request("GET", "/before").status == 200
    for _ in range(2):              # the first one must not use up anything
        a.signal(sig)
        time.sleep(0.3)
        assert a.alive(), "arc died of %s:\n%s" % (signal.Signals(sig).name, a.stderr_tail(20))
        assert c.request("GET", "/same-connection").status == 200
        assert a.client().request("GET", "/new-connection").status == 200
        assert a.admin_get("/healthz")[0] == 200
    want = SIGNAL_LOG[sig]
    if want:
        assert wait_for(lambda: a.stderr_text().count(want) == 2), \
            "expected the line %r twice on stderr:\n%s" % (want, a.stderr_tail(20))
    assert "draining" not in a.stderr_text()
    assert a.admin_get("/readyz")[0] == 200


def test_sighup_during_drain_is_not_a_second_signal(arc, servers, arc_bin):
    up = servers.http(name="slow")
    a = arc(make_config([upstream_conf("slow", up.addr)], node={"drain_timeout": "10s"}))
    c = a.client(timeout=15)
    c.send(b"GET /slow?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert wait_for(lambda: len(up.targets()) == 1)
    a.signal(signal.SIGTERM)
    time.sleep(0.2)
    a.signal(signal.SIGHUP)
    r = c.response()
    assert r.status == 200, r
    rc = a.wait_exit(8 * arc_bin.slow)
    a.expect_exited = True
    assert rc == 0, "exit status %s:\n%s" % (rc, a.stderr_tail(20))
    assert a.wait_stderr("SIGHUP while draining: not reloaded"), a.stderr_tail(20)
