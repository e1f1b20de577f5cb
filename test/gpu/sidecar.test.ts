// Needs a CUDA GPU; run by scripts/gpu-tests.sh. Elsewhere every test skips
// after printing why. A producer's GPU tensor goes to its sidecar by CUDA IPC
// handle, the sidecar copies it into the slab, the consumer receives host
// memory and copies it back onto the GPU: byte-exact all the way.
import { expect } from "chai";
import type { Sidecar } from "../../client/sidecar.js";
import { copyToDevice } from "../../client/device.js";
import { Tensor } from "../../core/tensor.js";
import { cuda } from "../../native/ucx-cuda/index.js";
import { MiB, TestCluster, expectTensor, nodeName, pattern, uid, waitForIdle } from "../integration/helpers.js";

describe("GPU tensors through sidecars (device → slab → device)", function () {
  this.timeout(180_000);
  const a = cuda.availability();
  let tc: TestCluster | undefined;
  const hint = { dtype: "bfloat16", shape: [-1, 1024] } as const;

  before(async function () {
    if (!a.available) {
      if (process.env.SIDECAR_REQUIRE_GPU === "1") throw new Error(`a GPU is required here, but ${a.reason}`);
      console.log(`      skipping GPU sidecar tests: ${a.reason}`);
      this.skip();
    }
    const A = nodeName("gpu-a");
    const B = nodeName("gpu-b");
    tc = await TestCluster.start([
      { rank: 0, node: A, shmSize: 256 * MiB }, { rank: 2, node: A, shmSize: 256 * MiB }, { rank: 3, node: A, shmSize: 256 * MiB },
      { rank: 1, node: A, shmSize: 256 * MiB }, { rank: 4, node: B, shmSize: 256 * MiB },
    ], { env: { UCX_TLS: "tcp", UCX_NET_DEVICES: "lo" } });
  });

  after(async () => {
    await tc?.stop();
  });

  // Device memory holding `bytes` at byte `offset` of a larger allocation.
  async function onDevice(bytes: Uint8Array, offset: number): Promise<{ ptr: bigint; handle: Uint8Array }> {
    const ptr = cuda.malloc(0, offset + bytes.byteLength);
    await cuda.memset(0, ptr, 0xee, offset + bytes.byteLength);
    await cuda.copyToDevice(0, bytes, ptr + BigInt(offset));
    return { ptr, handle: cuda.ipcGetHandle(0, ptr) };
  }

  async function roundTrip(rx: Sidecar, id: string, bytes: Uint8Array, rows: number): Promise<void> {
    const got = expectTensor(await rx.recv(id, 0, { timeoutMs: 30_000 }), "bfloat16", [rows, 1024], bytes, "host copy");
    const back = await copyToDevice(got as Tensor, 0);
    const host = new Uint8Array(bytes.byteLength);
    await cuda.copyToHost(0, back.ptr, host);
    cuda.free(0, back.ptr);
    expect(Buffer.from(host).equals(Buffer.from(bytes)), "device copy of the received tensor").to.equal(true);
    await rx.markDone(id, 0);
  }

  for (const [label, dst] of [["same node", 1], ["another node (UCX tcp)", 4]] as const) {
    it(`moves a 64 MiB GPU tensor at an offset to ${label}`, async () => {
      const tx = await tc!.connect({ rank: 0, sendTensor: hint });
      const rx = await tc!.connect({ rank: dst, recvTensor: hint });
      const rows = 32 * 1024;
      const bytes = pattern(rows * 1024 * 2, dst);
      const src = await onDevice(bytes, 4096);
      const id = uid("gpu");
      const sent = tx.send({ kind: "device", dtype: "bfloat16", shape: [rows, 1024], device: 0, ipcHandle: src.handle, offset: 4096 }, { id, dstRanks: [[dst]] });
      await roundTrip(rx, id, bytes, rows);
      await sent;
      cuda.free(0, src.ptr);
      await waitForIdle(tc!, 0);
    });
  }

  it("a TP group's workers each copy their shard from their own GPU replica (concurrentCopy)", async () => {
    const workers = await Promise.all([2, 3].map((rank) => tc!.connect({ rank, group: [2, 3], sendTensor: hint, concurrentCopy: true })));
    const rx = await tc!.connect({ rank: 4, recvTensor: hint });
    const rows = 4099;
    const bytes = pattern(rows * 1024 * 2, 77);
    const replicas = await Promise.all(workers.map(() => onDevice(bytes, 0)));
    const id = uid("gpu-tp");
    const sends = workers.map((w, i) => w.send({ kind: "device", dtype: "bfloat16", shape: [rows, 1024], device: 0, ipcHandle: replicas[i]!.handle }, { id, dstRanks: [[4]] }));
    await roundTrip(rx, id, bytes, rows);
    await Promise.all(sends);
    for (const r of replicas) cuda.free(0, r.ptr);
    await waitForIdle(tc!, 2);
  });
});
