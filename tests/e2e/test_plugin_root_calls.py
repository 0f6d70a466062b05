"""proxy_http_call from a root context through the real binary
(examples/plugins/c/rootcall.c): proxy_on_tick calls an upstream and the
answer comes back as proxy_on_http_call_response(root_context_id, …) on the
same instance, with its headers (map type 6) and body (buffer type 4)
readable; a call past its timeout and one to a failing upstream are
reported with 0 headers; the per-instance bound (max_root_calls) refuses
calls beyond it; an answer arriving after a reload swapped the config is
dropped and logged, never delivered to the new instance (and nothing
crashes: the ASan build runs this too)."""
import os
import socket
import time

import pytest

from arcproc import make_config, route_conf, upstream_conf, wait_for
from test_reload import reload, rewrite
from upstreams import response_bytes

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "plugins")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("plugin-root-cache")
    os.chmod(d, 0o700)
    return str(d)


def keys_handler(req):
    """GET /keys: a short body; /slow?s=N answers after N seconds."""
    if req.path == "/slow":
        req.conn.server.stopping.wait(float(req.params.get("s", "3")))
    with req.conn.server.lock:
        n = sum(1 for _, _, t, _ in req.conn.server.requests if t.startswith(req.path))
    req.conn.send(response_bytes(200, [("X-Upstream", "keys")], b"key-%d" % n))
    return True


def dead_addr():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    addr = "127.0.0.1:%d" % s.getsockname()[1]
    s.close()
    return addr


def conf(app, keys, cache_dir, plugins):
    """plugins: (name, config, extra keys); route /NAME/… uses plugin NAME."""
    wasm, routes = [], []
    for name, config, extra in plugins:
        p = {"name": name, "file": os.path.join(FIX, "c_rootcall.wasm"), "config": config}
        p.update(extra)
        wasm.append(p)
        r = route_conf(name, "/%s/{*rest}" % name, upstream="app")
        r["plugins"] = [{"name": name}]
        routes.append(r)
    ups = [upstream_conf("app", app.addr), upstream_conf("keys", keys.addr),
           upstream_conf("gone", dead_addr(), timeouts={"connect": "1s"})]
    return make_config(ups, routes=routes, workers=1,
                       extra={"plugins": {"cache_dir": cache_dir, "wasm": wasm}})


def stat(a, name):
    r = a.client(timeout=30).request("GET", "/%s/x" % name, headers=[("X-Root-Stat", "1")])
    assert r.status == 200
    return dict((k.lower()[len("x-root-"):], v) for k, v in r.headers.items
                if k.lower().startswith("x-root-"))


def test_tick_calls_an_upstream_and_the_root_gets_the_answer(arc, servers, cache_dir):
    app = servers.http(name="app")
    keys = servers.http(handler=keys_handler, name="keys")
    a = arc(conf(app, keys, cache_dir, [("k", "keys /keys 50 5000", {})]))
    assert wait_for(lambda: int(stat(a, "k").get("answers", "0")) >= 3, timeout=30), stat(a, "k")
    s = stat(a, "k")
    assert s["status"] == "200" and s["upstream"] == "keys", s
    assert s["body"].startswith("key-"), s
    assert s["root"] == "1" and s["tokens"] == "ok", s
    assert "failures" not in s and "refused" not in s, s
    assert s["maxpending"] == "1"
    # the calls reached the upstream as GET /keys with the :authority asked
    assert [t for t in keys.targets() if t == "/keys"]


@pytest.mark.parametrize("name,config", [
    ("t", "keys /slow?s=5 50 300"),     # the call's timeout (300 ms) passes first
    ("d", "gone /x 50 3000"),           # the upstream refuses connections
])
def test_timeout_and_failing_upstream_come_back_with_no_headers(arc, servers, cache_dir, name,
                                                                config):
    app = servers.http(name="app")
    keys = servers.http(handler=keys_handler, name="keys")
    a = arc(conf(app, keys, cache_dir, [(name, config, {})]))
    assert wait_for(lambda: int(stat(a, name).get("failures", "0")) >= 1, timeout=30)
    s = stat(a, name)
    assert s["status"] == "failed" and s["root"] == "1" and s["tokens"] == "ok", s
    assert "body" not in s and "refused" not in s, s


