"""A reload that names a plugin module missing from the compile cache
compiles it off the control thread (SIGHUP, a file change, the API, whose
request answers with the outcome once the compile is done; each compiler
run is bounded by plugins.compile_timeout): the admin endpoints keep answering
while it compiles, the reload applies once it is done, a second reload
during the compile waits for it (the newest config wins, the module is
compiled once), and a module that does not compile fails the reload at
its position while the running config keeps serving; a shutdown during
the compile joins it and exits cleanly; a change of the config file
compiles in the background the same way.

The C compiler is wrapped (ARC_PLUGIN_CC) by a script that sleeps before
compiling, so the compile surely takes longer than a /metrics answer may,
and that counts its runs."""
import json
import os
import re
import signal
import time

from arcproc import make_config, metric, route_conf, upstream_conf, wait_for
from test_reload import reload, rewrite

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "plugins")
COMPILE_S = 4.0         # the wrapper's sleep
POLL_MAX_S = 0.5        # a /metrics answer while compiling


def conf(up, cache, plugins=None):
    r = route_conf("r", "/{*rest}", upstream="app")
    extra = {"plugins": {"cache_dir": cache, "wasm": plugins}} if plugins else None
    if plugins:
        r["plugins"] = [{"name": p["name"]} for p in plugins]
    return make_config([upstream_conf("app", up.addr)], routes=[r], workers=1, extra=extra)


def echoed(resp):
    assert resp.status == 200, resp.status
    return dict((k.lower(), v) for k, v in json.loads(resp.body)["headers"])


def reloads(a, result):
    return metric(a.metrics()[0], "arc_config_reloads_total", result=result) or 0


def test_reload_compiles_off_the_control_thread(arc, servers, tmp_path):
    up = servers.http(name="app")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    count = tmp_path / "cc-runs"
    cc = tmp_path / "slow-cc"
    cc.write_text("#!/bin/sh\necho run >> %s\nsleep %s\nexec cc \"$@\"\n" % (count, COMPILE_S))
    cc.chmod(0o755)
    a = arc(conf(up, str(cache)), env={"ARC_PLUGIN_CC": str(cc)})
    c = a.client()
    r = c.request("GET", "/x")
    assert r.status == 200
    ok0 = reloads(a, "ok")

    def filt(config):
        return [{"name": "f", "file": os.path.join(FIX, "c_headers.wasm"), "config": config}]

    rewrite(a, conf(up, str(cache), filt("one")))
    t0 = time.monotonic()
    a.signal(signal.SIGHUP)
    assert wait_for(lambda: "compiling 1 plugin module" in a.stderr_text(), 10), a.stderr_tail(20)
    # a second reload while compiling: waits, and its (newest) config wins
    rewrite(a, conf(up, str(cache), filt("two")))
    a.signal(signal.SIGHUP)
    assert wait_for(lambda: "waits for the plugin compile running" in a.stderr_text(), 10), \
        a.stderr_tail(20)
    slow, polls = [], 0
    while True:
        s = time.monotonic()
        m = a.metrics()[0]              # (times out after 5 s)
        d = time.monotonic() - s
        polls += 1
        if d > POLL_MAX_S:
            slow.append(round(d, 2))
        if (metric(m, "arc_config_reloads_total", result="ok") or 0) > ok0:
            break
        assert time.monotonic() - t0 < 120, a.stderr_tail(20)
        time.sleep(0.05)
    took = time.monotonic() - t0
    # the compile really ran while we polled (the wrapper sleeps COMPILE_S)
    assert not slow, "GET /metrics stalled while compiling: %s" % slow
    assert took >= COMPILE_S * 0.9 and polls >= 10, (took, polls)
    assert reloads(a, "ok") == ok0 + 1
    assert count.read_text().count("run") == 1      # compiled once
    # (the worker adopts the new snapshot at the top of its loop)
    assert wait_for(lambda: echoed(c.request("GET", "/x")).get("x-c-filter") == "two", 10), \
        (echoed(c.request("GET", "/x")), a.stderr_tail(20))

    # a module that does not compile: the reload fails at its position,
    # the running plugin keeps serving
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"\0asm\x01\0\0\0garbage")
    rewrite(a, conf(up, str(cache), [{"name": "f", "file": str(junk)}]))
    reload(a, result="error", timeout=60)
    assert re.search(r"\.yaml:\d+:\d+: error: plugins\.wasm 'f': wasm2c failed",
                     a.stderr_text()), a.stderr_tail(20)
    assert "reload (SIGHUP) failed" in a.stderr_text()
    assert reloads(a, "ok") == ok0 + 1
    assert echoed(c.request("GET", "/x")).get("x-c-filter") == "two"


