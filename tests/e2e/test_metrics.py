"""/metrics end to end: the whole exposition parses strictly (HELP and TYPE
for every family, label syntax, histogram buckets cumulative with +Inf equal
to _count) and passes `promtool check metrics`; hosts, paths, queries,
methods, status codes and client addresses cannot grow the label sets;
known traffic produces exact counter values and histogram counts; and
histogram_quantile over the duration buckets agrees with durations the
client measured."""
import math
import socket
import subprocess
import time

from arcproc import make_config, upstream_conf, route_conf
from httpraw import free_port
from metricscheck import parse_strict, promtool_check, total, series, buckets, histogram_quantile
from upstreams import smart_handler

ALLOWED_LABELS = {"route", "method", "code", "class", "protocol", "listener", "upstream",
                  "endpoint", "kind", "phase", "le", "worker", "side", "result", "reason", "sni"}
METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "OTHER"}


def obs(**kw):
    o = {"metrics_bind": "127.0.0.1:0"}
    o.update(kw)
    return o


def scrape(a):
    status, text = a.admin_get("/metrics")
    assert status == 200
    return parse_strict(text), text


def raw(port, data, src=None, timeout=10):
    """Sends `data` on a fresh connection (from source address `src`) and
    reads until the peer closes; returns the bytes received."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(src, 0) if src else None)
    try:
        s.sendall(data)
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                return out
            out += d
    finally:
        s.close()


def curl_h2(url, data=None):
    args = ["curl", "-sS", "--max-time", "20", "--http2-prior-knowledge", "-o", "/dev/null",
            "-w", "%{http_code}", url]
    if data is not None:
        args += ["--data-binary", data]
    r = subprocess.run(args, capture_output=True, timeout=30)
    return int(r.stdout or b"0")


def api_handler(req):
    """The smart handler behind the /api prefix (/api/slow -> /slow)."""
    if req.path.startswith("/api/"):
        req.path = req.path[4:]
    return smart_handler(req)


def start(arc, servers, routes=None, o=None, ups=None, node=None, ttfb="300ms"):
    up = servers.http(handler=api_handler, name="echo")
    down = "127.0.0.1:%d" % free_port()
    ups = ups or [upstream_conf("echo", up.addr, timeouts={"ttfb": ttfb}),
                  upstream_conf("down", down)]
    routes = routes or [route_conf("api", "/api/{*rest}", upstream="echo"),
                        route_conf("down", "/down", upstream="down"),
                        route_conf("local", "/local", respond={"status": 200, "body": "ok"})]
    a = arc(make_config(ups, routes=routes, node=node, extra={"observability": o or obs()}))
    return a, up, down


def test_exposition_is_strict_and_promtool_clean(arc, servers):
    a, up, down = start(arc, servers)
    c = a.client()
    assert c.request("GET", "/api/x").status == 200
    assert c.request("POST", "/api/y", body=b"z" * 5000).status == 200
    assert c.request("GET", "/api/slow?ms=1500").status == 504          # ttfb timeout
    c = a.client()
    assert c.request("GET", "/nowhere").status == 404
    assert c.request("GET", "/down").status == 502
    assert c.request("GET", "/local").status == 200
    assert curl_h2(a.url("/api/h2")) == 200
    c.close()
    fams, text = scrape(a)
    for name in ("arc_requests_total", "arc_route_request_duration_seconds",
                 "arc_upstream_ttfb_seconds", "arc_upstream_timeouts_total",
                 "arc_connections_active", "arc_exchanges_active", "process_cpu_seconds_total",
                 "process_resident_memory_bytes", "process_open_fds",
                 "arc_kernel_tcp_listen_overflows_total", "arc_ring_buffers_free"):
        assert name in fams, "%s missing" % name
    assert total(fams, "arc_upstream_timeouts_total", upstream="echo", phase="ttfb") == 1
    assert total(fams, "arc_upstream_errors_total", upstream="echo", kind="upstream_timeout") == 1
    assert total(fams, "arc_upstream_connect_errors_total", upstream="down", endpoint=down) == 1
    assert total(fams, "arc_requests_total", route="api", protocol="h2", code="200") == 1
    pt = promtool_check(text)
    if pt is not None:
        rc, out = pt
        assert rc == 0 and not out.strip(), "promtool check metrics:\n%s" % out


def test_cardinality_guard(arc, servers):
    """Distinct hosts, paths, queries, methods, client addresses and more
    status codes than a route may hold: label values stay config names and
    small fixed sets; nothing is lost (the overflow bucket counts it)."""
    cap = 6
    a, up, down = start(arc, servers, o=obs(max_status_series_per_route=cap))
    sent = {"hosts": [], "paths": [], "ips": []}
    n = 0
    for i in range(40):
        host = "h%d-unique.example" % i
        path = "/api/p%d-secret" % i
        ip = "127.0.%d.%d" % (1 + i // 200, 2 + i % 200)
        method = ["GET", "BREW%d" % i, "PATCH", "PURGE"][i % 4]
        code = 200 + i                                   # 200..239: more than cap codes
        target = "/api/status/%d?q%d=v%d" % (code, i, i) if i % 2 else path + "?token=t%d" % i
        req = ("%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ua-%d\r\nConnection: close\r\n"
               "Content-Length: 0\r\n\r\n" % (method, target, host, i)).encode()
        resp = raw(a.port, req, src=ip)
        assert resp.startswith(b"HTTP/1.1 "), resp[:100]
        n += 1
        sent["hosts"].append(host)
        sent["paths"].append(path)
        sent["ips"].append(ip)
    fams, text = scrape(a)
    values = set()
    for f in fams.values():
        for _, labels, _ in f["samples"]:
            assert set(labels) <= ALLOWED_LABELS, labels
            values.update(labels.values())
            if "method" in labels:
                assert labels["method"] in METHODS, labels
            if "code" in labels:
                assert labels["code"] == "other" or 100 <= int(labels["code"]) <= 999
    for kind, vs in sent.items():
        for v in vs:
            assert v not in values and not any(v in x for x in values), "%s %r became a label" % (kind, v)
    api = series(fams, "arc_requests_total", route="api")
    exact = {l["code"] for l, _ in api if l["code"] != "other"}
    keys = {(l["code"], l["method"], l["protocol"]) for l, _ in api if l["code"] != "other"}
    assert len(keys) <= cap, keys
    assert len(exact) <= cap
    assert any(l["code"] == "other" for l, _ in api), api
    assert sum(v for _, v in api) == n                     # nothing lost
    assert total(fams, "arc_requests_total", route="api", method="OTHER") == 20   # BREW*, PURGE


def test_exact_counts_and_histogram_counts(arc, servers):
    a, up, down = start(arc, servers)
    before, _ = scrape(a)
    c = a.client()
    for i in range(7):
        assert c.request("GET", "/api/g%d" % i).status == 200
    for i in range(3):
        assert c.request("POST", "/api/p", body=b"b" * 1000).status == 200
    for i in range(2):
        assert c.request("GET", "/api/status/503").status == 503
    for i in range(4):
        assert c.request("GET", "/local").status == 200
    assert c.request("GET", "/nowhere").status == 404
    assert c.request("GET", "/down").status == 502
    c.close()
    for i in range(3):
        assert curl_h2(a.url("/api/h2-%d" % i), data="x" * 10) == 200
    fams, text = scrape(a)

    def d(name, **kw):
        return total(fams, name, **kw) - total(before, name, **kw)

    assert d("arc_requests_total", route="api", method="GET", code="200", protocol="h1") == 7
    assert d("arc_requests_total", route="api", method="POST", code="200", protocol="h1") == 3
    assert d("arc_requests_total", route="api", method="POST", code="200", protocol="h2") == 3
    assert d("arc_requests_total", route="api", code="503") == 2
    assert d("arc_requests_total", route="local", code="200") == 4
    assert d("arc_requests_total", route="", code="404") == 1
    assert d("arc_requests_total", route="down", code="502") == 1
    # histograms: one observation per exchange of the route
    assert d("arc_route_request_duration_seconds_count", route="api") == 15
    assert d("arc_route_request_duration_seconds_count", route="local") == 4
    assert d("arc_route_request_body_bytes_count", route="api") == 15
    assert d("arc_route_request_body_bytes_sum", route="api") == 3 * 1000 + 3 * 10
    assert d("arc_route_upstream_ttfb_seconds_count", route="api") == 15
    assert d("arc_route_upstream_ttfb_seconds_count", route="local") == 0
    assert d("arc_upstream_request_duration_seconds_count", upstream="echo") == 15
    assert d("arc_upstream_requests_total", upstream="echo", endpoint=up.addr) == 15
    assert d("arc_upstream_requests_total", upstream="down", endpoint=down) == 1
    assert d("arc_upstream_errors_total", upstream="down", endpoint=down, kind="upstream_connect") == 1
    assert d("arc_upstream_errors_total", upstream="echo") == 0
    # a connect time only for attempts that opened a connection
    conns = d("arc_upstream_connect_seconds_count", upstream="echo")
    assert 1 <= conns <= 1 + 3 + 2, conns       # the h1 pool, the h2 client's exchanges... at most one each
    assert d("arc_upstream_reused_total", upstream="echo") == 15 - conns


def test_quantiles_agree_with_measured_durations(arc, servers):
    """30 requests answered after 30 ms and 10 after 150 ms: the quantiles
    histogram_quantile computes from the buckets (10 ms wide here) agree,
    within a bucket plus the client's own overhead, with the durations the
    client measured; _sum agrees with their total."""
    bounds = [10 * i for i in range(1, 33)]                   # 10 .. 320 ms
    a, up, down = start(arc, servers, o=obs(histograms={"duration_buckets_ms": bounds}), ttfb="30s")
    c = a.client()
    assert c.request("GET", "/api/warm").status == 200
    before, _ = scrape(a)
    took = []
    sleeps = [30] * 30 + [150] * 10
    for ms in sleeps:
        t0 = time.monotonic()
        assert c.request("GET", "/api/slow?ms=%d" % ms).status == 200
        took.append(time.monotonic() - t0)
    fams, _ = scrape(a)
    now = buckets(fams, "arc_route_request_duration_seconds", route="api")
    was = dict(buckets(before, "arc_route_request_duration_seconds", route="api"))
    delta = [(le, cnt - was.get(le, 0)) for le, cnt in now]
    assert delta[-1][1] == 40
    took.sort()
    for q in (0.25, 0.5, 0.7, 0.9, 0.99):
        est = histogram_quantile(q, delta)
        i = min(len(took) - 1, int(math.ceil(q * len(took))) - 1)
        # Arc's duration lies between the upstream's sleep and what the
        # client measured around it; interpolating in a bucket is off by
        # at most the bucket's width (10 ms). (Bounds that hold however
        # loaded the machine is: both sides only grow with load.)
        assert sleeps[i] / 1000.0 - 0.010 <= est <= took[i] + 0.010, (q, est, took[i], took)
    s = total(fams, "arc_route_request_duration_seconds_sum", route="api") - \
        total(before, "arc_route_request_duration_seconds_sum", route="api")
    assert sum(sleeps) / 1000.0 <= s <= sum(took), (s, sum(took))


def test_gauges(arc, servers):
    a, up, down = start(arc, servers, node={"workers": 2}, ttfb="30s")
    c = a.client()
    c.request("GET", "/api/slow?ms=1500", read=False)
    deadline = time.monotonic() + 10
    while True:
        fams, _ = scrape(a)
        if total(fams, "arc_exchanges_active") >= 1:
            break
        assert time.monotonic() < deadline, "arc_exchanges_active never rose"
        time.sleep(0.05)
    assert total(fams, "arc_connections_active", listener="http") >= 1
    assert total(fams, "arc_upstream_pool_busy", upstream="echo") >= 1
    assert total(fams, "process_resident_memory_bytes") > 1 << 20
    assert total(fams, "process_open_fds") >= 5
    assert total(fams, "process_max_fds") >= total(fams, "process_open_fds")
    assert total(fams, "process_cpu_seconds_total") >= 0
    assert abs(total(fams, "process_start_time_seconds") - time.time()) < 3600
    assert total(fams, "arc_ring_buffers") == 2 * 1024          # io_uring.buffer_count per worker
    assert 0 < total(fams, "arc_ring_buffers_free") <= 2 * 1024
    assert "arc_kernel_tcp_retransmitted_segments_total" in fams
    assert "arc_kernel_tcp_syncookies_sent_total" in fams
    assert c.response().status == 200
    deadline = time.monotonic() + 10
    while total(scrape(a)[0], "arc_exchanges_active") != 0:
        assert time.monotonic() < deadline, "arc_exchanges_active never fell"
        time.sleep(0.05)
    fams, _ = scrape(a)
    assert total(fams, "arc_upstream_pool_idle", upstream="echo") >= 1
    c.close()


def test_docs_and_examples_use_the_real_names(arc, servers):
    """Every family /metrics shows is documented in docs/operations.md, and
    every metric the example Grafana dashboard and Prometheus rules query
    exists (with its _bucket/_sum/_count for histograms)."""
    import json
    import os
    import re
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    a, up, down = start(arc, servers)
    assert a.client().request("GET", "/api/x").status == 200
    fams, _ = scrape(a)
    with open(os.path.join(root, "docs", "operations.md")) as f:
        ops = f.read()
    undocumented = [n for n in fams if "`%s`" % n not in ops]
    assert not undocumented, "not in docs/operations.md: %s" % undocumented
    names = set()
    for n, f in fams.items():
        names.add(n)
        if f["type"] == "histogram":
            names.update(n + s for s in ("_bucket", "_sum", "_count"))
    conditional = {"arc_tls_cert_expiry_seconds"}      # only with https listeners
    with open(os.path.join(root, "examples", "grafana-dashboard.json")) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) > 20
    with open(os.path.join(root, "examples", "prometheus.yml")) as f:
        exprs.append(f.read())
    used = set()
    for e in exprs:
        used.update(re.findall(r"\b((?:arc|process)_[a-z0-9_]+)", e))
    unknown = sorted(n for n in used - names - conditional)
    assert not unknown, "examples query metrics Arc does not export: %s" % unknown


def test_timeouts_by_phase(arc, servers):
    """Each upstream deadline is counted under the phase it guards: connect
    (an endpoint whose accept queue is full drops the SYN), write (the
    upstream stops reading a large body), ttfb (no response head), read
    (the body stalls); the kernel counts the full accept queue too."""
    import threading
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    fillers = []
    for _ in range(3):      # the accept queue (backlog 0: one) and then some
        f = socket.socket()
        f.setblocking(False)
        try:
            f.connect(full.getsockname())
        except BlockingIOError:
            pass
        fillers.append(f)
    time.sleep(0.2)
    blackhole = "127.0.0.1:%d" % full.getsockname()[1]
    up = servers.http(handler=api_handler, name="echo")
    t = {"connect": "300ms", "write": "300ms", "ttfb": "300ms", "read": "300ms"}
    ups = [upstream_conf("echo", up.addr, timeouts=t), upstream_conf("hole", blackhole, timeouts=t)]
    routes = [route_conf("api", "/api/{*rest}", upstream="echo", max_body=0),
              route_conf("hole", "/hole", upstream="hole")]
    try:
        a = arc(make_config(ups, routes=routes, extra={"observability": obs()}))
        before, _ = scrape(a)
        c = a.client()
        assert c.request("GET", "/hole").status == 504
        c = a.client()
        assert c.request("GET", "/api/slow?ms=1500").status == 504
        c = a.client()
        c.request("GET", "/api/stall?bytes=100", read=False)
        assert c.wait_closed(10)                                  # cut after the 100 bytes
        # write: 64 MB to an upstream that pauses reading for 5 s
        s = socket.create_connection(("127.0.0.1", a.port), timeout=20)
        body = b"w" * (64 << 20)
        head = ("POST /api/sink?pause_at=0&pause_ms=5000 HTTP/1.1\r\nHost: t\r\n"
                "Content-Length: %d\r\n\r\n" % len(body)).encode()

        def pump():
            try:
                s.sendall(head + body)
            except OSError:
                pass
        th = threading.Thread(target=pump, daemon=True)
        th.start()
        got = b""
        while b"\r\n\r\n" not in got:
            d = s.recv(65536)
            if not d:
                break
            got += d
        s.close()
        th.join(20)
        assert got.startswith(b"HTTP/1.1 504"), got[:200]
        fams, _ = scrape(a)

        def d(name, **kw):
            return total(fams, name, **kw) - total(before, name, **kw)
        assert d("arc_upstream_timeouts_total", upstream="hole", endpoint=blackhole, phase="connect") == 1
        assert d("arc_upstream_timeouts_total", upstream="echo", phase="ttfb") == 1
        assert d("arc_upstream_timeouts_total", upstream="echo", phase="read") == 1
        assert d("arc_upstream_timeouts_total", upstream="echo", phase="write") == 1
        assert d("arc_upstream_timeouts_total", upstream="echo", phase="connect") == 0
        assert d("arc_upstream_errors_total", upstream="echo", kind="upstream_timeout") == 3
        assert d("arc_kernel_tcp_listen_overflows_total") >= 1
    finally:
        for f in fillers:
            f.close()
        full.close()
