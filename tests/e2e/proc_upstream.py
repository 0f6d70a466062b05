"""A small HTTP/1.1 upstream run as its own process (so a test can kill it
with SIGKILL and start it again on the same port), for the resilience tests.

    python3 proc_upstream.py PORT NAME [MODE]

MODE "http" (default): keep-alive echo server. GET/POST/... answer JSON
{server, method, path, body_len, body_sha256, n} where n counts the requests
this process served; /status/NNN answers NNN; /slow?ms=N sleeps first.
MODE "blackhole": accepts connections and reads, never answers.
MODE "fail503": reads each request (body included) and answers 503.
MODE "reset": reads each request (body included) and closes without answering.
It prints "ready" on stdout once listening.
"""
import hashlib
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, parse_qs

PORT, NAME = int(sys.argv[1]), sys.argv[2]
MODE = sys.argv[3] if len(sys.argv) > 3 else "http"
count = [0]
lock = threading.Lock()


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _any(self):
        body = self._body()
        with lock:
            count[0] += 1
            n = count[0]
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        if "ms" in q:
            time.sleep(int(q["ms"][0]) / 1000.0)
        status = 200
        if u.path.startswith("/status/"):
            status = int(u.path.split("/")[2])
        if MODE == "fail503":
            status = 503
        if MODE == "reset":
            self.close_connection = True
            return
        payload = json.dumps({"server": NAME, "method": self.command, "path": self.path,
                              "body_len": len(body),
                              "body_sha256": hashlib.sha256(body).hexdigest(),
                              "n": n}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Upstream", NAME)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _any


def blackhole():
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", PORT))
    ls.listen(128)
    print("ready", flush=True)
    held = []

    def drain(s):
        try:
            while s.recv(65536):
                pass
        except OSError:
            pass
    while True:
        s, _ = ls.accept()
        held.append(s)
        threading.Thread(target=drain, args=(s,), daemon=True).start()


if MODE == "blackhole":
    blackhole()
else:
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    srv = ThreadingHTTPServer(("127.0.0.1", PORT), H)
    print("ready", flush=True)
    srv.serve_forever()
