"""Launching the real `arc` binary for e2e tests: config writing, readiness
detection from the stderr ready lines, port discovery, and a teardown guard
that fails the test when arc crashed or a sanitizer reported anything.
"""
import ctypes
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request

# The system log's lines as text ("arc: ...") or as NDJSON ("msg":"...").
_MSG = r'(?:arc: |"msg":")'
READY_RE = re.compile(_MSG + r"ready workers=(\d+) fingerprint=([0-9a-f]{64})")
LISTEN_RE = re.compile(_MSG + r"listening listener=([^\s\"]+) addr=([^\s\"]+):(\d+)")
ADMIN_RE = re.compile(_MSG + r"admin listening addr=([0-9.]+):(\d+)")
SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                      "UndefinedBehaviorSanitizer", "AddressSanitizer:DEADLYSIGNAL",
                      "ERROR: ThreadSanitizer")

DEFAULT_SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    # stderr is a pipe here, where Arc would write its system log as NDJSON:
    # the tests read the text form ("arc: ..."); test_system_log.py checks
    # the NDJSON one (and the default) by passing ARC_LOG_FORMAT itself.
    "ARC_LOG_FORMAT": "text",
}


# ----------------------------------------------------------------- config

def _key(k):
    return k if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", k) else json.dumps(k)


def _scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    return json.dumps(str(v))


def _emit(obj, ind):
    pad = "  " * ind
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:" % (pad, _key(k)))
                out += _emit(v, ind + 1)
            else:
                out.append("%s%s: %s" % (pad, _key(k), _scalar(v)))
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, (dict, list)) and item:
                sub = _emit(item, ind + 1)
                out.append(pad + "- " + sub[0].lstrip())
                out += sub[1:]
            else:
                out.append("%s- %s" % (pad, _scalar(item)))
    else:
        out.append(pad + _scalar(obj))
    return out


def to_yaml(obj):
    """Block-style YAML for plain dict/list/scalar trees (strings double-quoted)."""
    return "\n".join(_emit(obj, 0)) + "\n"


def upstream_conf(name, addrs, timeouts=None, pool=None, **extra):
    if isinstance(addrs, str):
        addrs = [addrs]
    u = {"name": name,
         "discovery": {"type": "static", "endpoints": [{"address": a} for a in addrs]}}
    if timeouts:
        u["timeouts"] = timeouts
    if pool:
        u["pool"] = pool
    u.update(extra)
    return u


def route_conf(name, path, upstream=None, methods=None, host=None, **action):
    m = {"path": path}
    if host:
        m["host"] = host if isinstance(host, list) else [host]
    if methods:
        m["methods"] = methods
    a = {}
    if upstream:
        a["upstream"] = upstream
    a.update(action)
    return {"name": name, "match": m, "action": a}


def make_config(upstreams=(), routes=None, workers=2, node=None, limits=None, extra=None):
    """A config on kernel-assigned ports. `upstreams` is a list of
    upstream_conf dicts or (name, addr) pairs; `routes` defaults to one
    catch-all route "default" to the first upstream."""
    ups = []
    for u in upstreams:
        ups.append(u if isinstance(u, dict) else upstream_conf(u[0], u[1]))
    if routes is None:
        routes = [route_conf("default", "/{*rest}", upstream=ups[0]["name"])]
    n = {"workers": workers, "drain_timeout": "5s", "read_timeout": "10s"}
    n.update(node or {})
    cfg = {
        "node": n,
        "listeners": [{"name": "http", "kind": "http", "bind": "127.0.0.1:0"}],
        "observability": {"metrics_bind": "127.0.0.1:0"},
    }
    if ups:
        cfg["upstreams"] = ups
    cfg["routes"] = routes
    if limits:
        cfg["security"] = {"limits": limits}
    for k, v in (extra or {}).items():
        cfg[k] = v
    return cfg


# ---------------------------------------------------------------- process

def _pdeathsig():
    # Kill arc if the test runner dies, so no stray process survives pytest.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class ArcStartError(Exception):
    pass


