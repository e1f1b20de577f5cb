import { expect } from "chai";
import type { Sidecar } from "../../client/sidecar.js";
import { MiB, TestCluster, expectTensor, nodeName, sleep, specsOn, tensorOf, uid, waitForIdle } from "./helpers.js";

/** Resolves to "pending" when `p` has not settled within `ms`. */
async function stillPending(p: Promise<unknown>, ms = 300): Promise<boolean> {
  const guarded = p.then(() => "settled", () => "settled");
  return (await Promise.race([guarded, sleep(ms).then(() => "pending")])) === "pending";
}

/** Streams (`stream: true`, count unknown until closeStream): rank 0 sends to rank 1 and to group [2, 3]. */
describe("integration: streaming", function () {
  this.timeout(60_000);
  const RANKS = [0, 1, 2, 3];
  const HINT = { dtype: "float32", shape: [-1, 128] } as const;
  let tc: TestCluster;
  let tx: Sidecar;
  let rx1: Sidecar;
  let rx2: Sidecar;
  let rx3: Sidecar;

  before(async () => {
    tc = await TestCluster.start(specsOn(nodeName("stream"), RANKS, 2 * MiB));
    tx = await tc.connect({ rank: 0, sendTensor: HINT });
    rx1 = await tc.connect({ rank: 1, recvTensor: HINT });
    rx2 = await tc.connect({ rank: 2, group: [2, 3], recvTensor: HINT });
    rx3 = await tc.connect({ rank: 3, group: [2, 3], recvTensor: HINT });
  });

  after(async () => {
    await tc?.stop();
  });

  afterEach(async function () {
    if (this.currentTest?.state !== "passed") return;
    for (const r of RANKS) await waitForIdle(tc, r);
  });

  it("delivers a stream whose chunk 0 is sent last, then closes it", async () => {
    const id = uid("ooo");
    const n = 5;
    const chunks = Array.from({ length: n }, (_, c) => tensorOf("float32", [2 + c, 128], 300 + c));
    const waits = Array.from({ length: n }, (_, c) => rx1.recv(id, c, { timeoutMs: 10_000 }));
    for (const c of [3, 1, 4, 2]) await tx.send(chunks[c]!, { id, dstRanks: [[1]], chunkId: c, stream: true });
    // The later chunks are there, chunk 0 is not: recv of chunk 0 still waits.
    expectTensor(await waits[3]!, "float32", [5, 128], chunks[3]!.bytes, "chunk 3");
    expect(await stillPending(waits[0]!), "chunk 0 has not been sent yet").to.equal(true);
    // The count is still unknown: a recv past the last chunk sent so far waits too.
    const past = rx1.recv(id, n, { timeoutMs: 10_000 });
    expect(await stillPending(past, 100)).to.equal(true);
    await tx.send(chunks[0]!, { id, dstRanks: [[1]], chunkId: 0, stream: true });
    for (let c = 0; c < n; c++) expectTensor(await waits[c]!, "float32", [2 + c, 128], chunks[c]!.bytes, `chunk ${c}`);
    await tx.closeStream(id, n, [[1]]);
    expect(await past).to.equal(null);
    expect(await rx1.recv(id, n + 3, { timeoutMs: 10_000 })).to.equal(null);
    for (let c = 0; c < n; c++) await rx1.markDone(id, c);
  });

  it("accepts closeStream before any chunk arrives (early close)", async () => {
    const id = uid("early");
    const n = 3;
    const chunks = Array.from({ length: n }, (_, c) => tensorOf("float32", [4, 128], 400 + c));
    await tx.closeStream(id, n, [[1], [2, 3]]);
    // The end is known at once, even though no chunk is there.
    expect(await rx1.recv(id, n, { timeoutMs: 10_000 })).to.equal(null);
    expect(await rx3.recv(id, n + 1, { timeoutMs: 10_000 })).to.equal(null);
    const w1 = rx1.recv(id, 1, { timeoutMs: 10_000 });
    expect(await stillPending(w1), "chunks before the end are awaited, not null").to.equal(true);
    for (const c of [2, 0, 1]) await tx.send(chunks[c]!, { id, dstRanks: [[1], [2, 3]], chunkId: c, stream: true });
    expectTensor(await w1, "float32", [4, 128], chunks[1]!.bytes, "chunk 1 at rank 1");
    for (let c = 0; c < n; c++) {
      expectTensor(await rx1.recv(id, c, { timeoutMs: 10_000 }), "float32", [4, 128], chunks[c]!.bytes, `chunk ${c} at rank 1`);
      expectTensor(await rx2.recv(id, c, { timeoutMs: 10_000 }), "float32", [4, 128], chunks[c]!.bytes, `chunk ${c} at rank 2`);
      expectTensor(await rx3.recv(id, c, { timeoutMs: 10_000 }), "float32", [4, 128], chunks[c]!.bytes, `chunk ${c} at rank 3`);
    }
    for (let c = 0; c < n; c++) {
      await rx1.markDone(id, c);
      await rx3.markDone(id, c);
    }
    expect(await rx2.recv(id, n, { timeoutMs: 10_000 })).to.equal(null);
  });

  it("answers null to a recv that waits past the end as soon as closeStream arrives", async () => {
    const id = uid("wait-end");
    const t0 = tensorOf("float32", [1, 128], 500);
    const t1 = tensorOf("float32", [3, 128], 501);
    await tx.send(t0, { id, dstRanks: [[1]], chunkId: 0, stream: true });
    await tx.send(t1, { id, dstRanks: [[1]], chunkId: 1, stream: true });
    const atEnd = rx1.recv(id, 2);
    const farPast = rx1.recv(id, 9);
    expect(await stillPending(atEnd, 400), "the count is unknown: the recv must wait, not return null").to.equal(true);
    const t = Date.now();
    await tx.closeStream(id, 2, [[1]]);
    expect(await atEnd).to.equal(null);
    expect(await farPast).to.equal(null);
    expect(Date.now() - t, "null comes promptly after closeStream").to.be.below(5000);
    expectTensor(await rx1.recv(id, 0, { timeoutMs: 10_000 }), "float32", [1, 128], t0.bytes, "chunk 0");
    expectTensor(await rx1.recv(id, 1, { timeoutMs: 10_000 }), "float32", [3, 128], t1.bytes, "chunk 1");
    await rx1.markDone(id, 1);
    await rx1.markDone(id, 0);
    expect(await rx1.recv(id, 2, { timeoutMs: 10_000 })).to.equal(null);
  });

  it("streams objects and tensors mixed, to two groups, closing between chunks", async () => {
    const id = uid("mixed");
    const t = tensorOf("float32", [2, 128], 600);
    await tx.send({ header: "start", tokens: [1n, 2n] }, { id, dstRanks: [[2, 3], [1]], chunkId: 0, stream: true });
    await tx.closeStream(id, 3, [[2, 3], [1]]);
    await tx.send("middle", { id, dstRanks: [[2, 3], [1]], chunkId: 2, stream: true });
    await tx.send(t, { id, dstRanks: [[2, 3], [1]], chunkId: 1, stream: true });
    for (const rx of [rx1, rx2, rx3]) {
      expect(await rx.recv(id, 0, { timeoutMs: 10_000 })).to.deep.equal({ header: "start", tokens: [1n, 2n] });
      expectTensor(await rx.recv(id, 1, { timeoutMs: 10_000 }), "float32", [2, 128], t.bytes, `rank ${rx.rank}`);
      expect(await rx.recv(id, 2, { timeoutMs: 10_000 })).to.equal("middle");
      expect(await rx.recv(id, 3, { timeoutMs: 10_000 })).to.equal(null);
    }
    for (let c = 0; c < 3; c++) {
      await rx1.markDone(id, c);
      await rx2.markDone(id, c);
    }
  });

  it("closes an empty stream: chunk 0 is already past the end", async () => {
    const id = uid("empty");
    const w = rx1.recv(id, 0);
    await tx.closeStream(id, 0, [[1]]);
    expect(await w).to.equal(null);
    expect(await rx1.recv(id, 0, { timeoutMs: 10_000 })).to.equal(null);
  });
});
