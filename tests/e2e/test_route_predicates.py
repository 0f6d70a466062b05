"""Routes choose by header, cookie and query matchers (exists, equals,
contains, regex) and by match.expr over named matchers, against the real
binary over HTTP/1.1 (raw sockets and curl) and HTTP/2: header names ignore
case and any field line may match, cookies come from every Cookie field,
query names and values are percent-decoded; precedence is priority, then
host, then path, then the number of predicates, and a 405 lists only
methods whose route's matchers hold. `arc check` reports bad regexes with
PCRE2's message and offset, expression errors at the line and column of the
offending character (plain, quoted and block YAML, and JSON), matchers
without ids or unused by the expression, and ambiguous routes by name."""
import json
import re
import socket
import subprocess

import h2.config
import h2.connection
import h2.events
import pytest

from arcproc import make_config, to_yaml


def M(name, op, value=None, pattern=None, id=None):
    m = {"name": name, "op": op}
    if value is not None:
        m["value"] = value
    if pattern is not None:
        m["pattern"] = pattern
    if id is not None:
        m["id"] = id
    return m


def R(name, path, body=None, host=None, methods=None, headers=None, cookies=None, query=None,
      expr=None, priority=None):
    m = {"path": path}
    if host:
        m["host"] = host
    if methods:
        m["methods"] = methods
    for k, v in (("headers", headers), ("cookies", cookies), ("query", query), ("expr", expr)):
        if v is not None:
            m[k] = v
    r = {"name": name, "match": m, "action": {"respond": {"status": 200, "body": body or name}}}
    if priority is not None:
        r["priority"] = priority
    return r


ROUTES = [
    R("plain", "/app"),
    R("beta", "/app", headers=[M("X-Env", "equals", "beta")]),
    R("beta-mobile", "/app", headers=[M("X-Env", "equals", "beta"),
                                      M("User-Agent", "regex", pattern="(?i)\\bmobile\\b")]),
    R("json", "/accept", headers=[M("Accept", "contains", "application/json")]),
    R("debug", "/debug", headers=[M("X-Debug", "exists")]),
    R("session", "/c", cookies=[M("session", "equals", "abc")]),
    R("session-dark", "/c", cookies=[M("session", "exists"), M("theme", "regex", pattern="^(dark|dim)$")]),
    R("tag", "/q", query=[M("tag", "equals", "a b&c")]),
    R("tag-get", "/q", methods=["GET"], query=[M("tag", "equals", "a b&c"), M("v", "regex", pattern="^[0-9]+$")]),
    R("expr", "/x", headers=[M("X-Env", "equals", "beta", id="beta"),
                             M("User-Agent", "regex", pattern="(?i)mobile", id="mobile")],
      cookies=[M("optin", "equals", "yes", id="opted_in")],
      expr="(beta or opted_in) and not mobile"),
    R("x-fallback", "/x"),
    R("any-lit", "/p/lit"),
    R("host-cap", "/p/{x}", host=["api.example.com"]),
    R("urgent", "/p/lit", priority=5, headers=[M("X-Urgent", "exists")]),
    R("post-token", "/w", methods=["POST"], headers=[M("X-Token", "exists")]),
    R("put", "/w", methods=["PUT"]),
]


@pytest.fixture
def pa(arc):
    return arc(make_config([], routes=ROUTES))


def get(a, target, headers=(), host="test.local", method="GET"):
    r = a.client().request(method, target, headers=list(headers), host=host)
    return r.status, r.body.decode()


@pytest.mark.parametrize("headers,expect", [
    ([], "plain"),
    ([("X-Env", "beta")], "beta"),
    ([("x-ENV", "beta")], "beta"),                                   # names ignore case
    ([("X-Env", "Beta")], "plain"),                                  # values do not
    ([("X-Env", "alpha"), ("X-Env", "beta")], "beta"),               # any field line
    ([("X-Env", "alpha, beta")], "plain"),                           # lines are not split
    ([("X-Env", "beta"), ("User-Agent", "Foo Mobile/2")], "beta-mobile"),   # more predicates
    ([("X-Env", "beta"), ("User-Agent", "Foo Automobile/2")], "beta"),
])
def test_header_matchers(pa, headers, expect):
    assert get(pa, "/app", headers) == (200, expect)