class ArcProcess:
    counter = 0

    def __init__(self, binary, variant, config, workdir, fmt="yaml", env=None, args=None,
                 ready_timeout=None):
        ArcProcess.counter += 1
        self.binary = binary
        self.variant = variant
        self.workdir = workdir
        self.n = ArcProcess.counter
        if config is None:
            text = ""
        elif isinstance(config, (dict, list)):
            text = to_yaml(config) if fmt == "yaml" else json.dumps(config, indent=2)
        else:
            text = config
        self.config_text = text
        self.config_path = os.path.join(str(workdir), "arc-%d.%s" % (self.n, fmt))
        with open(self.config_path, "w") as f:
            f.write(text)
        self.env = dict(os.environ)
        for k, v in DEFAULT_SAN_ENV.items():
            self.env.setdefault(k, v)
        self.env.update(env or {})
        self.args = args
        # generous: a config with plugins compiles them first, and a loaded
        # machine is slow; an early exit is still seen at once
        self.ready_timeout = ready_timeout or (60.0 if variant == "asan" else 30.0)
        self.lines = []            # stderr lines
        self.out_lines = []        # stdout lines
        self.cond = threading.Condition()
        self.listeners = {}
        self.admin_port = None
        self.workers = None
        self.fingerprint = None
        self.proc = None
        self.rc = None
        self.expect_nonzero_exit = False
        self.expect_exited = False
        self.clients = []
        self.log_path = os.path.join(str(workdir), "arc-%d.stderr.log" % self.n)

    # -- lifecycle
    def start(self):
        argv = [self.binary] + (self.args or ["run", "-c", self.config_path])
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=self.env, cwd=str(self.workdir),
                                     preexec_fn=_pdeathsig)
        self.pid = self.proc.pid
        self._log = open(self.log_path, "w")
        self.readers = [
            threading.Thread(target=self._drain, args=(self.proc.stderr, self.lines, True), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stdout, self.out_lines, False), daemon=True),
        ]
        for t in self.readers:
            t.start()
        return self

    def _drain(self, pipe, sink, is_err):
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cond:
                sink.append(line)
                if is_err:
                    self._log.write(line + "\n")
                    self._log.flush()
                    self._parse(line)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def _parse(self, line):
        m = LISTEN_RE.search(line)
        if m:
            self.listeners[m.group(1)] = int(m.group(3))
        m = ADMIN_RE.search(line)
        if m:
            self.admin_port = int(m.group(2))
        m = READY_RE.search(line)
        if m:
            self.workers = int(m.group(1))
            self.fingerprint = m.group(2)

    def wait_ready(self):
        deadline = time.monotonic() + self.ready_timeout
        with self.cond:
            while self.fingerprint is None:
                if self.proc.poll() is not None:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(min(left, 0.1))
        if self.fingerprint is None:
            rc = self.proc.poll()
            if rc is None:
                self.proc.kill()
                self.proc.wait(5)
                self.rc = self.proc.returncode
                self.expect_exited = True
                what = "did not print its ready line within %.0fs" % self.ready_timeout
            else:
                self.rc = rc
                self.expect_exited = True
                what = "exited with %s before becoming ready" % rc
            time.sleep(0.1)
            raise ArcStartError("arc (%s) %s\nconfig %s:\n%s\nstderr:\n%s" % (
                self.variant, what, self.config_path, self.config_text, self.stderr_tail(80)))
        self.ready_after = time.monotonic() - self.t0
        return self

    @property
    def port(self):
        if "http" in self.listeners:
            return self.listeners["http"]
        return next(iter(self.listeners.values()))

    def alive(self):
        return self.proc.poll() is None

    def stderr_text(self):
        with self.cond:
            return "\n".join(self.lines)

    def wait_stderr(self, text, timeout=10.0):
        """True once `text` (a substring) is in arc's stderr, waiting up to
        timeout (sanitizer builds: x3). A reader thread collects the lines,
        so a line arc printed before the event a test saw may still be on
        its way: a check right after an event must wait, not read once."""
        deadline = time.monotonic() + timeout * (3.0 if self.variant == "asan" else 1.0)
        with self.cond:
            while True:
                if text in "\n".join(self.lines):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.1))

    def stderr_tail(self, n=60):
        with self.cond:
            return "\n".join(self.lines[-n:])

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        try:
            self.rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        for t in self.readers:
            t.join(5)
        return self.rc

    def stop(self, timeout=20.0):
        """SIGTERM, wait, SIGKILL if needed. Returns a list of problems."""
        problems = []
        for c in self.clients:
            c.close()
        if self.proc is None:
            return problems
        if self.proc.poll() is None:
            if self.expect_exited:
                problems.append("arc was expected to have exited but is still running")
            self.proc.send_signal(signal.SIGTERM)
            if self.wait_exit(timeout) is None:
                self.proc.kill()
                self.wait_exit(5)
                problems.append("arc did not exit within %.0fs of SIGTERM (killed)" % timeout)
        else:
            self.wait_exit(5)
            if not self.expect_exited:
                problems.append("arc died during the test (exit status %s)" % self.proc.returncode)
        rc = self.proc.returncode
        if rc is not None and rc < 0 and not self.expect_nonzero_exit:
            problems.append("arc was killed by signal %d" % -rc)
        elif rc not in (0, None) and not self.expect_nonzero_exit:
            problems.append("arc exited with status %d" % rc)
        text = self.stderr_text()
        hits = [p for p in SANITIZER_PATTERNS if p in text]
        if hits:
            problems.append("sanitizer report in stderr (%s)" % ", ".join(hits))
        if problems:
            problems.append("config: %s\nstderr (%s):\n%s" % (self.config_path, self.log_path,
                                                             self.sanitizer_excerpt() or self.stderr_tail(80)))
        try:
            self._log.close()
        except Exception:
            pass
        return problems

    def sanitizer_excerpt(self, n=80):
        with self.cond:
            for i, line in enumerate(self.lines):
                if any(p in line for p in SANITIZER_PATTERNS):
                    return "\n".join(self.lines[max(0, i - 5):i + n])
        return None

    # -- helpers for tests
    def client(self, timeout=10.0, listener=None):
        from httpraw import Client
        c = Client(self.listeners[listener] if listener else self.port, timeout=timeout)
        self.clients.append(c)
        return c

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def admin_get(self, path, timeout=5.0):
        """(status, body text) of GET on the admin listener."""
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.admin_port, path))
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", "replace")

    def metrics(self):
        status, text = self.admin_get("/metrics")
        assert status == 200, "GET /metrics -> %s" % status
        return parse_metrics(text), text

    def rss_kb(self):
        """VmRSS of arc and all its descendants (workers may be processes)."""
        total = 0
        for pid in [self.pid] + descendants(self.pid):
            try:
                with open("/proc/%d/status" % pid) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
            except OSError:
                pass
        return total


def descendants(pid):
    out = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for t in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                for c in f.read().split():
                    out.append(int(c))
                    out += descendants(int(c))
        except OSError:
            pass
    return out


METRIC_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value} from Prometheus text."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = METRIC_RE.match(line)
        if not m:
            continue
        labels = frozenset(LABEL_RE.findall(m.group(3) or ""))
        try:
            out[(m.group(1), labels)] = float(m.group(4))
        except ValueError:
            pass
    return out


def metric(ms, name, **labels):
    """Sum of every series of `name` whose labels include `labels`; None if no series."""
    want = set(labels.items())
    found = [v for (n, ls), v in ms.items() if n == name and want <= set(ls)]
    return sum(found) if found else None


def wait_for(pred, timeout=10.0, step=0.05):
    """pred()'s value as soon as it is truthy; else pred() once more after
    `timeout` s (polling every `step` s). Tests wait on a condition, never on
    a sleep."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def wait_until(pred, timeout, what, step=0.02):
    """Like wait_for, but a timeout fails the test saying what it waited for."""
    v = wait_for(pred, timeout, step)
    if not v:
        raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
    return v
