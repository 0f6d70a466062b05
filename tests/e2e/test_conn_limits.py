"""node.max_connections: a client over the limit gets a 503 with
Connection: close (not a reset), counted in arc_connections_refused_total;
and the limit is one node-wide count, so a worker never refuses while the
node as a whole is below it."""
import time

from arcproc import make_config, metric, upstream_conf


def test_over_the_limit_gets_503_and_close(arc, servers):
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr)], workers=1,
                        node={"max_connections": 2, "lingering_timeout": "0s"}))
    held = [a.client() for _ in range(2)]
    for c in held:
        assert c.request("GET", "/held").status == 200
    over = a.client()
    r = over.response()
    assert r.status == 503, r
    assert r.conn_close()
    assert over.wait_closed(5)
    over.close()
    ms, _ = a.metrics()
    assert metric(ms, "arc_connections_refused_total") == 1
    held[0].close()
    # once a slot is free (the closes are seen), a new client is served
    deadline = time.monotonic() + 5
    while True:
        c = a.client()
        r = c.request("GET", "/again")
        c.close()
        if r.status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.status == 200, r
    held[1].close()


def test_limit_is_node_wide_across_workers(arc, servers):
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr)], workers=2,
                        node={"max_connections": 8, "lingering_timeout": "0s"}))
    # The kernel spreads connections over the two workers unevenly; with a
    # per-worker share (4 each) some of these would be refused.
    for attempt in range(3):
        held = [a.client() for _ in range(8)]
        statuses = [c.request("GET", "/n%d" % i).status for i, c in enumerate(held)]
        assert statuses == [200] * 8, statuses
        extra = a.client()
        assert extra.response().status == 503
        extra.close()
        for c in held:
            c.close()
        time.sleep(0.3)
