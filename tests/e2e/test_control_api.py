"""The control-plane API (control_plane.*): every endpoint answers as
docs/operations.md says (status, the running config with its ETag and 304,
long polls that park without blocking the control loop and wake on a
reload, validation with every error, application with 400/409 and what a
later SIGHUP does, routes, upstreams with connection counts); requests are
authenticated (bearer token compared in constant time, 401 with
WWW-Authenticate; without a token only loopback peers, others get 403);
bodies are limited (413); mutations are logged with their source; and the
CLI (`arc reload`, `arc status`, `arc config get`) talks to it with the
documented exit statuses."""
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from arcproc import make_config, metric, route_conf, to_yaml, upstream_conf, wait_for

CTL_RE = re.compile(r"arc: control plane listening addr=(\S+):(\d+) auth=(\S+)")
TOKEN = "test-token-0123456789abcdef"


# ----------------------------------------------------------------- helpers

def ctl_config(up_addr, cp=None, routes=None, **kw):
    cfg = make_config([upstream_conf("echo", up_addr)], routes=routes, **kw)
    c = {"enabled": True, "bind": "127.0.0.1:0"}
    c.update(cp or {})
    cfg["control_plane"] = c
    return cfg


def ctl_port(a):
    m = CTL_RE.search(a.stderr_text())
    assert m, "no 'control plane listening' line:\n" + a.stderr_tail(20)
    return int(m.group(2))


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:600])


def call(port, method, path, body=None, headers=None, token=None, host="127.0.0.1",
         source=None, timeout=10.0):
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = "Bearer " + token
    if body is not None and "Content-Type" not in h:
        h["Content-Type"] = "application/yaml"
    c = http.client.HTTPConnection(host, port, timeout=timeout,
                                   source_address=(source, 0) if source else None)
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        c.close()


def raw(port, data, timeout=10.0, host="127.0.0.1"):
    """Sends bytes, returns everything until the server closes."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            out += b
        return out
    finally:
        s.close()




def logged(a, pattern, timeout=5.0):
    """True once a line of arc's stderr matches (stderr is read by a thread)."""
    return wait_for(lambda: re.search(pattern, a.stderr_text()) is not None, timeout)


def start(arc, servers, cp=None, routes=None, **kw):
    up = servers.http(name="echo")
    a = arc(ctl_config(up.addr, cp=cp, routes=routes, **kw))
    return a, ctl_port(a), up


def new_config(a, up, **cp):
    """The running config plus one more route (a reloadable change)."""
    cfg = ctl_config(up.addr, cp=cp or None,
                     routes=[route_conf("default", "/{*rest}", upstream="echo"),
                             route_conf("added", "/added", respond={"status": 209, "body": "new"})])
    return to_yaml(cfg)


# ----------------------------------------------------------------- endpoints

def test_status(arc, servers):
    a, port, up = start(arc, servers, cp={"node_id": "edge-7"})
    r = call(port, "GET", "/v1/status")
    assert r.status == 200 and r.headers["content-type"] == "application/json", r
    s = r.json()
    assert s["node_id"] == "edge-7"
    assert s["generation"] == 1
    assert s["fingerprint"] == a.fingerprint
    assert s["workers"] == a.workers == 2
    assert 0 <= s["uptime_seconds"] < 60
    assert s["draining"] is False
    assert s["reloads"] == {"ok": 0, "error": 0, "refused": 0}
    assert s["last_reload"]["result"] == "none"
    assert s["config_source"] == a.config_path
    a.signal(signal.SIGHUP)
    assert wait_for(lambda: call(port, "GET", "/v1/status").json()["reloads"]["ok"] == 1)
    s = call(port, "GET", "/v1/status").json()
    assert s["last_reload"]["result"] == "ok" and s["last_reload"]["trigger"] == "SIGHUP"
    assert "unchanged" in s["last_reload"]["message"]
    assert s["last_reload"]["generation"] == s["generation"] == 2
    # node_id defaults to node.id
    a2, port2, _ = start(arc, servers, node={"id": "node-b"})
    assert call(port2, "GET", "/v1/status").json()["node_id"] == "node-b"


