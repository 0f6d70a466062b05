"""Request-head limits are enforced: too many or too large header fields are
431, a request-target longer than security.limits.max_uri is 414, and
requests just under the limits pass."""
from arcproc import make_config, upstream_conf

LIMITS = {"max_header_bytes": "8kb", "max_headers": 40, "max_uri": "2kb"}


def start(arc, servers):
    up = servers.http(name="echo")
    return arc(make_config([upstream_conf("echo", up.addr)], limits=LIMITS)), up


def check_error(c, r, status):
    assert r.status == status, r
    if r.conn_close():
        assert c.wait_closed(5)


def test_too_many_headers_is_431(arc, servers):
    a, up = start(arc, servers)
    c = a.client()
    r = c.request("GET", "/many", headers=[("X-H%d" % i, "v") for i in range(60)])
    check_error(c, r, 431)
    assert up.accepted == 0


def test_header_section_too_large_is_431(arc, servers):
    a, up = start(arc, servers)
    c = a.client()
    r = c.request("GET", "/big", headers=[("X-Big", "a" * 12000)])
    check_error(c, r, 431)


def test_huge_header_stream_is_cut_off(arc, servers):
    # A client that never ends its head must not make arc buffer it forever.
    a, up = start(arc, servers)
    c = a.client()
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n")
    try:
        for i in range(200):
            c.send(b"X-Filler-%d: %s\r\n" % (i, b"f" * 1000))
    except (BrokenPipeError, ConnectionResetError):
        pass    # arc stopped reading; its 431 must still be there to read
    r = c.response()
    assert r.status == 431, r
    assert "close" in r.headers.tokens("connection"), r
    assert c.wait_closed(5), "connection not closed after 431"
    assert up.accepted == 0


def test_uri_too_long_is_414(arc, servers):
    a, up = start(arc, servers)
    c = a.client()
    r = c.request("GET", "/" + "u" * 3000)
    check_error(c, r, 414)
    assert up.accepted == 0


def test_just_under_limits_passes(arc, servers):
    a, up = start(arc, servers)
    c = a.client()
    r = c.request("GET", "/" + "u" * 1500, headers=[("X-H%d" % i, "v") for i in range(30)])
    assert r.status == 200, r
    r = c.request("GET", "/ok", headers=[("X-Big", "a" * 6000)])
    assert r.status == 200, r
