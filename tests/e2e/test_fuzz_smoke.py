"""Arc survives a seeded burst of mutated requests (bit flips, truncations,
injected CR/LF/NUL/SP, duplicated headers) without crashing, without a
sanitizer report, and answering only with well-formed status lines; a valid
request works afterwards."""
import random
import re
import socket
import threading

from arcproc import make_config, upstream_conf
from httpraw import build_request, chunk_encode

STATUS_RE = re.compile(rb"^HTTP/1\.[01] [1-5][0-9][0-9] ")

SEEDS = [
    build_request("GET", "/a/b?c=d", headers=[("Accept", "*/*"), ("X-A", "1")]),
    build_request("POST", "/p", body=b"hello world"),
    build_request("POST", "/c", headers=[("Transfer-Encoding", "chunked")], body=chunk_encode([b"abc", b"defgh"])),
    build_request("GET", "/ws", headers=[("Connection", "Upgrade"), ("Upgrade", "websocket")]),
    build_request("POST", "/e", headers=[("Expect", "100-continue")], body=b"xyz"),
    build_request("GET", "http://h.example/abs"),
]
INSERTS = [b"\r", b"\n", b"\x00", b" ", b"\t", b":", b"\r\n", b"\r\n\r\n", b",", b"chunked", b"\xff", b"0"]


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        i = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(i, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[i:i] = rng.choice(INSERTS)
        elif op == 2:
            del data[i:i + rng.randint(1, 8)]
        elif op == 3:
            data = data[:i]
        elif op == 4:
            j = data.find(b"\r\n")
            if j > 0:
                line_end = data.find(b"\r\n", j + 2)
                if line_end > 0:
                    data[j + 2:j + 2] = data[j + 2:line_end + 2]
        else:
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
    return bytes(data)


def test_mutated_requests_do_not_hurt_arc(arc, servers):
    up = servers.http(name="echo")
    a = arc(make_config([upstream_conf("echo", up.addr, timeouts={"ttfb": "2s"})],
                        node={"read_timeout": "1s"}))
    rng = random.Random(20261123)
    cases = [mutate(rng, rng.choice(SEEDS)) for _ in range(2000)]
    bad = []
    stats = {"answered": 0, "silent": 0}
    lock = threading.Lock()

    def run(chunk):
        for data in chunk:
            try:
                s = socket.create_connection(("127.0.0.1", a.port), timeout=4)
            except OSError as e:
                with lock:
                    bad.append(("connect", repr(e), data))
                continue
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                got = b""
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    got += d
            except socket.timeout:
                got = got  # a pending request may legitimately still wait; not an error
            except OSError:
                pass
            finally:
                s.close()
            with lock:
                stats["answered" if got else "silent"] += 1
            if got and not STATUS_RE.match(got):
                with lock:
                    bad.append(("bad response", got[:200], data))
    threads = [threading.Thread(target=run, args=(cases[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    print("mutated requests: %r" % stats)
    assert stats["answered"] + stats["silent"] == len(cases)
    assert stats["answered"] > len(cases) // 2, stats
    assert a.alive(), "arc died under mutated input"
    assert not bad, bad[:5]
    r = a.client().request("GET", "/still-fine")
    assert r.status == 200
