"""Local rate limiting (routes[].rate_limit) with real traffic: the limit
holds within 2% with one and with two workers (one table shared by the
workers); rejections carry the configured status, Retry-After and the IETF
RateLimit-Policy / RateLimit fields (and the legacy X-RateLimit-* trio when
asked), allowed responses the RateLimit fields; a leaky bucket delays
requests beyond the burst at its rate and rejects past max_delay, holding
their bodies meanwhile (HTTP/1 and HTTP/2); a client that leaves while its
request waits (HTTP/1 close, HTTP/2 RST_STREAM) is counted as aborted, its
request never reaches the upstream and its place goes back; the key table
survives a reload that keeps the limit's definition and starts over when it
changes; IPv6 clients are keyed by prefix (Arc on [::1]); X-Forwarded-For is
believed only from trusted_proxies; decisions are counted in /metrics."""
import json
import signal
import socket
import threading
import time

from arcproc import make_config, metric, route_conf, to_yaml, upstream_conf, wait_for
from httpraw import Client, build_request, read_response, BufReader
from test_http2 import H2Client
from test_tls import pki  # noqa: F401  (fixture: a CA, server and client certificates)



def limited(name, path, limit, upstream=None, forwarded=None, **action):
    r = route_conf(name, path, upstream=upstream, **action)
    if forwarded:
        r["action"]["forwarded"] = forwarded
    r["rate_limit"] = limit
    return r


def decisions(a, route):
    ms, _ = a.metrics()
    return {d: metric(ms, "arc_rate_limit_decisions_total", route=route, decision=d) or 0
            for d in ("allowed", "rejected", "delayed")}


def reload(a, result="ok", timeout=10.0):
    before = metric(a.metrics()[0], "arc_config_reloads_total", result=result) or 0
    a.signal(signal.SIGHUP)
    assert wait_for(lambda: (metric(a.metrics()[0], "arc_config_reloads_total", result=result) or 0)
                    > before, timeout), a.stderr_tail(20)


# ------------------------------------------------------------ responses

def test_rejection_fields_and_allowed_fields(arc, servers):
    up = servers.http(name="echo")
    cfg = make_config([upstream_conf("echo", up.addr)], routes=[
        limited("api", "/api/{*rest}", {"qps": 0.5, "burst": 3, "legacy_headers": True,
                                        "key": {"by": "route"}}, upstream="echo"),
        limited("plain", "/plain", {"qps": 0.5, "burst": 1, "status": 503, "headers": "rejected",
                                    "key": {"by": "route"}}, respond={"status": 200, "body": "ok"}),
    ], workers=1)
    a = arc(cfg)
    c = a.client()
    for remaining in (2, 1, 0):
        r = c.request("GET", "/api/x")
        assert r.status == 200, r
        assert r.headers.get("RateLimit-Policy") == '"api";q=1;w=2', r.headers
        rl = r.headers.get("RateLimit")
        assert rl.startswith('"api";r=%d;t=' % remaining), rl
        assert r.headers.get("X-RateLimit-Remaining") == str(remaining)
    r = c.request("GET", "/api/x")
    assert r.status == 429, r
    assert r.body == b"429 Too Many Requests\n"
    assert r.headers.get("Retry-After") == "2", r.headers      # one request every 2 s
    assert r.headers.get("RateLimit") == '"api";r=0;t=2', r.headers
    assert r.headers.get("X-RateLimit-Limit") == "1"
    assert r.headers.get("X-RateLimit-Remaining") == "0"
    assert r.headers.get("X-RateLimit-Reset") == "2"
    assert len(up.requests) == 3                                # the 4th never went up
    # status and headers: rejected
    r = c.request("GET", "/plain")
    assert r.status == 200 and r.headers.get("RateLimit") is None, r.headers
    r = c.request("GET", "/plain")
    assert r.status == 503 and r.headers.get("Retry-After") == "2", r
    assert r.headers.get("RateLimit-Policy") == '"plain";q=1;w=2'
    assert decisions(a, "api") == {"allowed": 3, "rejected": 1, "delayed": 0}
    assert decisions(a, "plain") == {"allowed": 1, "rejected": 1, "delayed": 0}