def test_shutdown_while_compiling_exits_cleanly(arc, servers, tmp_path):
    up = servers.http(name="app")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    cc = tmp_path / "slow-cc"
    cc.write_text("#!/bin/sh\nsleep 2\nexec cc \"$@\"\n")
    cc.chmod(0o755)
    a = arc(conf(up, str(cache)), env={"ARC_PLUGIN_CC": str(cc)})
    rewrite(a, conf(up, str(cache), [{"name": "f", "file": os.path.join(FIX, "c_headers.wasm")}]))
    a.signal(signal.SIGHUP)
    assert wait_for(lambda: "compiling 1 plugin module" in a.stderr_text(), 10), a.stderr_tail(20)
    a.signal(signal.SIGTERM)
    # the compile thread is joined: a clean exit (no leak or sanitizer report)
    # (the teardown checks the sanitizer reports)
    a.expect_exited = True
    assert a.wait_exit(60) == 0, a.stderr_tail(20)


def test_file_change_reload_compiles_in_the_background(arc, servers, tmp_path):
    up = servers.http(name="app")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    cc = tmp_path / "slow-cc"
    cc.write_text("#!/bin/sh\nsleep 2\nexec cc \"$@\"\n")
    cc.chmod(0o755)
    a = arc(conf(up, str(cache)), env={"ARC_PLUGIN_CC": str(cc)})
    ok0 = reloads(a, "ok")
    rewrite(a, conf(up, str(cache), [{"name": "f", "file": os.path.join(FIX, "c_headers.wasm"),
                                      "config": "file"}]))
    assert wait_for(lambda: "reload (file change): compiling 1 plugin module" in a.stderr_text(),
                    20), a.stderr_tail(20)
    assert wait_for(lambda: reloads(a, "ok") > ok0, 60), a.stderr_tail(20)
    c = a.client()
    assert wait_for(lambda: echoed(c.request("GET", "/x")).get("x-c-filter") == "file", 10), \
        a.stderr_tail(20)


def slow_cc(tmp_path, sleep_s, count=None):
    cc = tmp_path / "slow-cc"
    log = "echo run >> %s\n" % count if count else ""
    cc.write_text("#!/bin/sh\n%ssleep %s\nexec cc \"$@\"\n" % (log, sleep_s))
    cc.chmod(0o755)
    return str(cc)


def api_conf(up, cache, plugins=None, **plugins_kw):
    c = conf(up, cache, plugins)
    c["control_plane"] = {"enabled": True, "bind": "127.0.0.1:0"}
    if plugins_kw:
        c.setdefault("plugins", {"cache_dir": cache}).update(plugins_kw)
    return c


