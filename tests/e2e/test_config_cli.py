"""`arc check` accepts a valid config and prints its fingerprint (identical
for equivalent YAML and JSON, and equal to the one `arc run` reports), and
rejects bad configs with exit 1 and FILE:LINE:COL errors pointing at the
planted mistake; `arc run` refuses them too."""
import json
import os
import re

import pytest

from arcproc import make_config, upstream_conf, to_yaml

OK_RE = re.compile(r"^ok ([0-9a-f]{64})$")
ERR_RE = re.compile(r"^(.+?):(\d+):(\d+): error: (.+)$")


def good_config():
    return make_config([upstream_conf("app", "127.0.0.1:3000", timeouts={"ttfb": "5s"})])


def check(arc_bin, path):
    return arc_bin.run(["check", "-c", str(path)])


def fingerprint_of(arc_bin, path):
    cp = check(arc_bin, path)
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.strip().splitlines()
    assert len(lines) == 1, cp.stdout
    m = OK_RE.match(lines[0])
    assert m, "unexpected arc check output: %r" % cp.stdout
    return m.group(1)


def errors_of(cp, path):
    errs = []
    for line in cp.stderr.splitlines():
        m = ERR_RE.match(line)
        if m:
            errs.append((m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)))
    assert errs, "no FILE:LINE:COL: error: lines in stderr:\n" + cp.stderr
    for f, _, col, _ in errs:
        assert f == str(path), "error names file %r, expected %r" % (f, str(path))
        assert col >= 0
    return errs


def test_check_ok_prints_fingerprint(arc_bin, tmp_path):
    p = tmp_path / "good.yaml"
    p.write_text(to_yaml(good_config()))
    fp = fingerprint_of(arc_bin, p)
    assert fp == fingerprint_of(arc_bin, p)   # deterministic


def test_yaml_and_json_have_same_fingerprint(arc_bin, tmp_path):
    cfg = good_config()
    y = tmp_path / "c.yaml"
    y.write_text("# a comment\n" + to_yaml(cfg))
    j = tmp_path / "c.json"
    j.write_text(json.dumps(cfg, indent=4))
    # key order does not matter either
    r = tmp_path / "reordered.yaml"
    r.write_text(to_yaml(dict(reversed(list(cfg.items())))))
    fy, fj, fr = fingerprint_of(arc_bin, y), fingerprint_of(arc_bin, j), fingerprint_of(arc_bin, r)
    assert fy == fj == fr


