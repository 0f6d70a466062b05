#!/usr/bin/env bash
# The global tier's cost per request with leases vs the same limit of scope
# local: bench/limit_ab.sh with SCOPE=global (see there).
#
#   bench/limit_global_ab.sh            # ROUNDS=5 DURATION=8 CONNS=256 LEASE=64
exec env SCOPE=global "$(dirname "$0")/limit_ab.sh" "$@"