def in_thread(fn):
    import threading
    out = []

    def run():
        try:
            out.append(fn())
        except Exception as e:          # reported by the test's assertion
            out.append(e)
    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_api_reload_and_apply_compile_off_the_control_thread(arc, servers, tmp_path):
    """POST /v1/reload and POST /v1/config naming a module missing from the
    cache: the compile runs on a thread while the admin endpoints keep
    answering; the API request answers once it is done, with the reload's
    outcome (200 applied; 400 with the error at the module's position when
    it does not compile)."""
    from test_control_api import call, ctl_port
    up = servers.http(name="app")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    count = tmp_path / "cc-runs"
    a = arc(api_conf(up, str(cache)), env={"ARC_PLUGIN_CC": slow_cc(tmp_path, COMPILE_S, count)})
    port = ctl_port(a)
    ok0 = reloads(a, "ok")
    rewrite(a, api_conf(up, str(cache), [{"name": "f", "file": os.path.join(FIX, "c_headers.wasm"),
                                          "config": "api"}]))
    t0 = time.monotonic()
    t, out = in_thread(lambda: call(port, "POST", "/v1/reload", timeout=120))
    assert wait_for(lambda: "API POST /v1/reload from" in a.stderr_text() and
                    "compiling 1 plugin module" in a.stderr_text(), 10), a.stderr_tail(20)
    slow, polls = [], 0
    while not out:
        s = time.monotonic()
        a.metrics()
        call(port, "GET", "/v1/status")
        d = time.monotonic() - s
        polls += 1
        if d > 2 * POLL_MAX_S:
            slow.append(round(d, 2))
        assert time.monotonic() - t0 < 120, a.stderr_tail(20)
        time.sleep(0.05)
    t.join(10)
    r = out[0]
    assert r.status == 200 and r.json()["result"] == "ok", r
    assert time.monotonic() - t0 >= COMPILE_S * 0.9 and polls >= 5, polls
    assert not slow, "the admin endpoints stalled while compiling: %s" % slow
    assert reloads(a, "ok") == ok0 + 1
    c = a.client()
    assert wait_for(lambda: echoed(c.request("GET", "/x")).get("x-c-filter") == "api", 10)

    # POST /v1/config with a new module (another file: not cached)
    other = tmp_path / "other.wasm"
    with open(os.path.join(FIX, "c_headers.wasm"), "rb") as f:
        other.write_bytes(f.read() + b"\x00\x05\x04note")     # (a custom section)
    body = json.dumps(api_conf(up, str(cache), [{"name": "f", "file": str(other),
                                                 "config": "posted"}]))
    r = call(port, "POST", "/v1/config", body=body, headers={"Content-Type": "application/json"},
             timeout=120)
    assert r.status == 200 and r.json()["result"] == "ok", r
    assert wait_for(lambda: echoed(c.request("GET", "/x")).get("x-c-filter") == "posted", 10)
    assert "API POST /v1/config from" in a.stderr_text()
    assert count.read_text().count("run") == 2      # each module compiled once

    # a module that does not compile: 400 with its position, nothing applied
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"\0asm\x01\0\0\0garbage")
    body = json.dumps(api_conf(up, str(cache), [{"name": "f", "file": str(junk)}]))
    r = call(port, "POST", "/v1/config/validate", body=body,
             headers={"Content-Type": "application/json"}, timeout=120)
    assert r.status == 400 and "wasm2c failed" in json.dumps(r.json()["errors"]), r
    r = call(port, "POST", "/v1/config", body=body, headers={"Content-Type": "application/json"},
             timeout=120)
    assert r.status == 400 and r.json()["result"] == "error", r
    assert "wasm2c failed" in json.dumps(r.json()["errors"]), r
    assert echoed(c.request("GET", "/x")).get("x-c-filter") == "posted"


def test_a_hung_compiler_is_killed_at_compile_timeout(arc, servers, tmp_path):
    """plugins.compile_timeout bounds each compiler run: a compiler that
    hangs is killed and the reload fails with that error (the API answers
    400); a shutdown during a hung compile does not wait for it."""
    from test_control_api import call, ctl_port
    up = servers.http(name="app")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    a = arc(api_conf(up, str(cache)), env={"ARC_PLUGIN_CC": slow_cc(tmp_path, 600)})
    port = ctl_port(a)
    rewrite(a, api_conf(up, str(cache), [{"name": "f", "file": os.path.join(FIX, "c_headers.wasm")}],
                        compile_timeout="2s"))
    t0 = time.monotonic()
    r = call(port, "POST", "/v1/reload", timeout=120)
    assert r.status == 400, r
    assert "did not finish within 2000 ms (plugins.compile_timeout): killed" in \
        json.dumps(r.json()["errors"]), r
    assert time.monotonic() - t0 < 60
    # SIGHUP with the hung compiler again, then SIGTERM during it: the
    # compiler is killed, the process exits promptly and cleanly
    rewrite(a, api_conf(up, str(cache), [{"name": "f", "file": os.path.join(FIX, "c_headers.wasm")}],
                        compile_timeout="1h"))
    a.signal(signal.SIGHUP)
    assert wait_for(lambda: "reload (SIGHUP): compiling 1 plugin module" in a.stderr_text(), 10), \
        a.stderr_tail(20)
    time.sleep(0.5)
    t0 = time.monotonic()
    a.signal(signal.SIGTERM)
    a.expect_exited = True
    assert a.wait_exit(60) == 0, a.stderr_tail(20)
    assert time.monotonic() - t0 < 30


