"""proxy-wasm plugins through the real binary: a C filter and an unmodified
AssemblyScript SDK filter (@solo-io/proxy-runtime 0.1.8) add and remove
request and response headers and answer 403 locally, over HTTP/1.1 and
HTTP/2; a trapping filter answers 500 when fail_closed and is skipped when
fail_open; a filter that loops forever is stopped by its CPU budget while
the worker keeps serving; a module that does not build or load is a config
error at its position (also on reload, which keeps the running plugins);
a reload swaps a plugin's configuration.

The .wasm fixtures in tests/e2e/plugins are built from examples/plugins by
scripts/build-plugins.sh."""
import os
import shutil
import subprocess
import time

import pytest

from arcproc import make_config, metric, route_conf, to_yaml, upstream_conf, wait_for
from test_reload import reload, rewrite

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "plugins")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One compile cache for the session: modules are compiled once."""
    d = tmp_path_factory.mktemp("plugin-cache")
    os.chmod(d, 0o700)
    return str(d)


def plugin(name, fixture, **kw):
    p = {"name": name, "file": os.path.join(FIX, fixture)}
    p.update(kw)
    return p


def cfg(up, plugins, routes, cache_dir, workers=1):
    rs = []
    for name, path, pls in routes:
        r = route_conf(name, path, upstream="app")
        r["plugins"] = [{"name": p} for p in pls]
        rs.append(r)
    return make_config([upstream_conf("app", up.addr)], routes=rs, workers=workers,
                       extra={"plugins": {"cache_dir": cache_dir, "wasm": plugins}})


def echoed(resp):
    import json
    return dict((k.lower(), v) for k, v in json.loads(resp.body)["headers"])


def curl_h2(port, path, headers=()):
    args = ["curl", "-sS", "-i", "--http2-prior-knowledge", "--max-time", "30"]
    for h in headers:
        args += ["-H", h]
    r = subprocess.run(args + ["http://127.0.0.1:%d%s" % (port, path)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


@pytest.mark.parametrize("fixture,prefix,conf,extra", [
    ("c_headers.wasm", "c", "hello-c", {}),
    ("as_headers.wasm", "as", "hello-as", {"root_id": "as_headers"}),
])
def test_filter_edits_headers_and_answers_locally(arc, servers, cache_dir, fixture, prefix, conf,
                                                  extra):
    up = servers.http(name="app")
    a = arc(cfg(up, [plugin("f", fixture, config=conf, **extra)], [("r", "/{*rest}", ["f"])],
                cache_dir))
    c = a.client()
    r = c.request("GET", "/x", headers=[("X-Remove-Me", "1"), ("X-Keep", "2")])
    assert r.status == 200
    h = echoed(r)
    assert h.get("x-%s-filter" % prefix) == conf
    assert "x-remove-me" not in h and h.get("x-keep") == "2"
    assert r.headers.get("x-%s-response" % prefix) == "1"
    assert r.headers.get("server") is None          # removed by the filter
    assert r.headers.get("x-upstream") == "app"
    r = c.request("GET", "/x", headers=[("X-Deny", "yes")])
    assert r.status == 403
    assert b"denied by the %s filter" % prefix.encode() in r.body
    # the upstream never saw the denied request
    assert not [h for _, _, _, h in up.requests if "x-deny" in str(h).lower()]
    # HTTP/2 client: the same filter, the same answers
    st, hd, body = curl_h2(a.port, "/y", ["X-Remove-Me: 1"])
    assert st == 200 and hd.get("x-%s-response" % prefix) == "1"
    assert ("\"x-%s-filter\", \"%s\"" % (prefix, conf)) in body and "x-remove-me" not in body
    st, hd, body = curl_h2(a.port, "/y", ["X-Deny: yes"])
    assert st == 403 and "denied by the %s filter" % prefix in body


def test_trap_fail_closed_answers_500_and_fail_open_passes(arc, servers, cache_dir):
    up = servers.http(name="app")
    a = arc(cfg(up, [plugin("closed", "c_trap.wasm"),
                     plugin("open", "c_trap.wasm", on_error="fail_open")],
                [("rc", "/closed/{*rest}", ["closed"]), ("ro", "/open/{*rest}", ["open"])],
                cache_dir))
    c = a.client()
    for kind in ("oob", "unreachable"):
        r = c.request("GET", "/closed/x", headers=[("X-Trap", kind)])
        assert r.status == 500
        r = c.request("GET", "/open/x", headers=[("X-Trap", kind)])
        assert r.status == 200 and "x-trap-filter" not in echoed(r)
        # the instance was rebuilt: the filter works again
        r = c.request("GET", "/closed/x")
        assert r.status == 200 and echoed(r).get("x-trap-filter") == "passed"
    ms = a.metrics()[0]
    assert metric(ms, "arc_errors_total", kind="plugin_trap") == 4
    assert "plugin 'closed' failed" in a.stderr_text()


def test_infinite_loop_is_stopped_by_the_budget(arc, servers, cache_dir):
    up = servers.http(name="app")
    a = arc(cfg(up, [plugin("loop", "c_loop.wasm", budget="5ms")], [("r", "/{*rest}", ["loop"])],
                cache_dir))
    c = a.client()
    for _ in range(3):
        t0 = time.monotonic()
        r = c.request("GET", "/x", headers=[("X-Loop", "forever")])
        took = time.monotonic() - t0
        assert r.status == 500
        assert took < 15.0
        # the single worker is free again and the filter works
        r = c.request("GET", "/x")
        assert r.status == 200 and echoed(r).get("x-loop-filter") == "passed"
    assert metric(a.metrics()[0], "arc_errors_total", kind="plugin_budget") == 3


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def test_bad_module_is_a_config_error_at_its_position(arc_bin, tmp_path, cache_dir):
    notwasm = tmp_path / "junk.wasm"
    notwasm.write_bytes(b"not a module")
    # A valid module that is not proxy-wasm (no ABI version export).
    wat = tmp_path / "plain.wat"
    wat.write_text('(module (memory (export "memory") 1) (func (export "f")))')
    plain = tmp_path / "plain.wasm"
    subprocess.run(["wat2wasm", str(wat), "-o", str(plain)], check=True)
    for f, want in ((notwasm, "is not a WebAssembly module"),
                    (plain, "not a proxy-wasm 0.2.0/0.2.1 module"),
                    (tmp_path / "missing.wasm", "cannot read")):
        text = ("listeners:\n  - {name: http, kind: http, bind: \"127.0.0.1:0\"}\n"
                "plugins:\n  cache_dir: %s\n  wasm:\n    - name: bad\n      file: %s\n" % (cache_dir, f))
        p = tmp_path / "bad.yaml"
        write(p, text)
        cp = arc_bin.run(["check", "-c", str(p)])
        assert cp.returncode == 1, cp.stdout
        assert "%s:6:7: error: plugins.wasm 'bad': " % p in cp.stderr, cp.stderr
        assert want in cp.stderr, cp.stderr
    # a route naming an unknown plugin
    text = ("listeners:\n  - {name: http, kind: http, bind: \"127.0.0.1:0\"}\n"
            "routes:\n  - name: r\n    match: {path: \"/\"}\n    action: {respond: {status: 200}}\n"
            "    plugins: [{name: nope}]\n")
    write(tmp_path / "r.yaml", text)
    cp = arc_bin.run(["check", "-c", str(tmp_path / "r.yaml")])
    assert cp.returncode == 1 and "r.yaml:7:" in cp.stderr and "no plugin named 'nope'" in cp.stderr


def test_reload_swaps_a_plugin_and_keeps_it_when_the_new_one_is_broken(arc, servers, cache_dir,
                                                                        tmp_path):
    up = servers.http(name="app")
    conf = cfg(up, [plugin("f", "c_headers.wasm", config="one")], [("r", "/{*rest}", ["f"])],
               cache_dir)
    a = arc(conf)
    c = a.client()
    assert echoed(c.request("GET", "/x")).get("x-c-filter") == "one"
    # swap the module for the AssemblyScript one, with another configuration
    conf2 = cfg(up, [plugin("f", "as_headers.wasm", config="two", root_id="as_headers")],
                [("r", "/{*rest}", ["f"])], cache_dir)
    # `arc check` fills the cache first (docs/plugins.md), so the reload
    # below only loads the object (the background compile on reload is
    # tested in test_plugin_reload_compile.py).
    pre = tmp_path / "pre.yaml"
    pre.write_text(to_yaml(conf2))
    assert arc.bin.run(["check", "-c", str(pre)]).returncode == 0
    rewrite(a, conf2)
    reload(a)
    assert wait_for(lambda: echoed(a.client().request("GET", "/x")).get("x-as-filter") == "two")
    h = echoed(a.client().request("GET", "/x"))
    assert h.get("x-as-filter") == "two" and "x-c-filter" not in h
    # a broken module: the reload is refused, the running plugin stays
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"\0asm\x01\0\0\0garbage")
    conf3 = cfg(up, [plugin("f", str(junk))], [("r", "/{*rest}", ["f"])], cache_dir)
    rewrite(a, conf3)
    reload(a, result="error")
    assert "plugins.wasm 'f'" in a.stderr_text()
    h = echoed(a.client().request("GET", "/x"))
    assert h.get("x-as-filter") == "two"


def test_c_fixtures_rebuild_from_source(tmp_path):
    """The committed C fixtures are what scripts/build-plugins.sh makes
    from examples/plugins/c (the AssemblyScript one needs npm; it is
    rebuilt the same way with the pinned package-lock.json)."""
    root = os.path.dirname(os.path.dirname(HERE))
    subprocess.run([os.path.join(root, "scripts", "build-plugins.sh"), str(tmp_path)],
                   check=True, env=dict(os.environ, SKIP_AS="1"), capture_output=True)
    for name in os.listdir(tmp_path):
        with open(tmp_path / name, "rb") as a, open(os.path.join(FIX, name), "rb") as b:
            assert a.read() == b.read(), name


def h1_response_handler(req):
    """Echo, with the response fields the path asks for."""
    from upstreams import send_echo
    req.read_body()
    extra = {"/trap": [("X-Trap", "oob")], "/replace": [("X-Deny-Response", "yes")]}
    send_echo(req, extra_headers=extra.get(req.path, []))
    return True


def h2_response_handler(extra):
    def fn(st):
        st.read_body()
        st.respond(200, headers=[("content-type", "text/plain")] + extra, body=b"from h2\n")
    return fn


@pytest.mark.parametrize("proto", ["http1", "http2"])
def test_response_stage_local_answer_and_trap(arc, servers, cache_dir, proto):
    """on_response_headers with an HTTP/1.1 and an HTTP/2 upstream: a trap
    there answers 500 (fail_closed), a local answer replaces the
    upstream's response, and the connection goes on serving."""
    if proto == "http1":
        up = servers.http(handler=h1_response_handler, name="app")
        upc = upstream_conf("app", up.addr)
    else:
        from h2_upstreams import H2Server
        up = H2Server(handlers={"/trap": h2_response_handler([("x-trap", "oob")]),
                                "/replace": h2_response_handler([("x-deny-response", "yes")]),
                                "/ok": h2_response_handler([("server", "h2srv")])})
        servers.started.append(up)
        upc = upstream_conf("app", up.addr, protocol="http2")
    rs = []
    for name, path in (("t", "/trap"), ("r", "/replace"), ("o", "/ok")):
        r = route_conf(name, path, upstream="app")
        r["plugins"] = [{"name": "trap"}, {"name": "hdr"}]
        rs.append(r)
    conf = make_config([upc], routes=rs, workers=1,
                       extra={"plugins": {"cache_dir": cache_dir, "wasm": [
                           plugin("trap", "c_trap.wasm"), plugin("hdr", "c_headers.wasm")]}})
    a = arc(conf)
    c = a.client()
    for _ in range(2):
        r = c.request("GET", "/trap")
        assert r.status == 500, r.body
        r = c.request("GET", "/replace")
        assert r.status == 451 and r.body == b"replaced by the c filter\n"
        r = c.request("GET", "/ok")
        assert r.status == 200 and r.headers.get("x-c-response") == "1"
        assert r.headers.get("server") is None
    assert metric(a.metrics()[0], "arc_errors_total", kind="plugin_trap") == 2