def test_contains_and_exists(pa):
    assert get(pa, "/accept", [("Accept", "text/html, application/json;q=0.9")]) == (200, "json")
    assert get(pa, "/accept", [("Accept", "text/html")])[0] == 404
    assert get(pa, "/accept")[0] == 404
    # an empty field still exists
    c = pa.client()
    c.send(b"GET /debug HTTP/1.1\r\nHost: t\r\nX-Debug:\r\n\r\n")
    r = c.response()
    assert (r.status, r.body) == (200, b"debug")
    assert get(pa, "/debug")[0] == 404


@pytest.mark.parametrize("cookies,expect", [
    (["session=abc"], "session"),
    (["a=1;session=abc"], "session"),
    (["a=1", "session = abc ; theme=light"], "session"),             # every Cookie field
    (["session=\"abc\""], "session"),                                # DQUOTEs are syntax
    (["session=abc; theme=dark"], "session-dark"),
    (["theme=dim", "session=zzz"], "session-dark"),
    (["Session=abc"], None),                                         # names are exact
    (["session=abcd"], None),
    (["sessionabc"], None),
])
def test_cookie_matchers(pa, cookies, expect):
    st, body = get(pa, "/c", [("Cookie", c) for c in cookies])
    if expect is None:
        assert st == 404, body
    else:
        assert (st, body) == (200, expect)


@pytest.mark.parametrize("query,method,expect", [
    ("tag=a+b%26c", "POST", "tag"),                                  # '+' is a space, %26 is '&'
    ("x=1&tag=a%20b%26c", "POST", "tag"),
    ("t%61g=a+b%26c", "POST", "tag"),                                # names are decoded too
    ("tag=other&tag=a+b%26c", "POST", "tag"),                        # any occurrence
    ("tag=a+b%26c&v=12", "GET", "tag-get"),
    ("tag=a+b%26c&v=x", "GET", "tag"),
    ("tag=a+b&c", "POST", None),                                     # a raw '&' splits
    ("TAG=a+b%26c", "POST", None),                                   # names are exact
    ("", "POST", None),
])
def test_query_matchers(pa, query, method, expect):
    st, body = get(pa, "/q?" + query if query else "/q", method=method)
    if expect is None:
        assert st == 404, body
    else:
        assert (st, body) == (200, expect)


@pytest.mark.parametrize("headers,expect", [
    ([("X-Env", "beta")], "expr"),
    ([("Cookie", "optin=yes")], "expr"),
    ([("X-Env", "beta"), ("User-Agent", "x mobile")], "x-fallback"),
    ([("Cookie", "optin=yes"), ("User-Agent", "MOBILE")], "x-fallback"),
    ([("X-Env", "alpha")], "x-fallback"),
])
def test_expression(pa, headers, expect):
    assert get(pa, "/x", headers) == (200, expect)


def test_precedence_host_before_path_and_priority(pa):
    # a host's route beats an any-host route with a more specific path
    assert get(pa, "/p/lit", host="api.example.com") == (200, "host-cap")
    assert get(pa, "/p/lit", host="API.example.com:8080") == (200, "host-cap")
    assert get(pa, "/p/lit", host="www.example.com") == (200, "any-lit")
    assert get(pa, "/p/other", host="www.example.com")[0] == 404
    # priority comes before the host
    assert get(pa, "/p/lit", [("X-Urgent", "1")], host="api.example.com") == (200, "urgent")


def test_405_only_for_routes_whose_matchers_hold(pa):
    c = pa.client()
    r = c.request("GET", "/w")
    assert r.status == 405 and set(r.headers.tokens("allow")) == {"put"}, r
    r = c.request("GET", "/w", headers=[("X-Token", "t")])
    assert r.status == 405 and set(r.headers.tokens("allow")) == {"put", "post"}, r
    r = c.request("POST", "/w", headers=[("X-Token", "t")])
    assert (r.status, r.body) == (200, b"post-token")
    r = c.request("POST", "/w")
    assert r.status == 405 and set(r.headers.tokens("allow")) == {"put"}