def test_etcd_value_compiles_in_the_background(arc, servers, tmp_path):
    """A new etcd value naming a module missing from the cache: compiled on
    a thread (the admin endpoints keep answering), then applied."""
    import shutil
    import pytest
    if not shutil.which("etcd"):
        pytest.skip("etcd-server is not installed")
    from test_etcd import Etcd
    e = Etcd(tmp_path)
    e.start()
    try:
        up = servers.http(name="app")
        cache = tmp_path / "cache"
        cache.mkdir(mode=0o700)
        cfg = api_conf(up, str(cache))
        cfg["control_plane"]["config_source"] = {"etcd": {"endpoints": [e.url],
                                                          "prefix": "/arc/"}}
        a = arc(cfg, env={"ARC_PLUGIN_CC": slow_cc(tmp_path, 2)})
        assert wait_for(lambda: "key /arc/config not set" in a.stderr_text(), 20), \
            a.stderr_tail(10)
        new = api_conf(up, str(cache), [{"name": "f", "file": os.path.join(FIX, "c_headers.wasm"),
                                         "config": "etcd"}])
        new["control_plane"] = cfg["control_plane"]
        e.put("/arc/config", json.dumps(new))
        assert wait_for(lambda: "etcd value (etcd): compiling 1 plugin module" in a.stderr_text(),
                        20), a.stderr_tail(20)
        s = time.monotonic()
        a.metrics()
        assert time.monotonic() - s < 2 * POLL_MAX_S
        c = a.client()
        assert wait_for(lambda: echoed(c.request("GET", "/x")).get("x-c-filter") == "etcd", 60), \
            a.stderr_tail(20)
        assert "reloaded (etcd)" in a.stderr_text()
    finally:
        e.stop()


def test_compile_timeout_is_checked_at_its_position(arc_bin, servers, tmp_path):
    from arcproc import to_yaml
    up = servers.http(name="app")
    for bad in ("10ms", "2h", 5):
        c = conf(up, str(tmp_path))
        c["plugins"] = {"compile_timeout": bad}
        p = tmp_path / "c.yaml"
        p.write_text(to_yaml(c))
        r = arc_bin.run(["check", "-c", str(p)])
        assert r.returncode == 1, r.stdout
        assert re.search(r"c\.yaml:\d+:\d+: error: plugins\.compile_timeout", r.stderr), r.stderr
    c["plugins"] = {"compile_timeout": "30s"}
    p.write_text(to_yaml(c))
    assert arc_bin.run(["check", "-c", str(p)]).returncode == 0


def test_api_request_waiting_for_a_compile_gets_503_on_drain(arc, servers, tmp_path):
    """A drain answers an API request that waits for a plugin compile
    (503, nothing applied); the compile is killed at exit."""
    from test_control_api import call, ctl_port
    up = servers.http(name="app")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    a = arc(api_conf(up, str(cache)), env={"ARC_PLUGIN_CC": slow_cc(tmp_path, 600)})
    port = ctl_port(a)
    rewrite(a, api_conf(up, str(cache), [{"name": "f", "file": os.path.join(FIX, "c_headers.wasm")}]))
    t, out = in_thread(lambda: call(port, "POST", "/v1/reload", timeout=120))
    assert wait_for(lambda: "compiling 1 plugin module" in a.stderr_text(), 10), a.stderr_tail(20)
    t0 = time.monotonic()
    a.signal(signal.SIGTERM)
    t.join(60)
    assert out and not isinstance(out[0], Exception) and out[0].status == 503, out
    a.expect_exited = True
    assert a.wait_exit(60) == 0, a.stderr_tail(20)
    assert time.monotonic() - t0 < 30
