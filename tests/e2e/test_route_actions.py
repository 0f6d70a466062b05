"""Route actions between route and upstream: `max_body` answers 413 for a
declared length over it without contacting the upstream and cuts a streamed
(chunked, HTTP/2) body when it passes the limit; `timeout` is the whole
exchange's deadline (504 before the response, a cut response after it
started, never a tunnel); `rewrite` changes the target the upstream gets
($N groups, {name} captures, query kept or replaced) while the client's
request stays what it sent."""
import socket
import time

import h2.config
import h2.connection
import h2.events
import pytest

from arcproc import make_config, upstream_conf, route_conf, metric
from httpraw import Client, chunk_encode, read_response
from upstreams import smart_handler


def config(up, **extra_routes):
    routes = [
        route_conf("small", "/small/{*rest}", upstream="up", max_body="1kb"),
        route_conf("nolimit", "/nolimit/{*rest}", upstream="up", max_body=0),
        route_conf("default", "/default/{*rest}", upstream="up"),
        route_conf("deadline", "/deadline/{*rest}", upstream="up", timeout="400ms",
                   rewrite={"pattern": "^/deadline/", "replace": "/"}),
        route_conf("api", "/api/{ver}/{*rest}", upstream="up",
                   rewrite={"pattern": "^/api/([^/]+)/(.*)$", "replace": "/{ver}/svc/$2"}),
        route_conf("q", "/q/{*rest}", upstream="up",
                   rewrite={"pattern": "^/q/(\\w+)", "replace": "/query?name=$1&x=%20"}),
        route_conf("mid", "/mid/{*rest}", upstream="up",
                   rewrite={"pattern": "/v1/", "replace": "/v2/"}),
    ]
    return make_config([upstream_conf("up", up.addr)], routes=routes)


@pytest.fixture
def ra(arc, servers):
    up = servers.http(smart_handler, name="up")
    return arc(config(up)), up


def err_count(a, kind):
    return metric(a.metrics()[0], "arc_errors_total", kind=kind) or 0


# ------------------------------------------------------------------ max_body

def test_declared_length_over_max_body_is_413_without_upstream(ra):
    a, up = ra
    c = a.client()
    r = c.request("POST", "/small/x", body=b"a" * 1024)
    assert r.status == 200, r
    before = up.accepted
    r = c.request("POST", "/small/x", body=b"a" * 1025)
    assert r.status == 413, r
    assert up.accepted == before
    assert err_count(a, "body_too_large") >= 1


def test_expect_100_over_max_body_gets_413_instead_of_continue(ra):
    a, up = ra
    c = a.client()
    c.request("POST", "/small/x", headers=[("Content-Length", "5000"),
                                           ("Expect", "100-continue")], read=False)
    r = c.response(skip_1xx=False)
    assert r.status == 413, r


def test_chunked_body_over_max_body_is_cut_with_413(ra):
    a, up = ra
    c = a.client()
    c.request("POST", "/small/x", headers=[("Transfer-Encoding", "chunked")], read=False)
    c.send(b"200\r\n" + b"b" * 0x200 + b"\r\n")
    time.sleep(0.1)
    c.send(b"200\r\n" + b"b" * 0x200 + b"\r\n" + b"10\r\n" + b"c" * 16 + b"\r\n")
    r = c.response()
    assert r.status == 413, r
    assert c.wait_closed(5.0), "the connection stays open after an unread body"
    assert err_count(a, "body_too_large") >= 1


def test_chunked_body_within_max_body_passes(ra):
    a, up = ra
    c = a.client()
    body = chunk_encode([b"x" * 500, b"y" * 524])
    r = c.request("POST", "/small/ok", headers=[("Transfer-Encoding", "chunked")],
                  body=body)
    assert r.status == 200, r
    assert r.json()["body_len"] == 1024


def test_default_max_body_is_10mb_and_zero_is_unlimited(ra):
    a, up = ra
    c = a.client()
    r = c.request("POST", "/default/x", headers=[("Content-Length", str(10 * 1024 * 1024 + 1))],
                  read=False)
    r = c.response()
    assert r.status == 413, r
    c = a.client()
    body = b"z" * (11 * 1024 * 1024)
    r = c.request("POST", "/nolimit/x", body=body)
    assert r.status == 200, r
    assert r.json()["body_len"] == len(body)


