"""Reloads under load (issue 7's acceptance): while wrk drives HTTP/1.1 and
h2load drives HTTP/2 (h2c) through Arc, 100 reloads alternate two configs
that differ in routes, upstream endpoints and the https listener's
certificate. Zero socket errors, zero unexpected statuses; a WebSocket
tunnel and an HTTP/2 connection opened before the reloads still work after
them; the certificate served to new TLS connections is the new one; old
snapshots are all freed; RSS afterwards is within 5% of before (release
build; sanitizer builds keep freed memory in quarantine)."""
import asyncio
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import h2.config
import h2.connection
import h2.events
import websockets

from arcproc import make_config, metric, route_conf, to_yaml, upstream_conf, wait_for

RELOADS = 100




def make_cert(d, name):
    key, pem = os.path.join(d, name + ".key"), os.path.join(d, name + ".pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", "/CN=" + name, "-addext",
                    "subjectAltName=DNS:a.test", "-keyout", key, "-out", pem],
                   check=True, capture_output=True)
    return pem, key


def config(variant, ep1, ep2, ws, cert):
    """Variant 0 and 1 differ in a route, the upstream's endpoints and the
    certificate; /load, /ws and /h2 exist in both."""
    eps = [ep1] if variant == 0 else [ep1, ep2]
    routes = [route_conf("load", "/load", upstream="echo"),
              route_conf("h2", "/h2/{*rest}", upstream="echo"),
              route_conf("ws", "/ws", upstream="ws"),
              route_conf("only%d" % variant, "/only%d" % variant, upstream="echo")]
    # (idle_timeout: the HTTP/2 connection opened before the reloads stays
    # idle through them, longer than the 60 s default under a sanitizer)
    cfg = make_config([upstream_conf("echo", eps), upstream_conf("ws", ws)], routes=routes, workers=2,
                      node={"idle_timeout": "300s"})
    cfg["listeners"].append({"name": "tls", "kind": "https", "bind": "127.0.0.1:0",
                             "tls": {"certificates": [{"cert_pem": cert[0], "key_pem": cert[1]}]}})
    return cfg


def served_cn(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="a.test") as t:
            der = t.getpeercert(binary_form=True)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"], input=der,
                         capture_output=True, check=True).stdout.decode()
    return out.strip().split("CN")[-1].strip(" =")


class H2Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.c.initiate_connection()
        self.s.sendall(self.c.data_to_send())

    def get(self, path):
        sid = self.c.get_next_available_stream_id()
        self.c.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "t"),
                                  (":path", path)], end_stream=True)
        self.s.sendall(self.c.data_to_send())
        status = None
        while True:
            data = self.s.recv(65536)
            assert data, "arc closed the HTTP/2 connection"
            for e in self.c.receive_data(data):
                if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid:
                    status = int(dict(e.headers)[b":status"])
                if isinstance(e, h2.events.DataReceived):
                    self.c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                if isinstance(e, h2.events.StreamEnded) and e.stream_id == sid:
                    self.s.sendall(self.c.data_to_send())
                    return status
            self.s.sendall(self.c.data_to_send())


