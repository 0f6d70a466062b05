"""routes[].mirror: fire-and-forget copies to shadow upstreams. The copy
arrives transformed (path, headers set and removed) with the request body;
sampling sends about the configured share; the primary is unaffected —
same answers, no added latency — when the shadow is down or slow; copies
are counted in /metrics."""
import threading
import time

from arcproc import make_config, metric, upstream_conf, wait_for
from httpraw import chunk_encode, free_port
from upstreams import send_echo


def recorder(store, delay_s=0.0):
    lock = threading.Lock()

    def h(req):
        req.read_body()
        with lock:
            store.append({"method": req.method, "target": req.target,
                          "headers": {k.lower(): v for k, v in req.headers.items},
                          "body": bytes(req.body)})
        if delay_s:
            time.sleep(delay_s)
        send_echo(req)
    return h


def mirror_config(primary, shadow_addr, mirror, workers=2):
    route = {"name": "r", "match": {"path": "/{*rest}"},
             "action": {"upstream": "primary"}, "mirror": mirror}
    return make_config([upstream_conf("primary", primary.addr),
                        upstream_conf("shadow", shadow_addr, timeouts={"connect": "1s"})],
                       routes=[route], workers=workers)


def mirrored(a, result=None):
    ms = a.metrics()[0]
    labels = {"upstream": "shadow"}
    if result:
        labels["result"] = result
    return metric(ms, "arc_mirror_requests_total", **labels) or 0


def test_copy_arrives_transformed_with_body(arc, servers):
    prim, seen = [], []
    primary = servers.http(handler=recorder(prim), name="primary")
    shadow = servers.http(handler=recorder(seen), name="shadow")
    a = arc(mirror_config(primary, shadow.addr, [{
        "upstream": "shadow",
        "transform": {"path": "/shadow$path",
                      "headers": {"set": {"X-Mirror": "1", "X-Env": "shadow"},
                                  "remove": ["X-Secret"]}}}]))
    c = a.client()
    body = b"x" * 5000 + b"end"
    r = c.request("POST", "/api/items?id=7", body=body,
                  headers={"X-Secret": "s3", "X-Env": "prod", "X-Keep": "k"})
    assert r.status == 200, r
    r = c.request("GET", "/plain")
    assert r.status == 200
    assert wait_for(lambda: len(seen) == 2, timeout=15), (seen, a.stderr_tail(20))
    post = [s for s in seen if s["method"] == "POST"][0]
    assert post["target"] == "/shadow/api/items?id=7"
    assert post["body"] == body
    h = post["headers"]
    assert h["x-mirror"] == "1" and h["x-env"] == "shadow" and h["x-keep"] == "k"
    assert "x-secret" not in h
    get = [s for s in seen if s["method"] == "GET"][0]
    assert get["target"] == "/shadow/plain" and get["body"] == b""
    # The primary got the request untouched.
    assert prim[0]["target"] == "/api/items?id=7" and prim[0]["headers"]["x-secret"] == "s3"
    assert wait_for(lambda: mirrored(a, "2xx") == 2), a.metrics()[1]


def test_sample_and_body_limit(arc, servers):
    seen = []
    primary = servers.http(name="primary")
    shadow = servers.http(handler=recorder(seen), name="shadow")
    a = arc(mirror_config(primary, shadow.addr, [{"upstream": "shadow", "sample": 0.25,
                                                  "max_body": 100}]))
    c = a.client()
    n = 400
    for _ in range(n):
        assert c.request("GET", "/s").status == 200
    # expected 100 (sd ~8.7): within 5 sd
    # (every copy sent was answered: the count is final)
    assert wait_for(lambda: len(seen) >= 57 and mirrored(a, "2xx") == len(seen), timeout=20), \
        (len(seen), mirrored(a, "2xx"))
    got = mirrored(a, "2xx")
    assert 57 <= got <= 143, got
    # bodies over max_body are not mirrored (and counted); 40 requests at
    # sample 0.25 all unsampled: p = 1e-5
    before = len(seen)
    for _ in range(40):
        assert c.request("POST", "/big", body=b"y" * 101).status == 200
    assert wait_for(lambda: (metric(a.metrics()[0], "arc_mirror_dropped_total",
                                    reason="body_too_large") or 0) >= 1)
    assert all(s["target"] != "/big" for s in seen[before:])


