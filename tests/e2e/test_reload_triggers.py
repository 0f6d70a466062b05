"""Reload on file change: editing the config file in place or renaming a
new one into place reloads it (logged with the trigger "file change");
replacing the certificate and key an https listener names (the config
untouched) makes new connections get the new certificate; a burst of
writes is one reload, 200 ms after the last; a save that changes nothing
the config says, a broken save (reported, the running config stays) and a
SIGHUP right after a write (one reload, not two) behave as documented."""
import os
import signal
import socket
import ssl
import subprocess
import time

from arcproc import make_config, metric, route_conf, to_yaml, upstream_conf, wait_for

WATCHING = "arc: watching for changes"




def config(body="v1", extra_routes=(), listeners=()):
    routes = [route_conf("probe", "/probe", respond={"status": 200, "body": body})]
    routes += list(extra_routes)
    cfg = make_config([], routes=routes, workers=1)
    cfg["listeners"] += list(listeners)
    return cfg


def start(arc, cfg):
    a = arc(cfg)
    # The watches are set when the control loop starts, just after the
    # ready line: wait until they are, or a write could come before them.
    assert wait_for(lambda: WATCHING in a.stderr_text()), a.stderr_tail(10)
    return a


def probe(a):
    r = a.client().request("GET", "/probe")
    return r.body.decode() if r.status == 200 else None


def reloads(a, result="ok"):
    return metric(a.metrics()[0], "arc_config_reloads_total", result=result) or 0


def generation(a):
    return metric(a.metrics()[0], "arc_config_generation")


def logged(a, text, timeout=5.0):
    """True once arc's stderr holds text (it is read by another thread)."""
    return wait_for(lambda: text in a.stderr_text(), timeout)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def test_edit_in_place(arc):
    a = start(arc, config("v1"))
    assert probe(a) == "v1"
    write(a.config_path, to_yaml(config("v2")))
    assert wait_for(lambda: probe(a) == "v2"), a.stderr_tail(10)
    assert reloads(a) == 1 and generation(a) == 2
    assert logged(a, "arc: reloaded (file change) generation=2"), a.stderr_tail(10)
    assert a.wait_stderr("arc: file change seen: %s" % os.path.basename(a.config_path)), a.stderr_tail(20)


def test_rename_into_place(arc, tmp_path):
    a = start(arc, config("v1"))
    tmp = str(tmp_path / ".arc.yaml.tmp")
    write(tmp, to_yaml(config("renamed")))
    os.rename(tmp, a.config_path)
    assert wait_for(lambda: probe(a) == "renamed"), a.stderr_tail(10)
    assert logged(a, "reloaded (file change)")
    # and again: the directory is watched, not the replaced inode
    write(tmp, to_yaml(config("again")))
    os.rename(tmp, a.config_path)
    assert wait_for(lambda: probe(a) == "again"), a.stderr_tail(10)
    assert reloads(a) == 2


def test_other_files_in_the_directory_are_ignored(arc, tmp_path):
    a = start(arc, config("v1"))
    for i in range(5):
        write(str(tmp_path / ("other-%d.yaml" % i)), "x: %d\n" % i)
    time.sleep(1.0)
    assert reloads(a) == 0 and reloads(a, "error") == 0
    assert "file change" not in a.stderr_text()


def make_cert(d, name, cn):
    key, pem = os.path.join(d, name + ".key"), os.path.join(d, name + ".pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", "/CN=" + cn, "-addext",
                    "subjectAltName=DNS:a.test", "-keyout", key, "-out", pem],
                   check=True, capture_output=True)
    return pem, key


def served_cn(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="a.test") as t:
            der = t.getpeercert(binary_form=True)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"], input=der,
                         capture_output=True, check=True).stdout.decode()
    return out.strip().split("CN")[-1].strip(" =")


