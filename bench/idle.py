"""Idle keep-alive connections: RSS of a proxy (its whole process tree) before
and after N clients each made one request and stayed connected.

    idle.py PID PORT N [tls] [--serial]

Default ("burst", the method of every earlier run): all N connections are
opened and send their request before any response is read, so the proxy
sees a connect storm (how many exchanges and upstream connections it holds
at once depends on scheduling, and varies from run to run). --serial: each
client waits for its response before the next connects, so what remains is
only the idle connections themselves.

Every response must be a 200 and every connection must still be open when
RSS is read; the figure is per connection that was open then."""
import resource
import select
import socket
import ssl
import sys
import time

args = [a for a in sys.argv[1:] if not a.startswith("--")]
serial = "--serial" in sys.argv
pid, port, n = int(args[0]), int(args[1]), int(args[2])
tls = len(args) > 3 and args[3] == "tls"


def rss(p):
    for line in open("/proc/%d/status" % p):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])


def tree(p):
    out = [p]
    try:
        for c in open("/proc/%d/task/%d/children" % (p, p)).read().split():
            out += tree(int(c))
    except OSError:
        pass
    return out


def total():
    return sum(rss(p) for p in set(tree(pid)))


resource.setrlimit(resource.RLIMIT_NOFILE, (19000, 20000))
ctx = None
if tls:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])


def connect():
    s = socket.create_connection(("127.0.0.1", port))
    if tls:
        s = ctx.wrap_socket(s, server_hostname="localhost")
    return s


def read_head(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            raise SystemExit("connection closed before a response: %r" % buf[:80])
        buf += d
    status = buf.split(b"\r\n", 1)[0]
    if not status.startswith(b"HTTP/1.1 200"):
        raise SystemExit("not a 200: %r" % status)


# Warm up first, one connection at a time: the proxy's fixed costs (the
# worker's provided receive buffers being touched, first-use allocations)
# must not be counted as per-connection memory.
for i in range(3000):
    s = connect()
    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    while s.recv(65536):
        pass
    s.close()
time.sleep(0.5)
before = total()
socks = []
for i in range(n):
    s = connect()
    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    if serial:
        read_head(s)
    socks.append(s)
if not serial:
    for s in socks:
        read_head(s)
time.sleep(1.0)
after = total()
# Still open? An idle connection the proxy closed is readable (EOF).
poller = select.poll()
for s in socks:
    poller.register(s, select.POLLIN)
live = len(socks) - len(poller.poll(0))
print("conns=%d live=%d before_kib=%d after_kib=%d per_conn_kib=%.2f mode=%s"
      % (n, live, before, after, (after - before) / max(live, 1), "serial" if serial else "burst"))
for s in socks:
    s.close()
