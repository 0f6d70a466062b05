"""A small authoritative DNS responder for tests: UDP on a loopback port,
real DNS wire format (RFC 1035), A and AAAA records with TTLs that the test
changes while it runs.

    d = DnsServer({"app.arc.test": [("A", "127.0.0.2", 1)]})
    d.set("app.arc.test", [("A", "127.0.0.3", 1), ("AAAA", "::1", 1)])
    d.stop(); d.start()        # down (queries refused by the kernel), up again
    d.queries("app.arc.test")  # queries answered for that name

A known name without records of the asked type answers NOERROR with no
answer; an unknown name answers NXDOMAIN.
"""
import socket
import struct
import threading

TYPES = {"A": 1, "AAAA": 28}


def _read_name(msg, off):
    labels = []
    while True:
        n = msg[off]
        if n == 0:
            return ".".join(labels), off + 1
        if n & 0xC0:
            raise ValueError("compressed question name")
        labels.append(msg[off + 1:off + 1 + n].decode("ascii"))
        off += 1 + n


def _answer(query, records):
    qid, flags, qd = struct.unpack("!HHH", query[:6])
    name, off = _read_name(query, 12)
    qtype, qclass = struct.unpack("!HH", query[off:off + 4])
    question = query[12:off + 4]
    rd = flags & 0x0100
    key = name.lower().rstrip(".")
    answers = []
    if key in records:
        rcode = 0
        for typ, addr, ttl in records[key]:
            if TYPES[typ] != qtype:
                continue
            rdata = socket.inet_pton(socket.AF_INET if typ == "A" else socket.AF_INET6, addr)
            answers.append(struct.pack("!HHHIH", 0xC00C, qtype, 1, ttl, len(rdata)) + rdata)
    else:
        rcode = 3
    hdr = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd | 0x0080 | rcode, 1, len(answers),
                      0, 0)
    return key, hdr + question + b"".join(answers)


class DnsServer:
    def __init__(self, records=None, port=None):
        self.records = {}
        for k, v in (records or {}).items():
            self.set(k, v)
        self.port = port or _free_udp_port()
        self.lock = threading.Lock()
        self.counts = {}
        self.sock = None
        self.thread = None
        self.start()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def set(self, name, recs):
        self.records = dict(self.records)
        self.records[name.lower().rstrip(".")] = [(t, a, int(ttl)) for t, a, ttl in recs]

    def queries(self, name):
        with self.lock:
            return self.counts.get(name.lower().rstrip("."), 0)

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", self.port))
        s.settimeout(0.1)
        self.sock = s
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, args=(s,), daemon=True)
        self.thread.start()

    def _loop(self, s):
        while not self.stopping:
            try:
                q, peer = s.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                key, resp = _answer(q, self.records)
            except (ValueError, IndexError, struct.error, KeyError):
                continue
            with self.lock:
                self.counts[key] = self.counts.get(key, 0) + 1
            try:
                s.sendto(resp, peer)
            except OSError:
                return

    def stop(self):
        if self.sock:
            self.stopping = True
            self.thread.join(5)
            self.sock.close()           # queries to the port are now refused
            self.sock = None


def _free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p
