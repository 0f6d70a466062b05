"""Arc's own diagnostic messages (the system log): NDJSON records with
kind "system", a level and the access log's ts format, on stderr when it is
not a terminal (ARC_LOG_FORMAT=auto, the default) and in the access log's
outputs; text ("arc: ...", "file:line:col: error: ...") with
ARC_LOG_FORMAT=text or on a terminal. A reload and a config error (at
start and on reload) are checked field by field."""
import json
import os
import re
import signal
import subprocess
import time

from arcproc import make_config, metric, to_yaml, upstream_conf, wait_for

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
LEVELS = {"debug", "info", "warn", "error"}


def bad_config(cfg):
    """cfg's YAML with one unknown top-level key: (text, its line, its col)."""
    text = to_yaml(cfg).rstrip("\n") + "\nfrobnicate: 1\n"
    return text, text.count("\n"), 1


def system_records(lines):
    """Every line parsed; each must be a well-formed system record."""
    out = []
    for ln in lines:
        if not ln.strip():
            continue
        o = json.loads(ln)
        assert o["kind"] == "system", o
        assert TS.match(o["ts"]), o
        assert o["level"] in LEVELS, o
        assert isinstance(o["msg"], str) and o["msg"], o
        keys = set(o)
        assert keys in ({"ts", "kind", "level", "msg"},
                        {"ts", "kind", "level", "msg", "file", "line", "col"}), o
        out.append(o)
    return out


def file_records(path, kind="system"):
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    recs = [json.loads(ln) for ln in text.splitlines() if ln]
    return [r for r in recs if r["kind"] == kind]


def find(recs, pred):
    return [r for r in recs if pred(r)]


def stderr_json(a):
    with a.cond:
        lines = list(a.lines)
    # the sanitizer runtime may print its own lines; arc's are all JSON
    return system_records([ln for ln in lines if ln.startswith("{")])


def test_reload_and_config_error_records(arc, servers, tmp_path, arc_bin):
    up = servers.http(name="echo")
    log = str(tmp_path / "access.log")
    cfg = make_config([upstream_conf("echo", up.addr)], workers=1,
                      extra={"logging": {"output": {"file": log},
                                         "writer": {"flush_interval": "10ms"}}})
    a = arc(cfg, env={"ARC_LOG_FORMAT": "auto"})       # stderr is a pipe: NDJSON
    with a.cond:
        assert all(ln.startswith("{") for ln in a.lines if ln.strip()), a.lines
    recs = stderr_json(a)
    ready = find(recs, lambda r: r["msg"].startswith("ready workers=1 fingerprint="))
    assert len(ready) == 1 and ready[0]["level"] == "info", recs
    assert find(recs, lambda r: r["msg"].startswith("using config "))
    # the startup records (made before the writer started) reach the file too
    assert wait_for(lambda: find(file_records(log), lambda r: r["msg"] == ready[0]["msg"]),
                    10 * arc_bin.slow), file_records(log)
    assert a.client().request("GET", "/x").status == 200

    # a good reload: one info record, in both places
    a.signal(signal.SIGHUP)
    assert wait_for(lambda: find(stderr_json(a), lambda r: r["msg"].startswith("reloaded (SIGHUP)")),
                    10 * arc_bin.slow), a.stderr_tail(20)
    (ok,) = find(stderr_json(a), lambda r: r["msg"].startswith("reloaded (SIGHUP)"))
    assert ok["level"] == "info" and "generation=2" in ok["msg"], ok
    assert wait_for(lambda: find(file_records(log), lambda r: r["msg"] == ok["msg"]),
                    10 * arc_bin.slow)

    # a config error: one error record per error with file/line/col, then
    # the reload's failure, and the running config stays
    bad, line, col = bad_config(cfg)
    with open(a.config_path, "w") as f:
        f.write(bad)
    a.signal(signal.SIGHUP)
    assert wait_for(lambda: find(stderr_json(a), lambda r: r["msg"].startswith("reload (SIGHUP) failed")),
                    10 * arc_bin.slow), a.stderr_tail(20)
    recs = stderr_json(a)
    errs = find(recs, lambda r: "file" in r)
    assert len(errs) == 1, errs
    e = errs[0]
    assert e["level"] == "error" and e["file"] == a.config_path, e
    assert (e["line"], e["col"]) == (line, col) and "frobnicate" in e["msg"], e
    (failed,) = find(recs, lambda r: r["msg"].startswith("reload (SIGHUP) failed"))
    assert failed["level"] == "error" and "still serving fingerprint=" in failed["msg"]
    assert recs.index(e) < recs.index(failed)
    assert wait_for(lambda: find(file_records(log), lambda r: r["msg"] == failed["msg"]),
                    10 * arc_bin.slow)
    in_file = find(file_records(log), lambda r: "file" in r)
    assert [(r["level"], r["file"], r["line"], r["col"], r["msg"]) for r in in_file] == \
        [(e["level"], e["file"], e["line"], e["col"], e["msg"])]
    ms, _ = a.metrics()
    assert metric(ms, "arc_config_reloads_total", result="error") == 1
    assert metric(ms, "arc_system_log_lines_total") >= 4
    assert a.client().request("GET", "/x").status == 200

    # the access log's own readers: `arc logs` shows access records unless asked
    assert wait_for(lambda: len(file_records(log, "access")) == 2, 10 * arc_bin.slow)
    cp = subprocess.run([a.binary, "logs", "query", "--file", log], capture_output=True, text=True,
                        timeout=30)
    assert cp.returncode == 0 and [json.loads(ln)["kind"] for ln in cp.stdout.splitlines()] == \
        ["access", "access"], cp.stdout
    cp = subprocess.run([a.binary, "logs", "query", "--file", log, "--kind", "system"],
                        capture_output=True, text=True, timeout=30)
    sysl = [json.loads(ln) for ln in cp.stdout.splitlines()]
    assert sysl and all(r["kind"] == "system" for r in sysl)
    assert any(r["msg"] == failed["msg"] for r in sysl)