def test_looping_filter_under_load_does_not_stall_the_worker(arc, servers, cache_dir):
    """One worker; while one connection keeps sending requests whose filter
    loops forever (each stopped at its 20 ms budget), another connection's
    requests through the same filter all succeed, none waiting more than
    a few budgets (2 s allowed: the machine is shared)."""
    import threading
    up = servers.http(name="app")
    a = arc(cfg(up, [plugin("loop", "c_loop.wasm", budget="20ms")], [("r", "/{*rest}", ["loop"])],
                cache_dir))
    stop = threading.Event()
    looped = []

    def looper():
        c = a.client()
        while not stop.is_set():
            looped.append(c.request("GET", "/x", headers=[("X-Loop", "forever")]).status)
    t = threading.Thread(target=looper)
    t.start()
    try:
        c = a.client()
        worst = 0.0
        for _ in range(40):
            t0 = time.monotonic()
            r = c.request("GET", "/y")
            worst = max(worst, time.monotonic() - t0)
            assert r.status == 200 and echoed(r).get("x-loop-filter") == "passed"
    finally:
        stop.set()
        t.join(30)
    assert looped and set(looped) == {500}
    assert worst < 2.0, worst


def deep_recursion_wat(n_locals=3000):
    """A proxy-wasm module whose request callback recurses without end
    through a function with many live i64 locals (large native frames)."""
    locs = " ".join("(local $l%d i64)" % i for i in range(n_locals))
    sets = "\n".join("(local.set $l%d (i64.load (i32.and (i32.add (local.get $n) (i32.const %d)) "
                     "(i32.const 0x7ff8))))" % (i, i) for i in range(n_locals))
    sums = "\n".join("(local.set $acc (i64.xor (local.get $acc) (local.get $l%d)))" % i
                     for i in range(n_locals))
    return """(module
 (memory (export "memory") 1)
 (func (export "proxy_abi_version_0_2_1"))
 (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
 (func (export "proxy_on_context_create") (param i32 i32))
 (func $f (param $n i32) (result i64) (local $acc i64) %s
  %s
  (local.set $acc (call $f (i32.add (local.get $n) (i32.const 1))))
  %s
  (local.get $acc))
 (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
  (drop (call $f (i32.const 0))) (i32.const 0)))
""" % (locs, sets, sums)


