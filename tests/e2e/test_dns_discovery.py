"""upstreams[].discovery: {type: dns}: the endpoints are what a hostname
resolves to (A and AAAA, c-ares on the control thread), asked again when the
TTL runs out. A small DNS server started here on a loopback port answers
(tests/e2e/dnsserver.py, real DNS wire format); arc is pointed at it with
node.dns.servers. Upstreams listen on 127.0.0.2, 127.0.0.3 and ::1, all on
the same port, so the answer alone decides where traffic goes."""
import json
import re
import socket
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from arcproc import make_config, metric, route_conf
from dnsserver import DnsServer


class NamedServer:
    """HTTP/1.1 keep-alive server on (ip, port) answering
    {"server": name, "peer": client port} (the peer port tells connections
    apart)."""

    def __init__(self, ip, port, name):
        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                b = json.dumps({"server": name, "peer": self.client_address[1]}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                self.wfile.write(b)

        class S(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            daemon_threads = True
            allow_reuse_address = True

        self.srv = S((ip, port), H)
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()
        self.t.join(5)


def _have_ipv6():
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


@pytest.fixture
def backends():
    """name -> NamedServer on 127.0.0.2 (b2), 127.0.0.3 (b3) and ::1 (b6,
    when the host has IPv6), one port for all; yields (port, servers)."""
    for _ in range(20):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        port = s.getsockname()[1]
        s.close()
        started = {}
        try:
            started["b2"] = NamedServer("127.0.0.2", port, "b2")
            started["b3"] = NamedServer("127.0.0.3", port, "b3")
            if _have_ipv6():
                started["b6"] = NamedServer("::1", port, "b6")
        except OSError:
            for v in started.values():
                v.stop()
            continue
        yield port, started
        for v in started.values():
            v.stop()
        return
    pytest.fail("no port free on 127.0.0.2, 127.0.0.3 and ::1")


@pytest.fixture
def dns():
    servers = []

    def start(records):
        d = DnsServer(records)
        servers.append(d)
        return d
    yield start
    for d in servers:
        d.stop()


def dns_config(port, hostname="app.arc.test", extra_ups=(), routes=None, servers=None, **disc):
    d = {"type": "dns", "hostname": hostname, "port": port}
    d.update(disc)
    ups = [{"name": "app", "discovery": d, "lb": {"algorithm": "round_robin"}}] + list(extra_ups)
    cfg = make_config(ups, routes=routes, workers=1)
    cfg["control_plane"] = {"enabled": True, "bind": "127.0.0.1:0"}
    if servers:
        cfg.setdefault("node", {})["dns"] = {"servers": [servers]}
    return cfg


def ctl_upstreams(a):
    m = re.search(r"arc: control plane listening addr=(\S+):(\d+)", a.stderr_text())
    assert m, a.stderr_tail(20)
    with urllib.request.urlopen("http://127.0.0.1:%s/v1/upstreams" % m.group(2), timeout=5) as r:
        return {u["name"]: u for u in json.loads(r.read())["upstreams"]}


def wait_for(fn, timeout=15.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def served_by(c, path="/"):
    r = c.request("GET", path)
    assert r.status == 200, r
    j = r.json()
    return j["server"], j["peer"]


def server_of(c, path="/"):
    """The server that answered, or None (503 while a worker has not
    adopted the snapshot with the new endpoints yet)."""
    r = c.request("GET", path)
    return r.json()["server"] if r.status == 200 else None


def addrs(a, up="app"):
    return sorted(e["address"] for e in ctl_upstreams(a)[up]["endpoints"])


def test_answer_changes_move_traffic_and_keep_connections(arc, dns, backends):
    port, srv = backends
    d = dns({"app.arc.test": [("A", "127.0.0.2", 1)]})
    a = arc(dns_config(port, servers=d.addr))
    c = a.client()
    assert wait_for(lambda: addrs(a) == ["127.0.0.2:%d" % port]), a.stderr_tail(20)
    assert wait_for(lambda: server_of(c) == "b2"), a.stderr_tail(20)
    name, peer_before = served_by(c)
    assert name == "b2"

    # A and AAAA: three endpoints; b2's pooled connection survives the change.
    recs = [("A", "127.0.0.2", 1), ("A", "127.0.0.3", 1)]
    want = {"127.0.0.2:%d" % port, "127.0.0.3:%d" % port}
    if "b6" in srv:
        recs.append(("AAAA", "::1", 1))
        want.add("[::1]:%d" % port)
    d.set("app.arc.test", recs)
    assert wait_for(lambda: set(addrs(a)) == want), (addrs(a), a.stderr_tail(20))
    assert wait_for(lambda: server_of(c) != "b2"), a.stderr_tail(20)
    seen = {}
    for _ in range(3 * len(want)):
        n, p = served_by(c)
        seen.setdefault(n, set()).add(p)
    assert set(seen) == {s for s in ("b2", "b3", "b6") if s in srv}, seen
    assert peer_before in seen["b2"], "b2's connection was not kept: %r vs %r" % (
        peer_before, seen["b2"])
    up = ctl_upstreams(a)["app"]
    assert up["discovery"]["state"] == "ok" and up["discovery"]["addresses"] == len(want), up

    # b2 leaves the answer: no more traffic to it.
    d.set("app.arc.test", [r for r in recs if r[1] != "127.0.0.2"])
    assert wait_for(lambda: "127.0.0.2:%d" % port not in addrs(a)), a.stderr_tail(20)
    assert wait_for(lambda: "b2" not in {server_of(c) for _ in range(4)}), a.stderr_tail(20)
    names = {served_by(c)[0] for _ in range(12)}
    assert "b2" not in names and "b3" in names, names
    assert a.wait_stderr("endpoints updated"), a.stderr_tail(20)


def test_ttl_is_honoured(arc, dns, backends):
    """Two names answered with TTL 3600: the upstream that respects TTLs does
    not ask again (its fallback_poll of 300ms does not apply), the one with
    respect_ttl: false asks every fallback_poll and follows the change."""
    port, srv = backends
    d = dns({"ttl.arc.test": [("A", "127.0.0.2", 3600)],
             "poll.arc.test": [("A", "127.0.0.2", 3600)]})
    poll_up = {"name": "poll", "lb": {"algorithm": "round_robin"},
               "discovery": {"type": "dns", "hostname": "poll.arc.test", "port": port,
                             "respect_ttl": False, "fallback_poll": "300ms"}}
    routes = [route_conf("p", "/poll/{*rest}", upstream="poll"),
              route_conf("t", "/{*rest}", upstream="app")]
    a = arc(dns_config(port, hostname="ttl.arc.test", extra_ups=[poll_up], routes=routes,
                       fallback_poll="300ms", servers=d.addr))
    c = a.client()
    assert wait_for(lambda: addrs(a) == ["127.0.0.2:%d" % port] and
                    addrs(a, "poll") == ["127.0.0.2:%d" % port]), a.stderr_tail(20)
    assert wait_for(lambda: server_of(c) == "b2"), a.stderr_tail(20)
    asked = d.queries("ttl.arc.test")
    assert asked >= 1
    d.set("ttl.arc.test", [("A", "127.0.0.3", 3600)])
    d.set("poll.arc.test", [("A", "127.0.0.3", 3600)])
    assert wait_for(lambda: addrs(a, "poll") == ["127.0.0.3:%d" % port]), a.stderr_tail(20)
    assert wait_for(lambda: server_of(c, "/poll/x") == "b3"), a.stderr_tail(20)
    # Several fallback_polls later the TTL-respecting upstream has not asked.
    time.sleep(1.5)
    assert d.queries("ttl.arc.test") == asked
    assert addrs(a) == ["127.0.0.2:%d" % port]
    assert served_by(c)[0] == "b2"
    disc = ctl_upstreams(a)["app"]["discovery"]
    assert disc["ttl"] == 3600 and disc["next_lookup_in_ms"] > 3000 * 1000, disc


def test_server_down_keeps_the_last_set(arc, dns, backends):
    port, srv = backends
    d = dns({"app.arc.test": [("A", "127.0.0.2", 1)]})
    a = arc(dns_config(port, fallback_poll="500ms", servers=d.addr))
    c = a.client()
    assert wait_for(lambda: addrs(a) == ["127.0.0.2:%d" % port]), a.stderr_tail(20)
    assert wait_for(lambda: server_of(c) == "b2"), a.stderr_tail(20)
    d.stop()
    assert wait_for(lambda: ctl_upstreams(a)["app"]["discovery"]["state"] == "failing",
                    timeout=30), a.stderr_tail(20)
    disc = ctl_upstreams(a)["app"]["discovery"]
    assert disc["last_error"] and disc["addresses"] == 1, disc
    assert addrs(a) == ["127.0.0.2:%d" % port]
    for _ in range(5):
        assert served_by(c)[0] == "b2"
    m = a.metrics()[0]
    assert metric(m, "arc_upstream_dns_up", upstream="app") == 0
    assert metric(m, "arc_upstream_dns_lookups_total", upstream="app", result="error") >= 1
    assert metric(m, "arc_upstream_dns_endpoints", upstream="app") == 1
    assert a.wait_stderr("keeping the last good addresses"), a.stderr_tail(20)

    # Back, with another answer: followed.
    d.set("app.arc.test", [("A", "127.0.0.3", 1)])
    d.start()
    assert wait_for(lambda: addrs(a) == ["127.0.0.3:%d" % port], timeout=30), a.stderr_tail(20)
    assert wait_for(lambda: server_of(c) == "b3"), a.stderr_tail(20)
    assert ctl_upstreams(a)["app"]["discovery"]["state"] == "ok"


def test_no_answer_yet_is_503_then_served(arc, dns, backends):
    port, srv = backends
    d = dns({})                                   # NXDOMAIN for now
    a = arc(dns_config(port, fallback_poll="300ms", servers=d.addr))
    c = a.client()
    assert wait_for(lambda: ctl_upstreams(a)["app"]["discovery"]["state"] == "failing"), \
        a.stderr_tail(20)
    assert addrs(a) == []
    r = c.request("GET", "/")
    assert r.status == 503, r
    assert a.wait_stderr("no addresses yet"), a.stderr_tail(20)
    d.set("app.arc.test", [("A", "127.0.0.3", 60)])
    assert wait_for(lambda: addrs(a) == ["127.0.0.3:%d" % port]), a.stderr_tail(20)
    assert wait_for(lambda: server_of(c) == "b3"), a.stderr_tail(20)
