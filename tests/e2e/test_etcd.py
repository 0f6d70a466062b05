"""The etcd config source (control_plane.config_source.etcd) against a real
etcd (Debian's etcd-server, started here on loopback ports in a temp dir):
`arc config push` validates a file and stores its canonical JSON; a running
Arc reads the key at start and applies every change the watch brings (a
fleet of two nodes follows one push); a bad value is refused and the
running config stays; a restart-only change is refused naming the field;
etcd going away costs nothing (the config stays, /v1/status says why) and
its return is picked up; SIGHUP re-applies the etcd value, not the file."""
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from arcproc import make_config, metric, route_conf, to_yaml, wait_for

ETCD = shutil.which("etcd")
pytestmark = pytest.mark.skipif(ETCD is None, reason="etcd-server is not installed "
                                "(scripts/install-deps.sh installs it)")

CTL_RE = re.compile(r"arc: control plane listening addr=(\S+):(\d+) auth=(\S+)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]




class Etcd:
    def __init__(self, tmp_path):
        self.dir = str(tmp_path / "etcd")
        self.client = free_port()
        self.peer = free_port()
        self.proc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.client

    def start(self):
        self.log = open(os.path.join(os.path.dirname(self.dir), "etcd.log"), "ab")
        self.proc = subprocess.Popen(
            [ETCD, "--name", "t", "--data-dir", self.dir,
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", "http://127.0.0.1:%d" % self.peer,
             "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % self.peer,
             "--initial-cluster", "t=http://127.0.0.1:%d" % self.peer],
            stdout=self.log, stderr=self.log)
        assert wait_for(self._ready, 20), "etcd did not start"

    def _ready(self):
        try:
            self.call("/v3/kv/range", {"key": b64("x")})
            return True
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def call(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def put(self, key, value):
        return self.call("/v3/kv/put", {"key": b64(key), "value": b64(value)})

    def get(self, key):
        kvs = self.call("/v3/kv/range", {"key": b64(key)}).get("kvs")
        return base64.b64decode(kvs[0].get("value", "")).decode() if kvs else None


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


@pytest.fixture
def etcd(tmp_path):
    e = Etcd(tmp_path)
    e.start()
    yield e
    e.stop()


def node_config(etcd, body, prefix="/arc/", extra_routes=()):
    routes = [route_conf("probe", "/probe", respond={"status": 200, "body": body})]
    routes += list(extra_routes)
    cfg = make_config([], routes=routes, workers=1)
    cfg["control_plane"] = {"enabled": True, "bind": "127.0.0.1:0",
                            "config_source": {"etcd": {"endpoints": [etcd.url], "prefix": prefix}}}
    return cfg


def probe(a):
    try:
        r = a.client(timeout=3).request("GET", "/probe")
    except OSError:
        return None
    return r.body.decode() if r.status == 200 else None


def status(a):
    port = int(CTL_RE.search(a.stderr_text()).group(2))
    with urllib.request.urlopen("http://127.0.0.1:%d/v1/status" % port, timeout=5) as r:
        return json.loads(r.read())


def push(arc_bin, tmp_path, cfg, name="push.yaml", extra=()):
    p = tmp_path / name
    p.write_text(to_yaml(cfg))
    return arc_bin.run(["config", "push", "-c", str(p)] + list(extra))


def test_push_stores_the_canonical_config_and_refuses_a_bad_one(arc_bin, tmp_path, etcd):
    cfg = node_config(etcd, "v1")
    cp = push(arc_bin, tmp_path, cfg)
    assert cp.returncode == 0, cp.stderr
    m = re.search(r"pushed fingerprint=([0-9a-f]{64}) to etcd (\S+) key /arc/config revision=(\d+)",
                  cp.stdout)
    assert m, cp.stdout
    stored = etcd.get("/arc/config")
    check = arc_bin.run(["check", "-c", str(tmp_path / "push.yaml")])
    assert check.stdout.split()[1] == m.group(1)
    assert json.loads(stored)["routes"][0]["name"] == "probe"
    # invalid: nothing is stored, the error has its position
    bad = node_config(etcd, "v2")
    bad["routes"][0]["action"] = {"upstream": "nope"}
    cp = push(arc_bin, tmp_path, bad, "bad.yaml")
    assert cp.returncode == 1
    assert re.search(r"bad\.yaml:\d+:\d+: error: .*nope", cp.stderr), cp.stderr
    assert etcd.get("/arc/config") == stored
    # --etcd and --prefix override the file's own source
    cp = push(arc_bin, tmp_path, make_config([], routes=cfg["routes"], workers=1), "plain.yaml",
              ["--etcd", etcd.url, "--prefix", "/other/"])
    assert cp.returncode == 0, cp.stderr
    assert etcd.get("/other/config") is not None


def test_running_node_follows_etcd(arc, arc_bin, tmp_path, etcd):
    a = arc(node_config(etcd, "file"))
    assert probe(a) == "file"
    assert wait_for(lambda: status(a).get("etcd", {}).get("state") == "watching"), status(a)
    # (stderr reaches the test through a reader thread: wait for the line)
    assert wait_for(lambda: "key /arc/config not set" in a.stderr_text()), a.stderr_tail(10)
    assert push(arc_bin, tmp_path, node_config(etcd, "pushed-1")).returncode == 0
    assert wait_for(lambda: probe(a) == "pushed-1"), a.stderr_tail(10)
    assert wait_for(lambda: "reloaded (etcd)" in a.stderr_text()), a.stderr_tail(10)
    assert push(arc_bin, tmp_path, node_config(etcd, "pushed-2")).returncode == 0
    assert wait_for(lambda: probe(a) == "pushed-2"), a.stderr_tail(10)
    st = status(a)
    assert st["etcd"]["has_value"] and st["etcd"]["revision"] >= 2 and st["etcd"]["last_error"] is None
    # SIGHUP compiles the etcd value again, not the file (which says "file")
    a.signal(signal.SIGHUP)
    assert wait_for(lambda: a.stderr_text().count("reloaded (SIGHUP)") == 1), a.stderr_tail(10)
    assert probe(a) == "pushed-2"


def test_a_fleet_follows_one_push(arc, arc_bin, tmp_path, etcd):
    nodes = [arc(node_config(etcd, "file")) for _ in range(2)]
    for a in nodes:
        assert wait_for(lambda: status(a).get("etcd", {}).get("state") == "watching")
        assert metric(a.metrics()[0], "arc_config_etcd_up") == 1
    cp = push(arc_bin, tmp_path, node_config(etcd, "fleet"))
    assert cp.returncode == 0
    fp = re.search(r"fingerprint=(\w+)", cp.stdout).group(1)
    for a in nodes:
        assert wait_for(lambda: probe(a) == "fleet"), a.stderr_tail(10)
        assert status(a)["fingerprint"] == fp
    # a bad value: refused by both, both keep serving
    etcd.put("/arc/config", "{not json")
    for a in nodes:
        assert wait_for(lambda: (metric(a.metrics()[0], "arc_config_reloads_total", result="error")
                                 or 0) == 1), a.stderr_tail(10)
        assert probe(a) == "fleet" and status(a)["fingerprint"] == fp


def test_bad_values_and_restart_only_changes_are_refused(arc, arc_bin, tmp_path, etcd):
    a = arc(node_config(etcd, "file"))
    assert wait_for(lambda: status(a).get("etcd", {}).get("state") == "watching")
    etcd.put("/arc/config", '{"listeners": [], "routes": 7}')
    assert wait_for(lambda: (metric(a.metrics()[0], "arc_config_reloads_total", result="error")
                             or 0) == 1), a.stderr_tail(10)
    # (stderr is read by a thread: wait for the line, not just the counter)
    assert wait_for(lambda: "etcd:/arc/config" in a.stderr_text()), a.stderr_tail(10)
    assert probe(a) == "file"
    changed = node_config(etcd, "v2")
    changed["node"]["workers"] = 2
    assert push(arc_bin, tmp_path, changed).returncode == 0
    assert wait_for(lambda: "need a restart: node.workers" in a.stderr_text()), a.stderr_tail(10)
    assert probe(a) == "file"
    # a good one afterwards still applies
    assert push(arc_bin, tmp_path, node_config(etcd, "good")).returncode == 0
    assert wait_for(lambda: probe(a) == "good"), a.stderr_tail(10)


def test_etcd_down_and_back(arc, arc_bin, tmp_path, etcd):
    assert push(arc_bin, tmp_path, node_config(etcd, "first")).returncode == 0
    a = arc(node_config(etcd, "file"))
    assert wait_for(lambda: probe(a) == "first"), a.stderr_tail(10)
    etcd.stop()
    assert wait_for(lambda: status(a)["etcd"]["last_error"] is not None), status(a)
    assert metric(a.metrics()[0], "arc_config_etcd_up") == 0
    assert status(a)["etcd"]["state"] != "watching"
    for _ in range(5):
        assert probe(a) == "first"          # nothing changes while etcd is away
    etcd.start()
    assert push(arc_bin, tmp_path, node_config(etcd, "after")).returncode == 0
    # reconnects within the backoff (at most 10 s) and reads the new value
    assert wait_for(lambda: probe(a) == "after", 25), a.stderr_tail(10)
    assert wait_for(lambda: status(a)["etcd"]["state"] == "watching")


def test_config_source_errors(arc_bin, tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(
        "listeners: [{name: http, kind: http, bind: \"127.0.0.1:0\"}]\n"
        "control_plane:\n"
        "  config_source:\n"
        "    etcd:\n"
        "      endpoints: [\"https://127.0.0.1:2379\", \"127.0.0.1:2379\"]\n")
    cp = arc_bin.run(["check", "-c", str(p)])
    assert cp.returncode == 1
    assert "bad.yaml:5:19: error: control_plane.config_source.etcd.endpoints[0]: https endpoints" \
        in cp.stderr, cp.stderr
    assert "bad.yaml:5:45: error: control_plane.config_source.etcd.endpoints[1]: '127.0.0.1:2379' " \
           "is not an endpoint" in cp.stderr, cp.stderr
