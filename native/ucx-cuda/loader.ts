import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { NativeLoadError } from "../../core/errors.js";

/** The raw binding's shape; only this folder's wrappers use it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type RawBinding = Record<string, any>;

let cached: RawBinding | undefined;

/** The package root: the nearest folder above this file holding package.json and native/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "native", "ucx-cuda", "binding.gyp"))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new NativeLoadError(`cannot find the sidecar package root above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/**
 * Loads the addon once. On failure the error lists every path tried, why
 * each failed, and the command that fixes it.
 */
export function loadBinding(): RawBinding {
  if (cached) return cached;
  const root = packageRoot();
  const candidates = [
    process.env.SIDECAR_NATIVE_PATH,
    join(root, "native", "ucx-cuda", "build", "Release", "sidecar_native.node"),
    join(root, "native", "ucx-cuda", "build", "Debug", "sidecar_native.node"),
  ].filter((p): p is string => typeof p === "string" && p.length > 0);
  quietUcxMemoryHooks();
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const path of candidates) {
    if (!existsSync(path)) {
      tried.push(`${path}: not built`);
      continue;
    }
    try {
      cached = require(path) as RawBinding;
      return cached;
    } catch (err) {
      tried.push(`${path}: ${(err as Error).message}`);
    }
  }
  throw new NativeLoadError(
    `cannot load the sidecar native addon. Tried:\n  ${tried.join("\n  ")}\n` +
      `Fix: install UCX (apt-get install libucx-dev) and build the addon with \`npm run build:native\` ` +
      `(or run \`npm run setup\`, which does both).`,
  );
}

/**
 * UCX's memory hooks (libucm) patch malloc and mmap in the running process
 * when the library loads. In Node, V8's own threads map and unmap memory at
 * the same moment, and the patching crashed sidecars at start-up (a SIGSEGV
 * in V8's GC callbacks, about one start in fifty on a loaded machine). Sidecar
 * registers its slab explicitly and never needs UCX to watch allocations, so
 * the hooks are off unless the user set these variables. They must be set
 * before the addon (and with it libucm) is loaded.
 */
export const UCX_MEMORY_HOOK_DEFAULTS: Readonly<Record<string, string>> = {
  UCX_MEM_MALLOC_HOOKS: "no",
  UCX_MEM_MMAP_HOOK_MODE: "none",
  UCX_MEM_EVENTS: "no",
};

function quietUcxMemoryHooks(): void {
  for (const [key, value] of Object.entries(UCX_MEMORY_HOOK_DEFAULTS)) process.env[key] ??= value;
}

/** Wraps an error thrown by the addon into the project's error classes. */
export function nativeError(err: unknown, wrap: (message: string, status: string | undefined, number: number | undefined, cause: unknown) => Error): Error {
  const e = err as { message?: string; status?: string; number?: number };
  return wrap(e?.message ?? String(err), e?.status, e?.number, err);
}
