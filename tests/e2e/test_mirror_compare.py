"""routes[].mirror[].compare: the shadow's answer is compared with the
primary's — status, fields (less Date, framing and ignore_headers) and the
body's size and digest, whatever the framing — and each difference is
counted in arc_mirror_compare_total / arc_mirror_compare_diffs_total and
logged as one diff record; identical answers count as matches; a shadow
that does not answer counts as incomplete; the client always gets the
primary's answer. headers: [list], body: false and on_diff: count narrow
what is compared and logged."""
import re

from arcproc import make_config, metric, upstream_conf, wait_for
from httpraw import free_port
from upstreams import response_bytes

BODY = b"the same body, " * 40


def answer(role):
    """The primary and the shadow answer alike except where the path says."""
    def h(req):
        req.read_body()
        p = req.path
        shadow = role == "shadow"
        status, body = 200, BODY
        hdrs = [("Content-Type", "text/plain"), ("X-Version", "1"),
                ("Date", "Mon, 07 Dec 2026 18:00:0%d GMT" % (1 if shadow else 2)),
                ("X-Trace", role)]
        if shadow and p == "/status":
            status = 503
        if shadow and p == "/body":
            body = BODY[:-1] + b"!"             # same size, one byte off
        if shadow and p == "/longer":
            body = BODY + b"+"
        if shadow and p in ("/hdr", "/listed"):
            hdrs[1] = ("X-Version", "2")
        if shadow and p == "/extra":
            hdrs.append(("X-Only-Shadow", "1"))
        if shadow and p != "/status":
            # chunked, in pieces: framing is not compared, the body is
            mid = len(body) // 3
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:mid], body[mid:]))
            req.conn.send(response_bytes(status, hdrs + [("Transfer-Encoding", "chunked")],
                                         chunks + b"0\r\n\r\n"))
        else:
            req.conn.send(response_bytes(status, hdrs, body))
        return True
    return h


def config(primary, shadow, compare, extra_mirrors=(), ups=()):
    route = {"name": "r", "match": {"path": "/{*rest}"}, "action": {"upstream": "primary"},
             "mirror": [{"upstream": "shadow", "compare": compare}] + list(extra_mirrors)}
    return make_config([upstream_conf("primary", primary.addr),
                        upstream_conf("shadow", shadow.addr)] + list(ups),
                       routes=[route], workers=2)


def counts(a, upstream="shadow"):
    ms = a.metrics()[0]
    res = {r: metric(ms, "arc_mirror_compare_total", upstream=upstream, result=r) or 0
           for r in ("match", "mismatch", "incomplete")}
    res.update({"diff_" + p: metric(ms, "arc_mirror_compare_diffs_total", upstream=upstream,
                                    part=p) or 0 for p in ("status", "headers", "body")})
    return res


def diff_lines(a):
    return [l for l in a.stderr_tail(400).splitlines() if "mirror: compare: diff" in l]


def test_differences_are_counted_and_logged(arc, servers):
    primary = servers.http(handler=answer("primary"), name="primary")
    shadow = servers.http(handler=answer("shadow"), name="shadow")
    dead = "127.0.0.1:%d" % free_port()
    a = arc(config(primary, shadow, {"ignore_headers": ["X-Trace"]},
                   extra_mirrors=[{"upstream": "dead", "compare": {}}],
                   ups=[upstream_conf("dead", dead)]))
    c = a.client()
    paths = ["/same", "/status", "/body", "/longer", "/hdr", "/extra", "/same2"]
    for p in paths:
        r = c.request("GET", p)
        # the client gets the primary's answer, always
        assert r.status == 200 and r.body == BODY, (p, r)
        assert r.headers.get("x-version") == "1"
    done = lambda: sum(counts(a)[k] for k in ("match", "mismatch", "incomplete")) == len(paths)
    assert wait_for(done, timeout=20), (counts(a), a.metrics()[1])
    got = counts(a)
    assert got == {"match": 2, "mismatch": 5, "incomplete": 0, "diff_status": 1,
                   "diff_headers": 2, "diff_body": 2}, got
    # the shadow that never answered is not compared
    assert wait_for(lambda: counts(a, "dead")["incomplete"] == len(paths), timeout=20), \
        counts(a, "dead")
    assert counts(a, "dead")["mismatch"] == 0
    assert wait_for(lambda: len(diff_lines(a)) == 5, timeout=10), a.stderr_tail(40)
    by_path = {re.search(r"path=(\S+)", l).group(1): l for l in diff_lines(a)}
    assert set(by_path) == {"/status", "/body", "/longer", "/hdr", "/extra"}, by_path
    l = by_path["/status"]
    assert "upstream=shadow" in l and "route=r" in l and "method=GET" in l
    assert re.search(r" request_id=[0-9a-f-]{36} ", l), l
    assert "differs=status" in l and "status=200/503" in l and "fields=" not in l, l
    l = by_path["/body"]
    assert "differs=body " in l and "status=200/200" in l, l
    n = len(BODY)
    assert "body_bytes=%d/%d " % (n, n) in l, l
    digests = re.search(r"body_digest=([0-9a-f]{16})/([0-9a-f]{16})", l)
    assert digests and digests.group(1) != digests.group(2), l
    assert "body_bytes=%d/%d " % (n, n + 1) in by_path["/longer"]
    l = by_path["/hdr"]
    assert "differs=headers " in l and "fields=x-version " in l, l
    assert "fields=x-only-shadow " in by_path["/extra"], by_path["/extra"]
    # the matches' digests agreed although the shadow's body was chunked
    assert "/same" not in by_path and "/same2" not in by_path