def test_primary_unaffected_when_shadow_down_or_slow(arc, servers):
    primary = servers.http(name="primary")
    seen = []
    slow = servers.http(handler=recorder(seen, delay_s=2.0), name="slow")
    dead = "127.0.0.1:%d" % free_port()
    route = {"name": "r", "match": {"path": "/{*rest}"}, "action": {"upstream": "primary"},
             "mirror": [{"upstream": "dead"}, {"upstream": "slow", "timeout": "300ms"}]}
    a = arc(make_config([upstream_conf("primary", primary.addr), upstream_conf("dead", dead),
                         upstream_conf("slow", slow.addr)], routes=[route], workers=2))
    c = a.client()
    t0 = time.monotonic()
    for i in range(20):
        r = c.request("GET", "/p/%d" % i)
        assert r.status == 200, r
        assert r.json()["server"] == "primary"
    took = time.monotonic() - t0
    # 20 requests; the slow shadow alone would take 40 s if anything waited on it
    assert took < 15, took
    ms_ok = lambda: (metric(a.metrics()[0], "arc_mirror_requests_total", upstream="dead",
                            result="error") or 0) >= 1 and \
        (metric(a.metrics()[0], "arc_mirror_requests_total", upstream="slow",
                result="timeout") or 0) >= 1
    assert wait_for(ms_ok, timeout=20), a.metrics()[1]


def test_each_mirror_has_its_own_body_limit(arc, servers):
    small, large = [], []
    primary = servers.http(name="primary")
    s1 = servers.http(handler=recorder(small), name="small")
    s2 = servers.http(handler=recorder(large), name="large")
    route = {"name": "r", "match": {"path": "/{*rest}"}, "action": {"upstream": "primary"},
             "mirror": [{"upstream": "small", "max_body": 10},
                        {"upstream": "large", "max_body": 1000}]}
    a = arc(make_config([upstream_conf("primary", primary.addr), upstream_conf("small", s1.addr),
                         upstream_conf("large", s2.addr)], routes=[route], workers=1))
    c = a.client()
    # chunked: the size is not known up front, only while the body flows
    r = c.request("POST", "/b", body=chunk_encode([b"z" * 50, b"z" * 50]),
                  headers={"Transfer-Encoding": "chunked"})
    assert r.status == 200, r
    assert c.request("POST", "/tiny", body=b"ok").status == 200
    assert wait_for(lambda: len(large) == 2 and len(small) == 1, timeout=15), (small, large)
    assert small[0]["target"] == "/tiny" and small[0]["body"] == b"ok"
    assert sorted(x["body"] for x in large) == [b"ok", b"z" * 100]
    assert wait_for(lambda: (metric(a.metrics()[0], "arc_mirror_dropped_total",
                                    reason="body_too_large") or 0) == 1)


def test_node_max_in_flight_bounds_all_copies(arc, servers):
    """node.mirror.max_in_flight caps the copies under way in all (here 1,
    below the mirror's own max_in_flight of 64): while the slow shadow holds
    the first copy, the others are dropped as busy."""
    seen = []
    primary = servers.http(name="primary")
    slow = servers.http(handler=recorder(seen, delay_s=8.0), name="shadow")
    cfg = mirror_config(primary, slow.addr, [{"upstream": "shadow", "timeout": "20s"}], workers=1)
    cfg.setdefault("node", {})["mirror"] = {"max_in_flight": 1, "queue": 8}
    a = arc(cfg)
    c = a.client()
    assert c.request("GET", "/first").status == 200
    assert wait_for(lambda: (metric(a.metrics()[0], "arc_mirror_in_flight",
                                    upstream="shadow") or 0) == 1, timeout=10), a.metrics()[1]
    for i in range(4):
        assert c.request("GET", "/more/%d" % i).status == 200
    assert wait_for(lambda: mirrored(a, "dropped_busy") == 4, timeout=10), a.metrics()[1]
    assert wait_for(lambda: mirrored(a, "2xx") == 1, timeout=20), a.metrics()[1]
    assert [s["target"] for s in seen] == ["/first"]
