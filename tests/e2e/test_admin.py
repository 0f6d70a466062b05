"""The admin listener answers /healthz, /readyz and /metrics, and the
Prometheus counters (connections, requests per route and status class,
bytes, upstream errors and timeouts, pool gauges) move with traffic."""
import re
import socket

from arcproc import make_config, upstream_conf, route_conf, metric, wait_for
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


def admin_raw(a, request):
    """The admin listener's whole answer (it closes after one) to raw bytes."""
    with socket.create_connection(("127.0.0.1", a.admin_port), timeout=10) as s:
        s.sendall(request)
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                return out
            out += d


def test_admin_head_answers_without_a_body(arc, servers):
    a, up = start(arc, servers)
    for path in ("/healthz", "/metrics", "/"):
        out = admin_raw(a, b"HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
        head, _, body = out.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), out[:200]
        length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
        assert length > 0 and body == b"", (path, length, body[:80])


def test_admin_other_methods_get_405_with_allow(arc, servers):
    a, up = start(arc, servers)
    out = admin_raw(a, b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    head = out.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 405"), out[:200]
    assert re.search(rb"(?im)^allow: GET, HEAD\r?$", head), head


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


def _thread_cpu_ticks(pid, names):
    """utime+stime (clock ticks) summed over the threads of `pid` whose name is in `names`."""
    import os
    total, seen = 0, 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        if comm not in names:
            continue
        fields = st[st.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])     # utime, stime (stat fields 14, 15)
        seen += 1
    assert seen, "no thread named %s in /proc/%d/task" % (names, pid)
    return total


NOFILE = 64


def test_admin_accept_backs_off_when_out_of_descriptors(arc_bin, servers, tmp_path):
    """With every descriptor in use, a connection waiting on the admin port
    makes each accept fail with EMFILE. The control thread (the main thread,
    named "arc"; workers are arc-w<N>) must retry on a timer, not re-arm the
    accept at once in a busy loop, and must serve again once descriptors are
    free. arc runs under `prlimit` with soft = hard = NOFILE: io_uring takes
    the limit when an accept is prepared, so it must be in force from the
    start (and arc raises the soft limit to the hard one)."""
    import os
    import socket
    import time
    import pytest
    from arcproc import ArcProcess, ArcStartError
    up = servers.http(name="echo")
    p = ArcProcess("/usr/bin/prlimit", arc_bin.variant, make_config([upstream_conf("echo", up.addr)]),
                   tmp_path)
    p.args = ["--nofile=%d:%d" % (NOFILE, NOFILE), arc_bin.path, "run", "-c", p.config_path]
    socks = []
    try:
        p.start()
        try:
            p.wait_ready()
        except ArcStartError as e:
            pytest.fail(str(e), pytrace=False)
        assert p.admin_get("/healthz")[0] == 200
        # Let the workers' accepts take every remaining descriptor.
        for _ in range(NOFILE + 16):
            socks.append(socket.create_connection(("127.0.0.1", p.port), timeout=5))
        deadline = time.monotonic() + 5 * arc_bin.slow
        while time.monotonic() < deadline and len(os.listdir("/proc/%d/fd" % p.pid)) < NOFILE:
            time.sleep(0.05)
        assert len(os.listdir("/proc/%d/fd" % p.pid)) >= NOFILE, "arc did not use up its descriptors"
        # A probe arrives on the admin port; arc cannot accept it.
        probe = socket.create_connection(("127.0.0.1", p.admin_port), timeout=5)
        socks.append(probe)
        probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        assert wait_for(lambda: "admin accept" in p.stderr_text(), 10 * arc_bin.slow), \
            "the accept failure was not logged"
        hz = os.sysconf("SC_CLK_TCK")
        c0, t0 = _thread_cpu_ticks(p.pid, {"arc"}), time.monotonic()
        time.sleep(1.5)
        c1, t1 = _thread_cpu_ticks(p.pid, {"arc"}), time.monotonic()
        share = (c1 - c0) / hz / (t1 - t0)
        assert share < 0.30, "control thread used %.0f%% of a CPU while accept failed with EMFILE" % (
            share * 100)
        assert p.alive()
        # Descriptors come back: the admin listener serves again, the
        # waiting probe first.
        for s in socks[:-1]:
            s.close()
        probe.settimeout(5 * arc_bin.slow)
        assert probe.recv(64).startswith(b"HTTP/1.1 200"), "the queued admin probe was never answered"
        assert p.admin_get("/healthz")[0] == 200
    finally:
        for s in socks:
            s.close()
        problems = p.stop(timeout=20.0 * arc_bin.slow)
    assert not problems, "\n".join(problems)