def test_different_config_different_fingerprint(arc_bin, tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text(to_yaml(good_config()))
    cfg = good_config()
    cfg["upstreams"][0]["timeouts"]["ttfb"] = "6s"
    b = tmp_path / "b.yaml"
    b.write_text(to_yaml(cfg))
    assert fingerprint_of(arc_bin, a) != fingerprint_of(arc_bin, b)


def test_run_reports_same_fingerprint_as_check(arc, arc_bin, servers, tmp_path):
    up = servers.http()
    cfg = make_config([upstream_conf("app", up.addr)])
    a = arc(cfg)
    assert a.fingerprint == fingerprint_of(arc_bin, a.config_path)
    assert len(a.listeners) == 1 and a.admin_port and a.workers == 2


BAD_UNKNOWN_KEY = """\
node:
  workers: 1
listeners:
  - name: http
    kind: http
    bind: "127.0.0.1:0"
    lisener: oops
upstreams:
  - name: app
    discovery:
      type: static
      endpoints:
        - address: "127.0.0.1:3000"
routes:
  - name: root
    match:
      path: "/{*rest}"
    action:
      upstream: app
"""

BAD_DURATION = """\
listeners:
  - name: http
    kind: http
    bind: "127.0.0.1:0"
upstreams:
  - name: app
    discovery:
      type: static
      endpoints:
        - address: "127.0.0.1:3000"
    timeouts:
      connect: 1s
      ttfb: "5 parsecs"
routes:
  - name: root
    match:
      path: "/{*rest}"
    action:
      upstream: app
"""

BAD_UPSTREAM_REF = """\
listeners:
  - name: http
    kind: http
    bind: "127.0.0.1:0"
upstreams:
  - name: app
    discovery:
      type: static
      endpoints:
        - address: "127.0.0.1:3000"
routes:
  - name: root
    match:
      path: "/{*rest}"
    action:
      upstream: app
  - name: other
    match:
      path: "/other"
    action:
      upstream: nosuch
"""

BAD_ADDRESS = """\
listeners:
  - name: http
    kind: http
    bind: "localhost:8080"
upstreams:
  - name: app
    discovery:
      type: static
      endpoints:
        - address: "127.0.0.1:3000"
routes:
  - name: root
    match:
      path: "/{*rest}"
    action:
      upstream: app
"""

BAD_YAML_SYNTAX = """\
listeners:
  - name: http
    kind: http
    bind: "127.0.0.1:0
upstreams: []
"""

BAD_JSON = """\
{
  "listeners": [
    {"name": "http", "kind": "http", "bind": "127.0.0.1:0"}
  ],
  "upstreams": [
    {"name": "app",
     "discovery": {"type": "static", "endpoints": [{"address": "127.0.0.1:3000"}]},
     "pool": {"max_idle": "lots"}}
  ],
  "routes": [
    {"name": "root", "match": {"path": "/{*rest}"}, "action": {"upstream": "app"}}
  ]
}
"""

CASES = {
    # name: (text, extension, a string on the line of the planted error)
    "unknown_key": (BAD_UNKNOWN_KEY, "yaml", "lisener"),
    "bad_duration": (BAD_DURATION, "yaml", "parsecs"),
    "unknown_upstream": (BAD_UPSTREAM_REF, "yaml", "nosuch"),
    "hostname_bind": (BAD_ADDRESS, "yaml", "localhost"),
    "json_bad_type": (BAD_JSON, "json", "lots"),
}


def line_of(text, marker):
    return next(i + 1 for i, l in enumerate(text.splitlines()) if marker in l)


BASE = """\
node:
  workers: 1
io_uring:
  uring_entries: 2048
listeners:
  - name: http
    kind: http
    bind: "127.0.0.1:0"
upstreams:
  - name: app
    discovery:
      type: static
      endpoints:
        - address: "127.0.0.1:3000"
routes:
  - name: root
    match:
      path: "/{*rest}"
      methods: [GET, POST]
    action:
      upstream: app
  - name: other
    match:
      path: "/other/{id}"
    action:
      redirect:
        status: 301
        location: "/x/{id}"
"""

# name: (old, new, markers: the error may point at any line containing one)
MUTATIONS = {
    "workers_not_a_number": ("workers: 1", "workers: two", ["workers: two"]),
    "uring_entries_not_power_of_two": ("uring_entries: 2048", "uring_entries: 1000", ["uring_entries"]),
    "unknown_method": ("methods: [GET, POST]", "methods: [GET, FETCH]", ["FETCH"]),
    "redirect_status_200": ("status: 301", "status: 200", ["status: 200"]),
    "bad_path_pattern": ('path: "/other/{id}"', 'path: "/other/{*id}/x"', ["/other/{*id}/x"]),
    "duplicate_route_name": ("- name: other", "- name: root", ["- name: root"]),
    "ambiguous_routes": ([('path: "/other/{id}"', 'path: "/{*rest}"'), ('location: "/x/{id}"', 'location: "/x"'),
                          ("      methods: [GET, POST]\n", "")],
                         None, ['path: "/{*rest}"', "- name: root", "- name: other"]),
    "unknown_lb_algorithm": ("    discovery:", "    lb:\n      algorithm: random_walk\n    discovery:", ["random_walk"]),
    "missing_required_bind": ('    bind: "127.0.0.1:0"\n', "", ["- name: http", "kind: http"]),
    "kind_unsupported": ("kind: http", "kind: gopher", ["gopher"]),
}


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_check_reports_mutation_line(arc_bin, tmp_path, case):
    old, new, markers = MUTATIONS[case]
    text = BASE
    for o, n in (old if isinstance(old, list) else [(old, new)]):
        assert o in text
        text = text.replace(o, n, 1)
    ok = tmp_path / "base.yaml"
    ok.write_text(BASE)
    fingerprint_of(arc_bin, ok)
    p = tmp_path / "mut.yaml"
    p.write_text(text)
    cp = check(arc_bin, p)
    assert cp.returncode == 1, "arc check accepted %s (exit %d):\n%s" % (case, cp.returncode, text)
    allowed = {i + 1 for i, l in enumerate(text.splitlines()) if any(m in l for m in markers)}
    lines = [e[1] for e in errors_of(cp, p)]
    assert set(lines) & allowed, "%s: error lines %s, expected one of %s:\n%s" % (case, lines, sorted(allowed), cp.stderr)


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_reports_planted_error_line(arc_bin, tmp_path, case):
    text, ext, marker = CASES[case]
    line = line_of(text, marker)
    p = tmp_path / ("bad.%s" % ext)
    p.write_text(text)
    cp = check(arc_bin, p)
    assert cp.returncode == 1, "arc check exit %d\nstdout: %s\nstderr: %s" % (cp.returncode, cp.stdout, cp.stderr)
    errs = errors_of(cp, p)
    lines = [e[1] for e in errs]
    assert line in lines, "expected an error at line %d, got:\n%s" % (line, cp.stderr)
    assert not cp.stdout.startswith("ok")


def test_check_reports_yaml_syntax_error(arc_bin, tmp_path):
    p = tmp_path / "syntax.yaml"
    p.write_text(BAD_YAML_SYNTAX)
    cp = check(arc_bin, p)
    assert cp.returncode == 1
    errs = errors_of(cp, p)
    assert all(e[1] >= 4 for e in errs), cp.stderr   # not before the unterminated string


def test_check_reports_all_errors_at_once(arc_bin, tmp_path):
    text = BAD_UNKNOWN_KEY.replace('        - address: "127.0.0.1:3000"\n',
                                   '        - address: "127.0.0.1:3000"\n          wieght: 3\n')
    # line 14 now holds "wieght"
    assert text.splitlines()[13].strip() == "wieght: 3"
    p = tmp_path / "two.yaml"
    p.write_text(text)
    cp = check(arc_bin, p)
    assert cp.returncode == 1
    lines = sorted(e[1] for e in errors_of(cp, p))
    assert 7 in lines and 14 in lines, cp.stderr


def test_run_refuses_bad_config(arc_bin, tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(BAD_UNKNOWN_KEY)
    cp = arc_bin.run(["run", "-c", str(p)], timeout=20)
    assert cp.returncode == 1, cp.stderr
    assert any(e[1] == 7 for e in errors_of(cp, p))


def test_missing_file(arc_bin, tmp_path):
    p = tmp_path / "does-not-exist.yaml"
    cp = check(arc_bin, p)
    assert cp.returncode == 1
    assert str(p) in cp.stderr


def test_version(arc_bin):
    cp = arc_bin.run(["version"])
    assert cp.returncode == 0, cp.stderr
    out = cp.stdout + cp.stderr
    with open(__file__.rsplit("/tests/", 1)[0] + "/VERSION") as f:
        version = f.read().strip()
    assert version in out, out
    assert "io_uring" in out.lower() or "uring" in out.lower(), out


def test_unknown_command_fails(arc_bin):
    cp = arc_bin.run(["frobnicate"])
    assert cp.returncode != 0


def test_run_with_json_config(arc, servers):
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr)]), fmt="json")
    r = a.client().request("GET", "/json-config")
    assert r.status == 200 and r.json()["target"] == "/json-config"