def test_listed_fields_no_body_count_only(arc, servers):
    primary = servers.http(handler=answer("primary"), name="primary")
    shadow = servers.http(handler=answer("shadow"), name="shadow")
    a = arc(config(primary, shadow, {"headers": ["X-Version"], "body": False,
                                     "on_diff": "count"}))
    c = a.client()
    # /body and /extra differ only where this compare does not look
    # (X-Trace and Date differ on every answer: not listed)
    for p in ["/body", "/extra", "/listed", "/status"]:
        assert c.request("GET", p).status == 200
    done = lambda: sum(counts(a)[k] for k in ("match", "mismatch", "incomplete")) == 4
    assert wait_for(done, timeout=20), counts(a)
    got = counts(a)
    assert got == {"match": 2, "mismatch": 2, "incomplete": 0, "diff_status": 1,
                   "diff_headers": 1, "diff_body": 0}, got
    assert diff_lines(a) == [], diff_lines(a)


def test_log_rate_bounds_the_records(arc, servers):
    primary = servers.http(handler=answer("primary"), name="primary")
    shadow = servers.http(handler=answer("shadow"), name="shadow")
    a = arc(config(primary, shadow, {"log_rate": 0}))
    c = a.client()
    for _ in range(5):
        assert c.request("GET", "/status").status == 200
    assert wait_for(lambda: counts(a)["mismatch"] == 5, timeout=20), counts(a)
    assert diff_lines(a) == []


def test_http2_primary(arc, servers):
    """The primary's summary is made the same way from an HTTP/2 upstream
    (fields, DATA frames); the shadow here is HTTP/1.1 and chunked."""
    from h2_upstreams import H2Server

    def h2answer(st):
        body = BODY if st.path != "/body" else BODY[:10]
        st.respond(200, [("content-type", "text/plain"), ("x-version", "1")], body)
    srv = H2Server(name="primary", handlers={"/same": h2answer, "/body": h2answer})
    try:
        shadow = servers.http(handler=answer("shadow"), name="shadow")
        route = {"name": "r", "match": {"path": "/{*rest}"}, "action": {"upstream": "primary"},
                 "mirror": [{"upstream": "shadow",
                             "compare": {"headers": ["Content-Type", "X-Version"]}}]}
        a = arc(make_config([upstream_conf("primary", srv.addr, protocol="http2"),
                             upstream_conf("shadow", shadow.addr)], routes=[route], workers=1))
        c = a.client()
        assert c.request("GET", "/same").body == BODY
        assert c.request("GET", "/body").body == BODY[:10]
        done = lambda: counts(a)["match"] + counts(a)["mismatch"] == 2
        assert wait_for(done, timeout=20), counts(a)
        got = counts(a)
        assert (got["match"], got["mismatch"], got["diff_body"], got["diff_headers"]) == \
            (1, 1, 1, 0), got
        assert wait_for(lambda: len(diff_lines(a)) == 1)
        assert "path=/body " in diff_lines(a)[0]
    finally:
        srv.stop()
        assert not srv.errors, srv.errors


def json_answer(role):
    """JSON bodies: the shadow's differ in member order, in `ts` and in a
    nested `id` everywhere, and in `v` on /json-diff; /text is not JSON."""
    import json as _json

    def h(req):
        req.read_body()
        shadow = role == "shadow"
        if req.path == "/text":
            body = b"plain " + role.encode()
        else:
            doc = {"v": 2 if shadow and req.path == "/json-diff" else 1,
                   "ts": "2026-12-07T18:00:0%d" % (1 if shadow else 2),
                   "items": [{"id": 7 if shadow else 8, "k": "x"}]}
            if shadow:
                doc = dict(reversed(list(doc.items())))
            body = _json.dumps(doc).encode()
        req.conn.send(response_bytes(200, [("Content-Type", "application/json")], body))
        return True
    return h


def test_ignore_body_fields(arc, servers):
    primary = servers.http(handler=json_answer("primary"), name="primary")
    shadow = servers.http(handler=json_answer("shadow"), name="shadow")
    a = arc(config(primary, shadow, {"ignore_body_fields": ["ts", "id"]}))
    c = a.client()
    for p in ["/json", "/json-diff", "/text"]:
        assert c.request("GET", p).status == 200
    done = lambda: counts(a)["match"] + counts(a)["mismatch"] == 3
    assert wait_for(done, timeout=20), counts(a)
    got = counts(a)
    assert (got["match"], got["mismatch"], got["diff_body"]) == (1, 2, 2), got
    assert wait_for(lambda: len(diff_lines(a)) == 2)
    assert sorted(re.search(r"path=(\S+)", l).group(1) for l in diff_lines(a)) == \
        ["/json-diff", "/text"]
