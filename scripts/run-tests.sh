#!/usr/bin/env bash
# Runs Arc's whole test suite with pytest: C unit tests and fuzz-corpus
# replays (tests/test_unit.py) and the e2e suite (tests/e2e/) against both the
# release and the ASan+UBSan binaries. Exits with pytest's status; "no tests
# collected" (5) counts as failure. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."

export ARC_BINS=${ARC_BINS:-"build/release/arc build/asan/arc"}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export PYTHONDONTWRITEBYTECODE=1

[[ $# -eq 0 ]] && set -- tests/
/usr/bin/python3 -m pytest -q -ra "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
    echo "run-tests: pytest collected no tests" >&2
    exit 1
fi
exit $rc