# ------------------------------------------------- namespaces of the test's own
#
# The default config lookup reads the real /etc/arc/arc.yaml and the embedded
# default binds the fixed ports 127.0.0.1:8080 and :9090, so these tests run
# arc in a mount namespace (and, for fixed ports, a network namespace) that
# dies with it: /etc is an overlay on a private tmpfs, so the test can create
# or hide /etc/arc without changing the host's /etc, and the new network
# namespace has nothing on any port.

def _ns_script(tmp_path, argv, etc_arc=None, net=False):
    """sh script: private /etc overlay, /etc/arc made as asked, then exec argv.
    etc_arc: None (no /etc/arc), or {"name": text-or-None} (None = a directory)."""
    import shlex
    mnt = tmp_path / "ns-tmpfs"
    mnt.mkdir(exist_ok=True)
    lines = ["set -e",
             "mount -t tmpfs tmpfs %s" % shlex.quote(str(mnt)),
             "mkdir %s/upper %s/work" % (shlex.quote(str(mnt)), shlex.quote(str(mnt))),
             "mount -t overlay overlay -o lowerdir=/etc,upperdir=%s/upper,workdir=%s/work /etc"
             % (shlex.quote(str(mnt)), shlex.quote(str(mnt))),
             "rm -rf /etc/arc"]
    if etc_arc is not None:
        lines.append("mkdir /etc/arc")
        for name, text in etc_arc.items():
            if text is None:
                lines.append("mkdir /etc/arc/%s" % shlex.quote(name))
            else:
                src = tmp_path / ("etc-arc-" + name)
                src.write_text(text)
                lines.append("cp %s /etc/arc/%s" % (shlex.quote(str(src)), shlex.quote(name)))
    if net:
        lines.append("ip link set lo up")
    lines.append("exec " + " ".join(shlex.quote(a) for a in argv))
    return "\n".join(lines)