def test_unbounded_recursion_is_a_contained_trap(arc, servers, cache_dir, tmp_path):
    """Stack exhaustion (depth, or native frames past 1 MiB) is a trap like
    any other: 500 (fail_closed), and the worker goes on."""
    wat = tmp_path / "deep.wat"
    wat.write_text(deep_recursion_wat())
    wasm = tmp_path / "deep.wasm"
    subprocess.run(["wat2wasm", str(wat), "-o", str(wasm)], check=True)
    # Compiled ahead (its C is large: on a loaded machine compiling at
    # start-up can take longer than the ready-line wait).
    cp = arc.bin.run(["plugin", "build", "--cache-dir", cache_dir, str(wasm)], timeout=600)
    assert cp.returncode == 0, cp.stderr
    up = servers.http(name="app")
    conf = cfg(up, [plugin("deep", str(wasm), budget="1s"), plugin("c", "c_headers.wasm")],
               [("d", "/deep", ["deep"]), ("c", "/c", ["c"])], cache_dir)
    a = arc(conf)
    c = a.client()
    for _ in range(3):
        assert c.request("GET", "/deep").status == 500
        r = c.request("GET", "/c")
        assert r.status == 200 and echoed(r).get("x-c-filter") == ""
    assert "call stack exhausted" in a.stderr_text()


