"""Runs every C unit-test executable of both builds (build/{release,asan}/tests/**/*_test)
as one pytest case each, and replays each committed fuzz corpus
(tests/fuzz/corpus/<name>/) through its ASan replay binary (build/asan/fuzz/<name>_replay),
which it (re)builds with make first so the replay always runs the current
harness against the current sources."""
import glob
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAN_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}


def _unit_bins():
    out = []
    for variant in ("release", "asan"):
        base = os.path.join(ROOT, "build", variant, "tests")
        for path in sorted(glob.glob(os.path.join(base, "**", "*_test"), recursive=True)):
            if os.path.isfile(path) and os.access(path, os.X_OK):
                rel = os.path.relpath(path, base)              # core/common_test
                out.append(pytest.param(path, id="%s/%s" % (variant, rel)))
    return out


def _replays():
    # One case per fuzz target source, not per binary found: a replay binary
    # that was never built (make build asan does not build it) or is stale
    # must not make the corpus replay silently disappear or test old code.
    out = []
    for src in sorted(glob.glob(os.path.join(ROOT, "tests", "fuzz", "*_fuzz.c"))):
        name = os.path.basename(src)[:-len("_fuzz.c")]
        path = os.path.join(ROOT, "build", "asan", "fuzz", name + "_replay")
        out.append(pytest.param(path, name, id="asan/fuzz/%s" % name))
    return out


def _env():
    e = dict(os.environ)
    for k, v in SAN_ENV.items():
        e.setdefault(k, v)
    return e


def _show(cp):
    return "exit %d\n--- stdout ---\n%s\n--- stderr ---\n%s" % (cp.returncode, cp.stdout[-20000:], cp.stderr[-20000:])


@pytest.mark.parametrize("path", _unit_bins())
def test_unit_binary(path):
    try:
        cp = subprocess.run([path], capture_output=True, text=True, timeout=300, env=_env(),
                            cwd=ROOT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail("%s timed out after 300s\n%s" % (path, e.stdout), pytrace=False)
    if cp.returncode == 77:     # the binary says why it cannot run here (e.g. no bpf())
        pytest.skip("%s: %s" % (path, (cp.stdout + cp.stderr).strip()[-400:]))
    assert cp.returncode == 0, _show(cp)
    for pat in ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert pat not in cp.stderr, _show(cp)


@pytest.mark.parametrize("path,name", _replays())
def test_fuzz_corpus_replay(path, name):
    # (Re)build the replay binary: make rebuilds it only if its harness or
    # the sources it links changed.
    rel = os.path.relpath(path, ROOT)
    try:
        cp = subprocess.run(["make", "-s", rel], capture_output=True, text=True, timeout=600, cwd=ROOT,
                            stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail("make %s timed out" % rel, pytrace=False)
    assert cp.returncode == 0, "make %s failed:\n%s" % (rel, _show(cp))
    corpus = os.path.join(ROOT, "tests", "fuzz", "corpus", name)
    files = sorted(f for f in glob.glob(os.path.join(corpus, "**", "*"), recursive=True) if os.path.isfile(f))
    assert files, "no corpus for fuzz target %r in %s" % (name, corpus)
    for i in range(0, len(files), 500):
        batch = files[i:i + 500]
        try:
            cp = subprocess.run([path] + batch, capture_output=True, text=True, timeout=600, env=_env(),
                                cwd=ROOT, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.fail("%s timed out replaying %d inputs from %s" % (path, len(batch), batch[0]), pytrace=False)
        assert cp.returncode == 0, "replaying %s..%s\n%s" % (batch[0], batch[-1], _show(cp))
        for pat in ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer"):
            assert pat not in cp.stderr, _show(cp)
