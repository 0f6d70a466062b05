"""Many connections at once and long pipelines: a worker's connection slab
grows past its first chunk and shrinks back, and a deep pipeline of locally
answered requests keeps its order under backpressure, without corrupting
memory (the ASan run of this file is the real assertion) or crashing."""
import selectors
import socket
import time

from arcproc import make_config, upstream_conf, route_conf
from httpraw import build_request


def _many_clients(port, n, rounds, path):
    """Opens n connections, then does `rounds` keep-alive requests on each,
    all connections in flight together. Returns the number of 200s."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setblocking(False)
        socks.append(s)
    sel = selectors.DefaultSelector()
    state = {}
    for s in socks:
        state[s] = {"left": rounds, "buf": b""}
        s.sendall(build_request("GET", path))
        sel.register(s, selectors.EVENT_READ)
    ok = 0
    deadline = time.monotonic() + 60
    while state and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            st = state[s]
            data = s.recv(65536)
            assert data, "arc closed a keep-alive connection mid-test"
            st["buf"] += data
            while b"\r\n\r\n" in st["buf"]:
                head, rest = st["buf"].split(b"\r\n\r\n", 1)
                clen = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        clen = int(v)
                if len(rest) < clen:
                    break
                assert head.startswith(b"HTTP/1.1 200"), head[:100]
                ok += 1
                st["buf"] = rest[clen:]
                st["left"] -= 1
                if st["left"] == 0:
                    sel.unregister(s)
                    s.close()
                    del state[s]
                    break
                s.sendall(build_request("GET", path))
    for s in state:
        s.close()
    return ok


def test_many_concurrent_local_connections(arc):
    routes = [route_conf("local", "/{*rest}", respond={"status": 200, "body": "hi"})]
    a = arc(make_config(routes=routes, workers=1))
    assert _many_clients(a.port, 700, 3, "/x") == 2100


def test_many_concurrent_proxied_connections(arc, servers):
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr, pool={"max_idle": 1024})], workers=1))
    # 300 clients + 300 upstream connections: more than one slab chunk.
    assert _many_clients(a.port, 300, 3, "/y") == 900


def test_deep_pipeline_of_local_answers(arc):
    routes = [route_conf("local", "/local", respond={"status": 200, "body": "L"})]
    a = arc(make_config(routes=routes))
    c = a.client()
    # Unknown paths (404) and a respond route, 200 requests in one write: the
    # answers outgrow the output queue, so arc must pause and resume the
    # pipeline in order.
    paths = ["/local" if i % 2 else "/missing/%d" % i for i in range(200)]
    c.send(b"".join(build_request("GET", p) for p in paths))
    c.send(b"".join(build_request("GET", p) for p in paths))
    for p in paths + paths:
        r = c.response()
        assert r.status == (200 if p == "/local" else 404), (p, r.status)