@pytest.mark.parametrize("fixture,prefix,extra", [
    ("c_headers.wasm", "c", {}),
    ("as_headers.wasm", "as", {"root_id": "as_headers"}),
])
def test_per_route_configuration(arc, servers, cache_dir, fixture, prefix, extra):
    """routes[].plugins[].config: each route's filter sees its own
    configuration (a root context per distinct config); a route without one
    sees the plugin's."""
    up = servers.http(name="app")
    rs = []
    for name, path, conf in (("a", "/a", "for-a"), ("b", "/b", {"k": "v"}), ("p", "/p", None),
                             ("a2", "/a2", "for-a")):
        r = route_conf(name, path, upstream="app")
        r["plugins"] = [{"name": "f"} if conf is None else {"name": "f", "config": conf}]
        rs.append(r)
    conf = make_config([upstream_conf("app", up.addr)], routes=rs, workers=2,
                       extra={"plugins": {"cache_dir": cache_dir, "wasm": [
                           plugin("f", fixture, config="plugin-level", pool=2, **extra)]}})
    a = arc(conf)
    c = a.client()
    want = {"/a": "for-a", "/b": '{"k":"v"}', "/p": "plugin-level", "/a2": "for-a"}
    for _ in range(3):
        for path, v in want.items():
            r = c.request("GET", path)
            assert r.status == 200 and echoed(r).get("x-%s-filter" % prefix) == v, path


def test_plugin_metrics_in_prometheus(arc, servers, cache_dir):
    """proxy_define_metric / increment / record show up in /metrics under
    the plugin's name, summed over workers."""
    up = servers.http(name="app")
    a = arc(cfg(up, [plugin("probe", "c_probe.wasm")], [("r", "/{*rest}", ["probe"])], cache_dir,
                workers=2))
    for _ in range(3):
        r = a.client().request("GET", "/m", headers=[("X-Probe", "metrics")])
        assert r.status == 200 and echoed(r).get("x-rc") == "00"
    _, text = a.admin_get("/metrics")
    assert 'arc_plugin_counter{plugin="probe",name="requests"} 3\n' in text, text
    assert 'arc_plugin_histogram_count{plugin="probe",name="sizes"} 3\n' in text
    assert "# TYPE arc_plugin_gauge gauge" in text


def test_arc_plugin_build_fills_the_cache(arc_bin, tmp_path):
    """`arc plugin build` compiles ahead of time into the cache a config
    load then uses as it is; a module that does not build is exit 1."""
    cache = tmp_path / "cache"
    cp = arc_bin.run(["plugin", "build", "--cache-dir", str(cache), os.path.join(FIX, "c_trap.wasm")],
                     timeout=120)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.startswith("ok %s/" % cache) and cp.stdout.strip().endswith(".so")
    so = cp.stdout.split()[1]
    mtime = os.stat(so).st_mtime_ns
    conf = tmp_path / "c.yaml"
    conf.write_text("listeners:\n  - {name: http, kind: http, bind: \"127.0.0.1:0\"}\n"
                    "plugins:\n  cache_dir: %s\n  wasm:\n    - {name: t, file: %s}\n"
                    % (cache, os.path.join(FIX, "c_trap.wasm")))
    assert arc_bin.run(["check", "-c", str(conf)]).returncode == 0
    assert os.stat(so).st_mtime_ns == mtime and len(os.listdir(cache)) == 1
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"nope")
    cp = arc_bin.run(["plugin", "build", "--cache-dir", str(cache), str(junk)])
    assert cp.returncode == 1 and "is not a WebAssembly module" in cp.stderr
    assert arc_bin.run(["plugin"]).returncode == 2


def test_filter_changes_the_upstream_target_and_fields(arc, servers, cache_dir):
    """:path replaced by a filter is the target the upstream gets; fields
    a filter replaced reach it once; the route matched on the original."""
    up = servers.http(name="app")
    a = arc(cfg(up, [plugin("probe", "c_probe.wasm")], [("r", "/orig/{*rest}", ["probe"])],
                cache_dir))
    c = a.client()
    r = c.request("GET", "/orig/x?y=1", headers=[("X-Probe", "path")])
    assert r.status == 200
    import json
    assert json.loads(r.body)["target"] == "/new?q=1"
    r = c.request("GET", "/orig/x", headers=[("X-Probe", "replace"), ("X-Dup", "a"), ("X-Dup", "b")])
    h = json.loads(r.body)["headers"]
    assert [v for k, v in h if k.lower() == "x-dup"] == ["one"]


def held_gauge(a):
    """The pause filter's gauge of held requests ("name" is also metric()'s
    own argument, so the series is read from the text)."""
    import re
    m = re.search(r'^arc_plugin_gauge\{plugin="pause",name="held"\} (\d+)$', a.metrics()[1], re.M)
    return int(m.group(1)) if m else 0


def h2_request_bg(port, path, headers, out):
    """curl over HTTP/2 in a thread: appends (status, headers, body)."""
    import threading

    def run():
        try:
            out.append(curl_h2(port, path, headers))
        except Exception as e:          # the assertion in the test reports it
            out.append(("error", {}, repr(e)))
    t = threading.Thread(target=run)
    t.start()
    return t


