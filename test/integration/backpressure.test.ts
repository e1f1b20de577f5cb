import { expect } from "chai";
import type { Sidecar } from "../../client/sidecar.js";
import { SlabCapacityError } from "../../core/errors.js";
import type { Tensor } from "../../core/tensor.js";
import { MiB, TestCluster, expectReject, expectTensor, nodeName, shuffled, sleep, specsOn, tensorOf, uid, waitFor, waitForIdle } from "./helpers.js";

/**
 * Backpressure: each sidecar has 1 MiB of slab, so a 512 KiB send pool
 * (128 slots of 4 KiB). Far more than that is put in flight at once; it must
 * wait for memory (never fail because memory is merely busy) and arrive
 * byte-exact, and memory must return to zero.
 */
describe("integration: backpressure", function () {
  this.timeout(60_000);
  const POOL = 512 * 1024;
  const HINT = { dtype: "float32", shape: [-1, 1024] } as const; // 4 KiB slots
  let tc: TestCluster;
  let tx: Sidecar;
  let tx2: Sidecar;
  let rx: Sidecar;

  before(async () => {
    tc = await TestCluster.start(specsOn(nodeName("backpressure"), [0, 1, 2], 1 * MiB));
    tx = await tc.connect({ rank: 0, sendTensor: HINT });
    tx2 = await tc.connect({ rank: 2, sendTensor: HINT });
    rx = await tc.connect({ rank: 1, recvTensor: HINT });
  });

  after(async () => {
    await tc?.stop();
  });

  afterEach(async function () {
    if (this.currentTest?.state !== "passed") return;
    for (const r of [0, 1, 2]) {
      try {
        await waitForIdle(tc, r);
      } catch (err) {
        throw new Error(`${(err as Error).message}\nhealth of rank ${r}: ${JSON.stringify(await tc.health(r))}`);
      }
    }
  });

  /** Receives every chunk (in whatever order they come), checks it and releases it. */
  function drain(id: string, chunks: Tensor[], shape: (c: number) => number[]): Promise<void[]> {
    return Promise.all(chunks.map(async (t, c) => {
      const got = await rx.recv(id, c, { timeoutMs: 20_000 });
      expectTensor(got, "float32", shape(c), t.bytes, `chunk ${c}`);
      await rx.markDone(id, c);
    }));
  }

  it("holds 4x the send pool in flight: sends wait for memory, health shows it, everything arrives byte-exact", async () => {
    const id = uid("flood");
    const n = 16;
    const chunks = Array.from({ length: n }, (_, c) => tensorOf("float32", [32, 1024], 1000 + c)); // 128 KiB each, 2 MiB in all
    let settled = 0;
    let failed: unknown;
    const sends = chunks.map((t, c) => tx.send(t, { id, dstRanks: [[1]], chunkId: c, numChunks: n }).then(() => { settled += 1; }, (e) => { failed = e; }));

    // Nobody releases yet: the pool fills up and the rest waits in line.
    let h = await tc.health(0);
    await waitFor(async () => {
      h = await tc.health(0);
      return h.send.waiting === n - 4 && h.send.usedBytes === POOL;
    }, "the send pool to fill up with the rest waiting");
    expect(h.send.totalBytes).to.equal(POOL);
    expect(h.status, "waits for memory show as MEMORY_PRESSURE").to.equal("MEMORY_PRESSURE");
    expect(h.transfers.sendStates).to.deep.include({ waitingForMemory: n - 4 });
    await sleep(300);
    expect(failed, "busy memory is not an error").to.equal(undefined);
    expect(settled, "only the chunks that got memory are delivered").to.equal(4);

    await drain(id, chunks, () => [32, 1024]);
    await Promise.all(sends);
    expect(failed).to.equal(undefined);
    expect(settled).to.equal(n);
    expect(await rx.recv(id, n, { timeoutMs: 10_000 })).to.equal(null);
    const after = await waitForIdle(tc, 0);
    expect(after.status).to.equal("ALL_GOOD");
  });

  it("serves waiting sends first come, first served, even when a small one could fit earlier", async () => {
    const id = uid("fifo");
    const big = tensorOf("float32", [96, 1024], 2000); // 384 KiB
    const big2 = tensorOf("float32", [96, 1024], 2001); // 384 KiB: must wait for big to be released
    const small = tensorOf("float32", [8, 1024], 2002); // 32 KiB: would fit now, but arrives after big2
    await tx.send(big, { id, dstRanks: [[1]], chunkId: 0, numChunks: 3 });
    const order: number[] = [];
    const p1 = tx.send(big2, { id, dstRanks: [[1]], chunkId: 1, numChunks: 3 }).then(() => order.push(1));
    await waitFor(async () => (await tc.health(0)).send.waiting === 1, "the second big chunk to wait");
    const p2 = tx.send(small, { id, dstRanks: [[1]], chunkId: 2, numChunks: 3 }).then(() => order.push(2));
    await waitFor(async () => (await tc.health(0)).send.waiting === 2, "the small chunk to wait behind it");
    await sleep(200);
    expect(order, "nobody overtakes a waiter").to.deep.equal([]);
    await drain(id, [big, big2, small], (c) => (c === 2 ? [8, 1024] : [96, 1024]));
    await Promise.all([p1, p2]);
    expect(order).to.deep.equal([1, 2]);
  });

  it("two senders share one receiver under pressure, byte-exact", async () => {
    const idA = uid("two-a");
    const idB = uid("two-b");
    const n = 10;
    const a = Array.from({ length: n }, (_, c) => tensorOf("float32", [24 + c, 1024], 3000 + c));
    const b = Array.from({ length: n }, (_, c) => tensorOf("float32", [40 - c, 1024], 4000 + c));
    const sends = [
      ...shuffled([...Array(n).keys()], 17).map((c) => tx.send(a[c]!, { id: idA, dstRanks: [[1]], chunkId: c, numChunks: n })),
      ...shuffled([...Array(n).keys()], 19).map((c) => tx2.send(b[c]!, { id: idB, dstRanks: [[1]], chunkId: c, numChunks: n })),
    ];
    await waitFor(async () => (await tc.health(0)).send.waiting > 0 && (await tc.health(2)).send.waiting > 0, "both senders to wait for memory");
    await Promise.all([drain(idA, a, (c) => [24 + c, 1024]), drain(idB, b, (c) => [40 - c, 1024]), ...sends]);
  });

  it("fails at once, with SlabCapacityError, a chunk larger than the whole pool, even while others wait", async () => {
    const id = uid("impossible");
    const fill = Array.from({ length: 6 }, (_, c) => tensorOf("float32", [32, 1024], 5000 + c)); // 768 KiB: 2 chunks wait
    const sends = fill.map((t, c) => tx.send(t, { id, dstRanks: [[1]], chunkId: c, numChunks: fill.length }));
    await waitFor(async () => (await tc.health(0)).send.waiting === 2, "the pool to be busy");

    const tooBig = tensorOf("float32", [129, 1024], 6000); // 516 KiB > 512 KiB pool (but < the node's slab file)
    const t0 = Date.now();
    const err = await expectReject(tx.send(tooBig, { id: uid("too-big"), dstRanks: [[1]] }), SlabCapacityError, "SC_SLAB_CAPACITY", /516|528384|524288/);
    expect(Date.now() - t0, "the refusal does not wait for memory").to.be.below(3000);
    expect(err.message).to.match(/SIDECAR_SHM_SIZE|chunks/);
    const h = await tc.health(0);
    expect(h.send.waiting, "the impossible request never joined the line").to.equal(2);

    // Larger than the node's whole slab file: refused before anything is asked of the server.
    const huge = tensorOf("uint8", [8 * MiB], 1);
    await expectReject(tx.send(huge, { id: uid("huge"), dstRanks: [[1]] }), SlabCapacityError, "SC_SLAB_CAPACITY");

    await Promise.all([drain(id, fill, () => [32, 1024]), ...sends]);
  });
});
