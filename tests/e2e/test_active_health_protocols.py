"""Active health checks of upstreams with `tls` and with `protocol: http2`.
With tls the check runs over TLS with the upstream's own trust and server
name (ALPN http/1.1), so a 503 from the health path takes the endpoint out
of rotation and a 200 brings it back; a certificate the upstream's CA does
not vouch for fails every check (no answer: last_status -1) and no request
is sent; the transitions are logged. With protocol: http2 (h2c, or h2 over
TLS) the check is a GET stream on an HTTP/2 connection. The upstreams are
small threaded HTTPS servers (python ssl) and tests/e2e/h2_upstreams.H2Server
on kernel-assigned ports."""
import http.server
import json
import re
import ssl
import threading
import urllib.request

import pytest

from arcproc import make_config, metric, route_conf, upstream_conf, wait_for
from h2_upstreams import make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("hpki"))


class HttpsServer:
    """HTTPS/1.1 on 127.0.0.1:0; /health answers `self.health`, anything
    else 200 with the server's name. Counts the health checks it answered."""

    def __init__(self, pki, name):
        outer = self
        self.name, self.health, self.checks = name, 200, 0

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if self.path == "/health":
                    outer.checks += 1
                    status, body = outer.health, b"health"
                else:
                    status, body = 200, outer.name.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki("a.pem"), pki("a.key"))
        ctx.set_alpn_protocols(["http/1.1"])
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.addr = "127.0.0.1:%d" % self.srv.server_address[1]
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()
        self.t.join(10)


@pytest.fixture
def https(pki):
    started = []

    def start(name):
        s = HttpsServer(pki, name)
        started.append(s)
        return s
    yield start
    for s in started:
        s.stop()


def config(ups, ca):
    up = upstream_conf("app", [u.addr for u in ups], lb={"algorithm": "round_robin"},
                       health={"active": {"interval": "200ms", "timeout": "1s",
                                          "fail_after": 2, "pass_after": 1}})
    up["tls"] = {"ca_pem": ca, "server_name": "a.test"}
    cfg = make_config([up], routes=[route_conf("r", "/{*rest}", upstream="app")], workers=1)
    cfg["control_plane"] = {"enabled": True, "bind": "127.0.0.1:0"}
    return cfg


def active(a, addr):
    m = re.search(r"arc: control plane listening addr=(\S+):(\d+)", a.stderr_text())
    assert m, a.stderr_tail(20)
    with urllib.request.urlopen("http://127.0.0.1:%s/v1/upstreams" % m.group(2), timeout=5) as r:
        ups = {u["name"]: u for u in json.loads(r.read())["upstreams"]}
    for e in ups["app"]["endpoints"]:
        if e["address"] == addr:
            return e["active"]


def test_tls_endpoint_checked_out_and_back(arc, https, pki):
    bad, good = https("bad"), https("good")
    bad.health = 503
    a = arc(config([bad, good], pki("ca.pem")))
    assert wait_for(lambda: active(a, bad.addr)["state"] == "down", timeout=15), \
        active(a, bad.addr)
    assert active(a, bad.addr)["last_status"] == 503
    assert wait_for(lambda: active(a, good.addr)["last_status"] == 200, timeout=15)
    assert active(a, good.addr)["state"] == "up"
    assert metric(a.metrics()[0], "arc_upstream_endpoint_active_down", upstream="app",
                  endpoint=bad.addr) == 1
    for i in range(6):
        r = a.client().request("GET", "/x/%d" % i)
        assert r.status == 200 and r.body == b"good", r
    assert "endpoint %s is down (2 failed checks, the last status 503)" % bad.addr \
        in a.stderr_text()
    bad.health = 200
    assert wait_for(lambda: active(a, bad.addr)["state"] == "up", timeout=15)
    got = {a.client().request("GET", "/y/%d" % i).body for i in range(6)}
    assert got == {b"bad", b"good"}, got


def test_untrusted_certificate_fails_the_checks(arc, https, pki):
    srv = https("srv")
    a = arc(config([srv], pki("other.pem")))
    assert wait_for(lambda: active(a, srv.addr)["state"] == "down", timeout=15), \
        active(a, srv.addr)
    v = active(a, srv.addr)
    assert v["last_status"] == -1 and v["fails_in_a_row"] >= 2, v
    assert srv.checks == 0                     # no request went over an unverified connection


@pytest.mark.parametrize("tls", [False, True])
def test_http2_endpoints_are_checked_over_http2(arc, pki, tls):
    """protocol: http2 (h2c, or h2 over TLS): the check is a GET stream on
    an HTTP/2 connection; its status decides."""
    from h2_upstreams import H2Server
    state = {"status": 503, "checks": 0}

    def health(st):
        state["checks"] += 1
        st.respond(state["status"], [("content-type", "text/plain")], b"h")
    srv = H2Server(name="h2", tls=(pki("a.pem"), pki("a.key")) if tls else None,
                   handlers={"/health": health})
    try:
        up = upstream_conf("app", [srv.addr], protocol="http2",
                           health={"active": {"interval": "200ms", "timeout": "1s",
                                              "fail_after": 2, "pass_after": 1}})
        if tls:
            up["tls"] = {"ca_pem": pki("ca.pem"), "server_name": "a.test"}
        cfg = make_config([up], routes=[route_conf("r", "/{*rest}", upstream="app")],
                          workers=1)
        cfg["control_plane"] = {"enabled": True, "bind": "127.0.0.1:0"}
        a = arc(cfg)
        assert wait_for(lambda: active(a, srv.addr)["state"] == "down", timeout=15), \
            active(a, srv.addr)
        assert active(a, srv.addr)["last_status"] == 503
        state["status"] = 204
        assert wait_for(lambda: active(a, srv.addr)["state"] == "up", timeout=15), \
            active(a, srv.addr)
        assert active(a, srv.addr)["last_status"] == 204
        st = srv.streams("/health")[-1]
        assert st.method == "GET" and st.pseudo.get(":authority") == srv.addr, st.headers
        assert st.pseudo.get(":scheme") == ("https" if tls else "http")
    finally:
        srv.stop()
    assert not srv.errors, srv.errors