@pytest.mark.parametrize("proto", ["http1", "http2"])
def test_pause_waits_and_continues_or_answers(arc, servers, cache_dir, proto):
    """A filter returning Pause holds the request (HTTP/1.1 or HTTP/2
    client): other exchanges on the same worker go on meanwhile; a later
    request continues it through proxy_set_effective_context +
    proxy_continue_stream (with a field it added on the held request
    reaching the upstream), or answers it with proxy_send_local_response.
    "x-pause: self" (continue_stream inside its own callback) is not held."""
    import threading
    up = servers.http(name="app")
    a = arc(cfg(up, [plugin("pause", "c_pause.wasm", pause_timeout="60s")],
                [("r", "/{*rest}", ["pause"])], cache_dir))
    results = []

    def hold(path):
        if proto == "http2":
            return h2_request_bg(a.port, path, ["X-Pause: hold"], results)

        def run():
            r = a.client(timeout=90).request("GET", path, headers=[("X-Pause", "hold")])
            results.append((r.status, dict(r.headers), r.body.decode()))
        t = threading.Thread(target=run)
        t.start()
        return t

    for release, want in (("continue", 200), ("deny", 409)):
        results.clear()
        ts = [hold("/held/%d" % i) for i in range(2)]
        assert wait_for(lambda: held_gauge(a) == 2, timeout=30), held_gauge(a)
        # the worker serves others while two requests wait
        c = a.client()
        for _ in range(3):
            r = c.request("GET", "/other")
            assert r.status == 200 and "x-released" not in echoed(r)
        r = c.request("GET", "/self", headers=[("X-Pause", "self")])
        assert r.status == 200 and echoed(r).get("x-self-continued") == "1"
        assert not results
        r = c.request("GET", "/release", headers=[("X-Release", release)])
        assert r.status == 200 and echoed(r).get("x-released") == "2"
        for t in ts:
            t.join(60)
        assert [s for s, _, _ in results] == [want, want], results
        for _, _, body in results:
            if want == 200:
                assert "x-released-by" in body.lower() and "/held/" in body
            else:
                assert body == "released with an answer\n"
        assert held_gauge(a) == 0
    paths = [p for _, _, p, _ in up.requests]
    assert paths.count("/held/0") == 1 and paths.count("/held/1") == 1


@pytest.mark.parametrize("policy,want", [("fail_closed", 504), ("fail_open", 200)])
def test_pause_without_continue_times_out(arc, servers, cache_dir, policy, want):
    """A filter that never continues does not hold the exchange: after the
    plugin's pause_timeout it gets the on_error policy (504 when
    fail_closed, the request goes on when fail_open), counted as
    plugin_timeout; the filter's context still ends (the gauge drops)."""
    up = servers.http(name="app")
    a = arc(cfg(up, [plugin("pause", "c_pause.wasm", pause_timeout="300ms", on_error=policy)],
                [("r", "/{*rest}", ["pause"])], cache_dir))
    c = a.client(timeout=60)
    t0 = time.monotonic()
    r = c.request("GET", "/x", headers=[("X-Pause", "hold")])
    assert time.monotonic() - t0 >= 0.25       # (the wheel counts from its loop time)
    assert r.status == want
    if want == 200:
        assert "x-pause" in echoed(r)
    assert metric(a.metrics()[0], "arc_errors_total", kind="plugin_timeout") == 1
    assert wait_for(lambda: held_gauge(a) == 0, timeout=30)
    assert "within pause_timeout" in a.stderr_text()
    # HTTP/2 too
    st, _, _ = curl_h2(a.port, "/y", ["X-Pause: hold"])
    assert st == want


def test_paused_request_whose_client_leaves_is_forgotten(arc, servers, cache_dir):
    """The client of a paused request closes its connection: the exchange
    ends (499), the filter's context gets on_delete, the worker goes on."""
    import socket
    up = servers.http(name="app")
    a = arc(cfg(up, [plugin("pause", "c_pause.wasm", pause_timeout="60s")],
                [("r", "/{*rest}", ["pause"])], cache_dir))
    s = socket.create_connection(("127.0.0.1", a.port))
    s.sendall(b"GET /gone HTTP/1.1\r\nHost: x\r\nX-Pause: hold\r\n\r\n")
    assert wait_for(lambda: held_gauge(a) == 1, timeout=30)
    s.close()
    assert wait_for(lambda: held_gauge(a) == 0, timeout=30)
    r = a.client().request("GET", "/release", headers=[("X-Release", "continue")])
    assert r.status == 200 and echoed(r).get("x-released") == "0"
    assert not [p for _, _, p, _ in up.requests if p == "/gone"]


def test_shared_queue_enqueue_and_queue_ready(arc, servers, cache_dir):
    """proxy_register/resolve/enqueue/dequeue_shared_queue on one worker:
    items enqueued from request callbacks (HTTP/1.1 and HTTP/2) reach the
    registering root context's proxy_on_queue_ready, which drains them."""
    up = servers.http(name="app")
    a = arc(cfg(up, [plugin("queue", "c_queue.wasm")], [("r", "/{*rest}", ["queue"])], cache_dir))
    c = a.client()
    for v in ("one", "two"):
        r = c.request("GET", "/e", headers=[("X-Enqueue", v)])
        assert r.status == 200 and echoed(r).get("x-enqueue-rc") == "0"
    st, _, body = curl_h2(a.port, "/e", ["X-Enqueue: three"])
    assert st == 200 and '"x-enqueue-rc", "0"' in body
    h = echoed(c.request("GET", "/s", headers=[("X-Queue-Stat", "1")]))
    assert (h.get("x-dequeued"), h.get("x-last"), h.get("x-ready-root")) == ("3", "three", "1")
    h = echoed(c.request("GET", "/s", headers=[("X-Queue-Errors", "1")]))
    assert h.get("x-rcs") == "1,1,7"
    _, text = a.admin_get("/metrics")
    assert 'arc_plugin_counter{plugin="queue",name="dequeued"} 3\n' in text


