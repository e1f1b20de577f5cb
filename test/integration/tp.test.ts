import { expect } from "chai";
import type { Sidecar } from "../../client/sidecar.js";
import { SlabCapacityError } from "../../core/errors.js";
import { Tensor } from "../../core/tensor.js";
import { MiB, TestCluster, expectReject, expectTensor, nodeName, pattern, shuffled, sleep, specsOn, tensorOf, uid, waitForIdle } from "./helpers.js";

/**
 * TP groups on one node (each sidecar has 1 MiB of slab: a 512 KiB send pool):
 * - [0, 1] sends without concurrentCopy (shard 0 copies everything),
 * - [2, 3] sends with concurrentCopy (each worker copies its shard),
 * - [4, 5] receives (both members' clients read at head 4),
 * - [6] is a plain single-rank sidecar (sends and receives).
 */
describe("integration: TP groups", function () {
  this.timeout(60_000);
  const RANKS = [0, 1, 2, 3, 4, 5, 6];
  const HINT = { dtype: "float32", shape: [-1, 1024] } as const; // 4 KiB rows and slots
  let tc: TestCluster;
  let w0: Sidecar; let w1: Sidecar; // group [0, 1], no concurrent copy
  let c2: Sidecar; let c3: Sidecar; // group [2, 3], concurrent copy
  let r4: Sidecar; let r5: Sidecar; // group [4, 5], receivers
  let s6: Sidecar; // single rank

  before(async () => {
    tc = await TestCluster.start(specsOn(nodeName("tp"), RANKS, 1 * MiB));
    w0 = await tc.connect({ rank: 0, group: [0, 1], sendTensor: HINT });
    w1 = await tc.connect({ rank: 1, group: [1, 0], sendTensor: HINT });
    c2 = await tc.connect({ rank: 2, group: [2, 3], sendTensor: HINT, concurrentCopy: true });
    c3 = await tc.connect({ rank: 3, group: [2, 3], sendTensor: HINT, concurrentCopy: true });
    r4 = await tc.connect({ rank: 4, group: [4, 5], recvTensor: HINT });
    r5 = await tc.connect({ rank: 5, group: [4, 5], recvTensor: HINT });
    s6 = await tc.connect({ rank: 6, sendTensor: HINT, recvTensor: HINT });
  });

  after(async () => {
    await tc?.stop();
  });

  afterEach(async function () {
    if (this.currentTest?.state !== "passed") return;
    for (const r of [0, 2, 4, 6]) await waitForIdle(tc, r);
  });

  /** Both receivers of group [4, 5] read the chunk byte-exact, then it is released. */
  async function expectAtGroup45(id: string, chunkId: number, shape: number[], bytes: Uint8Array, what: string): Promise<void> {
    const [a, b] = await Promise.all([r4.recv(id, chunkId, { timeoutMs: 10_000 }), r5.recv(id, chunkId, { timeoutMs: 10_000 })]);
    expectTensor(a, "float32", shape, bytes, `${what} at rank 4`);
    expectTensor(b, "float32", shape, bytes, `${what} at rank 5`);
    await r5.markDone(id, chunkId);
  }

  for (const [name, first, second] of [["sender group without concurrentCopy", () => w0, () => w1], ["sender group with concurrentCopy", () => c2, () => c3]] as const) {
    it(`${name}: both workers send the same chunk at the same time, to a TP group`, async () => {
      const id = uid("tp-concurrent");
      const t = tensorOf("float32", [40, 1024], 3);
      await Promise.all([first().send(t, { id, dstRanks: [[4, 5]] }), second().send(t, { id, dstRanks: [[5, 4]] })]);
      await expectAtGroup45(id, 0, [40, 1024], t.bytes, "chunk");
    });

    it(`${name}: the workers call send in either order, far apart, and neither call returns early`, async () => {
      const id = uid("tp-staggered");
      const t = tensorOf("float32", [8, 1024], 4);
      // The non-head worker first: its send must wait for the other worker, then both resolve.
      let secondDone = false;
      const late = second().send(t, { id, dstRanks: [[6]] }).then(() => { secondDone = true; });
      await sleep(400);
      expect(secondDone, "send resolves only once the destination holds the chunk, which needs shard 0's copy").to.equal(false);
      await first().send(t, { id, dstRanks: [[6]] });
      await late;
      expectTensor(await s6.recv(id, 0, { timeoutMs: 10_000 }), "float32", [8, 1024], t.bytes, "chunk");
      await s6.markDone(id, 0);
    });

    it(`${name}: many chunks in flight from both workers in opposite orders do not deadlock`, async () => {
      const id = uid("tp-many");
      const n = 8;
      const chunks = Array.from({ length: n }, (_, c) => tensorOf("float32", [8 + c, 1024], 10 + c));
      const order = [...Array(n).keys()];
      const sends = [
        ...order.map((c) => first().send(chunks[c]!, { id, dstRanks: [[4, 5], [6]], chunkId: c, numChunks: n })),
        ...shuffled(order, 13).reverse().map((c) => second().send(chunks[c]!, { id, dstRanks: [[4, 5], [6]], chunkId: c, numChunks: n })),
      ];
      await Promise.all(sends);
      for (let c = 0; c < n; c++) {
        await expectAtGroup45(id, c, [8 + c, 1024], chunks[c]!.bytes, `chunk ${c}`);
        expectTensor(await s6.recv(id, c, { timeoutMs: 10_000 }), "float32", [8 + c, 1024], chunks[c]!.bytes, `chunk ${c} at rank 6`);
        await s6.markDone(id, c);
      }
      expect(await r4.recv(id, n, { timeoutMs: 10_000 })).to.equal(null);
    });
  }

  it("without concurrentCopy only shard 0 (the group head's worker) copies the data", async () => {
    const id = uid("tp-shard0");
    const head = tensorOf("float32", [16, 1024], 21);
    const other = tensorOf("float32", [16, 1024], 22); // a replica that differs: it must not be read
    await Promise.all([w1.send(other, { id, dstRanks: [[4, 5]] }), w0.send(head, { id, dstRanks: [[4, 5]] })]);
    await expectAtGroup45(id, 0, [16, 1024], head.bytes, "chunk");
  });

  it("with concurrentCopy each worker copies its own shard of the chunk", async () => {
    const id = uid("tp-shards");
    const a = tensorOf("float32", [16, 1024], 31);
    const b = tensorOf("float32", [16, 1024], 32);
    await Promise.all([c3.send(b, { id, dstRanks: [[4, 5]] }), c2.send(a, { id, dstRanks: [[4, 5]] })]);
    const half = a.bytes.byteLength / 2;
    const want = new Uint8Array(a.bytes.byteLength);
    want.set(a.bytes.subarray(0, half), 0);
    want.set(b.bytes.subarray(half), half);
    await expectAtGroup45(id, 0, [16, 1024], want, "chunk made of both shards");
  });

  it("with concurrentCopy, a chunk whose length does not split evenly is still byte-exact", async () => {
    const id = uid("tp-odd");
    const bytes = pattern(1001, 5); // 1001 bytes: shards of 501 and 500
    const t = Tensor.from(bytes, { dtype: "uint8", shape: [7, 11, 13] });
    const plain6 = await tc.connect({ rank: 6, sendTensor: HINT }); // no receive hint: sees the sender's dtype and shape
    await Promise.all([c2.send(t, { id, dstRanks: [[6]] }), c3.send(t, { id, dstRanks: [[6]] })]);
    expectTensor(await plain6.recv(id, 0, { timeoutMs: 10_000 }), "uint8", [7, 11, 13], bytes, "odd chunk");
    await plain6.markDone(id, 0);
    await plain6.shutdown();
  });

  it("a group uses the memory of all its members: a chunk bigger than one member's pool fits", async () => {
    const id = uid("tp-memory");
    const big = tensorOf("float32", [192, 1024], 41); // 768 KiB > 512 KiB (one member) < 1 MiB (the group)
    const h0 = await tc.health(0);
    expect(h0.send.totalBytes, "group [0, 1] pools both members' send memory").to.equal(2 * 512 * 1024);
    await expectReject(s6.send(big, { id: uid("too-big-alone"), dstRanks: [[4, 5]] }), SlabCapacityError, "SC_SLAB_CAPACITY");
    await Promise.all([w0.send(big, { id, dstRanks: [[4, 5]] }), w1.send(big, { id, dstRanks: [[4, 5]] })]);
    expect((await tc.health(0)).send.usedBytes).to.equal(768 * 1024);
    await expectAtGroup45(id, 0, [192, 1024], big.bytes, "big chunk");
    // The same holds for a group with concurrent copy.
    const id2 = uid("tp-memory-cc");
    await Promise.all([c2.send(big, { id: id2, dstRanks: [[6]] }), c3.send(big, { id: id2, dstRanks: [[6]] })]);
    expectTensor(await s6.recv(id2, 0, { timeoutMs: 10_000 }), "float32", [192, 1024], big.bytes, "big chunk from [2, 3]");
    await s6.markDone(id2, 0);
  });

  it("a TP receiving group serves recv from every member's clients, and a single rank sends to it", async () => {
    const id = uid("tp-recv");
    const t = tensorOf("float32", [4, 1024], 51);
    const waits = [r5.recv(id, 0), r4.recv(id, 0), r5.recv(id, 0)];
    await s6.send(t, { id, dstRanks: [[5, 4]] });
    (await Promise.all(waits)).forEach((g, i) => expectTensor(g, "float32", [4, 1024], t.bytes, `consumer ${i}`));
    await r4.markDone(id, 0);
  });
});