def test_hundred_reloads_under_load(arc, servers, tmp_path, arc_bin):
    e1, e2 = servers.http(name="e1"), servers.http(name="e2")
    wss = servers.ws()
    certs = [make_cert(str(tmp_path), "gen-a"), make_cert(str(tmp_path), "gen-b")]
    cfgs = [to_yaml(config(v, e1.addr, e2.addr, wss.addr, certs[v])) for v in (0, 1)]
    a = arc(cfgs[0])
    port, tls_port = a.listeners["http"], a.listeners["tls"]
    assert served_cn(tls_port) == "gen-a"

    # a WebSocket tunnel and an HTTP/2 connection, opened before the reloads
    # (its loop runs in a thread all along, so keepalive pings are answered)
    loop = asyncio.new_event_loop()
    looper = threading.Thread(target=loop.run_forever, daemon=True)
    looper.start()

    def on_loop(coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    async def ws_open():
        return await websockets.connect("ws://127.0.0.1:%d/ws" % port, max_size=1 << 20)

    ws = on_loop(ws_open())
    on_loop(ws.recv())                              # the server's greeting
    h2c = H2Conn(port)
    assert h2c.get("/h2/before") == 200

    # warm up with the same load shape (connection slabs, pools, buffers
    # reach their working size), then the baseline RSS
    # (twice: the receive buffers touched grow towards their working set)
    for _ in range(2):
        warm = [subprocess.Popen(["wrk", "-t1", "-c32", "-d3s", "http://127.0.0.1:%d/load" % port],
                                 stdout=subprocess.DEVNULL),
                subprocess.Popen(["h2load", "-D", "3", "-c4", "-m8", "http://127.0.0.1:%d/load" % port],
                                 stdout=subprocess.DEVNULL)]
        for p in warm:
            p.wait(timeout=60)
    time.sleep(0.5)
    rss_before = a.rss_kb()

    duration = 45 if arc_bin.variant == "asan" else 30
    results = {}

    def run(name, argv):
        results[name] = subprocess.run(argv, capture_output=True, timeout=duration + 60).stdout.decode()

    loads = [threading.Thread(target=run, args=("wrk", ["wrk", "-t1", "-c32", "--timeout", "20s", "-d%ds" % duration,
                                                        "http://127.0.0.1:%d/load" % port])),
             threading.Thread(target=run, args=("h2load", ["h2load", "-D", str(duration), "-c4", "-m8",
                                                           "http://127.0.0.1:%d/load" % port]))]
    for t in loads:
        t.start()
    time.sleep(1)
    t0 = time.monotonic()
    for i in range(1, RELOADS + 1):
        v = i % 2
        done = metric(a.metrics()[0], "arc_config_reloads_total", result="ok")
        with open(a.config_path, "w") as f:
            f.write(cfgs[v])
        a.signal(signal.SIGHUP)
        # (the file watcher may reload first: then the SIGHUP is a second,
        # unchanged reload; either way the count moves)
        assert wait_for(lambda: metric(a.metrics()[0], "arc_config_reloads_total", result="ok") > done), \
            a.stderr_tail(10)
        assert wait_for(lambda: a.client().request("GET", "/only%d" % v).status == 200), \
            "generation %d was not adopted" % (i + 1)
    reload_s = time.monotonic() - t0
    assert time.monotonic() - t0 < duration, "the reloads outlasted the load (raise the duration)"
    for t in loads:
        t.join()

    wrk, h2l = results["wrk"], results["h2load"]
    assert "Socket errors" not in wrk, wrk
    assert "Non-2xx" not in wrk, wrk
    n_wrk = int(re.search(r"(\d+) requests in", wrk).group(1))
    m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored", h2l)
    assert m and m.group(4) == "0" and m.group(5) == "0" and m.group(2) == m.group(3), h2l
    assert re.search(r"status codes: \d+ 2xx, 0 3xx, 0 4xx, 0 5xx", h2l), h2l
    assert n_wrk > 0 and int(m.group(2)) > 0

    # what was open before still works; new TLS connections get the new certificate
    on_loop(ws.send("after %d reloads" % RELOADS))
    assert on_loop(ws.recv()) == "after %d reloads" % RELOADS
    on_loop(ws.close())
    loop.call_soon_threadsafe(loop.stop)
    looper.join(5)
    assert h2c.get("/h2/after") == 200
    h2c.s.close()
    assert served_cn(tls_port) == "gen-a"           # 100 reloads: back on variant 0
    ms = a.metrics()[0]
    assert metric(ms, "arc_config_reloads_total", result="ok") >= RELOADS
    assert metric(ms, "arc_config_reloads_total", result="error") == 0
    assert wait_for(lambda: metric(a.metrics()[0], "arc_config_live_snapshots") == 1, 10), \
        "old configs still held after the load ended"
    time.sleep(0.5)
    rss_after = a.rss_kb()
    print("reloads=%d in %.1fs  wrk=%d req  h2load=%s req  rss %d -> %d KiB (%+.1f%%)" % (
        RELOADS, reload_s, n_wrk, m.group(3), rss_before, rss_after,
        100.0 * (rss_after - rss_before) / rss_before))
    if arc_bin.variant == "release":
        assert rss_after <= rss_before * 1.05, (rss_before, rss_after)