def authcall_arc(arc, servers, cache_dir, callout_upstream="auth", **plugin_kw):
    app = servers.http(name="app")
    auth = servers.http(name="auth")
    r = route_conf("r", "/{*rest}", upstream="app")
    r["plugins"] = [{"name": "authcall"}]
    conf = make_config([upstream_conf("app", app.addr), upstream_conf("auth", auth.addr)],
                       routes=[r], workers=1,
                       extra={"plugins": {"cache_dir": cache_dir, "wasm": [
                           plugin("authcall", "c_authcall.wasm", config=callout_upstream,
                                  pause_timeout="60s", **plugin_kw)]}})
    return arc(conf), app, auth


@pytest.mark.parametrize("proto", ["http1", "http2"])
def test_http_call_auth_callout(arc, servers, cache_dir, proto):
    """The classic auth callout: the filter pauses the request and calls
    the "auth" upstream (proxy_http_call); while the slow callout runs, the
    single worker serves other exchanges; proxy_on_http_call_response
    reads the callout's status, fields and body and continues the request
    with fields added, or answers 403 (callout said no) or 503 (callout
    failed: its 5 s timeout)."""
    import threading
    a, app, auth = authcall_arc(arc, servers, cache_dir)
    results = []
    if proto == "http2":
        t = h2_request_bg(a.port, "/held", ["X-Auth: /slow?ms=1500"], results)
    else:
        def run():
            r = a.client(timeout=60).request("GET", "/held", headers=[("X-Auth", "/slow?ms=1500")])
            results.append((r.status, dict(r.headers), r.body.decode()))
        t = threading.Thread(target=run)
        t.start()
    assert wait_for(lambda: "/slow?ms=1500" in auth.targets(), timeout=30), auth.targets()
    c = a.client()
    for _ in range(3):
        r = c.request("GET", "/free")
        assert r.status == 200 and "x-auth-status" not in echoed(r)
    assert not results                  # still waiting for its callout
    t.join(60)
    assert len(results) == 1 and results[0][0] == 200, results
    body = results[0][2].lower()
    assert '"x-auth-status", "200"' in body and '"x-auth-upstream", "auth"' in body
    assert '"x-auth-body", "' in body and "/held" in body
    assert "/held" in app.targets() and "/held" not in auth.targets()
    # the callout says no: 403, the app never sees it
    r = c.request("GET", "/no", headers=[("X-Auth", "/status/401")])
    assert r.status == 403 and r.body == b"denied by the auth callout\n"
    assert "/no" not in app.targets()
    # the callout times out (5 s in the filter): 503
    t0 = time.monotonic()
    r = a.client(timeout=60).request("GET", "/late", headers=[("X-Auth", "/slow?ms=30000")])
    assert r.status == 503 and r.body == b"auth unavailable\n"
    assert time.monotonic() - t0 >= 4.5
    # callouts are not client requests in the metrics
    ms = a.metrics()[0]
    assert metric(ms, "arc_requests_total", route="proxy_http_call") is None


def test_http_call_answer_over_max_call_body_fails_the_call(arc, servers, cache_dir):
    """plugins.wasm[].max_call_body bounds the answer body a call keeps: a
    longer one fails the call (the filter answers 503), a shorter passes."""
    a, app, auth = authcall_arc(arc, servers, cache_dir, max_call_body="200b")
    c = a.client()
    r = c.request("GET", "/x", headers=[("X-Auth", "/stream?bytes=150")])
    assert r.status == 200 and echoed(r).get("x-auth-status") == "200"
    r = c.request("GET", "/y", headers=[("X-Auth", "/stream?bytes=5000")])
    assert r.status == 503 and r.body == b"auth unavailable\n"
    assert "/y" not in app.targets()


def test_http_call_to_an_unknown_upstream_is_refused(arc, servers, cache_dir):
    """proxy_http_call naming no configured upstream returns NotFound at
    once (the filter answers 503 itself)."""
    a, app, auth = authcall_arc(arc, servers, cache_dir, callout_upstream="nope")
    r = a.client().request("GET", "/x", headers=[("X-Auth", "/ok")])
    assert r.status == 503 and r.body == b"auth callout refused\n"
    assert not auth.targets() and "/x" not in app.targets()


def tick_count(a):
    import re
    m = re.search(r'^arc_plugin_counter\{plugin="tick",name="ticks"\} (\d+)$', a.metrics()[1], re.M)
    return int(m.group(1)) if m else 0


