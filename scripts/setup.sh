#!/usr/bin/env bash
# Idempotent set-up for `npm test`, `npm run demo` and `npm run bench` on a
# fresh Debian 12 machine with Node 20: system packages, npm packages, the
# native addon and the TypeScript build, each only when missing or stale.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

missing=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
pkg-config --exists ucx 2>/dev/null || missing+=(libucx-dev)
command -v ucx_perftest >/dev/null 2>&1 || missing+=(ucx-utils)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
      say "need root (or sudo) to install ${missing[*]}; install them and rerun"; exit 1
    fi
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

addon=native/ucx-cuda/build/Release/sidecar_native.node
if [ ! -f "$addon" ] || [ -n "$(find native/ucx-cuda/src native/ucx-cuda/binding.gyp -newer "$addon" -print -quit)" ]; then
  say "building the native addon"
  # Build against the headers that ship with this Node (no download): the
  # install prefix holds include/node when Node came from a package.
  prefix=$(dirname "$(dirname "$(command -v node)")")
  gyp_args=(rebuild --loglevel=warn)
  [ -f "$prefix/include/node/node_api.h" ] && gyp_args+=(--nodedir="$prefix")
  (cd native/ucx-cuda && ../../node_modules/.bin/node-gyp "${gyp_args[@]}" >/dev/null) || {
    say "native build failed; run 'cd native/ucx-cuda && npx node-gyp rebuild' to see why"; exit 1; }
fi

stamp=dist/.build-stamp
if [ ! -f "$stamp" ] || [ -n "$(find index.ts core actors control client server cli cluster bench native/ucx-cuda schemas tsconfig.json package.json \
      -path native/ucx-cuda/build -prune -o \( -name '*.ts' -o -name '*.json' \) -newer "$stamp" -print -quit)" ]; then
  say "building TypeScript (dist/)"
  npm run --silent build
fi