def test_config_etag_and_304(arc, servers):
    a, port, up = start(arc, servers)
    r = call(port, "GET", "/v1/config")
    assert r.status == 200, r
    fp = a.fingerprint
    assert r.headers["etag"] == '"%s"' % fp
    # the body is the canonical JSON the fingerprint hashes
    assert hashlib.sha256(r.body).hexdigest() == fp
    assert json.loads(r.body)["control_plane"]["enabled"] is True
    for inm in ('"%s"' % fp, 'W/"%s"' % fp, '"other", "%s"' % fp, "*"):
        r = call(port, "GET", "/v1/config", headers={"If-None-Match": inm})
        assert r.status == 304 and r.body == b"" and r.headers["etag"] == '"%s"' % fp, (inm, r)
    r = call(port, "GET", "/v1/config", headers={"If-None-Match": '"%s"' % ("0" * 64)})
    assert r.status == 200 and hashlib.sha256(r.body).hexdigest() == fp
    r = call(port, "HEAD", "/v1/config")
    assert r.status == 200 and r.body == b"" and int(r.headers["content-length"]) > 0


def test_longpoll(arc, servers):
    a, port, up = start(arc, servers)
    fp = a.fingerprint
    other = "0" * 64
    # a fingerprint that differs (or none): answered at once
    t0 = time.monotonic()
    r = call(port, "GET", "/v1/config/longpoll?since=%s&timeout=30s" % other)
    assert r.status == 200 and hashlib.sha256(r.body).hexdigest() == fp, r
    r = call(port, "GET", "/v1/config/longpoll")
    assert r.status == 200 and r.headers["etag"] == '"%s"' % fp
    assert time.monotonic() - t0 < 5
    # no news: 304 at the timeout
    t0 = time.monotonic()
    r = call(port, "GET", "/v1/config/longpoll?since=%s&timeout=1s" % fp)
    took = time.monotonic() - t0
    assert r.status == 304 and r.headers["etag"] == '"%s"' % fp, r
    assert 0.9 <= took < 4, took
    for q in ("since=abc", "since=%s&since=%s" % (fp, fp), "timeout=soon"):
        r = call(port, "GET", "/v1/config/longpoll?" + q)
        assert r.status == 400 and "error" in r.json(), (q, r)

    # parked polls wake on a reload, and do not block the control loop
    results = []

    def poll():
        results.append(call(port, "GET", "/v1/config/longpoll?since=%s&timeout=60s" % fp,
                            timeout=90))

    threads = [threading.Thread(target=poll) for _ in range(20)]
    for t in threads:
        t.start()
    # a client that gives up while parked is cleaned up quietly
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /v1/config/longpoll?since=%s&timeout=60s HTTP/1.1\r\nHost: x\r\n\r\n" % fp.encode())
    time.sleep(0.5)
    s.close()
    t0 = time.monotonic()
    for _ in range(5):
        assert call(port, "GET", "/v1/status").status == 200
    assert time.monotonic() - t0 < 3, "the control loop is blocked by parked long polls"
    assert not results
    r = call(port, "POST", "/v1/config", body=new_config(a, up))
    assert r.status == 200, r
    new_fp = r.json()["fingerprint"]
    t_reload = time.monotonic()
    for t in threads:
        t.join(30)
    assert len(results) == 20
    assert time.monotonic() - t_reload < 5
    for r in results:
        assert r.status == 200 and r.headers["etag"] == '"%s"' % new_fp, r
        assert hashlib.sha256(r.body).hexdigest() == new_fp
    # a SIGHUP (the file again) wakes a poll on the applied config too
    got = []
    t = threading.Thread(target=lambda: got.append(
        call(port, "GET", "/v1/config/longpoll?since=%s&timeout=60s" % new_fp, timeout=90)))
    t.start()
    time.sleep(0.3)
    a.signal(signal.SIGHUP)
    t.join(30)
    assert got and got[0].status == 200 and got[0].headers["etag"] == '"%s"' % fp, got


def test_longpoll_answered_when_draining(arc, servers):
    a, port, up = start(arc, servers)
    got = []
    t = threading.Thread(target=lambda: got.append(
        call(port, "GET", "/v1/config/longpoll?since=%s&timeout=60s" % a.fingerprint, timeout=90)))
    t.start()
    time.sleep(0.5)
    a.signal(signal.SIGTERM)
    t.join(20)
    assert got and got[0].status == 503, got
    assert a.wait_exit(20) == 0
    a.expect_exited = True


