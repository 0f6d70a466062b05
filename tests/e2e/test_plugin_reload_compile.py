"""A reload that names a plugin module missing from the compile cache
compiles it off the control thread: the admin endpoints keep answering
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
