#!/usr/bin/env bash
# Runs Arc's whole test suite with pytest: C unit tests and fuzz-corpus
# replays (tests/test_unit.py) and the e2e suite (tests/e2e/) against both the
# release and the ASan+UBSan binaries. Exits with pytest's status; "no tests
# collected" (5) counts as failure. Extra arguments go to pytest.
#
# The whole suite runs test files in ARC_TEST_JOBS parallel pytest workers
# (default 3; pytest-xdist, --dist loadfile keeps a file's tests together):
# most e2e time is spent waiting on timers and peers, not on CPU. Every test
# uses kernel-assigned ports and its own temp dir, so files do not collide.
# ARC_TEST_JOBS=0 runs serially. A subset (arguments given) runs serially
# unless ARC_TEST_JOBS is set. The 25 slowest tests are listed at the end.
set -uo pipefail
cd "$(dirname "$0")/.."

export ARC_BINS=${ARC_BINS:-"build/release/arc build/asan/arc"}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export PYTHONDONTWRITEBYTECODE=1

par=()
if [[ $# -eq 0 ]]; then
    set -- tests/ --durations=25
    jobs=${ARC_TEST_JOBS:-3}
else
    jobs=${ARC_TEST_JOBS:-0}
fi
if [[ $jobs -gt 0 ]]; then
    par=(-n "$jobs" --dist loadfile)
fi
/usr/bin/python3 -m pytest -q -ra "${par[@]}" "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
    echo "run-tests: pytest collected no tests" >&2
    exit 1
fi
exit $rc
