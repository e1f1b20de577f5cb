#!/usr/bin/env bash
# Runs the native smoke script (test/native/valgrind-smoke.mjs) under
# valgrind memcheck, once per UCX transport configuration. Any memory error,
# or any definite leak not listed in native/ucx-cuda/valgrind.supp, fails.
# About 15 s per run on a 2-vCPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."

addon=native/ucx-cuda/build/Release/sidecar_native.node
if [ ! -f "$addon" ]; then (cd native/ucx-cuda && npx node-gyp rebuild >/dev/null); fi
command -v valgrind >/dev/null || { echo "valgrind not installed (apt-get install valgrind)" >&2; exit 2; }

run() {
  echo "== valgrind: $* node test/native/valgrind-smoke.mjs"
  env "$@" valgrind --tool=memcheck --error-exitcode=1 \
    --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
    --num-callers=30 --suppressions=native/ucx-cuda/valgrind.supp \
    node test/native/valgrind-smoke.mjs 2>&1 | grep -vE '\bUCX +(ERROR|WARN)\b'
  return "${PIPESTATUS[0]}"
}

run UCX_TLS=tcp UCX_NET_DEVICES=lo
run UCX_TLS=shm,self
echo "valgrind-native: passed"