def test_with_curl(pa):
    url = "http://127.0.0.1:%d" % pa.port

    def curl(*args):
        cp = subprocess.run(["curl", "-sS", "--max-time", "20"] + list(args), capture_output=True,
                            timeout=30)
        assert cp.returncode == 0, cp.stderr
        return cp.stdout.decode()

    assert curl("-H", "X-Env: beta", url + "/app") == "beta"
    assert curl("-b", "session=abc; theme=dark", url + "/c") == "session-dark"
    assert curl("-G", "--data-urlencode", "tag=a b&c", "-X", "POST", url + "/q") == "tag"
    assert curl("--http2-prior-knowledge", "-b", "optin=yes", url + "/x") == "expr"


def test_http2_cookie_crumbs(pa):
    """RFC 9113 §8.2.3: a client may split Cookie into several fields."""
    sock = socket.create_connection(("127.0.0.1", pa.port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "h2.test"),
                            (":path", "/c"), ("cookie", "theme=dark"), ("cookie", "session=1")],
                      end_stream=True)
    sock.sendall(conn.data_to_send())
    status, body, done = None, b"", False
    while not done:
        data = sock.recv(65536)
        assert data, "connection closed"
        for e in conn.receive_data(data):
            if isinstance(e, h2.events.ResponseReceived):
                status = int(dict(e.headers)[b":status"])
            elif isinstance(e, h2.events.DataReceived):
                body += e.data
                conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, h2.events.StreamEnded):
                done = True
        sock.sendall(conn.data_to_send())
    sock.close()
    assert (status, body) == (200, b"session-dark")


# ----------------------------------------------------------------- arc check

ERR_RE = re.compile(r"^(.+?):(\d+):(\d+): error: (.+)$")

HEAD = """listeners:
  - name: http
    kind: http
    bind: "127.0.0.1:0"
routes:
"""


def check_errors(arc_bin, tmp_path, text, ext="yaml"):
    p = tmp_path / ("c." + ext)
    p.write_text(text)
    cp = arc_bin.run(["check", "-c", str(p)])
    assert cp.returncode == 1, "arc check accepted:\n%s\n%s" % (text, cp.stdout)
    errs = []
    for line in cp.stderr.splitlines():
        m = ERR_RE.match(line)
        if m:
            assert m.group(1) == str(p)
            errs.append((int(m.group(2)), int(m.group(3)), m.group(4)))
    assert errs, cp.stderr
    return errs


def pos_of(text, needle, nth=0, delta=0):
    """(line, col) of the nth occurrence of needle in text, plus delta chars."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    at += delta
    line = text.count("\n", 0, at) + 1
    col = at - (text.rfind("\n", 0, at) + 1) + 1
    return line, col


def route_text(expr_line, extra=""):
    return HEAD + """  - name: r
    match:
      path: /x
      headers:
        - {name: X-Env, op: equals, value: beta, id: beta}
        - {name: User-Agent, op: regex, pattern: "(?i)mobile", id: mobile}
%s%s
    action:
      respond: {status: 200}
