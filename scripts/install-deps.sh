#!/usr/bin/env bash
# Installs the Debian packages Arc needs to build and test, only if missing.
# Quiet and fast when everything is present. --bench adds nginx, HAProxy, wrk.
set -euo pipefail

pkgs=(gcc make pkg-config git liburing-dev libjansson-dev libyaml-dev libssl-dev openssl libnghttp2-dev libc-ares-dev libpcre2-dev zlib1g-dev
      clang libclang-rt-14-dev curl ca-certificates iproute2
      nghttp2-client python3 python3-pytest python3-websockets python3-requests python3-h2
      python3-grpcio python3-pytest-xdist chromium wabt lld)
pkgs+=(etcd-server etcd-client)     # the etcd config source's tests
pkgs+=(libbpf-dev bpftool iputils-ping)   # the XDP layer (src/xdp) and its namespace tests
pkgs+=(libhiredis-dev redis-server) # the global rate-limit tier (RESP reader) and its tests
# promtool (tests/e2e/test_metrics.py uses it when present) comes only with
# Debian's prometheus package, whose service would listen on :9090, Arc's
# default admin port: it is not installed here; `apt-get install prometheus`
# by hand if you want that check too (the strict parser runs either way).
if [[ ${1:-} == --bench ]]; then
    pkgs=(nginx-light haproxy wrk nghttp2-client procps iproute2 openssl lua5.1 slowhttptest)
fi

missing=()
for p in "${pkgs[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [[ $st == installed ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
