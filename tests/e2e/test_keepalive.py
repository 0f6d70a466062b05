"""Arc keeps client connections alive and pools upstream connections per
worker: sequential requests reuse one upstream connection, and a pooled
connection that the upstream closed (idle, or announced with Connection:
close) is never used for the next request, which still succeeds."""
import time

from arcproc import make_config, upstream_conf, metric
from upstreams import send_echo


def test_sequential_requests_reuse_one_upstream_connection(arc, servers):
    up = servers.http(name="count")
    a = arc(make_config([upstream_conf("count", up.addr)]))
    c = a.client()
    ids = set()
    for i in range(10):
        r = c.request("GET", "/n/%d" % i)
        assert r.status == 200, r
        ids.add(r.json()["conn_id"])
    assert up.accepted == 1, "10 sequential requests opened %d upstream connections" % up.accepted
    assert ids == {1}


def test_sequential_client_connections_share_pool(arc, servers):
    up = servers.http(name="count")
    a = arc(make_config([upstream_conf("count", up.addr)]))
    for i in range(8):
        c = a.client()
        r = c.request("GET", "/c/%d" % i)
        assert r.status == 200, r
        c.close()
        time.sleep(0.05)
    assert up.accepted <= a.workers, "8 sequential client connections opened %d upstream connections with %d workers" % (
        up.accepted, a.workers)


def test_pooled_connection_closed_by_upstream_when_idle(arc, servers, arc_bin):
    up = servers.http(name="idle", idle_close_ms=200)
    a = arc(make_config([upstream_conf("idle", up.addr)]))
    c = a.client()
    for i in range(3):
        r = c.request("GET", "/i/%d" % i)
        assert r.status == 200, "request %d after the upstream closed the pooled connection: %r" % (i, r)
        # the upstream closes the idle connection after 200 ms; arc must
        # notice and drop it from its pool
        conn = up.history[up.accepted]
        assert conn.closed.wait(5), "the upstream did not close its idle connection"
        deadline = time.monotonic() + 5 * arc_bin.slow
        while True:
            ms, _ = a.metrics()
            if metric(ms, "arc_upstream_pool_open", upstream="idle") == 0:
                break
            assert time.monotonic() < deadline, "arc kept a pooled connection the upstream had closed"
            time.sleep(0.05)
    assert up.accepted == 3
    # Each request went out on a fresh connection: none was sent on the
    # dead pooled one (a replay after the failure would hide that).
    assert [c.targets for c in up.history.values()] == [["/i/0"], ["/i/1"], ["/i/2"]]
    ms, _ = a.metrics()
    assert metric(ms, "arc_upstream_reused_total", upstream="idle") == 0, \
        "a request was sent on a pooled connection the upstream had closed"


def test_upstream_closing_right_after_each_response(arc, servers):
    # The upstream closes immediately after every response without saying so.
    up = servers.http(name="closer", idle_close_ms=0)
    a = arc(make_config([upstream_conf("closer", up.addr)]))
    c = a.client()
    for i in range(5):
        r = c.request("POST" if i % 2 else "GET", "/x/%d" % i, body=b"abc" if i % 2 else None)
        assert r.status == 200, r
        time.sleep(0.2)


def test_upstream_connection_close_header_is_honoured(arc, servers):
    def h(req):
        req.read_body()
        send_echo(req, extra_headers=[("Connection", "close")])
        return False
    up = servers.http(handler=h, name="cc")
    a = arc(make_config([upstream_conf("cc", up.addr)]))
    c = a.client()
    for i in range(5):
        r = c.request("GET", "/cc/%d" % i)
        assert r.status == 200, r
        # the client connection is independent of the upstream one
    assert up.accepted == 5


def test_client_connection_close_is_honoured(arc, servers):
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr)]))
    c = a.client()
    r = c.request("GET", "/bye", headers=[("Connection", "close")])
    assert r.status == 200
    assert "close" in r.headers.tokens("connection")
    assert c.wait_closed(5)


def test_client_keepalive_by_default(arc, servers):
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr)]))
    c = a.client()
    r = c.request("GET", "/one")
    assert r.status == 200 and not r.conn_close()
    time.sleep(0.3)
    r = c.request("GET", "/two")
    assert r.status == 200 and r.json()["target"] == "/two"


def test_pool_idle_ttl_closes_idle_upstream_connections(arc, servers):
    up = servers.http(name="ttl")
    a = arc(make_config([upstream_conf("ttl", up.addr, pool={"idle_ttl": "500ms"})]))
    c = a.client()
    assert c.request("GET", "/t").status == 200
    assert len(up.conns) == 1
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and up.conns:
        time.sleep(0.1)
    assert not up.conns, "arc kept an idle pooled connection open past pool.idle_ttl=500ms"
    assert c.request("GET", "/t2").status == 200
    assert up.accepted == 2


def test_pool_metrics_follow_connections(arc, servers):
    from arcproc import metric
    up = servers.http(name="pm")
    a = arc(make_config([upstream_conf("pm", up.addr)], workers=1))
    c = a.client()
    assert c.request("GET", "/p").status == 200
    ms, text = a.metrics()
    assert metric(ms, "arc_upstream_pool_open", upstream="pm") == 1, text
    assert metric(ms, "arc_upstream_pool_idle", upstream="pm") == 1, text


def _answers_once_per_connection(req):
    # Serves the first request on each connection; on the second it closes
    # without answering, the race a pooled connection can lose.
    if req.conn.served >= 1:
        return False
    send_echo(req)
    return True


def test_idempotent_request_replayed_after_pooled_connection_dies(arc, servers):
    up = servers.http(handler=_answers_once_per_connection, name="once")
    a = arc(make_config([upstream_conf("once", up.addr)], workers=1))
    c = a.client()
    assert c.request("GET", "/first").status == 200
    # Sent on the pooled connection, which closes unanswered: GET is
    # idempotent, so arc replays it once on a fresh connection.
    r = c.request("GET", "/second")
    assert r.status == 200 and r.json()["target"] == "/second", r
    sent = [cid for cid, m, t, _ in up.requests if t == "/second"]
    first = up.conn_of("/first").id
    assert sent == [first, r.json()["conn_id"]] and sent[1] != first, \
        "expected /second on the pooled connection #%d, then once on a new one; got %r" % (first, sent)
    from arcproc import metric
    ms, text = a.metrics()
    # one retry of the second request, which is not an error of its exchange
    assert metric(ms, "arc_upstream_retries_total", upstream="once", endpoint=up.addr) == 1, text
    assert metric(ms, "arc_upstream_requests_total", upstream="once") == 2
    assert metric(ms, "arc_upstream_errors_total", upstream="once") == 0


def test_non_idempotent_request_not_replayed(arc, servers):
    up = servers.http(handler=_answers_once_per_connection, name="once")
    a = arc(make_config([upstream_conf("once", up.addr)], workers=1))
    c = a.client()
    assert c.request("GET", "/first").status == 200
    # A body-less POST may have been acted on: RFC 9110 §9.2.2 forbids an
    # automatic retry, so the client gets the 502 instead.
    r = c.request("POST", "/second")
    assert r.status == 502, r
    assert [t for _, m, t, _ in up.requests if m == "POST"] == ["/second"]
