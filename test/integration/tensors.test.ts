import { expect } from "chai";
import type { Sidecar } from "../../client/sidecar.js";
import { DTYPES } from "../../core/dtype.js";
import { TensorShapeError } from "../../core/errors.js";
import { Tensor } from "../../core/tensor.js";
import {
  MiB, TestCluster, expectReject, expectTensor, nodeName, shuffled, sleep, specsOn, tensorOf, uid, waitFor, waitForIdle,
} from "./helpers.js";

/**
 * Tensors on one node: rank 0 sends; rank 1 and the TP group [2, 3] receive.
 * Every test leaves all memory free (checked after each test).
 */
describe("integration: tensors", function () {
  this.timeout(60_000);
  const RANKS = [0, 1, 2, 3];
  let tc: TestCluster;
  let tx: Sidecar;
  let rx1: Sidecar;
  /** A rank-1 client without a receive hint: it gets the sender's dtype and shape. */
  let raw1: Sidecar;
  let rx2: Sidecar;
  let rx3: Sidecar;

  before(async () => {
    tc = await TestCluster.start(specsOn(nodeName("tensors"), RANKS, 4 * MiB));
    tx = await tc.connect({ rank: 0, sendTensor: { dtype: "float32", shape: [-1, 256] } });
    rx1 = await tc.connect({ rank: 1, recvTensor: { dtype: "float32", shape: [-1, 256] } });
    raw1 = await tc.connect({ rank: 1, sendTensor: { dtype: "float32", shape: [-1, 256] } });
    rx2 = await tc.connect({ rank: 2, group: [2, 3], recvTensor: { dtype: "float32", shape: [-1, 256] } });
    rx3 = await tc.connect({ rank: 3, group: [2, 3], recvTensor: { dtype: "float32", shape: [-1, 256] } });
  });

  after(async () => {
    await tc?.stop();
  });

  afterEach(async function () {
    if (this.currentTest?.state !== "passed") return;
    for (const r of RANKS) await waitForIdle(tc, r);
  });

  it("moves a chunked tensor: chunks sent in shuffled order are received in order, byte-exact", async () => {
    const id = uid("chunked");
    const n = 7;
    const chunks = Array.from({ length: n }, (_, c) => tensorOf("float32", [8, 256], 100 + c));
    // The receiver asks for every chunk, in order, before any is sent.
    const got = Array.from({ length: n }, (_, c) => rx1.recv(id, c, { timeoutMs: 10_000 }));
    const order = shuffled([...Array(n).keys()], 11);
    expect(order).to.not.deep.equal([...Array(n).keys()]);
    for (const c of order) await tx.send(chunks[c]!, { id, dstRanks: [[1]], chunkId: c, numChunks: n });
    for (let c = 0; c < n; c++) expectTensor(await got[c]!, "float32", [8, 256], chunks[c]!.bytes, `chunk ${c}`);
    expect(await rx1.recv(id, n, { timeoutMs: 10_000 })).to.equal(null);
    // Chunks are released in any order.
    for (const c of shuffled([...Array(n).keys()], 5)) await rx1.markDone(id, c);
  });

  it("moves chunks sent concurrently (one send call per chunk, all in flight at once)", async () => {
    const id = uid("concurrent");
    const n = 12;
    const chunks = Array.from({ length: n }, (_, c) => tensorOf("float32", [1 + (c % 5), 256], 200 + c));
    await Promise.all(shuffled([...Array(n).keys()], 3).map((c) => tx.send(chunks[c]!, { id, dstRanks: [[1]], chunkId: c, numChunks: n })));
    const sent = await tc.health(0);
    expect(sent.send.usedBytes, "the sender holds every chunk until it is released").to.be.greaterThan(0);
    for (let c = 0; c < n; c++) expectTensor(await rx1.recv(id, c, { timeoutMs: 10_000 }), "float32", [1 + (c % 5), 256], chunks[c]!.bytes, `chunk ${c}`);
    for (let c = n - 1; c >= 0; c--) await rx1.markDone(id, c);
  });

  it("moves every dtype byte-exact, with its dtype and shape", async () => {
    for (const dtype of DTYPES) {
      const id = uid(`dtype-${dtype}`);
      const t = tensorOf(dtype, [3, 5, 7], 7);
      await tx.send(t, { id, dstRanks: [[1]] });
      // A receiver without a receive hint sees the sender's dtype and shape.
      const got = expectTensor(await raw1.recv(id, 0, { timeoutMs: 10_000 }), dtype, [3, 5, 7], t.bytes, dtype);
      expect(got.numel).to.equal(105);
      if (dtype === "int64") expect((got.view() as BigInt64Array)[4]).to.equal((t.view() as BigInt64Array)[4]);
      if (dtype === "float64") expect(Object.is((got.view() as Float64Array)[9], (t.view() as Float64Array)[9])).to.equal(true);
      // A receiver whose hint names the same dtype sees the same tensor (-1 resolved to 3).
      const hinted = await tc.connect({ rank: 1, recvTensor: { dtype, shape: [-1, 5, 7] } });
      expectTensor(await hinted.recv(id, 0, { timeoutMs: 10_000 }), dtype, [3, 5, 7], t.bytes, `${dtype} (hinted)`);
      await hinted.shutdown();
      await raw1.markDone(id, 0);
    }
  });

  it("views the bytes with the receiver's dtype and shape when send and receive hints differ", async () => {
    const id = uid("mismatch");
    const t = tensorOf("float32", [4, 256], 31); // 4096 bytes
    await tx.send(t, { id, dstRanks: [[1]] });
    const cases: [string, number[], number[]][] = [
      ["bfloat16", [-1, 512], [4, 512]],
      ["uint8", [-1, 16, 16], [16, 16, 16]],
      ["int64", [-1, 2], [256, 2]],
      ["float16", [-1, 2048], [1, 2048]],
      ["int8", [-1, 1], [4096, 1]],
      ["float32", [-1, 64], [16, 64]],
    ];
    for (const [dtype, hint, want] of cases) {
      const c = await tc.connect({ rank: 1, recvTensor: { dtype, shape: hint } });
      const got = expectTensor(await c.recv(id, 0, { timeoutMs: 10_000 }), dtype, want, t.bytes, `viewed as ${dtype}`);
      if (dtype === "uint8") expect(Buffer.from(got.view() as Uint8Array).equals(Buffer.from(t.bytes))).to.equal(true);
      if (dtype === "int64") {
        const dv = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
        expect((got.view() as BigInt64Array)[3]).to.equal(dv.getBigInt64(24, true));
      }
      await c.shutdown();
    }
    // Bytes that cannot be viewed with the receive hint are a typed error, and lose nothing.
    const bad = await tc.connect({ rank: 1, recvTensor: { dtype: "float64", shape: [-1, 3] } });
    await expectReject(bad.recv(id, 0, { timeoutMs: 10_000 }), TensorShapeError, "SC_TENSOR_SHAPE");
    await bad.shutdown();
    expectTensor(await rx1.recv(id, 0, { timeoutMs: 10_000 }), "float32", [4, 256], t.bytes, "after a failed view");
    await rx1.markDone(id, 0);
  });

  it("serves the same chunk to any number of consumers of the receiving group, any number of times", async () => {
    const id = uid("multi");
    const t = tensorOf("float32", [16, 256], 41);
    const extra2 = await tc.connect({ rank: 2, group: [2, 3], recvTensor: { dtype: "float32", shape: [-1, 256] } });
    const extra3 = await tc.connect({ rank: 3, group: [2, 3], recvTensor: { dtype: "float32", shape: [-1, 256] } });
    const consumers = [rx2, rx3, extra2, extra3];
    // Half of the recvs wait before the send, half come after it.
    const early = consumers.flatMap((c) => [c.recv(id, 0), c.recv(id, 0)]);
    await sleep(50);
    await tx.send(t, { id, dstRanks: [[2, 3]] });
    const late = consumers.flatMap((c) => [c.recv(id, 0, { timeoutMs: 10_000 }), c.recv(id, 0, { timeoutMs: 10_000 })]);
    const all = await Promise.all([...early, ...late]);
    const offsets = new Set<number>();
    all.forEach((g, i) => offsets.add(expectTensor(g, "float32", [16, 256], t.bytes, `consumer ${i}`).bytes.byteOffset));
    expect(offsets.size, "every consumer reads the same slab slot (zero copy)").to.equal(1);
    expect((await tc.health(2)).transfers.held).to.equal(1);
    await extra3.markDone(id, 0);
    // A second markDone of the same chunk by another group member is a no-op.
    await rx2.markDone(id, 0);
    await extra2.shutdown();
    await extra3.shutdown();
  });

  it("returns null for chunks at or past the end once the count is known", async () => {
    const id = uid("end");
    const t1 = tensorOf("float32", [2, 256], 51);
    const t0 = tensorOf("float32", [3, 256], 52);
    // Only chunk 1 of 2 has arrived: the count is known, so chunk 2 and beyond are past the end.
    await tx.send(t1, { id, dstRanks: [[1]], chunkId: 1, numChunks: 2 });
    expect(await rx1.recv(id, 2, { timeoutMs: 10_000 })).to.equal(null);
    expect(await rx1.recv(id, 1000, { timeoutMs: 10_000 })).to.equal(null);
    const wait0 = rx1.recv(id, 0, { timeoutMs: 10_000 });
    const raced = await Promise.race([wait0.then(() => "arrived"), sleep(300).then(() => "pending")]);
    expect(raced, "chunk 0 is still on its way: recv waits, it does not return null").to.equal("pending");
    await tx.send(t0, { id, dstRanks: [[1]], chunkId: 0, numChunks: 2 });
    expectTensor(await wait0, "float32", [3, 256], t0.bytes, "chunk 0");
    expectTensor(await rx1.recv(id, 1, { timeoutMs: 10_000 }), "float32", [2, 256], t1.bytes, "chunk 1");
    await rx1.markDone(id, 0);
    await rx1.markDone(id, 1);
    // After every chunk is released, the end is still the end.
    expect(await rx1.recv(id, 2, { timeoutMs: 10_000 })).to.equal(null);
  });

  it("frees the sender's slot only when every receiving group released it (reference count)", async () => {
    const id = uid("refcount");
    const t = tensorOf("float32", [8, 256], 61); // 8 KiB: two 4 KiB slots
    await tx.send(t, { id, dstRanks: [[1], [2, 3]] });
    const before = await tc.health(0);
    expect(before.send.usedBytes, "slot held while both groups hold the chunk").to.equal(8192);
    expect(before.transfers.sendStates).to.deep.equal({ awaitingRelease: 1 });

    expectTensor(await rx1.recv(id, 0, { timeoutMs: 10_000 }), "float32", [8, 256], t.bytes, "group [1]");
    await rx1.markDone(id, 0);
    // Rank 1 forgets the chunk only after its release reached the sender.
    await waitFor(async () => (await tc.health(1)).transfers.held === 0, "rank 1 to release its reference");
    await sleep(100);
    const mid = await tc.health(0);
    expect(mid.send.usedBytes, "one receiver still reads the slot: it must stay allocated").to.equal(8192);
    expect(mid.transfers.sending).to.equal(1);

    // The other group still reads intact bytes.
    expectTensor(await rx3.recv(id, 0, { timeoutMs: 10_000 }), "float32", [8, 256], t.bytes, "group [2, 3]");
    await rx3.markDone(id, 0);
    await waitFor(async () => (await tc.health(0)).send.usedBytes === 0, "the slot to be freed after the last release");
    expect((await tc.health(0)).transfers.sending).to.equal(0);
  });

  it("releases chunks of a broadcast independently, in any order across groups", async () => {
    const id = uid("refcount-chunks");
    const n = 4;
    const chunks = Array.from({ length: n }, (_, c) => tensorOf("float32", [4, 256], 70 + c)); // one slot each
    for (const c of shuffled([...Array(n).keys()], 9)) await tx.send(chunks[c]!, { id, dstRanks: [[2, 3], [1]], chunkId: c, numChunks: n });
    expect((await tc.health(0)).send.usedBytes).to.equal(n * 4096);
    for (let c = 0; c < n; c++) {
      expectTensor(await rx1.recv(id, c, { timeoutMs: 10_000 }), "float32", [4, 256], chunks[c]!.bytes, `rank 1 chunk ${c}`);
      expectTensor(await rx2.recv(id, c, { timeoutMs: 10_000 }), "float32", [4, 256], chunks[c]!.bytes, `rank 2 chunk ${c}`);
    }
    // Group [1] releases chunks 0 and 1, group [2, 3] releases 2 and 3: nothing can be freed yet.
    await rx1.markDone(id, 0);
    await rx1.markDone(id, 1);
    await rx2.markDone(id, 2);
    await rx3.markDone(id, 3);
    await waitFor(async () => (await tc.health(1)).transfers.held === 2 && (await tc.health(2)).transfers.held === 2, "releases to land");
    await sleep(100);
    expect((await tc.health(0)).send.usedBytes).to.equal(n * 4096);
    await rx2.markDone(id, 0);
    await waitFor(async () => (await tc.health(0)).send.usedBytes === (n - 1) * 4096, "chunk 0 to be freed");
    await rx1.markDone(id, 3);
    await rx1.markDone(id, 2);
    await rx2.markDone(id, 1);
    await waitFor(async () => (await tc.health(0)).send.usedBytes === 0, "every chunk to be freed");
  });

  it("keeps a received tensor valid until markDone even when the sender's client is gone", async () => {
    const id = uid("sender-gone");
    const tx2 = await tc.connect({ rank: 0, sendTensor: { dtype: "float32", shape: [-1, 256] } });
    const t = tensorOf("float32", [2, 256], 81);
    const copy = new Uint8Array(t.bytes);
    await tx2.send(t, { id, dstRanks: [[1]] });
    await tx2.shutdown();
    t.bytes.fill(0); // the sender may reuse its buffer once send resolved
    expectTensor(await rx1.recv(id, 0, { timeoutMs: 10_000 }), "float32", [2, 256], copy, "after the sender left");
    await rx1.markDone(id, 0);
  });

  it("moves empty and single-element tensors", async () => {
    const id = uid("tiny");
    const empty = Tensor.from(new Uint8Array(0), { dtype: "float32", shape: [0, 256] });
    const one = Tensor.from(new Float32Array([3.5]), { dtype: "float32", shape: [1] });
    await tx.send(empty, { id, dstRanks: [[1]], chunkId: 0, numChunks: 2 });
    await tx.send(one, { id, dstRanks: [[1]], chunkId: 1, numChunks: 2 });
    expectTensor(await raw1.recv(id, 0, { timeoutMs: 10_000 }), "float32", [0, 256], empty.bytes, "empty");
    const got = expectTensor(await raw1.recv(id, 1, { timeoutMs: 10_000 }), "float32", [1], one.bytes, "one element");
    expect((got.view() as Float32Array)[0]).to.equal(3.5);
    await raw1.markDone(id, 0);
    await raw1.markDone(id, 1);
  });
});