def _unshare(net=False):
    return ["/usr/bin/unshare", "--mount", "--propagation", "private"] + (["--net"] if net else [])


def run_isolated(arc_bin, tmp_path, args, etc_arc=None):
    """Runs a one-shot `arc ARGS` with /etc/arc as given; CompletedProcess."""
    import subprocess
    from arcproc import DEFAULT_SAN_ENV
    env = dict(os.environ)
    for k, v in DEFAULT_SAN_ENV.items():
        env.setdefault(k, v)
    cp = subprocess.run(_unshare() + ["sh", "-c", _ns_script(tmp_path, [arc_bin.path] + args, etc_arc)],
                        capture_output=True, text=True, timeout=30 * arc_bin.slow, env=env,
                        stdin=subprocess.DEVNULL)
    assert "mount" not in cp.stderr.split("arc:")[0], "namespace set-up failed:\n" + cp.stderr
    assert cp.returncode >= 0, "arc killed by signal %d:\n%s" % (-cp.returncode, cp.stderr)
    return cp


def start_isolated(arc_bin, tmp_path, args, etc_arc=None, net=False):
    """Starts `arc ARGS` (ArcProcess, ready) in its own mount (and network) namespace.
    The pid is arc's own: unshare and sh exec into it."""
    from arcproc import ArcProcess, ArcStartError
    p = ArcProcess(_unshare(net)[0], arc_bin.variant, None, tmp_path)
    p.args = _unshare(net)[1:] + ["sh", "-c", _ns_script(tmp_path, [arc_bin.path] + args, etc_arc, net)]
    p.start()
    try:
        p.wait_ready()
    except ArcStartError as e:
        p.stop()
        pytest.fail(str(e), pytrace=False)
    return p


def stop_isolated(p, arc_bin):
    problems = p.stop(timeout=20.0 * arc_bin.slow)
    assert not problems, "\n".join(problems)


