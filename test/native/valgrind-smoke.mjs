// Native smoke test for scripts/valgrind-native.sh: loads the built addon
// directly (no TypeScript, no test runner) and exercises slab map/unmap, a
// UCX loopback tag send/recv, a cancelled recv, the CUDA-unavailable path and
// a clean close. Exits non-zero on any wrong result.
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const addonPath = fileURLToPath(new URL("../../native/ucx-cuda/build/Release/sidecar_native.node", import.meta.url));
const b = createRequire(import.meta.url)(addonPath);
const ALL = 0xffffffffffffffffn;
function check(ok, what) {
  if (!ok) {
    console.error(`valgrind-smoke: FAILED: ${what}`);
    process.exit(1);
  }
}

// Slab
const path = `/dev/shm/sidecar-valgrind-${process.pid}.slab`;
const slab = new b.Slab(path, 1 << 20, false);
const view = new Uint8Array(slab.buffer(), 0, 1 << 20);
view.fill(3);
const again = new b.Slab(path, 1 << 20, true);
check(new Uint8Array(again.buffer())[12345] === 3, "slab shared between mappings");
again.close();

// UCX loopback
const a = new b.UcxWorker("vg-a");
const c = new b.UcxWorker("vg-c");
c.registerMemory(slab);
const ep = new b.UcxEndpoint(a, c.address(), (err) => check(false, `endpoint error ${err.message}`));
for (const size of [8, 64 * 1024, 1 << 20]) {
  const src = new Uint8Array(size);
  for (let i = 0; i < size; i++) src[i] = (i * 7 + size) & 255;
  const dst = view.subarray(0, size);
  const [got] = c.recv(BigInt(size), ALL, dst);
  await ep.send(BigInt(size), src);
  const r = await got;
  check(r.length === size && r.senderTag === BigInt(size), `recv info for ${size}`);
  check(Buffer.from(dst).equals(Buffer.from(src)), `bytes for ${size}`);
}
const [cancelled, id] = c.recv(99n, ALL, new Uint8Array(16));
c.cancel(id);
const status = await cancelled.then(() => "resolved", (e) => e.status);
check(status === "UCS_ERR_CANCELED", `cancelled recv: ${status}`);
const [pending] = c.recv(100n, ALL, new Uint8Array(16));
await ep.close();
await a.close();
await c.close();
await c.close();
check((await pending.then(() => "resolved", (e) => e.status)) === "UCS_ERR_CANCELED", "recv pending at close");

// CUDA unavailable path (or, with a GPU, availability only)
const avail = b.cuda.availability();
check(typeof avail.reason === "string" && avail.reason.length > 0, "cuda reason");
if (!avail.available) {
  let code;
  try {
    b.cuda.malloc(0, 16);
  } catch (e) {
    code = e.code;
  }
  check(code === "SC_CUDA_UNAVAILABLE", `cuda.malloc without CUDA: ${code}`);
}

slab.close();
check(b.Slab.unlink(path) === true, "unlink");

// Left open on purpose: the environment cleanup hooks must close the
// endpoint, then the workers, then the contexts, at exit.
const x = new b.UcxWorker("vg-left-open-x");
const y = new b.UcxWorker("vg-left-open-y");
const xy = new b.UcxEndpoint(x, y.address());
const [taken] = y.recv(7n, ALL, new Uint8Array(4));
await xy.send(7n, new Uint8Array(4));
await taken;
globalThis.leftOpen = [x, y, xy];
console.log(`valgrind-smoke: ok (UCX ${b.UcxWorker.version()}; CUDA: ${avail.reason})`);
