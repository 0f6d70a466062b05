#!/usr/bin/env bash
# Runs another Arc build as a harness peer, for A/B runs of two builds in
# the same ../shared/bench run (its generic-proxy hook). The config is the
# one proxies.sh writes for arc1 (one worker, the same upstream pool and
# https listener with the run's certificate), on other ports.
#
#   PROXY_CMD_arcold='bench/arc_peer.sh /path/to/old/arc 18090 18450' \
#   PROXY_PORT_arcold=18090 PROXY_H2PORT_arcold=18450 \
#   PROXIES="arc1 arcold" ... ../shared/bench/run.sh
#
# Reads BACKEND_ADDR, BACKEND_PORT, RUN_DIR, TLS_CERT and TLS_KEY from the
# environment run.sh exports; stays in the foreground (exec).
# ARC_PEER_HISTOGRAMS=false turns observability.histograms off (the A/B of
# the histograms' cost: bench/RESULTS.md).
set -euo pipefail
bin=${1:?usage: arc_peer.sh ARC_BIN H1_PORT [H2_PORT]}
p1=${2:?usage: arc_peer.sh ARC_BIN H1_PORT [H2_PORT]}
p2=${3:-}
d=$RUN_DIR/arc-peer-$p1
mkdir -p "$d"
{
    printf 'node:\n  workers: 1\n'
    printf 'listeners:\n  - name: http\n    kind: http\n    bind: "%s:%s"\n' "$BACKEND_ADDR" "$p1"
    if [[ -n $p2 ]]; then
        printf '  - name: https\n    kind: https\n    bind: "%s:%s"\n' "$BACKEND_ADDR" "$p2"
        printf '    tls:\n      certificates:\n        - sni: localhost\n'
        printf '          cert_pem: "%s"\n          key_pem: "%s"\n' "$TLS_CERT" "$TLS_KEY"
    fi
    printf 'upstreams:\n  - name: backend\n    discovery:\n      type: static\n'
    printf '      endpoints:\n        - address: "%s:%s"\n' "$BACKEND_ADDR" "$BACKEND_PORT"
    printf '    pool:\n      max_idle: 1024\n'
    printf 'routes:\n  - name: all\n    match:\n      path: "/{*rest}"\n    action:\n      upstream: backend\n'
    printf 'observability:\n  metrics_bind: "127.0.0.1:0"\n'
    if [[ -n ${ARC_PEER_HISTOGRAMS:-} ]]; then
        printf '  histograms:\n    enabled: %s\n' "$ARC_PEER_HISTOGRAMS"
    fi
    # Extra top-level YAML for this peer (ab.sh: NEW_EXTRA / OLD_EXTRA), with
    # @DIR@ standing for the peer's own directory.
    if [[ -n ${ARC_PEER_EXTRA:-} ]]; then printf '%s\n' "${ARC_PEER_EXTRA//@DIR@/$d}"; fi
} >"$d/arc.yaml"
exec "$bin" run -c "$d/arc.yaml"
