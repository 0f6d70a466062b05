"""A drain (SIGTERM) closes the listening sockets at once: a new client is
refused immediately instead of completing a handshake nobody answers, while
the exchange already running finishes and Arc exits 0."""
import signal
import socket
import threading
import time

from arcproc import make_config, upstream_conf


def test_drain_refuses_new_connections_and_finishes_running_ones(arc, servers):
    up = servers.http(name="slow")
    a = arc(make_config([upstream_conf("slow", up.addr)], node={"drain_timeout": "20s"}))
    res = {}

    def running():
        c = a.client(timeout=20)
        res["r"] = c.request("GET", "/slow?ms=2500")
        c.close()
    t = threading.Thread(target=running, daemon=True)
    t.start()
    time.sleep(0.5)
    a.signal(signal.SIGTERM)
    time.sleep(0.5 * arc.bin.slow)
    refused = False
    try:
        s = socket.create_connection(("127.0.0.1", a.port), timeout=2)
        # A listener still bound completes the handshake: prove nobody answers
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        s.settimeout(1.5)
        try:
            refused = s.recv(100) == b""
        except ConnectionResetError:
            refused = True
        except socket.timeout:
            refused = False
        s.close()
    except ConnectionRefusedError:
        refused = True
    assert refused, "a new connection during drain was accepted and left hanging"
    t.join(20)
    assert res["r"].status == 200, res
    rc = a.wait_exit(20 * arc.bin.slow)
    a.expect_exited = True
    assert rc == 0, rc
