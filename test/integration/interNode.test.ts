/**
 * Two simulated nodes on this host (each its own node name, slab file and
 * local peer set): every chunk crosses the UCX data plane. The whole suite
 * runs once per transport configuration.
 *
 *   node A: rank 0 (a sender), ranks 2,3 (a TP group of senders)
 *   node B: rank 1 (a receiver), ranks 4,5 (a TP group of receivers)
 */
import { expect } from "chai";
import { connect } from "nats";
import { PeerUnreachableError, SlabCapacityError } from "../../core/errors.js";
import { decode, encode } from "../../control/codec.js";
import { Kind, subjectFor } from "../../control/subjects.js";
import type { Sidecar } from "../../client/sidecar.js";
import {
  MiB, TestCluster, expectReject, expectStillWorks, expectTensor, nodeName, shuffled, tensorOf, uid, waitFor, waitForIdle,
} from "./helpers.js";

// Over tcp, chunks stream in 1 MiB pieces (a 3 MiB chunk is 3 pieces); over
// shared memory in the default 8 MiB pieces.
const configs: { label: string; env: Record<string, string> }[] = [
  { label: "UCX_TLS=tcp UCX_NET_DEVICES=lo, 1 MiB pieces", env: { UCX_TLS: "tcp", UCX_NET_DEVICES: "lo", SIDECAR_PIECE_BYTES: "1M" } },
  { label: "UCX_TLS=shm,self (shared-memory transports)", env: { UCX_TLS: "shm,self" } },
];

const SHM = 16 * MiB; // per sidecar: 8 MiB send pool, 8 MiB receive pool
const hint = { dtype: "float32", shape: [-1, 256] } as const;