def test_ticks_run_on_every_worker_and_follow_reloads(arc, servers, cache_dir):
    """proxy_set_tick_period_milliseconds from proxy_on_configure: each
    worker's instance gets proxy_on_tick on the worker's timer wheel with no
    traffic at all; after a reload the new configuration's instances tick.
    (The old ones' timers leave the wheels before their set is freed: the
    ASan run would report a use after free otherwise.)"""
    up = servers.http(name="app")
    conf = cfg(up, [plugin("tick", "c_tick.wasm", config="20")], [("r", "/{*rest}", ["tick"])],
               cache_dir, workers=2)
    a = arc(conf)
    assert wait_for(lambda: tick_count(a) >= 10, timeout=30), tick_count(a)
    h = echoed(a.client().request("GET", "/s", headers=[("X-Tick-Stat", "1")]))
    assert int(h.get("x-ticks", "0")) >= 1 and h.get("x-tick-root") == "1"
    # a reload: a new set (its counter starts at 0) keeps ticking
    conf2 = cfg(up, [plugin("tick", "c_tick.wasm", config="25")], [("r", "/{*rest}", ["tick"])],
                cache_dir, workers=2)
    rewrite(a, conf2)
    reload(a)
    assert wait_for(lambda: tick_count(a) >= 10, timeout=30), tick_count(a)


def test_ticks_stop_with_period_zero(arc, servers, cache_dir):
    up = servers.http(name="app")
    a = arc(cfg(up, [plugin("tick", "c_tick.wasm", config="20")], [("r", "/{*rest}", ["tick"])],
                cache_dir, workers=1))
    assert wait_for(lambda: tick_count(a) >= 3, timeout=30)
    assert a.client().request("GET", "/x", headers=[("X-Tick-Period", "0")]).status == 200
    n = tick_count(a)
    time.sleep(0.5)                     # (absence of ticks: 25 periods)
    assert tick_count(a) == n
    assert a.client().request("GET", "/x", headers=[("X-Tick-Period", "20")]).status == 200
    assert wait_for(lambda: tick_count(a) >= n + 3, timeout=30)


def test_http_call_outlives_its_client_and_arc_stops_with_one_in_flight(arc, servers, cache_dir):
    """The client of a request waiting for its callout leaves: the
    exchange ends (its context is deleted) and the callout's answer, when
    it comes, is dropped; the worker goes on. A callout still in flight
    when Arc stops is abandoned cleanly (the ASan run reports no leak)."""
    import socket
    a, app, auth = authcall_arc(arc, servers, cache_dir)
    s = socket.create_connection(("127.0.0.1", a.port))
    s.sendall(b"GET /gone HTTP/1.1\r\nHost: x\r\nX-Auth: /slow?ms=800\r\n\r\n")
    assert wait_for(lambda: "/slow?ms=800" in auth.targets(), timeout=30)
    s.close()
    assert wait_for(lambda: metric(a.metrics()[0], "arc_requests_total", code="499") == 1,
                    timeout=30)
    # the callout answers after its exchange ended (800 ms): dropped
    # (the ASan run checks nothing touches the ended exchange); others go on
    time.sleep(1.0)
    c = a.client()
    for _ in range(3):
        r = c.request("GET", "/after", headers=[("X-Auth", "/ok")])
        assert r.status == 200 and echoed(r).get("x-auth-status") == "200"
    assert "/gone" not in app.targets()
    # one left in flight for the stop
    s = socket.create_connection(("127.0.0.1", a.port))
    s.sendall(b"GET /stop HTTP/1.1\r\nHost: x\r\nX-Auth: /slow?ms=20000\r\n\r\n")
    assert wait_for(lambda: "/slow?ms=20000" in auth.targets(), timeout=30)
    s.close()
    assert wait_for(lambda: metric(a.metrics()[0], "arc_requests_total", code="499") == 2,
                    timeout=30)
    # (the fixture stops Arc now, with that call still running)


def test_http_call_to_an_http2_upstream(arc, servers, cache_dir):
    """The callout goes through the HTTP/2 client code when the upstream
    speaks HTTP/2: status, fields and body reach the filter."""
    from h2_upstreams import H2Server
    app = servers.http(name="app")
    auth = H2Server(handlers={"/ok": h2_response_handler([("x-upstream", "h2auth")]),
                              "/no": lambda st: (st.read_body(), st.respond(401, body=b"no\n"))})
    servers.started.append(auth)
    r = route_conf("r", "/{*rest}", upstream="app")
    r["plugins"] = [{"name": "authcall"}]
    conf = make_config([upstream_conf("app", app.addr),
                        upstream_conf("auth", auth.addr, protocol="http2")], routes=[r], workers=1,
                       extra={"plugins": {"cache_dir": cache_dir, "wasm": [
                           plugin("authcall", "c_authcall.wasm", config="auth")]}})
    a = arc(conf)
    c = a.client()
    for _ in range(2):
        r = c.request("GET", "/x", headers=[("X-Auth", "/ok")])
        assert r.status == 200
        h = echoed(r)
        assert (h.get("x-auth-status"), h.get("x-auth-upstream"), h.get("x-auth-body")) == \
            ("200", "h2auth", str(len(b"from h2\n")))
        r = c.request("GET", "/y", headers=[("X-Auth", "/no")])
        assert r.status == 403