def test_certificate_replaced(arc, tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    pem, key = make_cert(str(certs), "site", "first")
    tls = {"name": "tls", "kind": "https", "bind": "127.0.0.1:0",
           "tls": {"certificates": [{"cert_pem": pem, "key_pem": key}]}}
    a = start(arc, config("v1", listeners=[tls]))
    port = a.listeners["tls"]
    assert served_cn(port) == "first"
    # an open TLS connection, to show it is not disturbed
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    old = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                          server_hostname="a.test")
    # a rotation the way cert tools do it: new files, renamed over the old
    npem, nkey = make_cert(str(certs), "next", "second")
    os.rename(nkey, key)
    os.rename(npem, pem)
    assert wait_for(lambda: served_cn(port) == "second"), a.stderr_tail(10)
    assert reloads(a) == 1, a.stderr_tail(10)       # key and certificate: one reload
    assert logged(a, "reloaded (file change)")
    err = a.stderr_text()
    assert "site.key" in err and "site.pem" in err
    # The old connection keeps working, and does not keep the old config
    # in memory (it holds only its listener's TLS context).
    assert wait_for(lambda: metric(a.metrics()[0], "arc_config_live_snapshots") == 1), \
        metric(a.metrics()[0], "arc_config_live_snapshots")
    old.sendall(b"GET /probe HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert old.recv(4096).startswith(b"HTTP/1.1 200")
    old.close()
    # rewritten in place this time (cp new cert.pem)
    npem, nkey = make_cert(str(certs), "third", "third")
    for src, dst in ((nkey, key), (npem, pem)):
        with open(src, "rb") as f:
            data = f.read()
        with open(dst, "wb") as f:
            f.write(data)
    assert wait_for(lambda: served_cn(port) == "third"), a.stderr_tail(10)
    assert reloads(a) == 2


def test_burst_of_writes_is_one_reload(arc):
    a = start(arc, config("v0"))
    texts = [to_yaml(config("v%d" % i)) for i in range(1, 21)]
    gaps, last = [], None
    for t in texts:
        write(a.config_path, t)
        now = time.monotonic()
        if last is not None:
            gaps.append(now - last)
        last = now
        time.sleep(0.005)
    # the debounce restarts at every event: each gap must be well inside it
    assert max(gaps) < 0.15, "writes too far apart for one debounce window: %r" % gaps
    assert wait_for(lambda: probe(a) == "v20"), a.stderr_tail(10)
    time.sleep(1.0)
    assert reloads(a) == 1, a.stderr_tail(20)
    assert reloads(a, "error") == 0
    assert a.stderr_text().count("reloaded (file change)") == 1


def test_debounce_waits_for_quiet(arc):
    """Writes 100 ms apart keep pushing the reload back; it happens once,
    after the last, with the last content."""
    a = start(arc, config("v0"))
    for i in range(1, 8):
        write(a.config_path, to_yaml(config("w%d" % i)))
        time.sleep(0.1)
        assert reloads(a) == 0, "reloaded before the writes stopped"
    assert wait_for(lambda: probe(a) == "w7")
    time.sleep(0.5)
    assert reloads(a) == 1


def test_same_meaning_is_no_reload(arc):
    cfg = config("v1")
    a = start(arc, cfg)
    write(a.config_path, "# only a comment changed\n" + to_yaml(cfg))
    assert logged(a, "not reloaded"), a.stderr_tail(10)
    assert reloads(a) == 0 and generation(a) == 1
    os.utime(a.config_path)                         # touch
    time.sleep(0.8)
    assert reloads(a) == 0 and generation(a) == 1


def test_broken_save_is_reported_and_fixed(arc):
    cfg = config("v1")
    a = start(arc, cfg)
    write(a.config_path, to_yaml(cfg) + "routes: [oops\n")
    assert wait_for(lambda: reloads(a, "error") == 1), a.stderr_tail(10)
    assert logged(a, "arc: reload (file change) failed")
    assert a.wait_stderr("%s:" % a.config_path), a.stderr_tail(20)
    assert probe(a) == "v1"
    write(a.config_path, to_yaml(config("fixed")))
    assert wait_for(lambda: probe(a) == "fixed"), a.stderr_tail(10)
    assert reloads(a, "error") == 1 and reloads(a) == 1


def test_sighup_right_after_a_write_is_one_reload(arc):
    a = start(arc, config("v1"))
    write(a.config_path, to_yaml(config("v2")))
    a.signal(signal.SIGHUP)
    assert wait_for(lambda: probe(a) == "v2")
    time.sleep(1.0)
    assert reloads(a) == 1, a.stderr_tail(10)
    assert generation(a) == 2
    assert logged(a, "reloaded (SIGHUP)")
    assert "reloaded (file change)" not in a.stderr_text()