def test_header_and_cookie_keys(arc, servers):
    cfg = make_config([], routes=[
        limited("h", "/h", {"qps": 0.1, "burst": 1, "key": {"by": "header", "name": "X-Api-Key"}},
                respond={"status": 200}),
        limited("k", "/k", {"qps": 0.1, "burst": 1, "key": {"by": "cookie", "name": "sid"}},
                respond={"status": 200}),
    ], workers=1)
    a = arc(cfg)
    c = a.client()
    st = lambda path, hdrs: c.request("GET", path, headers=hdrs).status   # noqa: E731
    assert st("/h", [("X-Api-Key", "alice")]) == 200
    assert st("/h", [("x-api-key", "alice")]) == 429
    assert st("/h", [("X-Api-Key", "bob")]) == 200
    assert st("/h", []) == 200                                  # no key: one shared key
    assert st("/h", []) == 429
    assert st("/k", [("Cookie", "a=1; sid=one")]) == 200
    assert st("/k", [("Cookie", "sid=one; b=2")]) == 429
    assert st("/k", [("Cookie", "sid=two")]) == 200


# ------------------------------------------------------------ accuracy
#
# On a loaded machine the clients stall now and then, and a limit cannot
# admit what was not offered (a quiet gap refills only the burst). So the
# measure is: arc admits what the algorithm's definition admits for the
# very arrivals it saw. Every request's time is taken as the middle of its
# round trip (time.monotonic is arc's CLOCK_MONOTONIC), replayed through a
# reference model, and the counts compared.

def _hammer(port, path, stop_at, out, lock):
    seen = []
    c = Client(port)
    try:
        while time.monotonic() < stop_at:
            t = time.monotonic()
            r = c.request("GET", path)
            assert r.status in (200, 429), r
            seen.append(((t + time.monotonic()) / 2, r.status == 200))
    finally:
        c.close()
    with lock:
        out.extend(seen)


def model_bucket(times, qps, burst):
    tokens, last, n = float(burst), None, 0
    for t in times:
        if last is not None:
            tokens = min(burst, tokens + (t - last) * qps)
        last = t
        if tokens >= 1:
            tokens -= 1
            n += 1
    return n