def _h2_conn(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    h = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    h.initiate_connection()
    s.sendall(h.data_to_send())
    return s, h


def _h2_pump(s, h, until, timeout=10.0):
    deadline = time.monotonic() + timeout
    events = []
    while time.monotonic() < deadline:
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        if not d:
            break
        for ev in h.receive_data(d):
            events.append(ev)
            if isinstance(ev, h2.events.DataReceived):
                h.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        s.sendall(h.data_to_send())
        if until(events):
            break
    return events


def test_h2_streamed_body_over_max_body_resets_only_that_stream(ra):
    a, up = ra
    s, h = _h2_conn(a.port)
    try:
        hdrs = [(":method", "POST"), (":scheme", "http"), (":authority", "t"), (":path", "/small/x")]
        h.send_headers(1, hdrs)
        h.send_data(1, b"q" * 800)
        h.send_data(1, b"q" * 800)
        s.sendall(h.data_to_send())
        ev = _h2_pump(s, h, lambda es: any(isinstance(e, h2.events.ResponseReceived) for e in es))
        st = [dict(e.headers) for e in ev if isinstance(e, h2.events.ResponseReceived)]
        assert st and st[0][b":status"] == b"413", ev
        # The connection still serves other streams.
        h.send_headers(3, [(":method", "GET"), (":scheme", "http"), (":authority", "t"),
                           (":path", "/small/y")], end_stream=True)
        s.sendall(h.data_to_send())
        ev = _h2_pump(s, h, lambda es: any(isinstance(e, h2.events.StreamEnded) and e.stream_id == 3
                                           for e in es))
        st = [dict(e.headers) for e in ev
              if isinstance(e, h2.events.ResponseReceived) and e.stream_id == 3]
        assert st and st[0][b":status"] == b"200", ev
    finally:
        s.close()


# ------------------------------------------------------------------ timeout

def test_route_timeout_before_the_response_is_504(ra):
    a, up = ra
    c = a.client()
    t0 = time.monotonic()
    r = c.request("GET", "/deadline/slow?ms=3000")
    took = time.monotonic() - t0
    assert r.status == 504, r
    assert took < 2.5, took             # the 400 ms deadline, not the upstream's 3 s
    assert err_count(a, "route_timeout") >= 1
    # The connection is still usable.
    r = c.request("GET", "/deadline/fast")
    assert r.status == 200, r


def test_route_timeout_after_the_response_started_cuts_it(ra):
    a, up = ra
    c = a.client()
    c.request("GET", "/deadline/stream?bytes=2000000&pause_at=65536&pause_ms=3000", read=False)
    rd = c.rd
    head = rd.read_head()
    assert b" 200 " in head.split(b"\r\n")[0], head
    got = 0
    t0 = time.monotonic()
    try:
        while True:
            d = c.sock.recv(65536)
            if not d:
                break
            got += len(d)
    except (ConnectionResetError, socket.timeout):
        pass
    assert got < 2000000
    assert time.monotonic() - t0 < 2.5


def test_route_timeout_does_not_apply_when_absent(ra):
    a, up = ra
    r = a.client().request("GET", "/default/slow?ms=700")
    assert r.status == 200, r


# ------------------------------------------------------------------ rewrite

def test_rewrite_groups_and_captures(ra):
    a, up = ra
    r = a.client().request("GET", "/api/v3/users/42?x=1")
    assert r.status == 200, r
    j = r.json()
    assert j["target"] == "/v3/svc/users/42?x=1", j


def test_rewrite_replacing_the_query(ra):
    a, up = ra
    r = a.client().request("GET", "/q/abc/rest?old=1")
    assert r.status == 200, r
    assert r.json()["target"] == "/query?name=abc&x=%20", r.json()


def test_rewrite_substitutes_the_matched_part_only(ra):
    a, up = ra
    r = a.client().request("GET", "/mid/v1/thing?k=v")
    assert r.json()["target"] == "/mid/v2/thing?k=v"
    r = a.client().request("GET", "/mid/other")
    assert r.json()["target"] == "/mid/other"          # no match: unchanged


def test_rewrite_reaches_an_http2_client_route(ra):
    a, up = ra
    s, h = _h2_conn(a.port)
    try:
        h.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":authority", "t"),
                           (":path", "/api/v1/a/b?z=9")], end_stream=True)
        s.sendall(h.data_to_send())
        ev = _h2_pump(s, h, lambda es: any(isinstance(e, h2.events.StreamEnded) for e in es))
        body = b"".join(e.data for e in ev if isinstance(e, h2.events.DataReceived))
        import json
        assert json.loads(body)["target"] == "/v1/svc/a/b?z=9"
    finally:
        s.close()


