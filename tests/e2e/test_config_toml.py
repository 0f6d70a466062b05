"""A `.toml` config works end to end: `arc check` gives the same fingerprint
for the same config written in YAML, JSON and TOML (whatever way the TOML
spells its tables), reports TOML mistakes as FILE:LINE:COL errors, and
`arc run -c x.toml` serves traffic."""
import json
import re
import tomllib

from arcproc import make_config, route_conf, to_yaml, upstream_conf

OK_RE = re.compile(r"^ok ([0-9a-f]{64})$")
ERR_RE = re.compile(r"^(.+?):(\d+):(\d+): error: (.+)$")


def _key(k):
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)        # a JSON string is a TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join("%s = %s" % (_key(k), _value(x)) for k, x in v.items()) + " }"
    raise TypeError(v)


def to_toml(cfg):
    """TOML with a [section] per top-level table, a [[header]] per element of
    a top-level list of tables, and inline values below that."""
    out = []
    for k, v in cfg.items():
        if not isinstance(v, (dict, list)):
            out.append("%s = %s" % (_key(k), _value(v)))
    for k, v in cfg.items():
        if isinstance(v, dict):
            out.append("\n[%s]" % _key(k))
            out += ["%s = %s" % (_key(a), _value(b)) for a, b in v.items()]
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for el in v:
                out.append("\n[[%s]]" % _key(k))
                out += ["%s = %s" % (_key(a), _value(b)) for a, b in el.items()]
        elif isinstance(v, list):
            out.append("%s = %s" % (_key(k), _value(v)))
    return "\n".join(out) + "\n"


def rich_config():
    return make_config(
        [upstream_conf("app", ["127.0.0.1:3000", "127.0.0.1:3001"],
                       timeouts={"connect": "500ms", "ttfb": "5s"}, lb={"algorithm": "round_robin"}),
         upstream_conf("other", "[::1]:4000")],
        routes=[route_conf("api", "/api/{*rest}", upstream="app", methods=["GET", "POST"],
                           forwarded={"via": False, "trusted_proxies": ["10.0.0.0/8"]}),
                route_conf("old", "/old/{page}",
                           redirect={"status": 301, "location": "/new/{page}"}),
                route_conf("rest", "/{*rest}", upstream="other")])


def fingerprint_of(arc_bin, path):
    cp = arc_bin.run(["check", "-c", str(path)])
    assert cp.returncode == 0, cp.stderr
    m = OK_RE.match(cp.stdout.strip())
    assert m, cp.stdout
    return m.group(1)


def test_same_fingerprint_in_yaml_json_toml(arc_bin, tmp_path):
    cfg = rich_config()
    text = to_toml(cfg)
    assert tomllib.loads(text) == cfg       # the writer above is right
    files = {"c.yaml": to_yaml(cfg), "c.json": json.dumps(cfg, indent=2), "c.toml": text,
             # the same TOML with every table written out as a [header]
             "headers.toml": text.replace(
                 "discovery = { type = \"static\", endpoints = [{ address = \"[::1]:4000\" }] }",
                 "[upstreams.discovery]\ntype = \"static\"\n"
                 "[[upstreams.discovery.endpoints]]\naddress = \"[::1]:4000\"")}
    assert files["headers.toml"] != text
    prints = set()
    for name, body in files.items():
        p = tmp_path / name
        p.write_text(body)
        prints.add(fingerprint_of(arc_bin, p))
    assert len(prints) == 1, files


def test_check_reports_toml_errors_with_position(arc_bin, tmp_path):
    text = to_toml(rich_config())
    lines = text.splitlines()
    i = lines.index("[[routes]]")
    # a table defined twice, and an unquoted string
    lines.insert(i, "[node]")
    lines.insert(1, "oops = yes")
    p = tmp_path / "bad.toml"
    p.write_text("\n".join(lines) + "\n")
    cp = arc_bin.run(["check", "-c", str(p)])
    assert cp.returncode == 1
    errs = [ERR_RE.match(l).groups() for l in cp.stderr.splitlines() if ERR_RE.match(l)]
    assert (str(p), "2", "8", "invalid value 'yes' (a string must be quoted)") in errs, cp.stderr
    node = [e for e in errs if "table [node] is defined twice" in e[3]]
    assert node and node[0][1] == str(i + 2) and node[0][2] == "2", cp.stderr


def test_run_with_toml_config(arc, servers):
    up = servers.http(name="echo")
    a = arc(to_toml(make_config([upstream_conf("echo", up.addr)])), fmt="toml")
    r = a.client().request("GET", "/toml-config")
    assert r.status == 200 and r.json()["target"] == "/toml-config"
