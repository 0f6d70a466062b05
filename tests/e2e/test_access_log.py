"""The access log, request ids and trace context, end to end: every field of
the NDJSON line checked for a proxied request, a 404, a 502, a 504, a client
abort, an HTTP/2 request and a TLS request (with a client certificate);
size rotation with gzip and max_files; SIGUSR1 reopening a moved file; a
vanished log directory reported and recovered from; redaction (the secret
never reaches the file); sampling with force_on_status / force_on_slow;
ring-full drops counted with a tiny ring; the file's old pages dropped from
the page cache (writer.drop_behind); X-Request-Id generated (UUIDv7),
kept from trusted peers only, forwarded and returned; traceparent continued
with a new span id (or started, sampled per tracing.sample); and the
`arc logs` filters over live and rotated files, piped and followed."""
import glob
import gzip
import json
import math
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import time

from arcproc import make_config, metric, route_conf, upstream_conf
from httpraw import Client, build_request, free_port
from metricscheck import buckets, histogram_quantile, parse_strict
from test_http2 import H2Client

FIELDS = {"ts", "kind", "request_id", "trace_id", "span_id", "parent_span_id", "trace_sampled",
          "method", "scheme", "host", "path", "query", "protocol", "status", "route", "upstream",
          "upstream_addr", "attempt", "client_ip", "client_port", "tls", "bytes_received",
          "bytes_sent", "duration_ms", "upstream_connect_ms", "upstream_ttfb_ms",
          "upstream_response_ms", "user_agent", "referer", "rate_limit", "error"}
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$")


def log_config(tmp_path, ups, routes=None, logging=None, workers=2, extra=None, **kw):
    lg = {"output": {"file": str(tmp_path / "access.log")},
          "writer": {"flush_interval": "10ms"}}
    for k, v in (logging or {}).items():
        if isinstance(v, dict) and isinstance(lg.get(k), dict):
            lg[k] = dict(lg[k], **v)
        else:
            lg[k] = v
    ex = {"logging": lg}
    ex.update(extra or {})
    return make_config(ups, routes=routes, workers=workers, extra=ex, **kw)


def access_lines(text):
    """The access records of a log file's text (it also holds Arc's own
    system records, kind "system")."""
    return [ln for ln in text.splitlines() if ln and json.loads(ln)["kind"] == "access"]


def access_paths(text):
    return [json.loads(ln)["path"] for ln in access_lines(text)]


def read_lines(path, n, timeout=10.0, exact=True):
    """The first n access records of the log once it has them (each parsed)."""
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                lines = access_lines(f.read())
        except FileNotFoundError:
            lines = []
        if len(lines) >= n:
            break
        time.sleep(0.02)
    assert len(lines) >= n, "expected %d log lines in %s, got %d:\n%s" % (n, path, len(lines),
                                                                      "\n".join(lines))
    if exact:
        time.sleep(0.1)
        with open(path) as f:
            more = access_lines(f.read())
        assert len(more) == n, "expected exactly %d lines, got %d:\n%s" % (n, len(more),
                                                                         "\n".join(more))
    out = [json.loads(ln) for ln in lines]
    for o in out:
        assert set(o) - {"truncated"} == FIELDS, sorted(set(o) ^ FIELDS)
        assert o["kind"] == "access" and TS.match(o["ts"]), o
    return out