@pytest.mark.parametrize("proto", ["http1", "http2"])
def test_paused_request_body_is_held_and_forwarded(arc, servers, cache_dir, proto, tmp_path):
    """A request with a 256 KiB body paused at its head: the body the
    client sends meanwhile is held and reaches the upstream whole once the
    request is continued."""
    import hashlib
    import json
    import threading
    up = servers.http(name="app")
    a = arc(cfg(up, [plugin("pause", "c_pause.wasm", pause_timeout="60s")],
                [("r", "/{*rest}", ["pause"])], cache_dir))
    body = os.urandom(256 << 10)
    out = []
    if proto == "http2":
        path = "/held"
        fname = str(tmp_path / "body")
        with open(fname, "wb") as f:
            f.write(body)

        def run():
            r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", "60",
                                "-H", "X-Pause: hold", "--data-binary", "@" + fname,
                                "http://127.0.0.1:%d%s" % (a.port, path)],
                               capture_output=True, timeout=90)
            out.append(r.stdout)
    else:
        def run():
            r = a.client(timeout=60).request("POST", "/held", headers=[("X-Pause", "hold")],
                                              body=body)
            out.append(r.body)
    t = threading.Thread(target=run)
    t.start()
    assert wait_for(lambda: held_gauge(a) == 1, timeout=30)
    r = a.client().request("GET", "/release", headers=[("X-Release", "continue")])
    assert r.status == 200 and echoed(r).get("x-released") == "1"
    t.join(90)
    got = json.loads(out[0])
    assert got["body_len"] == len(body) and got["body_sha256"] == hashlib.sha256(body).hexdigest()


def held_resp_gauge(a):
    import re
    m = re.search(r'^arc_plugin_gauge\{plugin="pause",name="held_responses"\} (\d+)$',
                  a.metrics()[1], re.M)
    return int(m.group(1)) if m else 0


@pytest.mark.parametrize("proto", ["http1", "http2"])
def test_response_pause_waits_and_continues_or_answers(arc, servers, cache_dir, proto):
    """Pause from proxy_on_response_headers holds the response head (and
    the upstream's body behind it) until a later request continues it with
    proxy_continue_stream(1) (a field it added to the held response reaches
    the client, the body follows whole), or answers it with
    proxy_send_local_response instead of the upstream's response. A
    bodiless response and a body the upstream finished meanwhile wait the
    same way. Without a continue, pause_timeout gives 504 (fail_closed)."""
    import threading
    up = servers.http(name="app")
    a = arc(cfg(up, [plugin("pause", "c_pause.wasm", pause_timeout="60s"),
                     plugin("quick", "c_pause.wasm", pause_timeout="300ms")],
                [("r", "/{*rest}", ["pause"]), ("q", "/quick/{*rest}", ["quick"])], cache_dir))
    results = []

    def hold(path):
        if proto == "http2":
            return h2_request_bg(a.port, path, ["X-Pause-Response: hold"], results)

        def run():
            r = a.client(timeout=90).request("GET", path, headers=[("X-Pause-Response", "hold")])
            results.append((r.status, dict((k.lower(), v) for k, v in r.headers.items), r.body))
        t = threading.Thread(target=run)
        t.start()
        return t

    for release, want in (("continue", 200), ("deny", 409)):
        results.clear()
        ts = [hold("/chunked"), hold("/status/204"), hold("/held/x")]
        assert wait_for(lambda: held_resp_gauge(a) == 3, timeout=30), held_resp_gauge(a)
        c = a.client()
        r = c.request("GET", "/other")
        assert r.status == 200
        r = c.request("GET", "/self", headers=[("X-Pause-Response", "self")])
        assert r.status == 200 and r.headers.get("x-self-continued") == "1"
        assert not results
        r = c.request("GET", "/release", headers=[("X-Release-Response", release)])
        assert r.status == 200 and echoed(r).get("x-released-responses") == "3"
        for t in ts:
            t.join(60)
        assert all(isinstance(s, int) for s, _, _ in results), results
        assert sorted(s for s, _, _ in results) == sorted([want, want if want != 200 else 204,
                                                           want]), results
        texts = [b if isinstance(b, str) else b.decode() for _, _, b in results]
        if want == 200:                 # /chunked's whole body came after the pause
            assert [t for t in texts if t.startswith("hello chunked world") and
                    t.count("x") >= 70000], texts
        for st, h, body in results:
            if want == 200:
                assert h.get("x-released-by"), h
            else:
                assert body in (b"response released with an answer\n",
                                "response released with an answer\n")
    assert held_resp_gauge(a) == 0
    c = a.client(timeout=60)
    r = c.request("GET", "/quick/x", headers=[("X-Pause-Response", "hold")])
    assert r.status == 504
    assert metric(a.metrics()[0], "arc_errors_total", kind="plugin_timeout") >= 1


def test_route_timeout_while_a_response_head_is_paused_answers_504(arc, servers, cache_dir):
    """The route's timeout passing while a filter holds the response head:
    nothing of the response went out, so the client gets a 504 (not a
    cut), and the connection goes on."""
    up = servers.http(name="app")
    r = route_conf("r", "/{*rest}", upstream="app", timeout="500ms")
    r["plugins"] = [{"name": "pause"}]
    a = arc(make_config([upstream_conf("app", up.addr)], routes=[r], workers=1,
                        extra={"plugins": {"cache_dir": cache_dir, "wasm": [
                            plugin("pause", "c_pause.wasm", pause_timeout="60s")]}}))
    c = a.client(timeout=30)
    resp = c.request("GET", "/x", headers=[("X-Pause-Response", "hold")])
    assert resp.status == 504
    assert metric(a.metrics()[0], "arc_errors_total", kind="route_timeout") == 1
    assert wait_for(lambda: held_resp_gauge(a) == 0, timeout=30)
    resp = a.client().request("GET", "/y")
    assert resp.status == 200
