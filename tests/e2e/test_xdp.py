"""The XDP layer (security.xdp) on a real interface: a veth pair between two
network namespaces this test creates (Arc in one, clients in the other,
10.201.0.0/24 only), deleted again however the test ends. Covered: a
blacklisted CIDR drops ping and TCP and a whitelist (added by a reload,
without reattaching) overrides it; a bounded SYN flood from 1,000 spoofed
sources (hand-built frames on an AF_PACKET socket) is dropped while a
legitimate client completes every request, and the SYN counters account
for exactly the packets sent; auto_block blocks a source over its
threshold and lets it back after the TTL; blocks added and removed through
the API and `arc xdp`; an interface that does not exist is reported
(/v1/status, the log) and refuses the start with required: true; config
errors name file:line:col. Skips, saying why, only where network
namespaces or XDP are not available."""
import contextlib
import ctypes
import http.client
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from arcproc import ArcProcess, ArcStartError, metric, parse_metrics, to_yaml, wait_for

CTL_RE = re.compile(r"arc: control plane listening addr=(\S+):(\d+) auth=(\S+)")
ARC_IP, CLIENT_IP, ATTACKER_IP = "10.201.0.1", "10.201.0.2", "10.201.0.3"

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
CLONE_NEWNET = 0x40000000


def sh(*args, check=True, timeout=30):
    cp = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and cp.returncode != 0:
        raise RuntimeError("%s -> %d: %s" % (" ".join(args), cp.returncode, cp.stderr.strip()))
    return cp