def test_text_format_keeps_the_messages(arc, servers, tmp_path, arc_bin):
    up = servers.http(name="echo")
    cfg = make_config([upstream_conf("echo", up.addr)], workers=1)
    a = arc(cfg, env={"ARC_LOG_FORMAT": "text"})
    bad, line, col = bad_config(cfg)
    with open(a.config_path, "w") as f:
        f.write(bad)
    a.signal(signal.SIGHUP)
    assert wait_for(lambda: "arc: reload (SIGHUP) failed" in a.stderr_text(), 10 * arc_bin.slow)
    text = a.stderr_text()
    assert re.search(r"^arc: ready workers=1 fingerprint=[0-9a-f]{64}$", text, re.M), text
    assert re.search(r"^%s:%d:%d: error: .*frobnicate" % (re.escape(a.config_path), line, col),
                     text, re.M), text
    assert "{" not in "".join(ln for ln in text.splitlines() if ln.startswith("arc: "))


def test_start_with_a_bad_config_and_the_cli_stays_text(arc_bin, tmp_path):
    p = tmp_path / "bad.yaml"
    bad, line, col = bad_config(make_config([upstream_conf("echo", "127.0.0.1:9")], workers=1))
    p.write_text(bad)
    cp = arc_bin.run(["run", "-c", str(p)], env={"ARC_LOG_FORMAT": "auto"}, timeout=20)
    assert cp.returncode == 1
    recs = system_records([ln for ln in cp.stderr.splitlines() if ln.startswith("{")])
    (e,) = find(recs, lambda r: "file" in r)
    assert (e["level"], e["file"], e["line"], e["col"]) == ("error", str(p), line, col), e
    (summary,) = find(recs, lambda r: r["msg"] == "1 error in %s" % p)
    assert summary["level"] == "error"
    # `arc check` is a command-line tool: text whatever ARC_LOG_FORMAT says
    cp = arc_bin.run(["check", "-c", str(p)], env={"ARC_LOG_FORMAT": "json"})
    assert cp.returncode != 0
    assert "%s:%d:%d: error:" % (p, line, col) in cp.stderr and "{" not in cp.stderr, cp.stderr