def test_validate(arc, servers, arc_bin, tmp_path):
    a, port, up = start(arc, servers)
    text = new_config(a, up)
    r = call(port, "POST", "/v1/config/validate", body=text)
    assert r.status == 200, r
    v = r.json()
    p = tmp_path / "v.yaml"
    p.write_text(text)
    cp = arc_bin.run(["check", "-c", str(p)])
    assert cp.stdout.strip() == "ok " + v["fingerprint"]
    assert v["valid"] is True and v["unchanged"] is False and v["restart_required"] == []
    # the same document as JSON has the same fingerprint
    import yaml
    doc = yaml.safe_load(text)
    r = call(port, "POST", "/v1/config/validate", body=json.dumps(doc),
             headers={"Content-Type": "application/json"})
    assert r.status == 200 and r.json()["fingerprint"] == v["fingerprint"], r
    # nothing was applied
    assert call(port, "GET", "/v1/status").json()["fingerprint"] == a.fingerprint
    assert a.client().request("GET", "/added").status != 209
    # every error, with its position
    bad = text.replace('kind: "http"', 'kind: "htp"').replace("upstream: \"echo\"", "upstream: \"nope\"")
    bad += "extra_key: 1\n"
    r = call(port, "POST", "/v1/config/validate", body=bad)
    assert r.status == 400, r
    errs = r.json()["errors"]
    assert r.json()["valid"] is False
    assert len(errs) >= 3, errs
    for e in errs:
        assert set(e) == {"file", "line", "col", "message"} and e["file"] == "<request>"
        assert e["line"] > 0
    msgs = " | ".join(e["message"] for e in errs)
    assert "htp" in msgs and "nope" in msgs and "extra_key" in msgs, msgs
    # a restart-only change is valid, and says what a POST would refuse
    r = call(port, "POST", "/v1/config/validate", body=new_config(a, up, node_id="x"))
    assert r.status == 200 and r.json()["restart_required"] == ["control_plane.node_id"], r
    # compile errors count too (an unreadable certificate)
    tls = yaml.safe_load(text)
    tls["listeners"].append({"name": "s", "kind": "https", "bind": "127.0.0.1:0",
                             "tls": {"certificates": [{"cert_pem": "/nonexistent.pem",
                                                       "key_pem": "/nonexistent.key"}]}})
    r = call(port, "POST", "/v1/config/validate", body=json.dumps(tls),
             headers={"Content-Type": "application/json"})
    assert r.status == 400 and "nonexistent" in r.body.decode(), r
    # formats by Content-Type
    r = call(port, "POST", "/v1/config/validate", body="a=1",
             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 415, r
    r = call(port, "POST", "/v1/config/validate", body="", headers={"Content-Type": "application/json"})
    assert r.status == 400 and "empty" in r.body.decode(), r


def test_validate_toml(arc, servers, arc_bin, tmp_path):
    """TOML bodies are read as TOML (skipped while this build reads no TOML)."""
    probe = tmp_path / "probe.toml"
    probe.write_text('[[listeners]]\nname = "h"\nkind = "http"\nbind = "127.0.0.1:0"\n')
    if arc_bin.run(["check", "-c", str(probe)]).returncode != 0:
        pytest.skip("this build does not read TOML configs")
    a, port, up = start(arc, servers)
    want = arc_bin.run(["check", "-c", str(probe)]).stdout.split()[1]
    r = call(port, "POST", "/v1/config/validate", body=probe.read_text(),
             headers={"Content-Type": "application/toml"})
    assert r.status == 200 and r.json()["fingerprint"] == want, r


def test_apply(arc, servers):
    a, port, up = start(arc, servers)
    c = a.client()
    assert c.request("GET", "/added").status == 200      # the catch-all route
    text = new_config(a, up)
    r = call(port, "POST", "/v1/config", body=text)
    assert r.status == 200, r
    res = r.json()
    assert res["result"] == "ok" and res["generation"] >= 2 and res["unchanged"] is False
    assert wait_for(lambda: a.client().request("GET", "/added").status == 209)
    assert hashlib.sha256(call(port, "GET", "/v1/config").body).hexdigest() == res["fingerprint"]
    st = call(port, "GET", "/v1/status").json()
    assert st["fingerprint"] == res["fingerprint"] and st["config_source"] == "<request>"
    assert st["last_reload"]["trigger"].startswith("API POST /v1/config from 127.0.0.1:")
    assert logged(a, r"arc: control: POST /v1/config from 127\.0\.0\.1:\d+: 200"), a.stderr_tail()
    assert a.wait_stderr("arc: reloaded (API POST /v1/config from 127.0.0.1:"), a.stderr_tail(20)
    ms = a.metrics()[0]
    assert metric(ms, "arc_config_reloads_total", result="ok") == 1

    # invalid: 400 with every error, nothing changes
    r = call(port, "POST", "/v1/config", body=text + "bogus: 1\nrouts: []\n")
    assert r.status == 400, r
    assert r.json()["result"] == "error" and len(r.json()["errors"]) == 2
    assert logged(a, r"control: POST /v1/config from 127\.0\.0\.1:\d+: 400")
    # restart-only fields: 409 naming them, nothing changes
    r = call(port, "POST", "/v1/config", body=new_config(a, up, auth_token=TOKEN).replace(
        "workers: 2", "workers: 3"))
    assert r.status == 409, r
    assert r.json()["restart_required"] == ["node.workers", "control_plane.auth_token"]
    assert "need a restart" in r.json()["error"]
    st = call(port, "GET", "/v1/status").json()
    assert st["fingerprint"] == res["fingerprint"]
    assert st["reloads"] == {"ok": 1, "error": 1, "refused": 1}
    assert st["last_reload"]["result"] == "refused"
    # the file on disk was not touched: a SIGHUP goes back to it
    a.signal(signal.SIGHUP)
    assert wait_for(lambda: call(port, "GET", "/v1/status").json()["fingerprint"] == a.fingerprint)
    assert wait_for(lambda: a.client().request("GET", "/added").status == 200)
    # wrong methods and paths
    r = call(port, "DELETE", "/v1/config")
    assert r.status == 405 and r.headers["allow"] == "GET, HEAD, POST"
    r = call(port, "GET", "/v1/reload")
    assert r.status == 405 and r.headers["allow"] == "POST"
    r = call(port, "POST", "/v1/status", body="")
    assert r.status == 405 and r.headers["allow"] == "GET, HEAD"
    assert call(port, "GET", "/v1/nothing").status == 404
    assert call(port, "GET", "/metrics").status == 404       # a separate listener


def test_reload_endpoint(arc, servers):
    a, port, up = start(arc, servers)
    with open(a.config_path, "w") as f:
        f.write(new_config(a, up))
    r = call(port, "POST", "/v1/reload")
    assert r.status == 200 and r.json()["result"] == "ok", r
    assert wait_for(lambda: a.client().request("GET", "/added").status == 209)
    # the file event of that write does not cause a second reload
    time.sleep(0.8)
    assert call(port, "GET", "/v1/status").json()["reloads"]["ok"] == 1
    with open(a.config_path, "a") as f:
        f.write("nonsense: [\n")
    r = call(port, "POST", "/v1/reload")
    assert r.status == 400 and r.json()["result"] == "error", r
    assert a.config_path in r.json()["message"]
    with open(a.config_path, "w") as f:
        f.write(new_config(a, up).replace("workers: 2", "workers: 1"))
    r = call(port, "POST", "/v1/reload")
    assert r.status == 409 and r.json()["result"] == "refused" and "node.workers" in r.json()["message"]
    assert logged(a, r"control: POST /v1/reload from 127\.0\.0\.1:\d+: 409")


def test_routes_and_upstreams(arc, servers):
    up = servers.http(name="echo")
    cfg = ctl_config(up.addr, routes=[
        route_conf("api", "/api/{*rest}", upstream="echo", methods=["GET", "POST"], host="a.test"),
        route_conf("moved", "/old", redirect={"status": 301, "location": "/new"}),
        route_conf("teapot", "/tea", respond={"status": 418, "body": "no"})])
    cfg["upstreams"].append(upstream_conf("capped", ["127.0.0.1:9", "127.0.0.2:9"],
                                          pool={"max_connections": 5},
                                          discovery={"type": "static", "endpoints": [
                                              {"address": "127.0.0.1:9", "weight": 3},
                                              {"address": "127.0.0.2:9"}]}))
    a = arc(cfg)
    port = ctl_port(a)
    rs = call(port, "GET", "/v1/routes").json()
    assert rs["generation"] == 1 and rs["fingerprint"] == a.fingerprint
    by = {r["name"]: r for r in rs["routes"]}
    assert [r["name"] for r in rs["routes"]] == ["api", "moved", "teapot"]
    assert by["api"]["match"] == {"path": "/api/{*rest}", "hosts": ["a.test"], "methods": ["GET", "POST"]}
    assert by["api"]["action"] == {"upstream": "echo"}
    assert by["moved"]["action"] == {"redirect": {"status": 301, "location": "/new"}}
    assert by["teapot"]["action"] == {"respond": {"status": 418}}

    c = a.client()
    for i in range(3):
        assert c.request("GET", "/api/%d" % i, host="a.test").status == 200
    assert wait_for(lambda: call(port, "GET", "/v1/upstreams").json()["upstreams"][0]
                    ["connections"]["idle"] == 1)
    us = call(port, "GET", "/v1/upstreams").json()
    by = {u["name"]: u for u in us["upstreams"]}
    e = by["echo"]
    assert e["lb"] == "peak_ewma" and e["protocol"] == "http1" and e["tls"] is False
    assert e["endpoints"] == [{"address": up.addr, "weight": 1}]
    assert e["requests"] == 3
    conns = e["connections"]
    assert conns["open"] == 1 and conns["idle"] == 1 and conns["active"] == 0, conns
    cap = by["capped"]
    assert cap["endpoints"] == [{"address": "127.0.0.1:9", "weight": 3, "open_connections": 0},
                                {"address": "127.0.0.2:9", "weight": 1, "open_connections": 0}]


# ----------------------------------------------------------------- auth

def local_non_loopback_ipv4():
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", line)
        if m:
            return m.group(1), None
    # none: give the loopback interface a non-loopback address (root only)
    addr = "198.51.100.77"
    if os.geteuid() != 0:
        return None, None
    rc = subprocess.run(["ip", "addr", "add", addr + "/32", "dev", "lo"], capture_output=True)
    if rc.returncode != 0:
        return None, None
    return addr, lambda: subprocess.run(["ip", "addr", "del", addr + "/32", "dev", "lo"],
                                        capture_output=True)


@pytest.fixture
def other_addr():
    addr, undo = local_non_loopback_ipv4()
    if not addr:
        pytest.skip("no non-loopback local address and cannot add one")
    yield addr
    if undo:
        undo()


def test_no_token_loopback_only(arc, servers, other_addr):
    a, port, up = start(arc, servers, cp={"bind": "0.0.0.0:0"})
    assert a.wait_stderr("auth=loopback-only"), a.stderr_tail(20)
    assert call(port, "GET", "/v1/status").status == 200
    # the same listener reached from a non-loopback address of this host
    for host, src in ((other_addr, other_addr), ("127.0.0.1", other_addr)):
        for method, path, body in (("GET", "/v1/status", None), ("GET", "/v1/config", None),
                                   ("POST", "/v1/config", new_config(a, up)),
                                   ("GET", "/v1/nothing", None)):
            r = call(port, method, path, body=body, host=host, source=src, token=TOKEN)
            assert r.status == 403 and "loopback" in r.json()["error"], (host, src, path, r)
    assert logged(a, r"control: POST /v1/config from %s:\d+: 403" % re.escape(other_addr))
    assert call(port, "GET", "/v1/status").json()["generation"] == 1


def test_bearer_token(arc, servers, other_addr):
    a, port, up = start(arc, servers, cp={"bind": "0.0.0.0:0", "auth_token": TOKEN})
    assert a.wait_stderr("auth=bearer-token"), a.stderr_tail(20)
    assert TOKEN not in a.stderr_text()
    for token in (None, "", TOKEN[:-1], TOKEN + "x", "X" + TOKEN[1:], TOKEN[:-1] + "X", "short"):
        r = call(port, "GET", "/v1/status", token=token)
        assert r.status == 401, (token, r)
        assert r.headers["www-authenticate"].startswith("Bearer realm=\"arc\"")
        if token:
            assert 'error="invalid_token"' in r.headers["www-authenticate"]
    r = call(port, "GET", "/v1/status", headers={"Authorization": "Basic " + TOKEN})
    assert r.status == 401
    # unknown paths are not revealed before authentication
    assert call(port, "GET", "/v1/nothing").status == 401
    r = call(port, "POST", "/v1/config", body=new_config(a, up), token="wrong-token-0123456789")
    assert r.status == 401
    assert logged(a, r"control: POST /v1/config from 127\.0\.0\.1:\d+: 401")
    assert call(port, "GET", "/v1/status", token=TOKEN).status == 200
    r = call(port, "GET", "/v1/status", headers={"Authorization": "bearer   " + TOKEN})
    assert r.status == 200
    # with a token, any peer that presents it is served
    r = call(port, "GET", "/v1/status", host=other_addr, source=other_addr, token=TOKEN)
    assert r.status == 200, r
    r = call(port, "GET", "/v1/status", host=other_addr, source=other_addr)
    assert r.status == 401


def test_token_compared_in_constant_time(arc_bin):
    """The comparison hashes both sides and compares the digests with
    CRYPTO_memcmp (unit test: tests/unit/admin/ctlproto_test.c); here: the
    binary's comparison really calls it, and nothing else compares."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn",
                          "--disassemble=arc_admin__token_eq", arc_bin.path],
                         capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("objdump cannot disassemble the binary")
    calls = re.findall(r"call\s+\S+\s+<([^>]+)>", out.stdout)
    assert any(c.startswith("CRYPTO_memcmp") for c in calls), out.stdout[-3000:]
    assert not any(re.match(r"(mem|str|strn)cmp|bcmp", c) for c in calls), calls
    whole = subprocess.run(["objdump", "-d", "--no-show-raw-insn", arc_bin.path],
                           capture_output=True, text=True).stdout
    assert re.search(r"call\s+\S+\s+<arc_admin__token_eq>", whole), \
        "nothing calls the constant-time comparison"


# ----------------------------------------------------------------- bodies

def test_body_limit(arc, servers):
    a, port, up = start(arc, servers, cp={"max_body": "2kb"})
    big = "# " + "x" * 3000 + "\n" + new_config(a, up)
    r = call(port, "POST", "/v1/config", body=big)
    assert r.status == 413 and "max_body" in r.json()["error"], r
    assert logged(a, r"control: POST /v1/config from 127\.0\.0\.1:\d+: 413")
    r = call(port, "POST", "/v1/config/validate", body=big)
    assert r.status == 413, r
    # announced too large with Expect: 100-continue: refused before the body
    out = raw(port, b"POST /v1/config/validate HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                    b"Content-Type: application/yaml\r\nExpect: 100-continue\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413 "), out
    # chunked, too large once decoded
    chunks = b"".join(b"%x\r\n%s\r\n" % (500, b"#" * 500) for _ in range(5)) + b"0\r\n\r\n"
    out = raw(port, b"POST /v1/config/validate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                    b"Content-Type: application/yaml\r\n\r\n" + chunks)
    assert out.startswith(b"HTTP/1.1 413 "), out
    # within the limit: chunked, and Expect: 100-continue
    small = new_config(a, up).encode()
    assert len(small) < 2048
    body = b"".join(b"%x\r\n%s\r\n" % (len(small[i:i + 100]), small[i:i + 100])
                    for i in range(0, len(small), 100)) + b"0\r\n\r\n"
    out = raw(port, b"POST /v1/config/validate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                    b"Content-Type: application/yaml\r\n\r\n" + body)
    assert out.startswith(b"HTTP/1.1 200 "), out
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /v1/config/validate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
              b"Content-Type: application/yaml\r\nExpect: 100-continue\r\n\r\n" % len(small))
    assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(small)
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    assert out.startswith(b"HTTP/1.1 200 "), out


def test_default_body_limit(arc, servers):
    a, port, up = start(arc, servers)
    big = "# " + "x" * (4 << 20) + "\n" + new_config(a, up)
    r = call(port, "POST", "/v1/config/validate", body=big, timeout=30)
    assert r.status == 413, r
    ok = "# " + "x" * (3 << 20) + "\n" + new_config(a, up)
    r = call(port, "POST", "/v1/config/validate", body=ok, timeout=30)
    assert r.status == 200, r


def test_malformed_requests(arc, servers):
    a, port, up = start(arc, servers)
    assert raw(port, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw(port, b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 +
               b"\r\n\r\n").startswith(b"HTTP/1.1 431 ")
    # a client that sends half a head and goes away
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /v1/sta")
    s.close()
    assert call(port, "GET", "/v1/status").status == 200


# ----------------------------------------------------------------- CLI

def test_cli(arc, servers, arc_bin, tmp_path):
    a, port, up = start(arc, servers, cp={"auth_token": TOKEN})
    addr = "127.0.0.1:%d" % port
    env = {"ARC_TOKEN": TOKEN}
    cp = arc_bin.run(["status", "--addr", addr], env=env)
    assert cp.returncode == 0, cp.stderr
    assert json.loads(cp.stdout)["fingerprint"] == a.fingerprint
    cp = arc_bin.run(["config", "get", "--addr", addr], env=env)
    assert cp.returncode == 0 and hashlib.sha256(cp.stdout.rstrip("\n").encode()).hexdigest() == a.fingerprint
    # the token from the config file given with -c
    cp = arc_bin.run(["status", "--addr", addr, "-c", a.config_path], env={"ARC_TOKEN": ""})
    assert cp.returncode == 0, cp.stderr
    # the address from the config file's control_plane.bind
    fixed = tmp_path / "cli.yaml"
    cfg = ctl_config(up.addr, cp={"bind": "0.0.0.0:%d" % port, "auth_token": TOKEN})
    fixed.write_text(to_yaml(cfg))
    cp = arc_bin.run(["status", "-c", str(fixed)], env={"ARC_TOKEN": ""})
    assert cp.returncode == 0, cp.stderr
    # wrong token: 1 with the server's message
    cp = arc_bin.run(["status", "--addr", addr], env={"ARC_TOKEN": "nope-nope-nope-nope"})
    assert cp.returncode == 1 and "401" in cp.stderr and "token" in cp.stderr, cp.stderr
    # reload: ok, then a refusal and an error, each 1 with the reason
    with open(a.config_path, "w") as f:
        f.write(new_config(a, up, auth_token=TOKEN))
    cp = arc_bin.run(["reload", "--addr", addr], env=env)
    assert cp.returncode == 0 and cp.stdout.startswith("reloaded: generation"), (cp.stdout, cp.stderr)
    assert wait_for(lambda: a.client().request("GET", "/added").status == 209)
    with open(a.config_path, "w") as f:
        f.write(new_config(a, up, auth_token=TOKEN).replace("workers: 2", "workers: 5"))
    cp = arc_bin.run(["reload", "--addr", addr], env=env)
    assert cp.returncode == 1 and "need a restart" in cp.stderr and "node.workers" in cp.stderr, cp.stderr
    with open(a.config_path, "w") as f:
        f.write(new_config(a, up, auth_token=TOKEN) + "unknown_key: 1\n")
    cp = arc_bin.run(["reload", "--addr", addr], env=env)
    assert cp.returncode == 1 and "unknown_key" in cp.stderr, cp.stderr
    assert re.search(r"arc-\d+\.yaml:\d+:\d+: error: ", cp.stderr), cp.stderr
    # usage errors: 2; no control plane to find: 1
    for args in (["status", "--addr"], ["status", "extra"], ["config"], ["config", "put"]):
        cp = arc_bin.run(args)
        assert cp.returncode == 2, (args, cp.stderr)
    plain = tmp_path / "plain.yaml"
    plain.write_text(to_yaml(make_config([upstream_conf("echo", up.addr)])))
    cp = arc_bin.run(["status", "-c", str(plain)])
    assert cp.returncode == 1 and "control_plane is not enabled" in cp.stderr
    port0 = tmp_path / "port0.yaml"
    port0.write_text(to_yaml(ctl_config(up.addr)))
    cp = arc_bin.run(["status", "-c", str(port0)])
    assert cp.returncode == 1 and "port 0" in cp.stderr
    cp = arc_bin.run(["status", "--addr", "127.0.0.1:1"])
    assert cp.returncode == 1 and "cannot connect" in cp.stderr