def test_config_errors_have_file_positions(arc_bin, tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(
        "listeners: [{name: http, kind: http, bind: \"127.0.0.1:0\"}]\n"
        "upstreams: [{name: up, discovery: {type: static, endpoints: [{address: \"127.0.0.1:9\"}]}}]\n"
        "routes:\n"
        "  - name: r\n"
        "    match: {path: \"/a/{id}\"}\n"
        "    action:\n"
        "      upstream: up\n"
        "      rewrite: {pattern: \"^/a/(x\", replace: \"/b/$1\"}\n"
        "  - name: s\n"
        "    match: {path: /s}\n"
        "    action: {upstream: up, rewrite: {pattern: s, replace: \"/t/{nope}\"}}\n")
    cp = arc_bin.run(["check", "-c", str(p)])
    assert cp.returncode == 1, cp
    out = cp.stdout + cp.stderr
    assert "bad.yaml:8:33: error: routes[0].action.rewrite.pattern: regex does not compile" in out, out
    assert "bad.yaml:11:63: error: routes[1].action.rewrite.replace: {nope} is not captured" in out, out


# ------------------------------------------------------------------ variables

@pytest.fixture
def va(arc, servers):
    up = servers.http(smart_handler, name="up")
    routes = [
        route_conf("vars", "/vars/{*rest}", upstream="up",
                   headers=[{"op": "set", "name": "X-Real-IP", "value": "$client_ip"},
                            {"op": "set", "name": "X-Orig", "value": "$method $scheme://$host$request_uri"},
                            {"op": "set", "name": "X-Port", "value": "$client_port"},
                            {"op": "set", "name": "X-Price", "value": "$$5 and $5 and $"},
                            {"op": "set", "name": "X-Rid-Copy", "value": "id=$request_id"}],
                   response_headers=[{"op": "set", "name": "X-Route", "value": "$route"},
                                     {"op": "add", "name": "X-Path", "value": "[$path|$query]"}]),
        route_conf("go", "/go/{id}", redirect={"location": "https://$host/items/{id}?from=$path&$query"}),
    ]
    return arc(make_config([upstream_conf("up", up.addr)], routes=routes)), up


def test_header_variables_http1(va):
    a, up = va
    c = a.client()
    r = c.request("GET", "/vars/a/b?x=1&y=2", host="example.test")
    assert r.status == 200, r
    hdrs = {k.lower(): v for k, v in r.json()["headers"]}
    assert hdrs["x-real-ip"] == "127.0.0.1"
    assert hdrs["x-orig"] == "GET http://example.test/vars/a/b?x=1&y=2"
    assert hdrs["x-port"] == str(c.sock.getsockname()[1])
    assert hdrs["x-price"] == "$5 and $5 and $"
    assert hdrs["x-rid-copy"] == "id=" + r.headers.get("X-Request-Id"), (hdrs, r.headers)
    assert r.headers.get("X-Route") == "vars"
    assert r.headers.get("X-Path") == "[/vars/a/b|x=1&y=2]"


def test_header_variables_http2_client(va):
    a, up = va
    s, h = _h2_conn(a.port)
    try:
        h.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":authority", "h2.test"),
                           (":path", "/vars/z")], end_stream=True)
        s.sendall(h.data_to_send())
        ev = _h2_pump(s, h, lambda es: any(isinstance(e, h2.events.StreamEnded) for e in es))
        resp = [dict(e.headers) for e in ev if isinstance(e, h2.events.ResponseReceived)][0]
        assert resp[b"x-route"] == b"vars" and resp[b"x-path"] == b"[/vars/z|]", resp
        body = b"".join(e.data for e in ev if isinstance(e, h2.events.DataReceived))
        import json
        hdrs = {k.lower(): v for k, v in json.loads(body)["headers"]}
        assert hdrs["x-orig"] == "GET http://h2.test/vars/z", hdrs
    finally:
        s.close()


def test_redirect_variables(va):
    a, up = va
    r = a.client().request("GET", "/go/7?q=1", host="shop.test")
    assert r.status == 302, r
    assert r.headers.get("Location") == "https://shop.test/items/7?from=/go/7&q=1"


def test_unknown_variable_is_a_config_error(arc_bin, tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(
        "listeners: [{name: http, kind: http, bind: \"127.0.0.1:0\"}]\n"
        "upstreams: [{name: up, discovery: {type: static, endpoints: [{address: \"127.0.0.1:9\"}]}}]\n"
        "routes:\n"
        "  - name: r\n"
        "    match: {path: /}\n"
        "    action:\n"
        "      upstream: up\n"
        "      headers: [{op: set, name: X-A, value: \"$client_addr\"}]\n")
    cp = arc_bin.run(["check", "-c", str(p)])
    assert cp.returncode == 1, cp
    assert "bad.yaml:8:46: error: routes[0].action.headers[0].value: unknown variable '$client_addr'" \
        in cp.stdout + cp.stderr, cp.stdout + cp.stderr
