"""Shared pytest fixtures: the arc binaries under test (env ARC_BINS), a
launcher that starts arc on kernel-assigned ports and fails the test if it
crashed or a sanitizer reported anything, and the Python upstream servers.
"""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
E2E = os.path.join(ROOT, "tests", "e2e")
if E2E not in sys.path:
    sys.path.insert(0, E2E)

from arcproc import ArcProcess, ArcStartError, SANITIZER_PATTERNS, DEFAULT_SAN_ENV  # noqa: E402
from upstreams import Upstream, WsServer  # noqa: E402


def _arc_bins():
    raw = os.environ.get("ARC_BINS", "build/release/arc").split()
    out, seen = [], set()
    for p in raw:
        path = p if os.path.isabs(p) else os.path.join(ROOT, p)
        vid = "asan" if "asan" in p else "release"
        base, i = vid, 2
        while vid in seen:
            vid = "%s%d" % (base, i)
            i += 1
        seen.add(vid)
        out.append((vid, path))
    return out


ARC_BINS = _arc_bins()


class ArcBin:
    def __init__(self, variant, path):
        self.variant = variant
        self.path = path

    @property
    def slow(self):
        """Time multiplier for sanitizer builds."""
        return 3.0 if self.variant.startswith("asan") else 1.0

    def run(self, args, timeout=30, env=None, input=None):
        """Runs a one-shot arc command; fails the test on sanitizer output."""
        e = dict(os.environ)
        for k, v in DEFAULT_SAN_ENV.items():
            e.setdefault(k, v)
        e.update(env or {})
        try:
            cp = subprocess.run([self.path] + list(args), capture_output=True, text=True,
                                timeout=timeout * self.slow, env=e, input=input,
                                stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as ex:
            pytest.fail("arc %s timed out after %ss; stderr:\n%s" % (" ".join(args), ex.timeout, ex.stderr),
                        pytrace=False)
        hits = [p for p in SANITIZER_PATTERNS if p in cp.stderr]
        if hits:
            pytest.fail("sanitizer report from arc %s:\n%s" % (" ".join(args), cp.stderr[-6000:]),
                        pytrace=False)
        if cp.returncode < 0:
            pytest.fail("arc %s killed by signal %d; stderr:\n%s" % (" ".join(args), -cp.returncode,
                                                                     cp.stderr[-4000:]), pytrace=False)
        return cp


@pytest.fixture(scope="session", params=[p for _, p in ARC_BINS], ids=[v for v, _ in ARC_BINS])
def arc_bin(request):
    path = request.param
    variant = dict((p, v) for v, p in ARC_BINS)[path]
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("arc binary not built: %s (build it with make)" % path, pytrace=False)
    return ArcBin(variant, path)


class Servers:
    """Factory for upstream peers; everything it starts is stopped at teardown."""

    def __init__(self):
        self.started = []

    def http(self, handler=None, name="up", idle_close_ms=None):
        s = Upstream(handler=handler, name=name, idle_close_ms=idle_close_ms)
        self.started.append(s)
        return s

    def ws(self):
        s = WsServer()
        self.started.append(s)
        return s

    def stop_all(self):
        for s in reversed(self.started):
            s.stop()


@pytest.fixture
def servers():
    s = Servers()
    yield s
    s.stop_all()


@pytest.fixture
def arc(arc_bin, tmp_path, servers):
    """arc(config, fmt="yaml", env=None, wait=True) -> ArcProcess (ready).

    Depends on `servers` so upstreams outlive arc's graceful shutdown. On
    teardown: SIGTERM, wait, and fail if arc crashed, exited non-zero, hung,
    or printed a sanitizer report."""
    procs = []

    def start(config, fmt="yaml", env=None, wait=True, args=None):
        p = ArcProcess(arc_bin.path, arc_bin.variant, config, tmp_path, fmt=fmt, env=env, args=args)
        procs.append(p)
        p.start()
        if wait:
            try:
                p.wait_ready()
            except ArcStartError as e:
                pytest.fail(str(e), pytrace=False)
        return p

    start.bin = arc_bin
    yield start
    problems = []
    for p in procs:
        pr = p.stop(timeout=20.0 * arc_bin.slow)
        if pr:
            problems.append("arc #%d (%s):\n  " % (p.n, arc_bin.variant) + "\n  ".join(pr))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