def ns_get(p, url):
    """(status, body) of GET url from inside arc's network namespace."""
    import subprocess
    cp = subprocess.run(["nsenter", "--net=/proc/%d/ns/net" % p.pid, "curl", "-sS", "--max-time", "10",
                         "-o", "-", "-w", "\n%{http_code}", url], capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, "curl %s in arc's namespace: %s" % (url, cp.stderr)
    body, _, code = cp.stdout.rpartition("\n")
    return int(code), body


EMBEDDED_LINE = "arc: using the embedded default config (no -c given and /etc/arc/arc.yaml does not exist)"


def test_run_without_config_uses_embedded_defaults(arc_bin, tmp_path):
    # Fixed ports 8080/9090 are always free in a network namespace of our own;
    # the mount namespace makes sure no /etc/arc/arc.yaml is picked up.
    import os.path
    assert os.path.exists("/proc/self/ns/net")
    p = start_isolated(arc_bin, tmp_path, ["run"], net=True)
    try:
        assert p.listeners == {"http": 8080}, p.stderr_text()
        assert p.admin_port == 9090
        assert p.wait_stderr(EMBEDDED_LINE), p.stderr_tail(20)
        status, body = ns_get(p, "http://127.0.0.1:9090/healthz")
        assert status == 200 and body.strip() == "ok"
        status, body = ns_get(p, "http://127.0.0.1:8080/")
        assert status == 200 and "embedded default configuration" in body, body
    finally:
        stop_isolated(p, arc_bin)


RESPOND_CONFIG = """\
node:
  workers: 1
listeners:
  - name: http
    kind: http
    bind: "127.0.0.1:0"
routes:
  - name: hello
    match:
      path: "/{*rest}"
    action:
      respond:
        status: 200
        body: "from /etc/arc/arc.yaml\\n"
observability:
  metrics_bind: "127.0.0.1:0"
"""


def test_run_without_config_loads_etc_arc(arc_bin, tmp_path):
    ref = tmp_path / "ref.yaml"
    ref.write_text(RESPOND_CONFIG)
    fp = fingerprint_of(arc_bin, ref)
    p = start_isolated(arc_bin, tmp_path, ["run"], etc_arc={"arc.yaml": RESPOND_CONFIG})
    try:
        assert p.fingerprint == fp, "arc run without -c did not load /etc/arc/arc.yaml:\n" + p.stderr_text()
        assert p.wait_stderr("arc: using config /etc/arc/arc.yaml (no -c given)"), p.stderr_tail(20)
        r = p.client().request("GET", "/x")
        assert r.status == 200 and r.body == b"from /etc/arc/arc.yaml\n", r
    finally:
        stop_isolated(p, arc_bin)


def test_check_without_config_checks_etc_arc(arc_bin, tmp_path):
    ref = tmp_path / "ref.yaml"
    ref.write_text(RESPOND_CONFIG)
    fp = fingerprint_of(arc_bin, ref)
    cp = run_isolated(arc_bin, tmp_path, ["check"], etc_arc={"arc.yaml": RESPOND_CONFIG})
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == "ok %s\n" % fp
    assert "arc: using config /etc/arc/arc.yaml (no -c given)" in cp.stderr
    # A bad /etc/arc/arc.yaml is reported against that file.
    cp = run_isolated(arc_bin, tmp_path, ["check"], etc_arc={"arc.yaml": BAD_UNKNOWN_KEY})
    assert cp.returncode == 1, cp.stderr
    assert any(e[1] == 7 for e in errors_of(cp, "/etc/arc/arc.yaml"))
    # -c wins over /etc/arc/arc.yaml.
    good = tmp_path / "good.yaml"
    good.write_text(to_yaml(good_config()))
    cp = run_isolated(arc_bin, tmp_path, ["check", "-c", str(good)], etc_arc={"arc.yaml": BAD_UNKNOWN_KEY})
    assert cp.returncode == 0 and cp.stdout == "ok %s\n" % fingerprint_of(arc_bin, good), cp.stderr


def test_check_without_config_falls_back_only_when_absent(arc_bin, tmp_path):
    cp = run_isolated(arc_bin, tmp_path, ["check"])
    assert cp.returncode == 0, cp.stderr
    assert OK_RE.match(cp.stdout.strip()), cp.stdout
    assert EMBEDDED_LINE in cp.stderr
    # Present but unreadable (here: a directory) is an error, not a silent
    # switch to the embedded config.
    cp = run_isolated(arc_bin, tmp_path, ["check"], etc_arc={"arc.yaml": None})
    assert cp.returncode == 1, cp.stdout + cp.stderr
    assert "/etc/arc/arc.yaml" in cp.stderr and not cp.stdout.startswith("ok")


@pytest.mark.parametrize("args", [[], ["frobnicate"], ["run", "--frobnicate"], ["run", "-c"],
                                  ["check", "-c"], ["check", "x.yaml"], ["run", "-c", "x.yaml", "extra"]],
                         ids=lambda a: " ".join(a) or "no-args")
def test_usage_errors_exit_2(arc_bin, tmp_path, args):
    cp = arc_bin.run(args)
    assert cp.returncode == 2, "arc %s: exit %d\n%s" % (" ".join(args), cp.returncode, cp.stderr)
    assert "usage: arc" in cp.stderr
    assert cp.stdout == ""


EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")


@pytest.mark.parametrize("name", sorted(f for f in os.listdir(EXAMPLES)
                                        if f.endswith((".yaml", ".toml", ".json"))
                                        and not f.startswith(("prometheus", "grafana"))))
def test_examples_pass_arc_check(arc_bin, name):
    """Every example config in examples/ is valid for this version (they
    are what operators copy from)."""
    cp = arc_bin.run(["check", "-c", os.path.join(EXAMPLES, name)], timeout=60)
    assert cp.returncode == 0 and cp.stdout.startswith("ok "), (cp.stdout, cp.stderr)


def test_check_canonical_prints_what_the_fingerprint_hashes(arc_bin, tmp_path):
    import hashlib
    y = tmp_path / "a.yaml"
    y.write_text("listeners: [{name: h, kind: http, bind: \"127.0.0.1:0\"}]\n"
                 "routes: [{name: r, match: {path: /}, action: {respond: {status: 204}}}]\n")
    t = tmp_path / "a.toml"
    t.write_text("[[listeners]]\nname = \"h\"\nkind = \"http\"\nbind = \"127.0.0.1:0\"\n\n"
                 "[[routes]]\nname = \"r\"\nmatch.path = \"/\"\naction.respond.status = 204\n")
    fp = arc_bin.run(["check", "-c", str(y)]).stdout.split()[1]
    cy = arc_bin.run(["check", "--canonical", "-c", str(y)])
    ct = arc_bin.run(["check", "-c", str(t), "--canonical"])
    assert cy.returncode == 0 and ct.returncode == 0, (cy.stderr, ct.stderr)
    assert cy.stdout == ct.stdout                       # one config, one canonical form
    assert hashlib.sha256(cy.stdout.rstrip("\n").encode()).hexdigest() == fp
    json.loads(cy.stdout)
