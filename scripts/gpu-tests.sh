#!/usr/bin/env bash
# Builds the native addon and runs the GPU tests in one go, on a machine
# with a CUDA GPU and driver. No GPU there is a failure (SIDECAR_REQUIRE_GPU).
# Takes well under a minute after the build. Needs nats-server and the UCX
# library there too (the sidecar tests start real sidecars): on a machine with
# no package registry, carry their .deb files and unpack them first.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ]; then npm ci --no-audit --no-fund; fi
(cd native/ucx-cuda && npx node-gyp rebuild >/dev/null)
node --import tsx -e 'import("./native/ucx-cuda/cuda.ts").then(({ cuda }) => console.log("CUDA:", JSON.stringify(cuda.availability())))'
SIDECAR_REQUIRE_GPU=1 timeout 480 npx mocha --config test/native/mocharc.child.json \
  test/gpu/gpu.test.ts test/gpu/sidecar.test.ts test/native/cuda.test.ts test/integration/device.test.ts