def ts_secs(ts):
    return time.mktime(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + \
        float("0." + ts[20:29])


def hdr(req_headers, name):
    return dict((k.lower(), v) for k, v in req_headers.items).get(name)


def test_proxied_request_every_field(arc, servers, tmp_path):
    up = servers.http(name="echo")
    routes = [route_conf("api", "/{*rest}", upstream="echo")]
    a = arc(log_config(tmp_path, [upstream_conf("echo", up.addr)], routes=routes,
                       extra={"observability": {"metrics_bind": "127.0.0.1:0",
                                                "tracing": {"sample": 1.0}}}))
    c = a.client()
    t0 = time.time()
    r = c.request("POST", "/slow?ms=150&a=1", body=b"x" * 1234,
                  headers={"User-Agent": "pytest-ua/1", "Referer": "https://ref.example/p"},
                  host="api.example")
    t1 = time.time()
    assert r.status == 200
    (line,) = read_lines(str(tmp_path / "access.log"), 1)
    rid = r.headers.get("x-request-id")
    assert UUID7.match(rid), rid
    seen = up.requests[-1][3]
    assert hdr(seen, "x-request-id") == rid
    m = TRACEPARENT.match(hdr(seen, "traceparent"))
    assert m, hdr(seen, "traceparent")
    assert line["request_id"] == rid
    assert line["trace_id"] == m.group(1) and line["span_id"] == m.group(2)
    assert line["parent_span_id"] is None and line["trace_sampled"] is True and m.group(3) == "01"
    assert t0 - 0.01 <= ts_secs(line["ts"]) <= t1, (t0, line["ts"], t1)
    assert line["method"] == "POST" and line["scheme"] == "http"
    assert line["host"] == "api.example"
    assert line["path"] == "/slow" and line["query"] == "ms=150&a=1"
    assert line["protocol"] == "http/1.1" and line["status"] == 200
    assert line["route"] == "api" and line["upstream"] == "echo"
    assert line["upstream_addr"] == up.addr and line["attempt"] == 1
    assert line["client_ip"] == "127.0.0.1"
    assert line["client_port"] == c.sock.getsockname()[1]
    assert line["tls"] is None
    assert line["bytes_received"] == 1234 and line["bytes_sent"] == len(r.body)
    assert line["upstream_connect_ms"] is not None and line["upstream_connect_ms"] >= 0
    assert 150 <= line["upstream_ttfb_ms"] <= line["upstream_response_ms"] <= line["duration_ms"]
    assert line["duration_ms"] <= (t1 - t0) * 1000 + 1
    assert line["user_agent"] == "pytest-ua/1" and line["referer"] == "https://ref.example/p"
    assert line["error"] is None
    assert line["rate_limit"] is None


def test_rate_limit_decision_and_policy(arc, servers, tmp_path):
    """The record names the limit's policy (the route's name, the quota and
    window of RateLimit-Policy) and the decision: allowed, delayed or
    rejected; a route without a limit logs null."""
    up = servers.http(name="echo")
    routes = [dict(route_conf("gate", "/gate", upstream="echo"),
                   rate_limit={"qps": 0.5, "burst": 2}),
              dict(route_conf("queue", "/queue", upstream="echo"),
                   rate_limit={"qps": 1, "burst": 1, "algorithm": "leaky_bucket",
                               "max_delay": "5s"}),
              route_conf("free", "/free", upstream="echo")]
    a = arc(log_config(tmp_path, [upstream_conf("echo", up.addr)], routes=routes, workers=1))
    c = a.client()
    assert [c.request("GET", "/gate").status for _ in range(3)] == [200, 200, 429]
    assert [c.request("GET", "/queue").status for _ in range(2)] == [200, 200]
    assert c.request("GET", "/free").status == 200
    lines = read_lines(str(tmp_path / "access.log"), 6)
    got = [(ln["path"], ln["rate_limit"] and ln["rate_limit"]["decision"]) for ln in lines]
    assert got == [("/gate", "allowed"), ("/gate", "allowed"), ("/gate", "rejected"),
                   ("/queue", "allowed"), ("/queue", "delayed"), ("/free", None)], got
    assert lines[2]["rate_limit"] == {"name": "gate", "decision": "rejected", "quota": 1,
                                      "window_s": 2}
    assert lines[4]["rate_limit"] == {"name": "queue", "decision": "delayed", "quota": 1,
                                      "window_s": 1}


def test_404_502_504_and_abort(arc, servers, tmp_path, arc_bin):
    up = servers.http(name="echo")
    dead = "127.0.0.1:%d" % free_port()
    routes = [route_conf("api", "/api/{*rest}", upstream="echo"),
              route_conf("dead", "/dead", upstream="gone"),
              route_conf("slow", "/slow", upstream="slowup")]
    ups = [upstream_conf("echo", up.addr), upstream_conf("gone", dead),
           upstream_conf("slowup", up.addr, timeouts={"ttfb": "300ms"})]
    a = arc(log_config(tmp_path, ups, routes=routes, workers=1))
    c = a.client()
    r404 = c.request("GET", "/nowhere?q=1")
    assert r404.status == 404
    r502 = c.request("GET", "/dead")
    assert r502.status == 502
    r504 = a.client().request("GET", "/slow?ms=3000")
    assert r504.status == 504
    # client abort: an upload reset after it reached the upstream
    ab = Client(a.port)
    ab.send(b"POST /api/sink HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n" + b"a" * 300000)
    deadline = time.monotonic() + 5 * arc_bin.slow
    while up.conn_of("/api/sink") is None and time.monotonic() < deadline:
        time.sleep(0.02)
    ab.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    ab.close()
    lines = read_lines(str(tmp_path / "access.log"), 4, timeout=10 * arc_bin.slow)
    by = {ln["path"]: ln for ln in lines}

    nf = by["/nowhere"]
    assert nf["status"] == 404 and nf["error"] == "not_found" and nf["query"] == "q=1"
    assert nf["route"] is None and nf["upstream"] is None and nf["upstream_addr"] is None
    assert nf["attempt"] == 0 and nf["bytes_sent"] == len(r404.body)
    assert nf["upstream_connect_ms"] is None and nf["upstream_ttfb_ms"] is None
    assert nf["upstream_response_ms"] is None and nf["duration_ms"] >= 0
    assert nf["request_id"] == r404.headers.get("x-request-id") and UUID7.match(nf["request_id"])

    bg = by["/dead"]
    assert bg["status"] == 502 and bg["error"] == "upstream_connect"
    assert bg["route"] == "dead" and bg["upstream"] == "gone" and bg["upstream_addr"] == dead
    assert bg["attempt"] >= 1 and bg["upstream_ttfb_ms"] is None
    assert bg["upstream_connect_ms"] is None and bg["upstream_response_ms"] is not None
    assert bg["request_id"] == r502.headers.get("x-request-id")

    to = by["/slow"]
    assert to["status"] == 504 and to["error"] == "upstream_timeout"
    assert to["upstream_ttfb_ms"] is None and to["upstream_response_ms"] >= 290
    assert to["duration_ms"] >= to["upstream_response_ms"]

    abl = by["/api/sink"]
    assert abl["status"] == 499 and abl["error"] == "client_abort"
    assert abl["method"] == "POST" and abl["route"] == "api" and abl["upstream_addr"] == up.addr
    assert abl["bytes_received"] > 0 and abl["bytes_sent"] == 0
    assert abl["upstream_ttfb_ms"] is None


def test_h2_request(arc, servers, tmp_path):
    up = servers.http(name="echo")
    a = arc(log_config(tmp_path, [upstream_conf("echo", up.addr)]))
    c = H2Client(a.port)
    sid = c.request("/h2/path?z=9", headers=[("user-agent", "h2-client")], authority="h2.test")
    st, hd, body = c.response(sid)
    c.close()
    assert st == 200
    (line,) = read_lines(str(tmp_path / "access.log"), 1)
    assert line["protocol"] == "h2" and line["status"] == 200 and line["method"] == "GET"
    assert line["host"] == "h2.test" and line["path"] == "/h2/path" and line["query"] == "z=9"
    assert line["request_id"] == dict(hd)["x-request-id"]
    assert line["bytes_sent"] == len(body) and line["user_agent"] == "h2-client"
    assert line["upstream"] == "echo" and line["tls"] is None and line["error"] is None
    seen = up.requests[-1][3]
    assert hdr(seen, "x-request-id") == line["request_id"]
    assert TRACEPARENT.match(hdr(seen, "traceparent")).group(2) == line["span_id"]


def test_tls_request_with_client_certificate(arc, servers, tmp_path):
    def mk(name, cn, san):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(tmp_path / (name + ".key")),
                        "-out", str(tmp_path / (name + ".pem")), "-days", "30", "-subj", "/CN=" + cn,
                        "-addext", "subjectAltName=" + san], check=True, capture_output=True)
    mk("srv", "localhost", "DNS:localhost")
    mk("cli", "arc-client", "DNS:client.test")
    up = servers.http(name="echo")
    cfg = log_config(tmp_path, [upstream_conf("echo", up.addr)])
    cfg["listeners"] = [{"name": "web", "kind": "https", "bind": "127.0.0.1:0",
                         "tls": {"certificates": [{"cert_pem": str(tmp_path / "srv.pem"),
                                                   "key_pem": str(tmp_path / "srv.key")}],
                                 "client_auth": {"ca_pem": str(tmp_path / "cli.pem")}}}]
    a = arc(cfg)
    r = subprocess.run(["curl", "-sS", "--http1.1", "--max-time", "20", "--cacert",
                        str(tmp_path / "srv.pem"), "--cert", str(tmp_path / "cli.pem"), "--key",
                        str(tmp_path / "cli.key"), "-D", "-", "-o", "/dev/null",
                        "https://localhost:%d/secure?x=1" % a.port], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    rid = re.search(r"(?im)^x-request-id: (\S+)", r.stdout).group(1)
    (line,) = read_lines(str(tmp_path / "access.log"), 1)
    assert line["scheme"] == "https" and line["protocol"] == "http/1.1" and line["status"] == 200
    assert line["request_id"] == rid
    tls = line["tls"]
    assert tls["version"] in ("TLSv1.3", "TLSv1.2") and tls["cipher"]
    assert tls["sni"] == "localhost"
    assert "CN=arc-client" in tls["client_subject"]


def test_rotation_gzip_and_logs_query_over_rotated_files(arc, servers, tmp_path, arc_bin):
    up = servers.http(name="echo")
    a = arc(log_config(tmp_path, [upstream_conf("echo", up.addr)], workers=1,
                       logging={"output": {"rotation": {"max_size": "4kb", "max_files": 3,
                                                        "compress": True}},
                                "writer": {"batch_bytes": "4kb"}}))
    path = str(tmp_path / "access.log")
    c = a.client()
    n = 60
    for i in range(n):
        assert c.request("GET", "/r/%d" % i).status == 200
        time.sleep(0.005)
    deadline = time.monotonic() + 15 * arc_bin.slow
    while time.monotonic() < deadline:
        gz = sorted(glob.glob(path + ".*.gz"))
        pending = [p for p in glob.glob(path + ".*") if not p.endswith(".gz")]
        ms, _ = a.metrics()
        if len(gz) == 3 and not pending and metric(ms, "arc_access_log_lines_total") == n:
            break
        time.sleep(0.1)
    gz = sorted(glob.glob(path + ".*.gz"))
    assert len(gz) == 3, os.listdir(str(tmp_path))
    ms, _ = a.metrics()
    rotations = metric(ms, "arc_access_log_rotations_total")
    assert rotations >= 4, rotations           # more rotated than kept: max_files pruned
    kept = []
    for p in gz:
        assert os.path.getsize(p) > 0
        with gzip.open(p, "rt") as f:
            body = f.read()
        assert body.endswith("\n")
        kept += access_paths(body)
        assert len(body) <= 4096 + 2048         # one batch may overshoot max_size
    with open(path) as f:
        current = access_paths(f.read())
    assert os.path.getsize(path) <= 4096 + 2048
    # the newest lines are all there, in order, with nothing lost between files
    got = kept + current
    assert got == ["/r/%d" % i for i in range(n - len(got), n)], got
    # arc logs query reads the rotated .gz files and the current one, oldest first
    cp = arc_bin.run(["logs", "query", "--file", path])
    assert cp.returncode == 0, cp.stderr
    assert [json.loads(ln)["path"] for ln in cp.stdout.splitlines()] == got
    cp = arc_bin.run(["logs", "query", "--file", path, "--status", "2xx", "--route", "default"])
    assert len(cp.stdout.splitlines()) == len(got)


def test_histogram_quantile_agrees_with_logged_durations(arc, servers, tmp_path):
    """Upstream delays spread evenly over 3..200 ms: the request-duration
    histogram's buckets hold exactly the access log's duration_ms of the same
    requests, and histogram_quantile (Prometheus' linear interpolation,
    metricscheck.py) lands in the bucket of the log's quantile, so the two
    differ by at most that bucket's width (10 ms here)."""
    up = servers.http(name="echo")
    bounds = [10 * i for i in range(1, 33)]                  # 10 .. 320 ms
    cfg = log_config(tmp_path, [upstream_conf("echo", up.addr)], workers=2,
                     extra={"observability": {"metrics_bind": "127.0.0.1:0",
                                              "histograms": {"duration_buckets_ms": bounds}}})
    a = arc(cfg)

    def scrape():
        st, text = a.admin_get("/metrics")
        assert st == 200
        return buckets(parse_strict(text), "arc_route_request_duration_seconds", route="default")
    c = a.client()
    assert c.request("GET", "/warm").status == 200
    read_lines(str(tmp_path / "access.log"), 1)
    before = dict(scrape())
    n = 60
    sleeps = [3 + (i * 37) % 198 for i in range(n)]           # a permutation-like spread
    for i, ms in enumerate(sleeps):
        assert c.request("GET", "/slow?ms=%d&i=%d" % (ms, i)).status == 200
    logged = read_lines(str(tmp_path / "access.log"), n + 1)[1:]
    assert [ln["query"] for ln in logged] == ["ms=%d&i=%d" % (ms, i) for i, ms in enumerate(sleeps)]
    durs = sorted(ln["duration_ms"] for ln in logged)
    delta = [(le, cnt - before.get(le, 0)) for le, cnt in scrape()]
    assert delta[-1][1] == n, delta
    eps = 0.0005                                              # the log rounds to the microsecond
    for le, cnt in delta:
        lo = sum(1 for d in durs if d <= le * 1000 - eps)
        hi = sum(1 for d in durs if d <= le * 1000 + eps)
        assert lo <= cnt <= hi, (le, cnt, durs)
    edges = [0.0] + [float(b) for b in bounds] + [math.inf]
    for q in (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99):
        est = histogram_quantile(q, delta) * 1000
        x = durs[max(0, math.ceil(q * n) - 1)]                # the log's q-quantile
        k = next(i for i in range(1, len(edges)) if x <= edges[i] + eps)
        lo_b, hi_b = edges[k - 1], edges[k]
        assert lo_b - eps <= est <= hi_b + eps, (q, est, x, (lo_b, hi_b))
        assert abs(est - x) <= hi_b - lo_b + eps, (q, est, x)


def test_sigusr1_reopens_the_file(arc, servers, tmp_path):
    up = servers.http(name="echo")
    a = arc(log_config(tmp_path, [upstream_conf("echo", up.addr)]))
    path = str(tmp_path / "access.log")
    c = a.client()
    assert c.request("GET", "/before").status == 200
    read_lines(path, 1)
    os.rename(path, path + "-moved")     # what logrotate does, then postrotate
    a.signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert c.request("GET", "/after").status == 200
    (after,) = read_lines(path, 1)
    assert after["path"] == "/after"
    with open(path + "-moved") as f:
        assert access_paths(f.read()) == ["/before"]
    ms, _ = a.metrics()
    assert metric(ms, "arc_access_log_reopens_total") == 1
    assert a.wait_stderr("SIGUSR1 received: reopening the access log"), a.stderr_tail(20)


def test_vanished_directory_is_reported_and_retried(arc, servers, tmp_path, arc_bin):
    up = servers.http(name="echo")
    d = tmp_path / "logs"
    d.mkdir()
    cfg = log_config(tmp_path, [upstream_conf("echo", up.addr)],
                     logging={"output": {"file": str(d / "access.log")}})
    a = arc(cfg)
    c = a.client()
    assert c.request("GET", "/one").status == 200
    read_lines(str(d / "access.log"), 1)
    shutil.rmtree(str(d))
    deadline = time.monotonic() + 10 * arc_bin.slow
    while "cannot open" not in a.stderr_text() and time.monotonic() < deadline:
        assert c.request("GET", "/while-gone").status == 200
        time.sleep(0.1)
    assert "cannot open" in a.stderr_text() and "No such file or directory" in a.stderr_text()
    ms, _ = a.metrics()
    assert metric(ms, "arc_access_log_write_errors_total") >= 1
    d.mkdir()
    assert c.request("GET", "/back").status == 200
    deadline = time.monotonic() + 10 * arc_bin.slow
    text = ""
    while '"/back"' not in text and time.monotonic() < deadline:
        try:
            with open(str(d / "access.log")) as f:
                text = f.read()
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    paths = access_paths(text)
    assert paths and paths[-1] == "/back", paths     # held lines written first, then this one
    assert a.wait_stderr("writing again"), a.stderr_tail(20)
    assert a.alive()


def test_redaction_never_reaches_the_file(arc, servers, tmp_path):
    up = servers.http(name="echo")
    a = arc(log_config(tmp_path, [upstream_conf("echo", up.addr)],
                       logging={"redact": {"headers": ["User-Agent"],
                                           "query_params": ["token", "key"]}}))
    r = a.client().request("GET", "/p?a=1&token=s3cr3t-tok&key=k3y-val&tokenx=visible&key",
                           headers={"User-Agent": "ua-s3cr3t"})
    assert r.status == 200
    (line,) = read_lines(str(tmp_path / "access.log"), 1)
    assert line["query"] == "a=1&token=REDACTED&key=REDACTED&tokenx=visible&key"
    assert line["user_agent"] == "REDACTED"
    with open(str(tmp_path / "access.log")) as f:
        text = f.read()
    assert "s3cr3t" not in text and "k3y-val" not in text
    # the upstream still gets the real values: redaction is for the log only
    assert up.requests[-1][2].endswith("token=s3cr3t-tok&key=k3y-val&tokenx=visible&key")


def test_sampling_with_forced_statuses_and_slow_requests(arc, servers, tmp_path):
    up = servers.http(name="echo")
    a = arc(log_config(tmp_path, [upstream_conf("echo", up.addr)],
                       logging={"access": {"sample": 0.0, "force_on_status": [404],
                                           "force_on_slow": "200ms"}}))
    c = a.client()
    for i in range(20):
        assert c.request("GET", "/fast/%d" % i).status == 200
    assert c.request("GET", "/status/404").status == 404
    assert c.request("GET", "/status/500").status == 500
    assert c.request("GET", "/slow?ms=300").status == 200
    lines = read_lines(str(tmp_path / "access.log"), 2)
    assert sorted(ln["path"] for ln in lines) == ["/slow", "/status/404"]


def resident_pages(path, length):
    """How many of the first `length` bytes' pages of a file are in the page
    cache (mincore over a shared read-only mapping)."""
    import ctypes
    import mmap
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    page = mmap.PAGESIZE
    n = (length + page - 1) // page
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert addr not in (None, ctypes.c_void_p(-1).value), ctypes.get_errno()
        vec = ctypes.create_string_buffer(n)
        try:
            assert libc.mincore(addr, length, vec) == 0, ctypes.get_errno()
        finally:
            libc.munmap(addr, length)
    finally:
        os.close(fd)
    return sum(b & 1 for b in vec.raw)


def test_drop_behind_leaves_every_line_and_drops_old_pages(arc, servers, tmp_path):
    """logging.writer.drop_behind: the file's pages further than it behind
    the end leave the page cache once written back; every line is still in
    the file, whole."""
    up = servers.http(name="echo")
    routes = [route_conf("ping", "/{*rest}", respond={"status": 200, "body": "pong"})]
    a = arc(log_config(tmp_path, [upstream_conf("echo", up.addr)], routes=routes, workers=1,
                       logging={"writer": {"drop_behind": "1mb", "batch_bytes": "64kb"}}))
    path = "/" + "p" * 480
    ua = "u" * 180
    c = a.client()
    n, chunk = 3000, 100                # ~1.3 kB a line: ~4 MB of log
    for _ in range(n // chunk):
        c.send(b"".join(build_request("GET", path, headers={"User-Agent": ua})
                        for _ in range(chunk)))
        for _ in range(chunk):
            assert c.response().status == 200
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ms, _ = a.metrics()
        if metric(ms, "arc_access_log_lines_total") + metric(ms, "arc_access_log_dropped_total") >= n:
            break
        time.sleep(0.05)
    assert metric(ms, "arc_access_log_dropped_total") == 0
    log = str(tmp_path / "access.log")
    size = os.path.getsize(log)
    assert size > 3 << 20, size
    # the first megabyte was handed to writeback when written and dropped
    # once the file was 2+ MB long: its pages are (at least mostly) gone
    first = 1 << 20
    assert resident_pages(log, first) < first // 4096 // 2, resident_pages(log, first)
    lines = read_lines(log, n)
    assert all(ln["path"] == path and ln["user_agent"] == ua for ln in lines)


def test_tiny_ring_drops_are_counted(arc, servers, tmp_path):
    up = servers.http(name="echo")
    routes = [route_conf("ping", "/ping", respond={"status": 200, "body": "pong"})]
    a = arc(log_config(tmp_path, [upstream_conf("echo", up.addr)], routes=routes, workers=1,
                       logging={"writer": {"ring_capacity": 2, "flush_interval": "50ms"}}))
    c = a.client()
    n = 400
    # pipelined: the worker answers them in one go, far faster than the
    # writer's poll, so a 2-record ring must overflow
    c.send(b"".join(build_request("GET", "/ping") for _ in range(n)))
    for _ in range(n):
        assert c.response().status == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ms, _ = a.metrics()
        written = metric(ms, "arc_access_log_lines_total")
        dropped = metric(ms, "arc_access_log_dropped_total")
        if written + dropped == n:
            break
        time.sleep(0.05)
    assert dropped > 0 and written > 0, (written, dropped)
    assert written + dropped == n, (written, dropped)
    lines = read_lines(str(tmp_path / "access.log"), int(written))
    assert all(ln["path"] == "/ping" for ln in lines)


def test_traceparent_continued_with_a_new_span(arc, servers, tmp_path):
    up = servers.http(name="echo")
    a = arc(log_config(tmp_path, [upstream_conf("echo", up.addr)],
                       extra={"observability": {"metrics_bind": "127.0.0.1:0",
                                                "tracing": {"sample": 0.0}}}))
    c = a.client()
    tid, pid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    assert c.request("GET", "/t1", headers={"traceparent": "00-%s-%s-01" % (tid, pid),
                                            "tracestate": "vendor=abc"}).status == 200
    seen = up.requests[-1][3]
    m = TRACEPARENT.match(hdr(seen, "traceparent"))
    assert m and m.group(1) == tid and m.group(2) != pid and m.group(3) == "01"
    assert hdr(seen, "tracestate") == "vendor=abc"
    # no traceparent: a new trace, not sampled at tracing.sample 0
    assert c.request("GET", "/t2").status == 200
    m2 = TRACEPARENT.match(hdr(up.requests[-1][3], "traceparent"))
    assert m2 and m2.group(1) != tid and m2.group(3) == "00"
    # an invalid one (upper-case hex) starts afresh and drops tracestate
    assert c.request("GET", "/t3", headers={"traceparent": "00-%s-%s-01" % (tid.upper(), pid),
                                            "tracestate": "vendor=abc"}).status == 200
    seen3 = up.requests[-1][3]
    m3 = TRACEPARENT.match(hdr(seen3, "traceparent"))
    assert m3 and m3.group(1) != tid.upper().lower() and hdr(seen3, "tracestate") is None
    lines = {ln["path"]: ln for ln in read_lines(str(tmp_path / "access.log"), 3)}
    assert lines["/t1"]["trace_id"] == tid and lines["/t1"]["parent_span_id"] == pid
    assert lines["/t1"]["span_id"] == m.group(2) and lines["/t1"]["trace_sampled"] is True
    assert lines["/t2"]["trace_id"] == m2.group(1) and lines["/t2"]["parent_span_id"] is None
    assert lines["/t2"]["trace_sampled"] is False
    assert lines["/t3"]["parent_span_id"] is None
    # the trace id filter of arc logs finds the continued request
    cp = a_logs(a, tmp_path, "query", "--trace-id", tid)
    assert [json.loads(ln)["path"] for ln in cp.stdout.splitlines()] == ["/t1"]


def a_logs(a, tmp_path, *args):
    cp = subprocess.run([a.binary, "logs"] + list(args) + ["--file", str(tmp_path / "access.log")],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    return cp


def test_request_id_kept_only_from_trusted_peers(arc, servers, tmp_path):
    up = servers.http(name="echo")
    routes = [route_conf("trusting", "/in/{*rest}", upstream="echo",
                         forwarded={"trusted_proxies": ["127.0.0.0/8"]}),
              route_conf("other", "/{*rest}", upstream="echo")]
    a = arc(log_config(tmp_path, [upstream_conf("echo", up.addr)], routes=routes))
    c = a.client()
    r = c.request("GET", "/in/x", headers={"X-Request-Id": "edge-123"})
    assert r.headers.get("x-request-id") == "edge-123"
    assert hdr(up.requests[-1][3], "x-request-id") == "edge-123"
    r2 = c.request("GET", "/out", headers={"X-Request-Id": "edge-456"})
    rid2 = r2.headers.get("x-request-id")
    assert UUID7.match(rid2) and hdr(up.requests[-1][3], "x-request-id") == rid2
    # not a usable id even from a trusted peer: replaced
    r3 = c.request("GET", "/in/y", headers={"X-Request-Id": "x" * 65})
    assert UUID7.match(r3.headers.get("x-request-id"))
    lines = {ln["path"]: ln for ln in read_lines(str(tmp_path / "access.log"), 3)}
    assert lines["/in/x"]["request_id"] == "edge-123"
    assert lines["/out"]["request_id"] == rid2
    # ids made one after another sort by time (UUIDv7)
    ids = [c.request("GET", "/out").headers.get("x-request-id") for _ in range(5)]
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)


def test_arc_logs_filters_tail_and_follow(arc, servers, tmp_path, arc_bin):
    up = servers.http(name="echo")
    dead = "127.0.0.1:%d" % free_port()
    routes = [route_conf("dead", "/dead", upstream="gone"),
              route_conf("api", "/{*rest}", upstream="echo")]
    a = arc(log_config(tmp_path, [upstream_conf("echo", up.addr), upstream_conf("gone", dead)],
                       routes=routes, logging={"output": {"rotation": {"max_size": "8kb",
                                                                       "compress": False}}}))
    c = a.client()
    for i in range(3):
        assert c.request("GET", "/ok/%d" % i).status == 200
    assert c.request("GET", "/dead").status == 502
    assert c.request("GET", "/status/404").status == 404
    assert c.request("GET", "/status/429").status == 429
    read_lines(str(tmp_path / "access.log"), 6)

    def paths(*args):
        return [json.loads(ln)["path"] for ln in a_logs(a, tmp_path, *args).stdout.splitlines()]
    assert paths("query", "--status", "5xx") == ["/dead"]
    assert paths("query", "--status", "404,429") == ["/status/404", "/status/429"]
    assert paths("query", "--route", "api", "--status", "2xx") == ["/ok/0", "/ok/1", "/ok/2"]
    assert paths("query", "--upstream", "gone") == ["/dead"]
    assert len(paths("query", "--client-ip", "127.0.0.1", "--since", "10m")) == 6
    assert paths("query", "--client-ip", "10.9.9.9") == []
    assert paths("tail", "-n", "2") == ["/status/404", "/status/429"]
    assert paths("tail", "--status", "2xx", "-n", "1") == ["/ok/2"]
    bad = subprocess.run([a.binary, "logs", "query", "--status", "6xx", "--file", "x"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "--status" in bad.stderr

    # tail -f follows new lines and the rotation (8kb files, uncompressed)
    f = subprocess.Popen([a.binary, "logs", "tail", "-f", "-n", "0", "--route", "api",
                          "--file", str(tmp_path / "access.log")], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5 * arc_bin.slow)
        n = 60                                  # ~50 KB of lines: several rotations
        for i in range(n):
            assert c.request("GET", "/follow/%d" % i, headers={"User-Agent": "p" * 180}).status == 200
            time.sleep(0.03)                    # ~8 lines per file: slower than -f's 50 ms poll
        got = []
        deadline = time.monotonic() + 20 * arc_bin.slow
        buf = b""
        while len(got) < n and time.monotonic() < deadline:
            if not select.select([f.stdout], [], [], 0.1)[0]:
                continue
            chunk = os.read(f.stdout.fileno(), 65536)
            assert chunk, "arc logs tail -f exited"
            buf += chunk
            *done, buf = buf.split(b"\n")
            got += [json.loads(ln)["path"] for ln in done if ln]
        assert got == ["/follow/%d" % i for i in range(n)], got
        ms, _ = a.metrics()
        assert metric(ms, "arc_access_log_rotations_total") >= 2
    finally:
        f.kill()
        f.wait(5)


class _Collector:
    """A recording OTLP/HTTP collector: keeps every POSTed JSON body."""

    def __init__(self, status=200):
        import http.server
        import threading
        bodies = self.bodies = []
        self.paths = []
        paths = self.paths

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                data = self.rfile.read(n)
                paths.append((self.path, self.headers.get("Content-Type")))
                bodies.append(json.loads(data))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def spans(self):
        out = []
        for b in self.bodies:
            for rs in b["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    out += ss["spans"]
        return out

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def _attrs(span):
    out = {}
    for a in span["attributes"]:
        v = a["value"]
        out[a["key"]] = v.get("stringValue", v.get("intValue"))
    return out


def test_otlp_export_of_sampled_spans(arc, servers, tmp_path, arc_bin):
    col = _Collector()
    try:
        up = servers.http(name="echo")
        dead = "127.0.0.1:%d" % free_port()
        routes = [route_conf("dead", "/dead", upstream="gone"),
                  route_conf("api", "/{*rest}", upstream="echo")]
        a = arc(log_config(tmp_path, [upstream_conf("echo", up.addr), upstream_conf("gone", dead)],
                           routes=routes,
                           extra={"observability": {
                               "metrics_bind": "127.0.0.1:0",
                               "tracing": {"sample": 0.0, "flush_interval": "100ms",
                                           "endpoint": "http://127.0.0.1:%d/v1/traces" % col.port}}}))
        c = a.client()
        tid, pid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        assert c.request("GET", "/traced?q=1", headers={"traceparent": "00-%s-%s-01" % (tid, pid),
                                                        "User-Agent": "otel-test"}).status == 200
        up_tp = TRACEPARENT.match(hdr(up.requests[-1][3], "traceparent"))
        # not sampled: neither the client's flag 00 nor tracing.sample 0 exports anything
        assert c.request("GET", "/unsampled", headers={
            "traceparent": "00-%s-%s-00" % ("1" * 32, "2" * 16)}).status == 200
        assert c.request("GET", "/untraced").status == 200
        assert c.request("GET", "/dead", headers={
            "traceparent": "00-%s-%s-01" % ("3" * 32, "4" * 16)}).status == 502
        deadline = time.monotonic() + 10 * arc_bin.slow
        while len(col.spans()) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        spans = col.spans()
        assert len(spans) == 4, json.dumps(spans, indent=1)
        assert col.paths[0] == ("/v1/traces", "application/json")
        res = {a["key"]: a["value"]["stringValue"] for a in col.bodies[0]["resourceSpans"][0]["resource"]["attributes"]}
        assert res["service.name"] == "arc"
        by = {}
        for s in spans:
            by.setdefault(s["traceId"], []).append(s)
        server, client = sorted(by[tid], key=lambda s: s["kind"])
        assert server["kind"] == 2 and client["kind"] == 3
        assert server["parentSpanId"] == pid
        assert client["parentSpanId"] == server["spanId"]
        assert client["spanId"] == up_tp.group(2)          # the id the upstream saw as its parent
        assert int(server["startTimeUnixNano"]) <= int(client["startTimeUnixNano"]) <= \
            int(client["endTimeUnixNano"]) <= int(server["endTimeUnixNano"])
        assert server["name"] == "GET api" and server["status"]["code"] == 0
        sa = _attrs(server)
        assert sa["http.request.method"] == "GET" and sa["http.response.status_code"] == "200"
        assert sa["url.path"] == "/traced" and sa["url.query"] == "q=1"
        assert sa["user_agent.original"] == "otel-test" and sa["client.address"] == "127.0.0.1"
        assert sa["network.protocol.version"] == "1.1" and sa["url.scheme"] == "http"
        ca = _attrs(client)
        assert ca["server.address"] == "127.0.0.1" and ca["server.port"] == str(up.port)
        assert ca["http.response.status_code"] == "200" and ca["arc.upstream"] == "echo"
        ds, dc = sorted(by["3" * 32], key=lambda s: s["kind"])
        assert ds["status"]["code"] == 2 and _attrs(ds)["error.type"] == "upstream_connect"
        assert dc["status"]["code"] == 2 and "http.response.status_code" not in _attrs(dc)
        ms, _ = a.metrics()
        assert metric(ms, "arc_tracing_spans_exported_total") == 4
        assert metric(ms, "arc_tracing_export_errors_total") == 0
    finally:
        col.stop()


def test_otlp_export_failures_are_counted(arc, servers, tmp_path, arc_bin):
    up = servers.http(name="echo")
    gone = free_port()
    a = arc(log_config(tmp_path, [upstream_conf("echo", up.addr)],
                       extra={"observability": {
                           "metrics_bind": "127.0.0.1:0",
                           "tracing": {"sample": 1.0, "flush_interval": "50ms", "timeout": "500ms",
                                       "endpoint": "http://127.0.0.1:%d" % gone}}}))
    c = a.client()
    for i in range(3):
        assert c.request("GET", "/x/%d" % i).status == 200
    deadline = time.monotonic() + 10 * arc_bin.slow
    lost = 0
    while time.monotonic() < deadline:
        ms, _ = a.metrics()
        lost = metric(ms, "arc_tracing_spans_lost_total")
        if lost == 6:
            break
        time.sleep(0.05)
    assert lost == 6
    assert metric(ms, "arc_tracing_export_errors_total") >= 1
    assert a.wait_stderr("tracing: export to http://127.0.0.1:%d failed: connect" % gone), a.stderr_tail(20)
    # serving went on, and the access log has every request
    assert len(read_lines(str(tmp_path / "access.log"), 3)) == 3


def test_route_header_operation_on_request_id_wins(arc, servers, tmp_path):
    up = servers.http(name="echo")
    routes = [route_conf("set", "/set", upstream="echo",
                         headers=[{"op": "set", "name": "X-Request-Id", "value": "from-route"}]),
              route_conf("rm", "/rm", upstream="echo",
                         headers=[{"op": "remove", "name": "X-Request-Id"}])]
    a = arc(log_config(tmp_path, [upstream_conf("echo", up.addr)], routes=routes))
    c = a.client()
    assert c.request("GET", "/set").status == 200
    ids = [v for k, v in up.requests[-1][3].items if k.lower() == "x-request-id"]
    assert ids == ["from-route"], ids
    r = c.request("GET", "/rm", headers={"X-Request-Id": "client"})
    assert r.status == 200
    assert [v for k, v in up.requests[-1][3].items if k.lower() == "x-request-id"] == []
    assert UUID7.match(r.headers.get("x-request-id"))      # the client still gets Arc's id
