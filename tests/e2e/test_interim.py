"""Interim 1xx responses from the upstream (103 Early Hints, RFC 9110 §15.2)
reach HTTP/1.1 clients before the final response, with their fields; HTTP/1.0
clients never see them; a 100 Continue from the upstream is not relayed (Arc
answers Expect itself); and their number per exchange is capped
(node.max_interim_responses)."""
from arcproc import make_config, upstream_conf
from httpraw import read_response


def _hints(n):
    def h(req):
        req.read_body()
        data = b"HTTP/1.1 100 Continue\r\n\r\n"
        for i in range(n):
            data += b"HTTP/1.1 103 Early Hints\r\nLink: </s%d.css>; rel=preload\r\n\r\n" % i
        data += b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"
        req.conn.send(data)
        return True
    return h


def _responses(c, method="GET"):
    out = []
    while True:
        r = read_response(c.rd, method=method, skip_1xx=False)
        out.append(r)
        if r.status >= 200:
            return out


def test_early_hints_forwarded_to_http11(arc, servers):
    up = servers.http(handler=_hints(2), name="hints")
    a = arc(make_config([upstream_conf("hints", up.addr)]))
    c = a.client()
    for _ in range(2):   # and the connection stays in sync
        c.send(b"GET /h HTTP/1.1\r\nHost: t\r\n\r\n")
        rs = _responses(c)
        assert [r.status for r in rs] == [103, 103, 200], rs
        assert rs[0].headers.get("Link") == "</s0.css>; rel=preload"
        assert rs[1].headers.get("Link") == "</s1.css>; rel=preload"
        assert rs[-1].body == b"final"


def test_no_interim_for_http10(arc, servers):
    up = servers.http(handler=_hints(2), name="hints")
    a = arc(make_config([upstream_conf("hints", up.addr)]))
    c = a.client()
    c.send(b"GET /h HTTP/1.0\r\nHost: t\r\n\r\n")
    rs = _responses(c)
    assert [r.status for r in rs] == [200], rs
    assert rs[0].body == b"final"


def test_interim_count_is_capped(arc, servers):
    up = servers.http(handler=_hints(30), name="hints")
    a = arc(make_config([upstream_conf("hints", up.addr)], node={"max_interim_responses": 3}))
    c = a.client()
    c.send(b"GET /h HTTP/1.1\r\nHost: t\r\n\r\n")
    rs = _responses(c)
    assert [r.status for r in rs] == [103, 103, 103, 200], [r.status for r in rs]
    assert rs[-1].body == b"final"
