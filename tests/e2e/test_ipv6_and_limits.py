"""An IPv6 listener ([::1]) accepts and proxies, with the client's IPv6
address in X-Forwarded-For; and a tiny node.max_buffered_output still moves a
large body intact (backpressure at small thresholds loses nothing)."""
import json
import socket

from arcproc import make_config, upstream_conf
from httpraw import stream_sha256


def test_ipv6_listener_proxies_and_forwards_client_address(arc, servers):
    up = servers.http(name="echo")
    cfg = make_config([upstream_conf("echo", up.addr)])
    cfg["listeners"] = [{"name": "v6", "kind": "http", "bind": "[::1]:0"}]
    a = arc(cfg)
    assert a.wait_stderr("addr=[::1]:%d" % a.port), a.stderr_tail(20)
    s = socket.create_connection(("::1", a.port), timeout=10)
    try:
        s.sendall(b"GET /v6 HTTP/1.1\r\nHost: v6.test\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            piece = s.recv(65536)
            if not piece:
                break
            data += piece
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    j = json.loads(body)
    xff = [v for k, v in j["headers"] if k.lower() == "x-forwarded-for"]
    assert xff == ["::1"], j["headers"]


def test_small_max_buffered_output_streams_intact(arc, servers):
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr)],
                        node={"max_buffered_output": "4kb", "lingering_timeout": "0s"}))
    c = a.client(timeout=60)
    n = 20 << 20
    r = c.request("GET", "/stream?bytes=%d" % n, store_body=False)
    assert r.status == 200
    assert r.body_len == n
    assert r.body_sha256 == stream_sha256(n)
    r = c.request("GET", "/stream?bytes=%d&chunked=1" % n, store_body=False)
    assert r.status == 200 and r.body_len == n
    assert r.body_sha256 == stream_sha256(n)
