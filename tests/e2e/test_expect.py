"""Expect: 100-continue works through arc: the client receives
100 Continue before it sends the body, the body reaches the upstream, and
the final response follows (checked with curl and with a raw socket)."""
import hashlib
import json
import os
import subprocess

from arcproc import make_config, upstream_conf


def start(arc, servers):
    up = servers.http(name="echo")
    return arc(make_config([upstream_conf("echo", up.addr)])), up


def test_expect_100_continue_with_curl(arc, servers, tmp_path):
    a, up = start(arc, servers)
    body = os.urandom(300000)
    f = tmp_path / "body.bin"
    f.write_bytes(body)
    cp = subprocess.run(["curl", "-sS", "-v", "--max-time", "20", "--expect100-timeout", "8",
                         "-H", "Expect: 100-continue", "--data-binary", "@%s" % f, a.url("/upload")],
                        capture_output=True, timeout=30)
    err = cp.stderr.decode("utf-8", "replace")
    assert cp.returncode == 0, err
    assert "< HTTP/1.1 100 Continue" in err, "curl did not receive 100 Continue:\n" + err
    assert "< HTTP/1.1 200" in err
    j = json.loads(cp.stdout)
    assert j["body_len"] == len(body)
    assert j["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_expect_100_continue_raw(arc, servers):
    a, up = start(arc, servers)
    c = a.client(timeout=5)
    body = b"b" * 5000
    c.send(b"POST /raw HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
    # nothing more is sent until the interim response arrives
    interim = c.rd.read_head()
    assert interim.startswith(b"HTTP/1.1 100"), interim
    c.send(body)
    r = c.response()
    assert r.status == 200, r
    assert r.json()["body_len"] == len(body)
    # keep-alive continues
    r = c.request("GET", "/next")
    assert r.status == 200 and r.json()["target"] == "/next"


def test_expect_100_continue_chunked_raw(arc, servers):
    a, up = start(arc, servers)
    c = a.client(timeout=5)
    c.send(b"POST /rawc HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
    interim = c.rd.read_head()
    assert interim.startswith(b"HTTP/1.1 100"), interim
    c.send(b"4\r\nwiki\r\n0\r\n\r\n")
    r = c.response()
    assert r.status == 200, r
    assert r.json()["body_len"] == 4


def test_expect_with_no_route_gets_final_status(arc, servers):
    from arcproc import route_conf
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr)],
                        routes=[route_conf("only", "/only", upstream="echo")]))
    c = a.client(timeout=5)
    c.send(b"POST /elsewhere HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n")
    # The final status comes instead of a 100 (RFC 9110 §10.1.1): a 100
    # would invite a body nobody wants.
    r = c.response(skip_1xx=False)
    assert r.status == 404, r
    assert up.accepted == 0


def test_expect_with_upstream_that_never_sends_100(arc, servers):
    # Many servers just read the body; arc must still let the client proceed.
    def h(req):
        req.read_body(send_100=False)
        from upstreams import send_echo
        send_echo(req)
        return True
    up = servers.http(handler=h, name="no100")
    a = arc(make_config([upstream_conf("no100", up.addr)]))
    c = a.client(timeout=5)
    c.send(b"POST /n HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
    interim = c.rd.read_head()
    assert interim.startswith(b"HTTP/1.1 100"), interim
    c.send(b"abcd")
    r = c.response()
    assert r.status == 200 and r.json()["body_len"] == 4, r