for (const { label, env } of configs) {
  describe(`integration: across two nodes over UCX (${label})`, function () {
    this.timeout(120_000);
    let tc: TestCluster;
    let nodeA: string;
    let nodeB: string;
    let tx: Sidecar;
    let rx: Sidecar;

    before(async () => {
      nodeA = nodeName(`xa${configs.findIndex((c) => c.label === label)}`);
      nodeB = nodeName(`xb${configs.findIndex((c) => c.label === label)}`);
      tc = await TestCluster.start([
        { rank: 0, node: nodeA, shmSize: SHM }, { rank: 2, node: nodeA, shmSize: SHM }, { rank: 3, node: nodeA, shmSize: SHM },
        { rank: 1, node: nodeB, shmSize: SHM }, { rank: 4, node: nodeB, shmSize: SHM }, { rank: 5, node: nodeB, shmSize: SHM },
      ], { env: { ...env, SIDECAR_TRANSFER_TIMEOUT_MS: "20000", SIDECAR_STAGING_TIMEOUT_MS: "4000" } });
      tx = await tc.connect({ rank: 0, sendTensor: hint });
      rx = await tc.connect({ rank: 1, recvTensor: hint });
    });

    after(async () => {
      await tc?.stop();
    });

    afterEach(async function () {
      if (this.currentTest?.state === "failed") {
        for (const r of [0, 1]) process.stdout.write(`--- sidecar ${r} log ---\n${tc.logs(r).slice(-3000)}\n`);
      }
    });

    it("moves an object and a tensor byte-exact, and frees both ends", async () => {
      const id = uid("x-basic");
      const t = tensorOf("float32", [64, 256], 3);
      await tx.send(t, { id, dstRanks: [[1]], numChunks: 2, chunkId: 0 });
      await tx.send({ step: 1, note: "across nodes", big: 2n ** 70n }, { id, dstRanks: [[1]], numChunks: 2, chunkId: 1 });
      const got = expectTensor(await rx.recv(id, 0, { timeoutMs: 10_000 }), "float32", [64, 256], t.bytes);
      expect(await rx.recv(id, 1, { timeoutMs: 10_000 })).to.deep.equal({ step: 1, note: "across nodes", big: 2n ** 70n });
      expect(await rx.recv(id, 2, { timeoutMs: 10_000 })).to.equal(null);
      // The chunk lives in the receiver's own receive pool, not the sender's slab.
      const h1 = await tc.health(1);
      expect(h1.recv.usedBytes).to.be.at.least(t.bytes.byteLength);
      expect(got.bytes.byteLength).to.equal(t.bytes.byteLength);
      await rx.markDone(id, 0);
      await rx.markDone(id, 1);
      await waitForIdle(tc, 0);
      await waitForIdle(tc, 1);
    });

    it("moves chunks sent in any order; recv in order; null past the end", async () => {
      const id = uid("x-chunks");
      const chunks = Array.from({ length: 6 }, (_, c) => tensorOf("float32", [16 + c, 256], 10 + c));
      await Promise.all(shuffled([...chunks.keys()], 5).map((c) => tx.send(chunks[c]!, { id, dstRanks: [[1]], chunkId: c, numChunks: chunks.length })));
      for (let c = 0; c < chunks.length; c++) {
        expectTensor(await rx.recv(id, c, { timeoutMs: 10_000 }), "float32", [16 + c, 256], chunks[c]!.bytes, `chunk ${c}`);
      }
      expect(await rx.recv(id, chunks.length, { timeoutMs: 10_000 })).to.equal(null);
      for (const c of shuffled([...chunks.keys()], 9)) await rx.markDone(id, c);
      await waitForIdle(tc, 0);
      await waitForIdle(tc, 1);
    });

    it("views the bytes with the receiver's hint when the dtypes differ, and any number of consumers recv the same chunk", async () => {
      const id = uid("x-dtype");
      const other = await tc.connect({ rank: 1, recvTensor: { dtype: "int16", shape: [-1, 8] } });
      const t = tensorOf("float32", [4, 256], 21);
      await tx.send(t, { id, dstRanks: [[1]] });
      const asInt16 = expectTensor(await other.recv(id, 0, { timeoutMs: 10_000 }), "int16", [256, 8], t.bytes, "int16 view");
      expect(asInt16.dtype).to.equal("int16");
      for (let i = 0; i < 3; i++) expectTensor(await rx.recv(id, 0, { timeoutMs: 10_000 }), "float32", [4, 256], t.bytes, `recv #${i}`);
      await rx.markDone(id, 0);
      await other.markDone(id, 0); // already released: a no-op
      await waitForIdle(tc, 1);
    });

    for (const concurrentCopy of [true, false]) {
      it(`moves a TP group's chunk to a TP group ${concurrentCopy ? "with" : "without"} concurrent copy`, async () => {
        const senders = await Promise.all([2, 3].map((rank) => tc.connect({ rank, group: [2, 3], sendTensor: hint, concurrentCopy })));
        const receivers = await Promise.all([4, 5].map((rank) => tc.connect({ rank, group: [4, 5], recvTensor: hint })));
        const id = uid(`x-tp-${concurrentCopy}`);
        const chunks = [tensorOf("float32", [33, 256], 40), tensorOf("float32", [7, 256], 41)];
        // Every TP worker sends the full replica of every chunk, all at once.
        await Promise.all(senders.flatMap((s) => chunks.map((t, c) => s.send(t, { id, dstRanks: [[4, 5]], chunkId: c, numChunks: 2 }))));
        for (const r of receivers) {
          for (let c = 0; c < 2; c++) expectTensor(await r.recv(id, c, { timeoutMs: 10_000 }), "float32", [...chunks[c]!.shape], chunks[c]!.bytes, `worker ${r.rank} chunk ${c}`);
          expect(await r.recv(id, 2, { timeoutMs: 10_000 })).to.equal(null);
        }
        await receivers[0]!.markDone(id, 0);
        await receivers[1]!.markDone(id, 1);
        await waitForIdle(tc, 2);
        await waitForIdle(tc, 4);
      });
    }

    it("broadcasts one chunk to a same-node group and to another node's group (staged first, then sent)", async () => {
      const id = uid("x-mixed");
      const local = await Promise.all([2, 3].map((rank) => tc.connect({ rank, group: [2, 3], recvTensor: hint })));
      const t = tensorOf("float32", [5 * 1024, 256], 140);
      await tx.send(t, { id, dstRanks: [[1], [2, 3]] });
      expectTensor(await rx.recv(id, 0, { timeoutMs: 10_000 }), "float32", [5 * 1024, 256], t.bytes, "other node");
      for (const w of local) expectTensor(await w.recv(id, 0, { timeoutMs: 10_000 }), "float32", [5 * 1024, 256], t.bytes, `same node, worker ${w.rank}`);
      await rx.markDone(id, 0);
      await local[0]!.markDone(id, 0);
      await waitForIdle(tc, 0);
      await waitForIdle(tc, 1);
    });

    it("streams: chunk 0 last, closeStream before the chunks, null once closed", async () => {
      const id = uid("x-stream");
      const chunks = Array.from({ length: 4 }, (_, c) => tensorOf("float32", [8, 256], 60 + c));
      const pastEnd = rx.recv(id, 4, { timeoutMs: 15_000 });
      await tx.closeStream(id, chunks.length, [[1]]);
      expect(await pastEnd).to.equal(null);
      for (const c of [3, 1, 2, 0]) await tx.send(chunks[c]!, { id, dstRanks: [[1]], chunkId: c, stream: true });
      for (let c = 0; c < chunks.length; c++) expectTensor(await rx.recv(id, c, { timeoutMs: 10_000 }), "float32", [8, 256], chunks[c]!.bytes, `stream chunk ${c}`);
      expect(await rx.recv(id, 4, { timeoutMs: 10_000 })).to.equal(null);
      for (let c = 0; c < chunks.length; c++) await rx.markDone(id, c);
      await waitForIdle(tc, 1);
    });

    it("backpressure at both ends: more data in flight than either pool holds still arrives byte-exact", async () => {
      const id = uid("x-pressure");
      // 10 chunks of 3 MiB: the sender's 8 MiB send pool stages two at a
      // time, the receiver's 8 MiB receive pool holds two until markDone.
      const chunks = Array.from({ length: 10 }, (_, c) => tensorOf("float32", [3 * 1024, 256], 80 + c));
      const sends = chunks.map((t, c) => tx.send(t, { id, dstRanks: [[1]], chunkId: c, numChunks: chunks.length }));
      let sawWaiting = false;
      for (let c = 0; c < chunks.length; c++) {
        const [h0, h1] = await Promise.all([tc.health(0), tc.health(1)]);
        if (h0.send.waiting > 0 || h1.recv.waiting > 0) sawWaiting = true;
        expect(h0.send.usedBytes).to.be.at.most(h0.send.totalBytes);
        expect(h1.recv.usedBytes).to.be.at.most(h1.recv.totalBytes);
        expectTensor(await rx.recv(id, c, { timeoutMs: 20_000 }), "float32", [3 * 1024, 256], chunks[c]!.bytes, `chunk ${c}`);
        await rx.markDone(id, c);
      }
      await Promise.all(sends);
      expect(sawWaiting, "some transfer waited for memory").to.equal(true);
      await waitForIdle(tc, 0);
      await waitForIdle(tc, 1);
    });

    it("reconnects to a receiver that restarted (new UCX address), and fails fast while it is gone", async () => {
      const narrow = { dtype: "float32", shape: [-1, 8] } as const;
      let rx8 = await tc.connect({ rank: 1, recvTensor: narrow });
      await expectStillWorks(tx, rx8, [[1]]);
      await rx8.shutdown();
      await rx.shutdown();
      await tc.cluster.stopSidecar(1);
      const id = uid("x-gone");
      await expectReject(tx.send(tensorOf("float32", [4, 256], 90), { id, dstRanks: [[1]] }), PeerUnreachableError, "SC_PEER_UNREACHABLE");
      await waitForIdle(tc, 0);
      await tc.cluster.startSidecar({ rank: 1, node: nodeB, shmSize: SHM });
      rx = await tc.connect({ rank: 1, recvTensor: hint });
      rx8 = await tc.connect({ rank: 1, recvTensor: narrow });
      await expectStillWorks(tx, rx8, [[1]]);
      await waitForIdle(tc, 0);
      await waitForIdle(tc, 1);
    });

    it("a receiver that dies while a send waits for its memory fails that send in seconds, and frees the sender's slot", async () => {
      const id = uid("x-dies");
      const first = tensorOf("float32", [6 * 1024, 256], 130);
      await tx.send(first, { id, dstRanks: [[1]], chunkId: 0, numChunks: 2 });
      // The receiver's 8 MiB pool holds the first 6 MiB until markDone: the second waits there.
      const started = Date.now();
      const second = tx.send(tensorOf("float32", [6 * 1024, 256], 131), { id, dstRanks: [[1]], chunkId: 1, numChunks: 2 });
      await waitFor(async () => (await tc.health(1)).recv.waiting > 0, "the second chunk to wait for memory at the receiver");
      tc.cluster.sidecars.get(1)!.process.kill("SIGKILL");
      await expectReject(second, PeerUnreachableError, "SC_PEER_UNREACHABLE", /went away/);
      expect(Date.now() - started).to.be.below(15_000);
      await waitForIdle(tc, 0);
      await tc.cluster.stopSidecar(1);
      await tc.cluster.startSidecar({ rank: 1, node: nodeB, shmSize: SHM });
      rx = await tc.connect({ rank: 1, recvTensor: hint });
    });

    it("a streamed chunk whose worker never stages it fails at the staging deadline and frees both ends", async () => {
      const nc = await connect({ servers: tc.url });
      try {
        const id = uid("x-unstaged");
        const msg = await nc.request(subjectFor(0, Kind.sendBegin), encode({
          id, chunkId: 0, numChunks: 1, dstRanks: [[1]], dtype: "float32", shape: [2048, 256], length: 2 * MiB,
          worker: { rank: 0, group: [0], concurrentCopy: false },
        }), { timeout: 10_000 });
        const begin = decode(msg.data) as { tag: string; pieceBytes?: number };
        expect(begin.pieceBytes, "the chunk is streamed (its one destination is on another node)").to.be.greaterThan(0);
        expect((await tc.health(0)).send.usedBytes).to.be.at.least(2 * MiB);
        // No staged report and no commit: after 4 s the send fails and both slots come back.
        await waitForIdle(tc, 0, 15_000);
        await waitForIdle(tc, 1, 15_000);
        expect((await tc.health(0)).transfers.sendFailed).to.be.at.least(1);
        expect(await rx.recv(id, 0, { timeoutMs: 300 }).catch((e: Error) => e.name)).to.equal("TimeoutError");
      } finally {
        await nc.close();
      }
    });

    it("pools a TP group's memory at both ends: 12 MiB crosses although each member's pools hold 8 MiB", async () => {
      const senders = await Promise.all([2, 3].map((rank) => tc.connect({ rank, group: [2, 3], sendTensor: hint })));
      const receivers = await Promise.all([4, 5].map((rank) => tc.connect({ rank, group: [4, 5], recvTensor: hint })));
      const id = uid("x-pooled");
      const t = tensorOf("float32", [12 * 1024, 256], 123);
      await Promise.all(senders.map((s) => s.send(t, { id, dstRanks: [[4, 5]] })));
      for (const r of receivers) expectTensor(await r.recv(id, 0, { timeoutMs: 20_000 }), "float32", [12 * 1024, 256], t.bytes, `worker ${r.rank}`);
      await receivers[1]!.markDone(id, 0);
      await waitForIdle(tc, 2);
      await waitForIdle(tc, 4);
      // More than the group's pooled 16 MiB send memory can ever hold: refused at once.
      const tooBig = tensorOf("float32", [17 * 1024, 256], 124);
      await expectReject(senders[0]!.send(tooBig, { id: uid("x-too-big"), dstRanks: [[4, 5]] }), SlabCapacityError, "SC_SLAB_CAPACITY");
    });
  });
}
