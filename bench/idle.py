"""Idle keep-alive connections: RSS of a proxy before and after N clients
each made one request and stayed connected. Usage: idle.py PID PORT N [tls]"""
import os, socket, ssl, sys, time
pid, port, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
tls = len(sys.argv) > 4
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
import resource
resource.setrlimit(resource.RLIMIT_NOFILE, (19000, 20000))
ctx = None
if tls:
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
# Warm up first, one connection at a time: the proxy's fixed costs (the
# worker's provided receive buffers being touched, first-use allocations)
# must not be counted as per-connection memory.
for i in range(3000):
    s = socket.create_connection(("127.0.0.1", port))
    if tls:
        s = ctx.wrap_socket(s, server_hostname="localhost")
    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    while s.recv(65536):
        pass
    s.close()
time.sleep(0.5)
before = total()
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    if tls:
        s = ctx.wrap_socket(s, server_hostname="localhost")
    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    socks.append(s)
for s in socks:
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
time.sleep(1.0)
after = total()
print("conns=%d before_kib=%d after_kib=%d per_conn_kib=%.2f" % (n, before, after, (after - before) / n))
for s in socks:
    s.close()
