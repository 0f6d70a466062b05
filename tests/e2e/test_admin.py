"""The admin listener answers /healthz, /readyz and /metrics, and the
Prometheus counters (connections, requests per route and status class,
bytes, upstream errors and timeouts, pool gauges) move with traffic."""
from arcproc import make_config, upstream_conf, route_conf, metric
from httpraw import free_port

REQUIRED = ["arc_connections_accepted_total", "arc_connections_active", "arc_requests_total",
            "arc_bytes_in_total", "arc_bytes_out_total", "arc_upstream_connect_errors_total",
            "arc_upstream_timeouts_total", "arc_upstream_pool_open", "arc_upstream_pool_idle"]


def start(arc, servers):
    up = servers.http(name="echo")
    routes = [route_conf("api", "/api/{*rest}", upstream="echo"),
              route_conf("down", "/down", upstream="down"),
              route_conf("local", "/local", respond={"status": 503, "body": "nope"})]
    return arc(make_config([upstream_conf("echo", up.addr),
                            upstream_conf("down", "127.0.0.1:%d" % free_port())], routes=routes)), up


def test_healthz_and_readyz(arc, servers):
    a, up = start(arc, servers)
    status, body = a.admin_get("/healthz")
    assert status == 200 and body.strip() == "ok", (status, body)
    status, body = a.admin_get("/readyz")
    assert status == 200, (status, body)


def test_metrics_exposes_required_series(arc, servers):
    a, up = start(arc, servers)
    c = a.client()
    assert c.request("GET", "/api/x").status == 200
    ms, text = a.metrics()
    names = {n for n, _ in ms}
    missing = [n for n in REQUIRED if n not in names]
    assert not missing, "missing metrics %s in:\n%s" % (missing, text[:3000])
    assert metric(ms, "arc_upstream_pool_open", upstream="echo") is not None
    assert metric(ms, "arc_upstream_pool_idle", upstream="echo") is not None
    assert metric(ms, "arc_upstream_connect_errors_total", upstream="down") is not None
    assert metric(ms, "arc_upstream_timeouts_total", upstream="echo") is not None


def test_counters_move_with_traffic(arc, servers):
    a, up = start(arc, servers)
    before, _ = a.metrics()
    c = a.client()
    body = b"p" * 10000
    for i in range(3):
        assert c.request("POST", "/api/%d" % i, body=body).status == 200
    assert c.request("GET", "/local").status == 503
    assert c.request("GET", "/down").status == 502
    c2 = a.client()
    assert c2.request("GET", "/nowhere").status == 404
    after, text = a.metrics()

    def delta(name, **labels):
        return (metric(after, name, **labels) or 0) - (metric(before, name, **labels) or 0)

    assert delta("arc_requests_total", route="api", **{"class": "2xx"}) == 3, text[:3000]
    assert delta("arc_requests_total", route="local", **{"class": "5xx"}) == 1
    assert delta("arc_requests_total", route="down", **{"class": "5xx"}) == 1
    assert delta("arc_connections_accepted_total") >= 2
    assert metric(after, "arc_connections_active") >= 2   # c and c2 are still open
    assert delta("arc_bytes_in_total") >= 3 * len(body)
    assert delta("arc_bytes_out_total") > 0
    assert delta("arc_upstream_connect_errors_total", upstream="down") >= 1
    assert metric(after, "arc_upstream_pool_open", upstream="echo") >= 1
    assert metric(after, "arc_upstream_pool_idle", upstream="echo") >= 1
    c.close()
    c2.close()


def test_admin_unknown_path_is_404(arc, servers):
    a, up = start(arc, servers)
    status, _ = a.admin_get("/no-such-admin-endpoint")
    assert status == 404


def test_active_connections_gauge_goes_down(arc, servers):
    import time
    a, up = start(arc, servers)
    base = metric(a.metrics()[0], "arc_connections_active")
    cs = [a.client() for _ in range(4)]
    for c in cs:
        assert c.request("GET", "/api/g").status == 200
    assert metric(a.metrics()[0], "arc_connections_active") >= base + 4
    for c in cs:
        c.close()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        v = metric(a.metrics()[0], "arc_connections_active")
        if v <= base:
            break
        time.sleep(0.1)
    assert v <= base, "arc_connections_active stuck at %s after clients closed (base %s)" % (v, base)