@contextlib.contextmanager
def netns(name):
    """Runs the body (this thread) in network namespace `name`; sockets made
    there stay in it."""
    me = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open("/var/run/netns/" + name, os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns " + name)
        yield
    finally:
        _libc.setns(me, CLONE_NEWNET)
        os.close(me)
        os.close(target)


class Net:
    """Two namespaces joined by a veth pair: arc side (10.201.0.1) and
    client side (10.201.0.2 and .3)."""

    def __init__(self):
        tag = "%d" % (os.getpid() % 100000)
        self.arc_ns, self.cli_ns = "arcxa" + tag, "arcxc" + tag
        self.arc_if, self.cli_if = "vxa" + tag, "vxc" + tag
        self.made = []

    def up(self):
        for ns in (self.arc_ns, self.cli_ns):
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
        sh("ip", "link", "add", self.arc_if, "netns", self.arc_ns, "type", "veth",
           "peer", "name", self.cli_if, "netns", self.cli_ns)
        sh("ip", "-n", self.arc_ns, "addr", "add", ARC_IP + "/24", "dev", self.arc_if)
        sh("ip", "-n", self.cli_ns, "addr", "add", CLIENT_IP + "/24", "dev", self.cli_if)
        sh("ip", "-n", self.cli_ns, "addr", "add", ATTACKER_IP + "/24", "dev", self.cli_if)
        for ns, dev in ((self.arc_ns, self.arc_if), (self.cli_ns, self.cli_if)):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        # the SYN-ACKs to spoofed sources must not wait on neighbour discovery
        sh("ip", "netns", "exec", self.arc_ns, "sysctl", "-qw", "net.ipv4.tcp_syncookies=1")
        self.arc_mac = self._mac(self.arc_ns, self.arc_if)
        self.cli_mac = self._mac(self.cli_ns, self.cli_if)
        return self

    @staticmethod
    def _mac(ns, dev):
        info = json.loads(sh("ip", "-n", ns, "-j", "link", "show", dev).stdout)
        return bytes.fromhex(info[0]["address"].replace(":", ""))

    def down(self):
        for ns in self.made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.made = []

    def ping(self, src, count=2):
        cp = sh("ip", "netns", "exec", self.cli_ns, "ping", "-n", "-c", str(count), "-i", "0.2",
                "-W", "1", "-I", src, ARC_IP, check=False)
        if cp.returncode not in (0, 1):     # 1: no answer; anything else: ping itself failed
            raise RuntimeError("ping: %d %s" % (cp.returncode, cp.stderr.strip()))
        return cp.returncode == 0


@pytest.fixture
def net():
    if os.geteuid() != 0:
        pytest.skip("XDP tests need root (network namespaces, bpf())")
    n = Net()
    try:
        n.up()
    except (RuntimeError, OSError) as e:
        n.down()
        pytest.skip("cannot create network namespaces / a veth pair here: %s" % e)
    try:
        yield n
    finally:
        n.down()


def xdp_config(net, **xdp):
    x = {"enabled": True, "interface": net.arc_if, "mode": "auto"}
    x.update(xdp)
    return {
        "node": {"workers": 2, "drain_timeout": "5s", "read_timeout": "10s"},
        "listeners": [{"name": "http", "kind": "http", "bind": ARC_IP + ":0"}],
        "observability": {"metrics_bind": "127.0.0.1:0"},
        "control_plane": {"enabled": True, "bind": "127.0.0.1:0"},
        "routes": [{"name": "ok", "match": {"path": "/{*rest}"},
                    "action": {"respond": {"status": 200, "body": "ok"}}}],
        "security": {"xdp": x},
    }


class ArcInNs:
    """arc run inside the arc namespace (`ip netns exec` execs it: the pid
    is arc's). Admin and control-plane calls are made from that namespace."""

    def __init__(self, arc_bin, tmp_path, net, config):
        self.net = net
        self.bin = arc_bin
        self.p = ArcProcess("ip", arc_bin.variant, config, tmp_path)
        self.p.args = ["netns", "exec", net.arc_ns, arc_bin.path, "run", "-c", self.p.config_path]
        self.p.start()
        try:
            self.p.wait_ready()
        except ArcStartError as e:
            self.stop()
            pytest.fail(str(e), pytrace=False)
        m = CTL_RE.search(self.p.stderr_text())
        self.ctl = "%s:%s" % (m.group(1), m.group(2))
        line = [l for l in self.p.lines if "arc: xdp:" in l]
        if not any("xdp: attached to" in l for l in line):
            why = "\n".join(line)
            self.stop()
            pytest.skip("XDP could not be attached to a veth here: " + why)

    def stop(self):
        if getattr(self, "stopped", False):
            return []
        self.stopped = True
        return self.p.stop(timeout=20.0 * self.bin.slow)

    def api(self, method, path, body=None):
        with netns(self.net.arc_ns):
            c = http.client.HTTPConnection(self.ctl, timeout=10)
            data = json.dumps(body) if body is not None else None
            c.request(method, path, body=data,
                      headers={"Content-Type": "application/json"} if data else {})
            r = c.getresponse()
            out = r.status, json.loads(r.read() or b"null")
            c.close()
        return out

    def counters(self):
        st, doc = self.api("GET", "/v1/xdp/stats")
        assert st == 200, doc
        d = dict(doc["passed"])
        d.update(doc["dropped"])
        return d

    def metrics(self):
        with netns(self.net.arc_ns):
            c = http.client.HTTPConnection("127.0.0.1", self.p.admin_port, timeout=10)
            c.request("GET", "/metrics")
            text = c.getresponse().read().decode()
            c.close()
        return parse_metrics(text)

    def cli(self, *args):
        return sh("ip", "netns", "exec", self.net.arc_ns, self.bin.path, "xdp", *args,
                  "--addr", self.ctl, check=False)


@pytest.fixture
def arc_ns(arc_bin, tmp_path, net):
    started = []

    def start(config):
        a = ArcInNs(arc_bin, tmp_path, net, config)
        started.append(a)
        return a

    start.pinned = False
    yield start
    problems = []
    for a in started:
        problems += a.stop()
    # a clean exit detaches: no XDP program is left on the interface
    if started and net.made and not start.pinned:
        link = sh("ip", "-n", net.arc_ns, "-d", "link", "show", net.arc_if, check=False).stdout
        if "prog/xdp" in link:
            problems.append("an XDP program is still attached after arc stopped:\n" + link)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def get(net, src, port, conn=None, timeout=5.0):
    """Status of GET / from `src` in the client namespace."""
    with netns(net.cli_ns):
        c = conn or http.client.HTTPConnection(ARC_IP, port, timeout=timeout,
                                               source_address=(src, 0))
        try:
            c.request("GET", "/")
            r = c.getresponse()
            r.read()
            return r.status
        finally:
            if conn is None:
                c.close()


def tcp_connects(net, src, port, timeout=1.5):
    with netns(net.cli_ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.bind((src, 0))
        s.connect((ARC_IP, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# ------------------------------------------------------------ raw frames

def _csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


def syn_frame(net, src, dport, sport):
    saddr, daddr = socket.inet_aton(src), socket.inet_aton(ARC_IP)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 12345, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = saddr + daddr + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", _csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, saddr, daddr)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return net.arc_mac + net.cli_mac + b"\x08\x00" + ip + tcp


def send_frames(net, frames):
    with netns(net.cli_ns):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    try:
        s.bind((net.cli_if, 0))
        for f in frames:
            s.send(f)
    finally:
        s.close()


# ------------------------------------------------------------ tests

def test_blacklist_drops_ping_and_tcp_and_a_reloaded_whitelist_overrides(arc_ns, net):
    a = arc_ns(xdp_config(net, blacklist=["10.201.0.0/25"]))
    port = a.p.port
    before = a.counters()
    assert not net.ping(CLIENT_IP), "ping from a blacklisted source was answered"
    assert not tcp_connects(net, CLIENT_IP, port), "TCP from a blacklisted source connected"
    after = a.counters()
    # 2 pings + at least the first SYN
    assert after["blacklist"] - before["blacklist"] >= 3, (before, after)
    ms = a.metrics()
    assert metric(ms, "arc_xdp_packets_total", action="drop", reason="blacklist") >= 3
    assert metric(ms, "arc_xdp_attached") == 1

    # reload: the whitelist is added to the running program's maps
    cfg = xdp_config(net, blacklist=["10.201.0.0/25"], whitelist=[CLIENT_IP + "/32"])
    with open(a.p.config_path, "w") as f:
        f.write(to_yaml(cfg))
    n = len(a.p.lines)
    a.p.signal(signal.SIGHUP)
    assert wait_for(lambda: any("arc: reloaded" in l for l in a.p.lines[n:]), 15), \
        a.p.stderr_tail(20)
    assert not any("detached" in l for l in a.p.lines), "a reload reattached XDP"
    assert net.ping(CLIENT_IP)
    assert get(net, CLIENT_IP, port) == 200
    assert not net.ping(ATTACKER_IP), "the whitelist let another blacklisted source through"
    c = a.counters()
    assert c["pass_whitelist"] > after["pass_whitelist"]


def test_spoofed_syn_flood_is_dropped_while_a_client_is_served(arc_ns, net):
    pps_src, pps_global = 5, 100
    a = arc_ns(xdp_config(net, syn_flood={"enabled": True, "pps_per_source": pps_src,
                                          "global_pps": pps_global}))
    port = a.p.port
    # the legitimate client is connected before the flood (keep-alive)
    with netns(net.cli_ns):
        conn = http.client.HTTPConnection(ARC_IP, port, timeout=10, source_address=(CLIENT_IP, 0))
        conn.connect()
    conn.auto_open = 0          # never reconnect (outside the namespace, with a new SYN)
    assert get(net, CLIENT_IP, port, conn) == 200
    # let the global bucket refill after the client's own SYN
    time.sleep(1.1)

    spoofed = []
    for i in range(1000):          # 1,000 sources, 2 SYNs each: within their own budget
        src = "10.202.%d.%d" % (i // 250, i % 250 + 1)
        spoofed += [syn_frame(net, src, port, 20000 + i)] * 2
    heavy = [syn_frame(net, "10.203.0.1", port, 40000 + i) for i in range(300)]
    frames = spoofed + heavy
    sent = len(frames)

    results = []
    stop = threading.Event()

    def legit():
        while not stop.is_set() or len(results) < 100:
            try:
                results.append(get(net, CLIENT_IP, port, conn))
            except (OSError, http.client.HTTPException) as e:
                results.append(repr(e))
            if len(results) >= 1000:
                break

    before = a.counters()
    t = threading.Thread(target=legit)
    t.start()
    t0 = time.monotonic()
    # spread over about 1.5 s (23 bursts of 100), so the client's requests
    # and the flood overlap
    for i in range(0, sent, 100):
        send_frames(net, frames[i:i + 100])
        time.sleep(0.06)
    elapsed = time.monotonic() - t0
    during = len(results)
    # every frame was judged before the counters are read: poll until they add up
    keys = ("pass_syn", "syn_source", "syn_global")

    def judged():
        c = a.counters()
        return sum(c[k] - before[k] for k in keys)
    wait_for(lambda: judged() >= sent, 10)
    stop.set()
    t.join(60)
    after = a.counters()
    d = {k: after[k] - before[k] for k in after}
    assert sum(d[k] for k in keys) == sent, (sent, d)
    # the heavy source got its burst (and what it refilled), no more
    assert d["syn_source"] >= 300 - pps_src * (2 + elapsed) - 1, (d, elapsed)
    # all of them together got the global budget, no more
    assert d["pass_syn"] <= pps_global * (1 + elapsed + 1), (d, elapsed)
    assert d["syn_global"] > 0
    conn.close()
    assert len(results) >= 100 and all(r == 200 for r in results), results[:20]
    assert during >= 10, "the client's requests did not overlap the flood (%d)" % during
    # and new connections after the flood
    assert all(get(net, CLIENT_IP, port) == 200 for _ in range(20))
    ms = a.metrics()
    assert metric(ms, "arc_xdp_packets_total", reason="syn_global") >= d["syn_global"]
    print("syn flood: sent=%d in %.3fs pass_syn=%d syn_source=%d syn_global=%d, legit %d/%d ok "
          "(%d during the flood)" % (sent, elapsed, d["pass_syn"], d["syn_source"],
                                     d["syn_global"], results.count(200), len(results), during))


def test_auto_block_kicks_in_and_expires(arc_ns, net):
    a = arc_ns(xdp_config(net, auto_block={"enabled": True, "threshold": 50, "window": "2s",
                                           "ttl": "3s"}))
    port = a.p.port
    sh("ip", "netns", "exec", net.cli_ns, "ping", "-n", "-q", "-c", "150", "-i", "0.005",
       "-W", "1", "-I", ATTACKER_IP, ARC_IP, check=False, timeout=60)
    st, doc = a.api("GET", "/v1/xdp/blocks")
    assert st == 200
    mine = [b for b in doc["blocks"] if b["cidr"] == ATTACKER_IP + "/32"]
    assert mine and mine[0]["origin"] == "auto_block", doc
    assert 0 < mine[0]["expires_in_ms"] <= 3000
    assert a.counters()["auto_block"] >= 1
    assert not tcp_connects(net, ATTACKER_IP, port)
    assert get(net, CLIENT_IP, port) == 200          # other sources are served
    t0 = time.monotonic()
    assert wait_for(lambda: not [b for b in a.api("GET", "/v1/xdp/blocks")[1]["blocks"]
                                 if b["cidr"] == ATTACKER_IP + "/32"], 10)
    assert time.monotonic() - t0 <= 4.5
    assert tcp_connects(net, ATTACKER_IP, port, timeout=5)


def test_api_and_cli_blocks(arc_ns, net):
    a = arc_ns(xdp_config(net))
    port = a.p.port
    assert tcp_connects(net, ATTACKER_IP, port)
    cp = a.cli("block", "10.201.0.3/32", "--ttl", "1h")
    assert cp.returncode == 0 and "blocked 10.201.0.3/32" in cp.stdout, cp.stderr
    assert not tcp_connects(net, ATTACKER_IP, port)
    assert get(net, CLIENT_IP, port) == 200
    cp = a.cli("status")
    assert cp.returncode == 0, cp.stderr
    assert '"state": "attached"' in cp.stdout and "10.201.0.3/32" in cp.stdout, cp.stdout
    assert a.counters()["blocked"] >= 1
    cp = a.cli("unblock", "10.201.0.3/32")
    assert cp.returncode == 0 and "unblocked" in cp.stdout, cp.stderr
    assert tcp_connects(net, ATTACKER_IP, port)
    cp = a.cli("unblock", "10.201.0.3/32")
    assert cp.returncode == 1 and "no such block" in cp.stderr
    # bad input is refused with a reason
    st, doc = a.api("POST", "/v1/xdp/blocks", {"cidr": "10.201.0.3/8"})
    assert st == 400 and "host bits" in doc["error"]
    st, doc = a.api("POST", "/v1/xdp/blocks", {"cidr": "10.0.0.0/8", "ttl": "soon"})
    assert st == 400 and "ttl" in doc["error"]
    st, doc = a.api("POST", "/v1/xdp/blocks", {"ttl": "1m"})
    assert st == 400
    # an IPv6 block
    st, doc = a.api("POST", "/v1/xdp/blocks", {"cidr": "2001:db8::/32", "ttl": "5m"})
    assert st == 200 and doc["cidr"] == "2001:db8::/32"
    st, doc = a.api("GET", "/v1/xdp/blocks")
    assert [b["origin"] for b in doc["blocks"] if b["cidr"] == "2001:db8::/32"] == ["api"]


# ------------------------------------------------------------ no XDP

def test_missing_interface_is_reported_and_required_refuses(arc, arc_bin, tmp_path):
    cfg = {
        "listeners": [{"name": "http", "kind": "http", "bind": "127.0.0.1:0"}],
        "observability": {"metrics_bind": "127.0.0.1:0"},
        "control_plane": {"enabled": True, "bind": "127.0.0.1:0"},
        "routes": [{"name": "ok", "match": {"path": "/{*rest}"},
                    "action": {"respond": {"status": 200}}}],
        "security": {"xdp": {"enabled": True, "interface": "arcnope0"}},
    }
    a = arc(cfg)
    line = [l for l in a.lines if "arc: xdp:" in l]
    assert line and "interface 'arcnope0' does not exist" in line[0], a.stderr_tail(20)
    assert "running without the XDP layer" in line[0]
    m = CTL_RE.search(a.stderr_text())
    c = http.client.HTTPConnection(m.group(1), int(m.group(2)), timeout=10)
    c.request("GET", "/v1/status")
    doc = json.loads(c.getresponse().read())
    assert doc["xdp"]["state"] == "unavailable"
    assert "arcnope0" in doc["xdp"]["why"]
    c.request("GET", "/v1/xdp/blocks")
    r = c.getresponse()
    assert r.status == 409 and "not attached" in json.loads(r.read())["error"]
    c.close()
    ms, _ = a.metrics()
    assert metric(ms, "arc_xdp_attached") == 0

    # a pin_path outside a bpf filesystem is refused before anything is attached
    pcfg = json.loads(json.dumps(cfg))
    pcfg["security"]["xdp"] = {"enabled": True, "interface": "lo",
                               "pin_path": str(tmp_path / "notbpf")}
    b = arc(pcfg)
    line = [l for l in b.lines if "arc: xdp: not attached" in l]
    assert line and "is not in a bpf filesystem" in line[0], b.stderr_tail(20)

    cfg["security"]["xdp"]["required"] = True
    path = tmp_path / "req.yaml"
    path.write_text(to_yaml(cfg))
    cp = arc_bin.run(["run", "-c", str(path)], timeout=30)
    assert cp.returncode == 1
    assert "security.xdp.required is true" in cp.stderr and "arcnope0" in cp.stderr, cp.stderr


@pytest.mark.parametrize("xdp,where,msg", [
    ("{enabled: true, interface: lo, mode: turbo}", "turbo", "security.xdp.mode"),
    ("{enabled: true, interface: lo, blacklist: [10.0.0.1/8]}", "10.0.0.1/8", "host bits"),
    ("{enabled: true}", "true}", "security.xdp.interface: required"),
    ("{enabled: true, interface: lo, syn_flood: {pps_per_sorce: 5}}", "pps_per_sorce",
     "pps_per_source"),
    ("{enabled: true, interface: lo, auto_block: {window: 5}}", "5}}", "auto_block.window"),
    ("{enabled: true, interface: lo, pin_path: bpf/arc}", "bpf/arc", "absolute path"),
])
def test_config_errors_have_positions(arc_bin, tmp_path, xdp, where, msg):
    text = ("listeners:\n  - {name: http, kind: http, bind: \"127.0.0.1:0\"}\n"
            "routes:\n  - {name: ok, match: {path: \"/\"}, action: {respond: {status: 200}}}\n"
            "security:\n  xdp: %s\n" % xdp)
    path = tmp_path / "x.yaml"
    path.write_text(text)
    cp = arc_bin.run(["check", "-c", str(path)])
    assert cp.returncode != 0
    col = text.splitlines()[5].index(where) + 1
    assert ("%s:6:%d:" % (path, col)) in cp.stderr and msg in cp.stderr, cp.stderr


def test_heavy_hitters_become_xdp_blocks(arc_ns, net):
    """security.xdp.block_heavy_hitters: a client far above
    rate_limits.heavy_hitters.threshold_qps is blocked in XDP (origin
    heavy_hitters), others are still served, and the block runs out once
    the source is no longer heavy."""
    cfg = xdp_config(net, block_heavy_hitters=True, heavy_hitter_ttl="2s")
    cfg["rate_limits"] = {"heavy_hitters": {"enabled": True, "threshold_qps": 20,
                                            "width": 1000, "depth": 4}}
    a = arc_ns(cfg)
    port = a.p.port

    def mine():
        st, doc = a.api("GET", "/v1/xdp/blocks")
        return [b for b in doc["blocks"] if b["cidr"] == ATTACKER_IP + "/32"]

    stop_at = time.monotonic() + 15
    sent = [0]

    def hammer():
        with netns(net.cli_ns):
            c = http.client.HTTPConnection(ARC_IP, port, timeout=1,
                                           source_address=(ATTACKER_IP, 0))
            c.connect()
        c.auto_open = 0
        try:
            while time.monotonic() < stop_at:
                c.request("GET", "/")
                c.getresponse().read()
                sent[0] += 1
        except (OSError, http.client.HTTPException):
            pass            # blocked: the connection stalls
        finally:
            c.close()
    t = threading.Thread(target=hammer)
    t.start()
    try:
        assert wait_for(lambda: mine(), 15), "no heavy_hitters block after %d requests" % sent[0]
    finally:
        stop_at = 0
        t.join(20)
    assert mine()[0]["origin"] == "heavy_hitters"
    assert 0 < mine()[0]["expires_in_ms"] <= 2000
    assert not tcp_connects(net, ATTACKER_IP, port)
    assert get(net, CLIENT_IP, port) == 200
    assert a.counters()["blocked"] >= 1
    # no longer heavy (its requests stopped reaching the limiter): the block runs out
    assert wait_for(lambda: not mine(), 40), mine()
    assert tcp_connects(net, ATTACKER_IP, port, timeout=5)


@pytest.fixture
def bpffs(tmp_path):
    """A bpf filesystem of this test's own (seen inside `ip netns exec`,
    which hides /sys/fs/bpf); unmounted at the end, which drops its pins."""
    d = tmp_path / "bpffs"
    d.mkdir()
    cp = sh("mount", "-t", "bpf", "bpf", str(d), check=False)
    if cp.returncode != 0:
        pytest.skip("cannot mount a bpf filesystem here: " + cp.stderr.strip())
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def attached(net):
    return "prog/xdp" in sh("ip", "-n", net.arc_ns, "-d", "link", "show", net.arc_if,
                            check=False).stdout


def test_pinned_link_stays_attached_across_a_restart(arc_ns, net, bpffs):
    """security.xdp.pin_path: on exit the filter stays attached with its
    maps (a block keeps dropping while no Arc runs); the next start takes
    the pinned link over and finds the block; removing the pins detaches."""
    arc_ns.pinned = True
    pin = str(bpffs / "arc")
    cfg = xdp_config(net, pin_path=pin)
    a = arc_ns(cfg)
    port = a.p.port
    st, doc = a.api("POST", "/v1/xdp/blocks", {"cidr": ATTACKER_IP + "/32"})
    assert st == 200, doc
    assert not net.ping(ATTACKER_IP)
    assert a.stop() == []
    assert any("left attached to" in l for l in a.p.lines), a.p.stderr_tail(10)
    assert attached(net)
    # no Arc runs: the kernel still answers ping, except to the blocked source
    assert net.ping(CLIENT_IP)
    assert not net.ping(ATTACKER_IP)
    b = arc_ns(cfg)
    assert any("took over the link pinned at" in l for l in b.p.lines), b.p.stderr_tail(10)
    st, doc = b.api("GET", "/v1/xdp/blocks")
    assert [x["origin"] for x in doc["blocks"] if x["cidr"] == ATTACKER_IP + "/32"] == ["api"]
    assert get(net, CLIENT_IP, b.p.port) == 200
    assert not tcp_connects(net, ATTACKER_IP, b.p.port)
    assert b.counters()["blocked"] >= 2          # the counters carried over too
    assert b.stop() == []
    assert attached(net)
    # removing the pins detaches
    for name in os.listdir(pin):
        os.unlink(os.path.join(pin, name))
    assert wait_for(lambda: not attached(net), 10)
    assert net.ping(ATTACKER_IP)
    del port