""" % (extra, expr_line)


@pytest.mark.parametrize("expr_line,needle,msg", [
    ("      expr: beta and and mobile", "and mobile", "expected a matcher id, 'not' or '(' but found 'and'"),
    ("      expr: \"beta and (mobile\"", "(mobile", "'(' is never closed"),
    ("      expr: 'beta && mobile'", "&&", "'&&' is not an operator here: write 'and'"),
    ("      expr: beta AND mobile", "AND", "operators are lower-case: write 'and'"),
    ("      expr: beta or mobil", "mobil\n", "unknown matcher 'mobil'"),
    ("      expr: >-\n        beta and\n        not mobile)", "mobile)", "')' without a matching '('"),
    ("      expr: |\n        beta or\n          mobile x", "mobile x", "expected 'and', 'or' or the end of the expression but found 'x'"),
    ("      expr: beta or\n        (mobile or)", "or)", "found ')'"),
])
def test_check_expr_error_positions(arc_bin, tmp_path, expr_line, needle, msg):
    text = route_text(expr_line)
    errs = check_errors(arc_bin, tmp_path, text)
    want = pos_of(text, needle, delta={"or)": 2, "mobile)": 6, "mobile x": 7}.get(needle, 0))
    assert [(l, c) for l, c, m in errs if msg in m] == [want], (errs, want, text)


def test_check_expr_error_position_in_json(arc_bin, tmp_path):
    routes = [R("r", "/x", headers=[M("X-Env", "equals", "beta", id="beta")], expr="beta or (beta")]
    text = json.dumps(make_config([], routes=routes), indent=2)
    errs = check_errors(arc_bin, tmp_path, text, ext="json")
    assert [(l, c) for l, c, m in errs if "'(' is never closed" in m] == [pos_of(text, "(beta")]


def test_check_matcher_errors(arc_bin, tmp_path):
    text = HEAD + """  - name: r
    match:
      path: /x
      headers:
        - {name: X-A, op: regex, pattern: "ab(c[", id: a}
        - {name: X-B, op: equals}
        - {name: X-C, op: exists, value: x}
        - {name: X-D, op: exists}
        - {name: X-E, op: regex, value: x, id: e}
        - {name: X-F, op: exists, id: a}
        - {name: X-G, op: sometimes, id: g}
      cookies:
        - {name: "bad name", op: exists, id: c}
      query:
        - {name: q, op: contains, value: "", id: and}
        - {name: r, op: exists, id: unused}
      expr: a and e and g and c
    action:
      respond: {status: 200}
"""
    errs = check_errors(arc_bin, tmp_path, text)

    def at(needle, msg, delta=0):
        want = pos_of(text, needle, delta=delta)
        hits = [(l, c) for l, c, m in errs if msg in m]
        assert want in hits, (msg, want, errs)

    at('"ab(c[', "routes[0].match.headers[0].pattern: invalid regex 'ab(c[': missing terminating ] "
       "for character class at offset 5")
    at("{name: X-B", "missing required key 'value' in routes[0].match.headers[1] (op: equals)")
    at("value: x}", "routes[0].match.headers[2].value: not used with op: exists")
    at("{name: X-D", "routes[0].match.headers[3]: needs an 'id' to be used in match.expr")
    at("value: x, id: e", "routes[0].match.headers[4].value: not used with op: regex")
    at("a}\n        - {name: X-G", "matcher id 'a' is already used by routes[0].match.headers[0]")
    at("sometimes", "routes[0].match.headers[6].op: unknown value 'sometimes'")
    at('"bad name"', "'bad name' is not a valid cookie name")
    at('""', "an empty value is contained in every value; use op: exists")
    at("and}", "'and' is an expr operator and cannot be a matcher id")
    at("unused}", "routes[0].match.query[1].id: matcher 'unused' is not used in match.expr")


def test_check_ambiguous_and_never_matching_routes(arc_bin, tmp_path):
    text = HEAD + """  - name: red
    match:
      path: /a
      headers: [{name: X-Color, op: equals, value: red}]
    action: {respond: {status: 200}}
  - name: blue
    match:
      path: /a
      headers: [{name: x-color, op: equals, value: blue}]
    action: {respond: {status: 200}}
"""
    errs = check_errors(arc_bin, tmp_path, text)
    assert len(errs) == 1
    line, col, msg = errs[0]
    assert (line, col) == pos_of(text, "name: blue")
    assert "routes 'red' and 'blue' are ambiguous" in msg and "matchers can all hold" in msg

    # told apart through an expression: accepted
    ok = text.replace("      headers: [{name: x-color, op: equals, value: blue}]\n",
                      "      headers: [{name: X-Color, op: equals, value: red, id: red}]\n"
                      "      expr: not red\n")
    p = tmp_path / "ok.yaml"
    p.write_text(ok)
    cp = arc_bin.run(["check", "-c", str(p)])
    assert cp.returncode == 0, cp.stderr

    never = HEAD + """  - name: never
    match:
      path: /a
      headers:
        - {name: X-A, op: equals, value: "1", id: one}
        - {name: X-A, op: exists, id: any}
      expr: one and not any
    action: {respond: {status: 200}}
"""
    errs = check_errors(arc_bin, tmp_path, never)
    assert any("can never be true" in m for _, _, m in errs), errs