def test_outstanding_root_calls_are_bounded_per_instance(arc, servers, cache_dir):
    """Five calls per tick, max_root_calls 2: two go out, three are
    refused with BadArgument (2); never more than two outstanding."""
    app = servers.http(name="app")
    keys = servers.http(handler=keys_handler, name="keys")
    a = arc(conf(app, keys, cache_dir, [("b", "keys /slow?s=0.5 50 5000 5",
                                         {"max_root_calls": 2})]))
    assert wait_for(lambda: int(stat(a, "b").get("answers", "0")) >= 4, timeout=30)
    s = stat(a, "b")
    assert int(s["refused"]) >= 6 and s["rc"] == "2", s
    assert s["maxpending"] == "2", s
    assert s["status"] == "200" and s["tokens"] == "ok", s


def test_bad_max_root_calls_is_a_config_error_at_its_position(arc_bin, tmp_path, cache_dir):
    p = tmp_path / "bad.yaml"
    p.write_text("""listeners: [{name: http, kind: http, bind: "127.0.0.1:0"}]
plugins:
  cache_dir: %s
  wasm:
    - name: r
      file: %s
      max_root_calls: 0
routes: []
""" % (cache_dir, os.path.join(FIX, "c_rootcall.wasm")))
    r = arc_bin.run(["check", "-c", str(p)])
    assert r.returncode != 0
    assert "bad.yaml:7:" in r.stderr and "max_root_calls" in r.stderr, r.stderr


def test_reload_while_a_root_call_is_outstanding(arc, servers, cache_dir):
    """The old config's instance made a call; a reload swaps the config
    before the answer: the answer is dropped (logged), the new instance
    makes and gets its own calls."""
    app = servers.http(name="app")
    keys = servers.http(handler=keys_handler, name="keys")
    c1 = conf(app, keys, cache_dir, [("r", "keys /slow?s=3 50 10000", {})])
    a = arc(c1)
    assert wait_for(lambda: "/slow?s=3" in keys.targets(), timeout=30)
    c2 = conf(app, keys, cache_dir, [("r", "keys /keys 50 10000", {})])
    rewrite(a, c2)
    reload(a)
    assert wait_for(lambda: "the worker runs a newer configuration" in a.stderr_text(),
                    timeout=30), a.stderr_tail(20)
    assert "plugin 'r': the answer to proxy_http_call" in a.stderr_text()
    assert wait_for(lambda: stat(a, "r").get("status") == "200", timeout=30), stat(a, "r")
    s = stat(a, "r")
    assert s["body"].startswith("key-") and s["tokens"] == "ok", s
    assert a.alive()


def test_a_trap_discards_the_instance_with_its_calls(arc, servers, cache_dir):
    """The instance traps while its root call is outstanding (fail_open:
    the request goes on): the answer is dropped (logged), never delivered
    to the rebuilt instance, which makes its own calls from its ticks."""
    app = servers.http(name="app")
    keys = servers.http(handler=keys_handler, name="keys")
    a = arc(conf(app, keys, cache_dir, [("x", "keys /slow?s=2 50 10000",
                                         {"on_error": "fail_open"})]))
    assert wait_for(lambda: "/slow?s=2" in keys.targets(), timeout=30)
    r = a.client(timeout=30).request("GET", "/x/t", headers=[("X-Root-Trap", "1")])
    assert r.status == 200
    assert wait_for(lambda: "was dropped: the instance was discarded since" in a.stderr_text(),
                    timeout=30), a.stderr_tail(20)
    assert wait_for(lambda: stat(a, "x").get("status") == "200", timeout=30), stat(a, "x")
    s = stat(a, "x")
    # (an answer of the old instance would carry a token the new one never gave)
    assert s["tokens"] == "ok" and int(s["answers"]) >= 1 and s["root"] == "1", s
