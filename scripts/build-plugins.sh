#!/usr/bin/env bash
# Builds the example proxy-wasm filters from source into DIR (default
# tests/e2e/plugins): the C filters with clang's wasm32 target (Debian's
# clang + lld), the AssemblyScript one with the versions pinned in
# examples/plugins/as/package-lock.json (npm ci; needs the npm registry once).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/tests/e2e/plugins}
mkdir -p "$out"
for src in "$root"/examples/plugins/c/*.c; do
    name=$(basename "$src" .c)
    clang --target=wasm32 -O2 -nostdlib -Wl,--no-entry -Wl,--export-dynamic \
          -Wl,--allow-undefined -o "$out/c_$name.wasm" "$src"
done
if [[ ${SKIP_AS:-0} != 1 ]]; then
    cd "$root/examples/plugins/as"
    command -v npm >/dev/null || { echo "build-plugins: npm (Node.js) is needed for the AssemblyScript filter; SKIP_AS=1 skips it" >&2; exit 1; }
    [[ -d node_modules/@solo-io/proxy-runtime ]] || npm ci --no-audit --no-fund
    for src in assembly/*.ts; do
        name=$(basename "$src" .ts)
        npx asc "$src" -b "$out/as_$name.wasm" --use abort=abort_proc_exit --optimize 2>/dev/null
    done
fi
echo "built into $out"