def model_sliding(times, qps, window):
    lim = round(qps * window)
    win, prev, cur, n = None, 0, 0, 0
    for t in times:
        w = int(t // window)
        if w != win:
            prev = cur if win is not None and w == win + 1 else 0
            cur, win = 0, w
        e = (t - w * window) / window
        if prev * (1 - e) + cur + 1 <= lim:
            cur += 1
            n += 1
    return n


def _accuracy(arc, workers, algorithm, qps, burst=None, window=None, duration=4.0, conns=6):
    limit = {"qps": qps, "algorithm": algorithm, "key": {"by": "route"}}
    if burst:
        limit["burst"] = burst
    if window:
        limit["window"] = window
    cfg = make_config([], routes=[limited("acc", "/acc", limit, respond={"status": 200})],
                      workers=workers)
    a = arc(cfg)
    seen, lock = [], threading.Lock()
    stop_at = time.monotonic() + duration
    ths = [threading.Thread(target=_hammer, args=(a.port, "/acc", stop_at, seen, lock))
           for _ in range(conns)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    seen.sort()
    ok = sum(1 for _, allowed in seen if allowed)
    d = decisions(a, "acc")
    assert d["allowed"] == ok and d["rejected"] == len(seen) - ok, (d, ok, len(seen))
    return ok, [t for t, _ in seen]


def test_gcra_accuracy_one_and_two_workers(arc):
    """Route-wide GCRA at 150 qps, offered several times that from 6
    connections: allowed within 2% of what the definition admits for the
    same arrivals. (A burst of half a second's worth: a stall of arc or of
    the clients shorter than that loses no admission, so the comparison
    measures the limiter, not the machine's scheduling.)"""
    for workers in (1, 2):
        ok, times = _accuracy(arc, workers, "gcra", 150, burst=75)
        want = model_bucket(times, 150, 75)
        print("gcra workers=%d: %d allowed of %d; the model admits %d (%+.2f%%); naive %d"
              % (workers, ok, len(times), want, 100.0 * (ok - want) / want,
                 75 + 150 * (times[-1] - times[0])))
        assert len(times) > 2 * ok, "offered load did not exceed the limit"
        assert abs(ok - want) <= 0.02 * want, (workers, ok, want)


def test_sliding_window_accuracy_two_workers(arc):
    ok, times = _accuracy(arc, 2, "sliding_window", 100, window="1s")
    want = model_sliding(times, 100, 1.0)
    print("sliding_window workers=2: %d allowed of %d; the model admits %d (%+.2f%%)"
          % (ok, len(times), want, 100.0 * (ok - want) / want))
    assert abs(ok - want) <= 0.02 * want, (ok, want)


# ------------------------------------------------------------ leaky bucket

def _timed_get(port, path, out, i, body=None):
    t = time.monotonic()
    with Client(port) as c:
        r = c.request("POST" if body else "GET", path, body=body)
    out[i] = (r.status, time.monotonic() - t, r)


def test_leaky_bucket_delays_in_order_and_rejects_past_max_delay(arc, servers):
    up = servers.http(name="echo")
    cfg = make_config([upstream_conf("echo", up.addr)], routes=[
        limited("lb", "/lb", {"qps": 2, "burst": 1, "algorithm": "leaky_bucket",
                              "max_delay": "2250ms", "key": {"by": "route"}}, upstream="echo")],
        workers=2)
    a = arc(cfg)
    n = 8
    out = [None] * n
    # Every connection is open first and the eight requests go out from one
    # thread back to back, so they arrive together even on a loaded machine
    # (threads each connecting and sending could spread over more than the
    # 250 ms of slack the test's arithmetic has: the 5th request waits 2 s,
    # the 6th would need 2.5 s against a max_delay of 2.25 s).
    conns = [Client(a.port) for _ in range(n)]
    reqs = [build_request("POST", "/lb", body=b"x" * (i * 1000)) for i in range(n)]
    t0 = time.monotonic()
    for c, q in zip(conns, reqs):
        c.send(q)

    def read(i):
        r = conns[i].response(method="POST")
        out[i] = (r.status, time.monotonic() - t0, r)
    ths = [threading.Thread(target=read, args=(i,)) for i in range(n)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    for c in conns:
        c.close()
    passed = sorted(o[1] for o in out if o[0] == 200)
    rejected = [o for o in out if o[0] == 429]
    assert len(passed) == 5 and len(rejected) == 3, [(o[0], round(o[1], 3)) for o in out]
    # one at once, then one every 500 ms (never early; the wheel ticks 20 ms)
    for k, t in enumerate(passed):
        assert t >= 0.5 * k - 0.05, passed
        assert t <= 0.5 * k + 0.6, passed
    # bodies held during the wait reached the upstream whole
    for o in out:
        if o[0] == 200:
            j = o[2].json()
            assert j["body_len"] in [i * 1000 for i in range(n)], j
    assert decisions(a, "lb") == {"allowed": 1, "rejected": 3, "delayed": 4}


def _wait_aborted(a, n):
    assert wait_for(lambda: (metric(a.metrics()[0], "arc_errors_total", kind="client_abort") or 0)
                    >= n), a.stderr_tail(20)


def test_client_leaving_while_waiting_h1(arc, servers):
    """A delayed request whose client closes: counted as aborted (499),
    never sent upstream, and its place in the queue is given back."""
    up = servers.http(name="echo")
    cfg = make_config([upstream_conf("echo", up.addr)], routes=[
        limited("lb", "/lb/{*rest}", {"qps": 1, "burst": 1, "algorithm": "leaky_bucket",
                                      "max_delay": "5s", "key": {"by": "route"}}, upstream="echo")],
        workers=1)
    a = arc(cfg)
    assert a.client().request("GET", "/lb/first").status == 200
    s = socket.create_connection(("127.0.0.1", a.port))
    s.sendall(build_request("GET", "/lb/gone"))
    assert wait_for(lambda: decisions(a, "lb")["delayed"] == 1)
    s.close()
    _wait_aborted(a, 1)
    t = time.monotonic()
    r = a.client().request("GET", "/lb/third")
    waited = time.monotonic() - t
    assert r.status == 200
    # its turn is the one the gone request gave back (~1 s after the first),
    # not the one after it (~2 s)
    assert waited < 1.6, waited
    targets = [q[2] for q in up.requests]
    assert targets == ["/lb/first", "/lb/third"], targets
    ms, _ = a.metrics()
    assert metric(ms, "arc_requests_total", route="lb", **{"class": "4xx"}) == 1   # 499


def test_client_reset_while_waiting_h2_and_body_held(arc, servers):
    up = servers.http(name="echo")
    cfg = make_config([upstream_conf("echo", up.addr)], routes=[
        limited("lb", "/lb/{*rest}", {"qps": 2, "burst": 1, "algorithm": "leaky_bucket",
                                      "max_delay": "5s", "key": {"by": "route"}}, upstream="echo")],
        workers=1)
    a = arc(cfg)
    c = H2Client(a.port)
    first = c.request("/lb/first")
    st, _, _ = c.response(first)
    assert st == 200
    gone = c.request("/lb/gone")
    assert wait_for(lambda: decisions(a, "lb")["delayed"] == 1)
    c.conn.reset_stream(gone, error_code=8)
    c.flush()
    _wait_aborted(a, 1)
    # a delayed upload: its body arrives while it waits and goes up after
    body = bytes(range(256)) * 60
    t = time.monotonic()
    sid = c.request("/lb/upload", method="POST", body=body,
                    headers=[("content-length", str(len(body)))])
    st, hdrs, rb = c.response(sid)
    assert st == 200, (st, hdrs)
    j = json.loads(rb)
    assert j["body_len"] == len(body) and j["path"] == "/lb/upload", j
    assert dict(hdrs).get("ratelimit", "").startswith('"lb";'), hdrs
    assert time.monotonic() - t < 2.0
    c.close()
    assert [q[2] for q in up.requests] == ["/lb/first", "/lb/upload"]


def test_connection_closing_while_streams_wait_h2(arc, servers):
    """An HTTP/2 connection that goes away with streams waiting: each ends
    (aborted) through the one end of an exchange, nothing reaches the
    upstream, and the queue places go back."""
    up = servers.http(name="echo")
    cfg = make_config([upstream_conf("echo", up.addr)], routes=[
        limited("lb", "/lb/{*rest}", {"qps": 1, "burst": 1, "algorithm": "leaky_bucket",
                                      "max_delay": "10s", "key": {"by": "route"}}, upstream="echo")],
        workers=1)
    a = arc(cfg)
    c = H2Client(a.port)
    st, _, _ = c.response(c.request("/lb/first"))
    assert st == 200
    for i in range(3):
        c.request("/lb/wait%d" % i)
    assert wait_for(lambda: decisions(a, "lb")["delayed"] == 3)
    c.close()
    _wait_aborted(a, 3)
    t = time.monotonic()
    assert a.client().request("GET", "/lb/next").status == 200
    assert time.monotonic() - t < 1.6             # the three places were given back
    assert [q[2] for q in up.requests] == ["/lb/first", "/lb/next"]


def test_reload_while_waiting_finishes_on_its_snapshot(arc, servers):
    """A request waiting in a leaky bucket when a reload removes its route
    continues on the config it started with."""
    up = servers.http(name="echo")
    routes = [limited("lb", "/lb/{*rest}", {"qps": 1, "burst": 1, "algorithm": "leaky_bucket",
                                            "max_delay": "5s", "key": {"by": "route"}},
                      upstream="echo")]
    cfg = make_config([upstream_conf("echo", up.addr)], routes=routes, workers=1)
    a = arc(cfg)
    assert a.client().request("GET", "/lb/first").status == 200
    out = [None]
    t = threading.Thread(target=_timed_get, args=(a.port, "/lb/waiting", out, 0))
    t.start()
    assert wait_for(lambda: decisions(a, "lb")["delayed"] == 1)
    cfg2 = make_config([upstream_conf("echo", up.addr)], routes=[
        route_conf("other", "/other", respond={"status": 204})], workers=1)
    with open(a.config_path, "w") as f:
        f.write(to_yaml(cfg2))
    reload(a)
    t.join()
    assert out[0][0] == 200, out
    assert out[0][2].json()["path"] == "/lb/waiting"
    assert a.client().request("GET", "/lb/x").status == 404       # the new config


# ------------------------------------------------------------ reloads

def test_reload_keeps_state_when_the_definition_is_unchanged(arc):
    def cfg(qps, body):
        return make_config([], routes=[
            limited("r", "/r", {"qps": qps, "burst": 2, "key": {"by": "route"}},
                    respond={"status": 200, "body": body})], workers=2)
    a = arc(cfg(0.05, "one"))
    c = a.client()
    assert [c.request("GET", "/r").status for _ in range(3)] == [200, 200, 429]
    with open(a.config_path, "w") as f:
        f.write(to_yaml(cfg(0.05, "two")))          # same limit, other answer
    reload(a)
    assert wait_for(lambda: a.client().request("GET", "/r").body in (b"two", b"429 Too Many Requests\n")
                    and a.client().request("GET", "/r").status == 429)
    r = a.client().request("GET", "/r")
    assert r.status == 429, r                        # still over: the state was carried
    with open(a.config_path, "w") as f:
        f.write(to_yaml(cfg(0.06, "three")))        # another limit: a new table
    reload(a)
    assert wait_for(lambda: a.client().request("GET", "/r").body == b"three")


# ------------------------------------------------------------ keys

def test_ipv6_clients_keyed_by_prefix(arc, servers):
    """Arc on [::1]; the peer (::1) is a trusted proxy, so the client is the
    IPv6 address in X-Forwarded-For, keyed by its /64."""
    up = servers.http(name="echo")
    cfg = make_config([upstream_conf("echo", up.addr)], routes=[
        limited("v6", "/v6", {"qps": 0.1, "burst": 1, "key": {"by": "client_ip"}}, upstream="echo",
                forwarded={"trusted_proxies": ["::1/128"]}),
        limited("v48", "/v48", {"qps": 0.1, "burst": 1,
                                "key": {"by": "client_ip", "ipv6_prefix": 48}}, upstream="echo",
                forwarded={"trusted_proxies": ["::1/128"]}),
        limited("peer", "/peer", {"qps": 0.1, "burst": 1}, upstream="echo")], workers=2)
    cfg["listeners"] = [{"name": "v6", "kind": "http", "bind": "[::1]:0"}]
    a = arc(cfg)

    def get(path, xff=None):
        with Client(a.port, host="::1") as c:
            return c.request("GET", path, headers=[("X-Forwarded-For", xff)] if xff else []).status

    assert get("/v6", "2001:db8:1:2::a") == 200
    assert get("/v6", "2001:db8:1:2:ffff::b") == 429         # same /64: same key
    assert get("/v6", "2001:db8:1:3::a") == 200              # next /64
    assert get("/v48", "2001:db8:1:2::a") == 200
    assert get("/v48", "2001:db8:1:7::a") == 429             # same /48
    assert get("/v48", "2001:db8:2::a") == 200
    assert get("/v6", "10.1.2.3") == 200                     # IPv4 by address
    assert get("/v6", "10.1.2.4") == 200
    assert get("/peer") == 200                               # the peer ::1 itself
    assert get("/peer", "2001:db8:9::1") == 429              # not trusted there: still ::1


def test_x_forwarded_for_only_from_trusted_proxies(arc, servers):
    up = servers.http(name="echo")
    cfg = make_config([upstream_conf("echo", up.addr)], routes=[
        limited("trust", "/trust", {"qps": 0.1, "burst": 1}, upstream="echo",
                forwarded={"trusted_proxies": ["127.0.0.0/8"]}),
        limited("notrust", "/notrust", {"qps": 0.1, "burst": 1}, upstream="echo",
                forwarded={"trusted_proxies": ["10.0.0.0/8"]})], workers=1)
    a = arc(cfg)
    c = a.client()

    def get(path, *xffs):
        return c.request("GET", path, headers=[("X-Forwarded-For", x) for x in xffs]).status

    assert get("/trust", "1.1.1.1") == 200
    assert get("/trust", "1.1.1.1") == 429
    assert get("/trust", "2.2.2.2") == 200
    # trusted hops on the right are skipped: the client is 3.3.3.3
    assert get("/trust", "9.9.9.9, 3.3.3.3, 127.0.0.5") == 200
    assert get("/trust", "3.3.3.3") == 429
    # over two fields, the last one is nearest
    assert get("/trust", "5.5.5.5", "4.4.4.4") == 200
    assert get("/trust", "4.4.4.4") == 429
    # garbage stops the walk at the hop after it (here the peer)
    assert get("/trust", "not-an-ip") == 200
    assert get("/trust", "also garbage") == 429
    # from a peer that is not trusted, X-Forwarded-For is ignored
    assert get("/notrust", "6.6.6.6") == 200
    assert get("/notrust", "7.7.7.7") == 429


# ------------------------------------------------------------ heavy hitters

def test_heavy_hitters_listed_by_prefix(arc):
    """rate_limits.heavy_hitters: a client sending well above threshold_qps
    is listed at GET /v1/limits/heavy_hitters under its /32 and /24 (summed
    over the workers it reached); it drops off the list once it is quiet.
    A client below the threshold is never listed."""
    from test_control_api import call, ctl_port
    cfg = make_config([], routes=[route_conf("p", "/p", respond={"status": 200})], workers=2)
    cfg["control_plane"] = {"enabled": True, "bind": "127.0.0.1:0"}
    cfg["rate_limits"] = {"heavy_hitters": {"enabled": True, "threshold_qps": 40,
                                            "width": 1000, "depth": 4}}
    a = arc(cfg)
    port = ctl_port(a)

    def listed():
        r = call(port, "GET", "/v1/limits/heavy_hitters")
        assert r.status == 200, r
        j = r.json()
        assert j["enabled"] is True and j["threshold_qps"] == 40
        return {h["prefix"]: h["qps"] for h in j["heavy_hitters"]}

    # 10 requests/s for 3 s: a quarter of the threshold, never listed
    for _ in range(30):
        assert a.client().request("GET", "/p").status == 200
        time.sleep(0.1)
    assert listed() == {}
    # several connections (both workers), far above the threshold
    stop_at = time.monotonic() + 3.5
    seen, lock = [], threading.Lock()
    ths = [threading.Thread(target=_hammer, args=(a.port, "/p", stop_at, seen, lock))
           for _ in range(3)]
    for t in ths:
        t.start()
    got, gauge = {}, 0

    def gauge_now():
        return metric(a.metrics()[0], "arc_heavy_hitters", family="ipv4", prefix_len="32") or 0

    while time.monotonic() < stop_at and not ("127.0.0.1/32" in got and gauge):
        time.sleep(0.3)
        got = got if "127.0.0.1/32" in got else listed()
        gauge = gauge or gauge_now()
    for t in ths:
        t.join()
    assert "127.0.0.1/32" in got and "127.0.0.0/24" in got, got
    assert got["127.0.0.1/32"] >= 40
    assert gauge == 1                                   # /metrics counted it too
    # quiet again: the estimate halves every second until it is under the bar
    assert wait_for(lambda: listed() == {}, timeout=15), listed()
    assert gauge_now() == 0


def test_heavy_hitters_rejected_then_let_through(arc):
    """heavy_hitters.action: reject answers a heavy hitter's requests with
    `status` (Retry-After: 1) before routing, counts them in
    arc_heavy_hitters_rejected_total, and lets the client through again
    once it slowed down below the threshold; close: the HTTP/1 connection
    is closed after the answer."""
    cfg = make_config([], routes=[route_conf("p", "/p", respond={"status": 200})], workers=2)
    cfg["rate_limits"] = {"heavy_hitters": {"enabled": True, "threshold_qps": 40, "width": 1000,
                                            "depth": 4, "action": "reject", "status": 429,
                                            "close": True}}
    a = arc(cfg)
    # a quarter of the threshold: never rejected
    for _ in range(20):
        assert a.client().request("GET", "/p").status == 200
        time.sleep(0.1)
    stop_at = time.monotonic() + 8
    seen, lock = [], threading.Lock()

    def rejected():
        return metric(a.metrics()[0], "arc_heavy_hitters_rejected_total") or 0

    first_429 = []

    def hammer():
        c = Client(a.port)
        n = 0
        while time.monotonic() < stop_at and not first_429:
            r = c.request("GET", "/p")
            assert r.status in (200, 429), r
            if r.status == 429:
                with lock:
                    first_429.append(r)
                break
            n += 1
            if n % 50 == 0 and rejected():
                break
        c.close()

    ths = [threading.Thread(target=hammer) for _ in range(3)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    assert first_429, "no request was rejected"
    assert wait_for(lambda: rejected() > 0)
    r = first_429[0]
    assert r.headers.get("Retry-After") == "1" and r.body == b"429 Too Many Requests\n", r
    assert (r.headers.get("Connection") or "").lower() == "close", r.headers   # close: true
    # quiet: within a few halvings of the sketch it is let through again
    assert wait_for(lambda: a.client().request("GET", "/p").status == 200, timeout=15, step=0.5)


def _client_from(port, source):
    """A raw client whose connection comes from `source` (a loopback address)."""
    c = Client.__new__(Client)
    c.sock = socket.create_connection(("127.0.0.1", port), timeout=10.0,
                                      source_address=(source, 0))
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.rd = BufReader(c.sock)
    return c


def test_heavy_hitters_limited_to_their_rate(arc, tmp_path):
    """heavy_hitters.action: limit: once a source is listed, its requests
    are charged to heavy_hitters.limit under its widest listed prefix
    (127.0.0.0/24 here) and answered like a route's rejection when over it
    (status, Retry-After, RateLimit fields with the policy "heavy_hitters"),
    counted in arc_heavy_hitters_limit_decisions_total and logged with
    rate_limit.name "heavy_hitters". From the first rejection on, the
    flood gets what a GCRA of the limit admits for the same arrivals
    (within 5%) once every worker lists it, while a client in another /24 below the threshold is
    never limited."""
    qps, burst = 20, 20
    cfg = make_config([], routes=[route_conf("p", "/p", respond={"status": 200})], workers=2)
    cfg["rate_limits"] = {"heavy_hitters": {
        "enabled": True, "threshold_qps": 40, "width": 1000, "depth": 4, "action": "limit",
        "status": 429, "limit": {"qps": qps, "burst": burst, "legacy_headers": True}}}
    cfg["logging"] = {"output": {"file": str(tmp_path / "access.log")},
                      "writer": {"flush_interval": "10ms"}}
    a = arc(cfg)
    stop_at = time.monotonic() + 8
    seen, lock, first = [], threading.Lock(), []

    def flood():
        c = Client(a.port)
        mine = []
        try:
            while time.monotonic() < stop_at:
                t = time.monotonic()
                r = c.request("GET", "/p")
                assert r.status in (200, 429), r
                mine.append(((t + time.monotonic()) / 2, r.status == 200))
                if r.status == 429 and not first:
                    with lock:
                        first.append(r)
        finally:
            c.close()
        with lock:
            seen.extend(mine)

    other, neighbour = [], []

    def quiet(src, out):                                # 5/s
        c = _client_from(a.port, src)
        try:
            while time.monotonic() < stop_at:
                out.append((time.monotonic(), c.request("GET", "/p").status))
                time.sleep(0.2)
        finally:
            c.close()

    ths = [threading.Thread(target=flood) for _ in range(3)] + [
        threading.Thread(target=quiet, args=("127.0.1.2", other)),       # another /24
        threading.Thread(target=quiet, args=("127.0.0.2", neighbour))]   # the flood's /24
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    assert first, "the flood was never limited"
    assert len(other) >= 10 and {st for _, st in other} == {200}, other  # another /24: untouched
    r = first[0]
    assert r.body == b"429 Too Many Requests\n" and int(r.headers.get("Retry-After")) >= 1, r
    assert r.headers.get("RateLimit-Policy") == '"heavy_hitters";q=%d;w=1' % qps, r.headers
    assert r.headers.get("RateLimit", "").startswith('"heavy_hitters";r=0;t='), r.headers
    assert r.headers.get("X-RateLimit-Limit") == str(qps), r.headers
    # accuracy from the first rejection a second and a half after the first
    # one (each worker rebuilds its list at its own tick, once a second: by
    # then every worker limits the source; a rejection: its bucket is empty)
    seen.sort()
    t0 = next(t for t, ok in seen if not ok)
    t0 = next(t for t, ok in seen if not ok and t >= t0 + 1.5)
    after = [(t, ok) for t, ok in seen if t >= t0]
    ok = sum(1 for _, k in after if k)
    tokens, last, want = 0.0, None, 0
    for t, _ in after:
        if last is not None:
            tokens = min(burst, tokens + (t - last) * qps)
        last = t
        if tokens >= 1:
            tokens -= 1
            want += 1
    span = after[-1][0] - t0
    print("heavy hitter limited: %d allowed of %d in %.2fs from a 429 once listed; the model "
          "admits %d (%+.2f%%)" % (ok, len(after), span, want, 100.0 * (ok - want) / max(want, 1)))
    assert span > 2 and len(after) > 3 * ok, (span, len(after), ok)
    # a quiet client in the flood's /24 shares the listed /24's limit (the
    # widest listed prefix is the key): the flood keeps it spent
    assert any(st == 429 for t, st in neighbour if t >= t0), neighbour
    assert abs(ok - want) <= max(4, 0.05 * want), (ok, want)
    ms = a.metrics()[0]
    lim_rej = metric(ms, "arc_heavy_hitters_limit_decisions_total", decision="rejected") or 0
    lim_ok = metric(ms, "arc_heavy_hitters_limit_decisions_total", decision="allowed") or 0
    rej = sum(1 for _, k in seen if not k) + sum(1 for _, st in neighbour if st == 429)
    assert lim_rej == rej, (lim_rej, rej)
    assert lim_ok >= ok, (lim_ok, ok)
    assert (metric(ms, "arc_heavy_hitters_rejected_total") or 0) == 0

    def logged():
        with open(tmp_path / "access.log") as f:
            recs = [json.loads(ln) for ln in f if ln.strip()]
        return [x["rate_limit"] for x in recs if x["kind"] == "access"]

    assert wait_for(lambda: {"name": "heavy_hitters", "decision": "rejected", "quota": qps,
                             "window_s": 1} in logged())
    assert {"name": "heavy_hitters", "decision": "allowed", "quota": qps,
            "window_s": 1} in logged()


def test_heavy_hitters_limit_kept_across_reloads(arc):
    """heavy_hitters.limit's table is carried over a reload that keeps its
    definition (a limit of 0.01/s, burst 1: after the first rejection the
    flood gets nothing for 100 s, also across a reload that only changes a
    route's answer), and starts over when the limit changes (a new table:
    its burst is admitted again)."""
    def cfg(qps, body):
        c = make_config([], routes=[route_conf("p", "/p", respond={"status": 200,
                                                                    "body": body})], workers=2)
        c["rate_limits"] = {"heavy_hitters": {
            "enabled": True, "threshold_qps": 40, "width": 1000, "depth": 4, "action": "limit",
            "limit": {"qps": qps, "burst": 1}}}
        return c
    a = arc(cfg(0.01, "one"))
    stop = []
    seen, lock = [], threading.Lock()

    def flood():
        c = Client(a.port)
        try:
            while not stop:
                r = c.request("GET", "/p")
                assert r.status in (200, 429), r
                with lock:
                    seen.append((time.monotonic(), r.status, r.body))
        finally:
            c.close()

    ths = [threading.Thread(target=flood) for _ in range(2)]
    for t in ths:
        t.start()
    try:
        assert wait_for(lambda: any(st == 429 for _, st, _ in list(seen)), timeout=15)
        time.sleep(1.5)                                 # every worker lists the flood
        t1 = time.monotonic()
        with open(a.config_path, "w") as f:
            f.write(to_yaml(cfg(0.01, "two")))          # same limit, another answer
        reload(a)
        assert wait_for(lambda: any(t > t1 and b"two" in b for t, _, b in list(seen)) or
                        time.monotonic() > t1 + 3, timeout=10)
        time.sleep(1.0)
        t2 = time.monotonic()
        with lock:
            kept = [(t, st) for t, st, _ in seen if t1 <= t <= t2 and st == 200]
        assert kept == [], kept                         # the state was carried
        with open(a.config_path, "w") as f:
            f.write(to_yaml(cfg(0.02, "three")))        # another limit: a new table
        reload(a)
        assert wait_for(lambda: any(t > t2 and st == 200 for t, st, _ in list(seen)),
                        timeout=10), "a changed limit did not start a new table"
    finally:
        stop.append(1)
        for t in ths:
            t.join()


def test_client_certificate_subject_key(arc, servers, pki):
    """key.by: client_cert counts by the verified certificate's subject;
    clients without one share one key."""
    from test_tls import curl as tls_curl, https_config
    up = servers.http(name="echo")
    cfg = https_config(pki, up, {"client_auth": {"ca_pem": pki("ca.pem"), "required": False}})
    cfg["routes"][0]["rate_limit"] = {"qps": 0.1, "burst": 1, "key": {"by": "client_cert"}}
    a = arc(cfg)
    ca = "ca=" + pki("ca.pem")
    cert = ["--cert", pki("client.pem"), "--key", pki("client.key"), ca]
    codes = [tls_curl(a.port, "/c", extra=cert)[1] for _ in range(2)]
    assert codes == [200, 429], codes
    codes = [tls_curl(a.port, "/n", extra=[ca])[1] for _ in range(2)]
    assert codes == [200, 429], codes
