"""The admin listener's status page, in a real browser: Debian's chromium
(headless) loads http://admin/ from a running Arc that carried known
traffic, runs the page's JavaScript (which reads /status.json), and the
rendered DOM shows the values /metrics has: requests and errors per route
and upstream, p50/p99 as histogram_quantile computes them from the
buckets, each endpoint's counters and state, active connections, the
config generation and fingerprint and the last reload. A screenshot is
kept in the test's temporary directory. The page loads nothing but itself
and status.json."""
import json
import os
import shutil
import signal
import subprocess
import time
from html.parser import HTMLParser

import pytest

from arcproc import make_config, upstream_conf, route_conf
from httpraw import free_port
from metricscheck import parse_strict, total, buckets, histogram_quantile
from upstreams import smart_handler

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def api_handler(req):
    if req.path.startswith("/api/"):
        req.path = req.path[4:]
    return smart_handler(req)


def chromium(args, timeout=90):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", "--disable-extensions", "--disable-background-networking",
           "--window-size=1400,1000", "--virtual-time-budget=5000"] + args
    r = subprocess.run(cmd, capture_output=True, timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


class Dom(HTMLParser):
    """Rows of the page's tables and the text of elements with an id."""

    def __init__(self):
        super().__init__()
        self.rows = []          # (table id, tr attrs, [(td class, text, data-v)])
        self.ids = {}
        self.body = {}
        self.table = None
        self.stack = []         # open elements: (tag, attrs, text parts)
        self.srcs = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if tag == "table":
            self.table = a.get("id")
        if tag in ("script", "link", "img", "iframe") and (a.get("src") or a.get("href")):
            self.srcs.append(a.get("src") or a.get("href"))
        if tag == "tr":
            self.rows.append((self.table, a, []))
        self.stack.append((tag, a, []))

    def handle_endtag(self, tag):
        while self.stack:
            t, a, parts = self.stack.pop()
            text = "".join(parts)
            if self.stack:
                self.stack[-1][2].append(text)
            if "id" in a:
                self.ids[a["id"]] = text
            if t == "td" and self.rows:
                self.rows[-1][2].append((a.get("class", ""), text, a.get("data-v")))
            if t == tag:
                break

    def handle_data(self, data):
        if self.stack:
            self.stack[-1][2].append(data)

    def table_rows(self, table):
        return [(attrs, {c: (text, v) for c, text, v in cells})
                for t, attrs, cells in self.rows if t == table and cells]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/install-deps.sh)")
def test_dashboard_in_chromium(arc, servers, tmp_path):
    up = servers.http(handler=api_handler, name="echo")
    down = "127.0.0.1:%d" % free_port()
    routes = [route_conf("api", "/api/{*rest}", upstream="echo"),
              route_conf("down", "/down", upstream="down"),
              route_conf("local", "/local", respond={"status": 200, "body": "ok"})]
    a = arc(make_config([upstream_conf("echo", up.addr), upstream_conf("down", down)],
                        routes=routes))
    c = a.client()
    for i in range(10):
        assert c.request("GET", "/api/slow?ms=%d" % (5 if i < 8 else 60)).status == 200
    for i in range(2):
        assert c.request("POST", "/api/p", body=b"x" * 100).status == 200
    assert c.request("GET", "/api/status/500").status == 500
    for i in range(2):
        assert c.request("GET", "/down").status == 502
    for i in range(3):
        assert c.request("GET", "/local").status == 200
    assert c.request("GET", "/nowhere").status == 404
    # a reload, so the page has one to show (same config: generation 2)
    a.signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while json.loads(a.admin_get("/status.json")[1])["generation"] != 2:
        assert time.monotonic() < deadline, "the reload did not happen"
        time.sleep(0.05)
    # `c` stays open: one active connection

    url = "http://127.0.0.1:%d/" % a.admin_port
    rc, html, err = chromium(["--dump-dom", url])
    assert rc == 0, err[-2000:]
    status, text = a.admin_get("/metrics")
    fams = parse_strict(text)
    shot = tmp_path / "dashboard.png"
    rc, _, err = chromium(["--screenshot=%s" % shot, url])
    assert rc == 0 and shot.exists(), err[-2000:]
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(shot) > 10000
    with open(tmp_path / "dashboard.html", "w") as f:
        f.write(html)

    dom = Dom()
    dom.feed(html)
    assert dom.body.get("data-state") == "ok", (dom.ids.get("problem"), html[:3000])
    assert dom.srcs == [], "the page loads external resources: %s" % dom.srcs
    assert dom.ids["conns"] == str(int(total(fams, "arc_connections_active"))) == "1"
    assert dom.ids["generation"] == str(int(total(fams, "arc_config_generation"))) == "2"
    assert dom.ids["fingerprint"] == a.fingerprint
    assert dom.ids["reload"].startswith("ok (SIGHUP"), dom.ids["reload"]
    assert dom.ids["reloads"] == "1 / 0 / 0"

    def close(shown, want, tol=0.011):
        return abs(float(shown) - want) <= tol

    routes = {attrs["data-route"]: cells for attrs, cells in dom.table_rows("routes")}
    assert set(routes) == {"api", "down", "local", ""}, routes.keys()
    for name, cells in routes.items():
        assert int(cells["total"][0]) == total(fams, "arc_requests_total", route=name), name
        assert int(cells["errors"][0]) == total(fams, "arc_requests_total", route=name,
                                                **{"class": "5xx"}), name
        bks = buckets(fams, "arc_route_request_duration_seconds", route=name)
        for q, cls in ((0.5, "p50"), (0.99, "p99")):
            want = histogram_quantile(q, bks) * 1000
            assert close(cells[cls][0], want), (name, cls, cells[cls], want)
        assert float(cells["rate"][0]) > 0
    assert int(routes["api"]["total"][0]) == 13 and int(routes["api"]["errors"][0]) == 1
    assert int(routes["down"]["errors"][0]) == 2

    ups = {attrs["data-upstream"]: cells for attrs, cells in dom.table_rows("upstreams")}
    assert set(ups) == {"echo", "down"}
    for name, cells in ups.items():
        assert int(cells["total"][0]) == total(fams, "arc_upstream_request_duration_seconds_count",
                                               upstream=name)
        assert int(cells["errors"][0]) == total(fams, "arc_upstream_errors_total", upstream=name)
        bks = buckets(fams, "arc_upstream_request_duration_seconds", upstream=name)
        assert close(ups[name]["p99"][0], histogram_quantile(0.99, bks) * 1000)
        assert int(cells["pool-open"][0]) == total(fams, "arc_upstream_pool_open", upstream=name)
    assert int(ups["echo"]["total"][0]) == 13
    assert int(ups["down"]["errors"][0]) == 2

    eps = {(attrs["data-upstream"], attrs["data-endpoint"]): cells
           for attrs, cells in dom.table_rows("endpoints")}
    assert set(eps) == {("echo", up.addr), ("down", down)}
    for (u, e), cells in eps.items():
        assert int(cells["requests"][0]) == total(fams, "arc_upstream_requests_total",
                                                  upstream=u, endpoint=e)
        assert int(cells["connect-errors"][0]) == total(fams, "arc_upstream_connect_errors_total",
                                                        upstream=u, endpoint=e)
    assert eps[("echo", up.addr)]["state-cell"][1] == "ok"
    assert eps[("down", down)]["state-cell"][1] == "failing"
    c.close()
