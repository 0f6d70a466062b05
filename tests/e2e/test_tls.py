"""TLS on https listeners and to upstreams, with real peers (curl, openssl
s_client, openssl s_server): certificates chosen by SNI (exact, wildcard,
default), ALPN (h2 preferred, http/1.1), session resumption with tickets on every worker
(and none when it is turned off), client certificates required and optional, X-Forwarded-Proto
https, large bodies both ways, handshake failures counted by reason, bad
certificate files refused by `arc check` with their location, and upstream
TLS verified against a CA (502 on a wrong one, `insecure` only when set)."""
import json
import os
import socket
import subprocess
import time

import pytest

from arcproc import make_config, metric, route_conf, upstream_conf
from httpraw import free_port


def sh(*args, **kw):
    return subprocess.run(list(args), check=True, capture_output=True, text=True, timeout=30, **kw)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    p = lambda n: str(d / n)  # noqa: E731
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    sh("openssl", "req", "-x509", *ec, "-keyout", p("ca.key"), "-out", p("ca.pem"),
       "-days", "30", "-subj", "/CN=Arc Test CA")

    def leaf(name, cn, san):
        sh("openssl", "req", *ec, "-keyout", p(name + ".key"), "-out", p(name + ".csr"),
           "-subj", "/CN=" + cn)
        ext = p(name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n" % san)
        sh("openssl", "x509", "-req", "-in", p(name + ".csr"), "-CA", p("ca.pem"),
           "-CAkey", p("ca.key"), "-CAcreateserial", "-days", "30", "-out", p(name + ".pem"),
           "-extfile", ext)
    leaf("a", "a.test", "DNS:a.test,IP:127.0.0.1")
    leaf("wild", "*.b.test", "DNS:*.b.test")
    leaf("client", "arc-client", "DNS:client.test")
    # a second, unrelated CA (for "wrong CA" cases)
    sh("openssl", "req", "-x509", *ec, "-keyout", p("other.key"), "-out", p("other.pem"),
       "-days", "30", "-subj", "/CN=Other CA")
    return p


def https_config(pki, up, tls_extra=None, workers=2, node=None):
    cfg = make_config([upstream_conf("echo", up.addr)], workers=workers, node=node)
    tls = {"certificates": [{"cert_pem": pki("a.pem"), "key_pem": pki("a.key")},
                            {"sni": "*.b.test", "cert_pem": pki("wild.pem"),
                             "key_pem": pki("wild.key")}]}
    tls.update(tls_extra or {})
    cfg["listeners"] = [{"name": "web", "kind": "https", "bind": "127.0.0.1:0", "tls": tls}]
    return cfg


def curl(port, path="/", name="a.test", extra=(), timeout=20):
    cmd = ["curl", "-sS", "--http1.1", "--max-time", str(timeout), "--cacert", extra_ca(extra),
           "--resolve", "%s:%d:127.0.0.1" % (name, port), "-o", "-", "-w", "\n%{http_code}",
           "https://%s:%d%s" % (name, port, path)] + [e for e in extra if not e.startswith("ca=")]
    r = subprocess.run(cmd, capture_output=True, timeout=timeout + 10)
    body, _, code = r.stdout.rpartition(b"\n")
    return r.returncode, int(code or b"0"), body, r.stderr.decode(errors="replace")


def extra_ca(extra):
    for e in extra:
        if e.startswith("ca="):
            return e[3:]
    return CA[0]


CA = [None]


@pytest.fixture(autouse=True)
def _ca(pki):
    CA[0] = pki("ca.pem")


def s_client(port, *args, input_=b"", timeout=15):
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", CA[0]] + list(args)
    r = subprocess.run(cmd, input=input_, capture_output=True, timeout=timeout)
    return r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


def test_https_proxies_with_forwarded_proto(arc, servers, pki):
    up = servers.http(name="echo")
    a = arc(https_config(pki, up))
    rc, code, body, err = curl(a.port, "/hello?x=1")
    assert rc == 0 and code == 200, err
    j = json.loads(body)
    assert j["path"] == "/hello"
    hdrs = {k.lower(): v for k, v in j["headers"]}
    assert hdrs["x-forwarded-proto"] == "https"
    ms, _ = a.metrics()
    assert metric(ms, "arc_tls_handshakes_total", side="downstream", result="ok") >= 1
    assert metric(ms, "arc_tls_cert_expiry_seconds", sni="*.b.test") > 20 * 86400


def test_sni_picks_exact_wildcard_and_default(arc, servers, pki):
    up = servers.http(name="echo")
    a = arc(https_config(pki, up))
    out = s_client(a.port, "-servername", "x.b.test", input_=b"Q\n")
    assert "CN = *.b.test" in out or "CN=*.b.test" in out, out[-2000:]
    out = s_client(a.port, "-servername", "unknown.test", input_=b"Q\n")
    assert "CN = a.test" in out or "CN=a.test" in out, out[-2000:]
    rc, code, _, err = curl(a.port, "/w", name="deep.b.test")
    assert rc == 0 and code == 200, err


def test_alpn_prefers_h2_then_http11(arc, servers, pki):
    up = servers.http(name="echo")
    a = arc(https_config(pki, up))
    out = s_client(a.port, "-alpn", "http/1.1,h2", input_=b"Q\n")
    assert "ALPN protocol: h2" in out, out[-2000:]
    out = s_client(a.port, "-alpn", "http/1.1", input_=b"Q\n")
    assert "ALPN protocol: http/1.1" in out, out[-2000:]


@pytest.mark.parametrize("resumption", [True, False])
def test_session_resumption_on_every_worker(arc, servers, pki, tmp_path, resumption):
    up = servers.http(name="echo")
    a = arc(https_config(pki, up, {"session_resumption": resumption}, workers=2))
    sess = str(tmp_path / "sess.pem")
    # TLS 1.3 tickets arrive after the handshake: send a request so the
    # client reads them before it saves the session.
    req = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
    out = s_client(a.port, "-servername", "a.test", "-sess_out", sess, "-ign_eof", input_=req)
    assert "200 OK" in out, out[-2000:]
    reused = 0
    for _ in range(6):   # connections land on both workers
        out = s_client(a.port, "-servername", "a.test", "-sess_in", sess, "-ign_eof", input_=req)
        if "Reused, TLSv1.3" in out:
            reused += 1
    assert reused == (6 if resumption else 0), reused


def test_resumed_tls13_session_gets_a_fresh_ticket(arc, servers, pki, tmp_path):
    """TLS 1.3 clients use each ticket once (RFC 8446 §C.4): a resumed
    connection must bring a new ticket, so a chain of connections each
    resuming with the ticket of the one before stays resumed."""
    up = servers.http(name="echo")
    a = arc(https_config(pki, up, workers=2))
    req = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
    sess = [str(tmp_path / ("s%d.pem" % i)) for i in range(5)]
    out = s_client(a.port, "-servername", "a.test", "-sess_out", sess[0], "-ign_eof", input_=req)
    assert "200 OK" in out and "New, TLSv1.3" in out, out[-2000:]
    for i in range(1, 5):
        out = s_client(a.port, "-servername", "a.test", "-sess_in", sess[i - 1], "-sess_out", sess[i],
                       "-ign_eof", input_=req)
        assert "Reused, TLSv1.3" in out, "connection %d of the chain was not resumed:\n%s" % (
            i, out[-1500:])
        assert os.path.getsize(sess[i]) > 0
        with open(sess[i - 1]) as f1, open(sess[i]) as f2:
            assert f1.read() != f2.read(), "connection %d brought no new ticket" % i


def test_client_certificate_required(arc, servers, pki):
    up = servers.http(name="echo")
    a = arc(https_config(pki, up, {"client_auth": {"ca_pem": pki("ca.pem"), "required": True}}))
    rc, code, _, err = curl(a.port, "/no-cert")
    assert rc != 0 and code == 0, (rc, code, err)
    rc, code, body, err = curl(a.port, "/with-cert",
                               extra=["--cert", pki("client.pem"), "--key", pki("client.key")])
    assert rc == 0 and code == 200, err
    ms, _ = a.metrics()
    failed = sum(v for (n, ls), v in ms.items()
                 if n == "arc_tls_handshakes_total" and ("side", "downstream") in ls
                 and ("result", "ok") not in ls)
    assert failed >= 1


def test_client_certificate_optional(arc, servers, pki):
    up = servers.http(name="echo")
    a = arc(https_config(pki, up, {"client_auth": {"ca_pem": pki("ca.pem"), "required": False}}))
    # a client without a certificate cannot claim one
    rc, code, body, err = curl(a.port, "/no-cert",
                               extra=["-H", "X-Forwarded-Client-Cert: Subject=\"CN=admin\""])
    assert rc == 0 and code == 200, err
    names = [k.lower() for k, _ in json.loads(body)["headers"]]
    assert "x-forwarded-client-cert" not in names
    # the verified subject reaches the upstream
    rc, code, body, err = curl(a.port, "/with-cert",
                               extra=["--cert", pki("client.pem"), "--key", pki("client.key")])
    assert rc == 0 and code == 200, err
    xfcc = [v for k, v in json.loads(body)["headers"] if k.lower() == "x-forwarded-client-cert"]
    assert xfcc == ['Subject="CN=arc-client"'], xfcc
    # a certificate from an unknown CA is refused even when optional
    rc, code, _, err = curl(a.port, "/bad-cert",
                            extra=["--cert", pki("other.pem"), "--key", pki("other.key")])
    assert rc != 0, err


def test_version_floor_failure_is_counted(arc, servers, pki):
    up = servers.http(name="echo")
    a = arc(https_config(pki, up, {"min_version": "tls13"}))
    out = s_client(a.port, "-tls1_2", input_=b"Q\n")
    assert "CONNECTED" in out
    ms, _ = a.metrics()
    assert metric(ms, "arc_tls_handshakes_total", side="downstream", result="version") == 1
    rc, code, _, err = curl(a.port, "/still-fine")
    assert rc == 0 and code == 200, err


def test_large_bodies_both_ways_over_tls(arc, servers, pki, tmp_path):
    up = servers.http(name="echo")
    a = arc(https_config(pki, up, node={"max_buffered_output": "64kb"}))
    n = 8 << 20
    rc, code, body, err = curl(a.port, "/stream?bytes=%d" % n, timeout=60)
    assert rc == 0 and code == 200 and len(body) == n, (rc, code, len(body), err)
    src = tmp_path / "up.bin"
    src.write_bytes(os.urandom(3 << 20))
    rc, code, body, err = curl(a.port, "/sink", extra=["--data-binary", "@" + str(src)], timeout=60)
    assert rc == 0 and code == 200, err
    assert json.loads(body)["body_len"] == 3 << 20


def test_plaintext_on_tls_port_and_slow_handshake_are_cut(arc, servers, pki):
    up = servers.http(name="echo")
    a = arc(https_config(pki, up, node={"read_timeout": "1s"}))
    s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    data = s.recv(100)      # an alert or nothing, then the close
    s.settimeout(5)
    while data:
        data = s.recv(100)
    s.close()
    # a client that connects and never sends its ClientHello is cut by read_timeout
    s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    t0 = time.monotonic()
    s.settimeout(10)
    try:
        assert s.recv(100) == b""
    except ConnectionResetError:
        pass
    assert time.monotonic() - t0 < 5 * arc.bin.slow
    s.close()
    rc, code, _, err = curl(a.port, "/ok")
    assert rc == 0 and code == 200, err


@pytest.mark.parametrize("case", ["missing_file", "key_mismatch", "garbage_pem"])
def test_bad_certificate_files_are_config_errors(arc_bin, pki, tmp_path, case):
    cert, key = pki("a.pem"), pki("a.key")
    if case == "missing_file":
        cert = str(tmp_path / "nope.pem")
    elif case == "key_mismatch":
        key = pki("wild.key")
    else:
        bad = tmp_path / "bad.pem"
        bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
        cert = str(bad)
    cfgp = tmp_path / "arc.yaml"
    cfgp.write_text(
        "listeners:\n"
        "  - name: web\n"
        "    kind: https\n"
        "    bind: \"127.0.0.1:0\"\n"
        "    tls:\n"
        "      certificates:\n"
        "        - {cert_pem: \"%s\", key_pem: \"%s\"}\n"
        "routes:\n"
        "  - {name: r, match: {path: /}, action: {respond: {status: 200}}}\n" % (cert, key))
    cp = arc_bin.run(["check", "-c", str(cfgp)])
    assert cp.returncode == 1, cp.stderr
    assert "%s:6:7:" % cfgp in cp.stderr, cp.stderr  # the listener's tls mapping
    assert "tls" in cp.stderr


def _s_server(pki, cert, key):
    port = free_port()
    p = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", cert,
                          "-key", key, "-www", "-quiet"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p, port
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError("openssl s_server did not start")


@pytest.mark.parametrize("tls,want", [
    ({"server_name": "a.test", "ca_pem": "CA"}, 200),
    ({"server_name": "a.test", "ca_pem": "OTHER"}, 502),
    ({"server_name": "wrong.test", "ca_pem": "CA"}, 502),
    ({"insecure": True}, 200),
])
def test_upstream_tls(arc, pki, tls, want):
    srv, port = _s_server(pki, pki("a.pem"), pki("a.key"))
    try:
        t = dict(tls)
        if t.get("ca_pem") == "CA":
            t["ca_pem"] = pki("ca.pem")
        elif t.get("ca_pem") == "OTHER":
            t["ca_pem"] = pki("other.pem")
        up = upstream_conf("tlsup", "127.0.0.1:%d" % port)
        up["tls"] = t
        cfg = make_config([up], routes=[route_conf("r", "/{*rest}", upstream="tlsup")])
        a = arc(cfg)
        c = a.client()
        r = c.request("GET", "/")
        assert r.status == want, r
        if want == 200:
            assert b"s_server" in r.body or b"Ciphers" in r.body, r.body[:200]
        ms, _ = a.metrics()
        res = "ok" if want == 200 else None
        if res:
            assert metric(ms, "arc_tls_handshakes_total", side="upstream", result="ok") >= 1
        else:
            assert (metric(ms, "arc_tls_handshakes_total", side="upstream", result="ok") or 0) == 0
    finally:
        srv.kill()
        srv.wait(5)
