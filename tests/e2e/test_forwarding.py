"""Hop-by-hop headers (Connection and the fields it names, Keep-Alive,
Proxy-Connection, TE, Trailer, Upgrade) are removed in both directions, and
requests to the upstream carry X-Forwarded-For (an incoming one replaced
with the peer address, or appended to when the peer is one of the route's
trusted_proxies), X-Forwarded-Proto (an incoming one kept only from
trusted_proxies) and Via: 1.1 arc (appended)."""
from arcproc import make_config, route_conf, upstream_conf

HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "x-hop", "x-hop-2"}


def start(arc, servers):
    up = servers.http(name="echo")
    return arc(make_config([upstream_conf("echo", up.addr)])), up


def upstream_headers(r):
    return [(k.lower(), v) for k, v in r.json()["headers"]]


def test_request_hop_by_hop_removed(arc, servers):
    a, up = start(arc, servers)
    r = a.client().request("GET", "/hop-req", headers=[
        ("Connection", "keep-alive, X-Hop, x-hop-2"), ("X-Hop", "1"), ("X-Hop-2", "2"),
        ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "keep-alive"), ("TE", "trailers"),
        ("Trailer", "X-T"), ("Upgrade", "foo/1"), ("X-End", "kept")])
    assert r.status == 200, r
    names = {k for k, _ in upstream_headers(r)}
    leaked = (names & HOP) - {"connection"}
    assert not leaked, "hop-by-hop request headers forwarded: %s" % sorted(leaked)
    for k, v in upstream_headers(r):
        if k == "connection":
            assert "x-hop" not in v.lower() and "upgrade" not in v.lower(), v
    assert ("x-end", "kept") in upstream_headers(r)


def test_response_hop_by_hop_removed(arc, servers):
    a, up = start(arc, servers)
    c = a.client()
    r = c.request("GET", "/hop")
    assert r.status == 200, r
    names = {k.lower() for k, _ in r.headers}
    assert "x-resp-hop" not in names
    assert r.headers.get("Keep-Alive") != "timeout=5, max=100", "upstream Keep-Alive relayed"
    assert "proxy-connection" not in names
    assert "upgrade" not in names
    assert r.headers.get("X-End-To-End") == "kept"
    assert "x-resp-hop" not in (r.headers.joined("connection") or "").lower()
    assert not r.conn_close()
    assert c.request("GET", "/again").status == 200


def test_x_forwarded_for_proto_and_via_added(arc, servers):
    a, up = start(arc, servers)
    r = a.client().request("GET", "/fwd")
    h = upstream_headers(r)
    xff = [v for k, v in h if k == "x-forwarded-for"]
    assert xff == ["127.0.0.1"], h
    assert [v for k, v in h if k == "x-forwarded-proto"] == ["http"]
    via = ", ".join(v for k, v in h if k == "via")
    assert "1.1 arc" in via, via


def test_untrusted_x_forwarded_for_is_replaced_and_via_appended(arc, servers):
    # An upstream that trusts the leftmost address must not be spoofable
    # by a client that sends its own X-Forwarded-For.
    a, up = start(arc, servers)
    r = a.client().request("GET", "/fwd", headers=[("X-Forwarded-For", "203.0.113.7"),
                                                   ("X-Forwarded-For", "198.51.100.1"),
                                                   ("Via", "1.0 fred")])
    h = upstream_headers(r)
    xff = [v for k, v in h if k == "x-forwarded-for"]
    assert xff == ["127.0.0.1"], xff
    via = ", ".join(v for k, v in h if k == "via")
    parts = [p.strip() for p in via.split(",")]
    assert parts[0] == "1.0 fred" and parts[-1].startswith("1.1 arc"), via


def test_x_forwarded_for_appended_from_trusted_proxies(arc, servers):
    up = servers.http(name="echo")
    routes = [route_conf("trusting", "/{*rest}", upstream="echo",
                         forwarded={"trusted_proxies": ["127.0.0.0/8"]})]
    a = arc(make_config([upstream_conf("echo", up.addr)], routes=routes))
    r = a.client().request("GET", "/fwd", headers=[("X-Forwarded-For", "203.0.113.7"),
                                                   ("X-Forwarded-For", "198.51.100.1")])
    xff = ", ".join(v for k, v in upstream_headers(r) if k == "x-forwarded-for")
    assert [p.strip() for p in xff.split(",")] == ["203.0.113.7", "198.51.100.1", "127.0.0.1"], xff


def test_x_forwarded_proto_kept_only_from_trusted_proxies(arc, servers):
    # The trust decision is per route, so two routes on one keep-alive
    # connection must each apply their own trusted_proxies list.
    up = servers.http(name="echo")
    routes = [
        route_conf("trusting", "/trusting/{*rest}", upstream="echo",
                   forwarded={"trusted_proxies": ["127.0.0.0/8"]}),
        route_conf("other", "/{*rest}", upstream="echo"),
    ]
    a = arc(make_config([upstream_conf("echo", up.addr)], routes=routes))
    c = a.client()
    for path, want in (("/trusting/a", ["https"]), ("/plain", ["http"]), ("/trusting/b", ["https"])):
        r = c.request("GET", path, headers=[("X-Forwarded-Proto", "https")])
        assert r.status == 200, (path, r)
        xfp = [v for k, v in upstream_headers(r) if k == "x-forwarded-proto"]
        assert xfp == want, (path, xfp)


def test_fields_named_by_many_connection_headers_all_removed(arc, servers):
    # More Connection fields than arc gathers up front: the fallback scan
    # must still remove every field they name.
    a, up = start(arc, servers)
    hdrs = [("Connection", "X-Hop-%d" % i) for i in range(12)]
    hdrs += [("X-Hop-%d" % i, "v") for i in range(12)] + [("X-Kept", "yes")]
    r = a.client().request("GET", "/many-conn", headers=hdrs)
    assert r.status == 200
    names = [k for k, v in upstream_headers(r)]
    assert not [k for k in names if k.startswith("x-hop-") or k == "connection"], names
    assert "x-kept" in names
