"""100 MB request and response bodies stream through arc (CL and chunked)
with flat memory: arc's RSS grows by less than 64 MB even while the receiving
side stalls, which proves streaming with backpressure rather than buffering."""
import threading
import time

import pytest

from arcproc import make_config, route_conf, upstream_conf
from httpraw import pattern_block, stream_sha256
import hashlib

MB = 1 << 20
TOTAL = 100 * MB
MAX_GROWTH_KB = 64 * 1024


class RssSampler:
    def __init__(self, arcp, interval=0.05):
        self.arcp = arcp
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop_ev.is_set():
            v = self.arcp.rss_kb()
            self.samples += 1
            self.peak = max(self.peak, v)
            self.stop_ev.wait(self.interval)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *a):
        self.stop_ev.set()
        self.t.join(5)


def start(arc, servers, arc_bin):
    up = servers.http(name="bulk")
    env = {}
    if arc_bin.variant.startswith("asan"):
        # ASan keeps freed memory in a 256 MB quarantine by default, which
        # would be counted as RSS growth; bound it so the measurement is of
        # arc's buffering, not the sanitizer's.
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:quarantine_size_mb=16"
    # A small provided-buffer pool (256 x 16 KiB per worker): the default
    # pool (4096 x 16 KiB per worker) is itself 64 MB per worker once
    # touched, which would hide (or fake) buffering in the measurement.
    # (max_body 0: no limit on the 100 MB uploads; the default is 10mb)
    a = arc(make_config([upstream_conf("bulk", up.addr, timeouts={"read": "60s", "write": "60s"})],
                        routes=[route_conf("default", "/{*rest}", upstream="bulk", max_body=0)],
                        node={"read_timeout": "60s", "write_timeout": "60s"},
                        extra={"io_uring": {"buffer_size": "16kb", "buffer_count": 256}}), env=env)
    return a, up


def warm_up(a):
    # Touch the buffer pools and code paths first so the baseline includes them.
    c = a.client(timeout=30)
    body = b"w" * (4 * MB)
    r = c.request("POST", "/sink", body=body)
    assert r.status == 200, r
    r = c.request("GET", "/stream?bytes=%d" % (4 * MB), store_body=False)
    assert r.status == 200 and r.body_len == 4 * MB
    c.close()
    time.sleep(0.2)
    return a.rss_kb()


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_100mb_request_body_streams_with_flat_rss(arc, servers, arc_bin, framing):
    a, up = start(arc, servers, arc_bin)
    base = warm_up(a)
    block = pattern_block()
    c = a.client(timeout=60)
    # The upstream stops reading for 1.5 s after 20 MB: arc must stop reading
    # from the client instead of buffering the rest.
    target = "/sink?pause_at=%d&pause_ms=1500" % (20 * MB)
    if framing == "length":
        head = "POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (target, TOTAL)
    else:
        head = "POST %s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" % target
    h = hashlib.sha256()
    t0 = time.monotonic()
    with RssSampler(a) as s:
        c.send(head.encode())
        sent = 0
        while sent < TOTAL:
            piece = block[:min(len(block), TOTAL - sent)]
            c.send(piece if framing == "length" else b"%x\r\n" % len(piece) + piece + b"\r\n")
            h.update(piece)
            sent += len(piece)
        if framing == "chunked":
            c.send(b"0\r\n\r\n")
        r = c.response()
    elapsed = time.monotonic() - t0
    assert r.status == 200, r
    j = r.json()
    assert j["body_len"] == TOTAL
    assert j["body_sha256"] == h.hexdigest()
    growth = s.peak - base
    assert s.samples > 5
    print("upload %s: base %d KiB, peak %d KiB, growth %d KiB, %.1fs" % (framing, base, s.peak, growth, elapsed))
    assert growth < MAX_GROWTH_KB, "arc RSS grew by %d KiB (base %d KiB, peak %d KiB) during a 100 MB upload in %.1fs" % (
        growth, base, s.peak, elapsed)


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_100mb_response_body_streams_with_flat_rss(arc, servers, arc_bin, framing):
    a, up = start(arc, servers, arc_bin)
    base = warm_up(a)
    c = a.client(timeout=60)
    chunked = {"length": "", "chunked": "&chunked=1", "close": "&close=1"}[framing]
    state = {"n": 0, "paused": False}

    def on_data(piece):
        # The client stops reading for 1.5 s after 20 MB: arc must stop
        # reading from the upstream instead of buffering the rest.
        state["n"] += len(piece)
        if not state["paused"] and state["n"] >= 20 * MB:
            state["paused"] = True
            time.sleep(1.5)

    t0 = time.monotonic()
    with RssSampler(a) as s:
        r = c.request("GET", "/stream?bytes=%d%s" % (TOTAL, chunked), store_body=False, on_data=on_data)
    elapsed = time.monotonic() - t0
    assert r.status == 200, r
    assert r.body_len == TOTAL
    assert r.body_sha256 == stream_sha256(TOTAL)
    growth = s.peak - base
    print("download %s: base %d KiB, peak %d KiB, growth %d KiB, %.1fs" % (framing, base, s.peak, growth, elapsed))
    assert growth < MAX_GROWTH_KB, "arc RSS grew by %d KiB (base %d KiB, peak %d KiB) during a 100 MB download in %.1fs" % (
        growth, base, s.peak, elapsed)
    # and the connection is still good (unless the body was close-delimited)
    if r.framing == "close":
        assert c.wait_closed(5)
    else:
        r2 = c.request("GET", "/after")
        assert r2.status == 200
