import { expect } from "chai";
import { connect, type NatsConnection } from "nats";
import { Sidecar } from "../../client/sidecar.js";
import { freePort } from "../../cluster/natsServer.js";
import { decode, encode } from "../../control/codec.js";
import { Kind, subjectFor } from "../../control/subjects.js";
import {
  ClosedError, ConfigError, InvalidArgumentError, NatsUnreachableError, ObjectTooLargeError, PeerUnreachableError, SlabCapacityError,
  TensorShapeError, TimeoutError, UnknownChunkError, UnknownDtypeError, UnsupportedObjectError,
} from "../../core/errors.js";
import { Tensor } from "../../core/tensor.js";
import {
  MiB, TestCluster, expectReject, expectStillWorks, expectTensor, expectThrow, nodeName, sleep, specsOn, tensorOf, uid, waitFor, waitForIdle,
} from "./helpers.js";

const HINT = { dtype: "float32", shape: [-1, 256] } as const;

/** Every bad input gets a clear, typed error and loses nothing; the servers keep serving. */
describe("integration: bad input", function () {
  this.timeout(60_000);
  const RANKS = [0, 1, 2];
  let tc: TestCluster;
  let tx: Sidecar;
  let rx: Sidecar;
  let nc: NatsConnection;

  before(async () => {
    // A short staging timeout, so that a send whose client never copies its data gives its memory back quickly.
    tc = await TestCluster.start(specsOn(nodeName("badinput"), RANKS, 1 * MiB), { env: { SIDECAR_STAGING_TIMEOUT_MS: "1500" } });
    tx = await tc.connect({ rank: 0, sendTensor: HINT });
    rx = await tc.connect({ rank: 1, sendTensor: HINT }); // no receive hint: tensors come back with the sender's dtype and shape
    nc = await connect({ servers: tc.url, name: "bad-input-raw" });
  });

  after(async () => {
    await nc?.close().catch(() => {});
    await tc?.stop();
  });

  afterEach(async function () {
    if (this.currentTest?.state !== "passed") return;
    for (const r of RANKS) expect(tc.alive(r), `sidecar ${r} is still running\n${tc.logs(r)}`).to.equal(true);
    for (const r of RANKS) await waitForIdle(tc, r);
  });

  describe("configuration", () => {
    const base = { natsUrl: "nats://127.0.0.1:1" }; // never reached: every case fails before connecting

    it("rejects a rank that is not in its group", async () => {
      await expectReject(Sidecar.connect({ ...base, rank: 0, group: [1, 2], sendTensor: HINT }), ConfigError, "SC_INVALID_CONFIG", /rank 0 is not in its group/);
    });

    it("rejects bad ranks and groups", async () => {
      await expectReject(Sidecar.connect({ ...base, rank: -1, sendTensor: HINT }), ConfigError, "SC_INVALID_CONFIG", /rank/);
      await expectReject(Sidecar.connect({ ...base, rank: 1.5, sendTensor: HINT }), ConfigError, "SC_INVALID_CONFIG", /rank/);
      await expectReject(Sidecar.connect({ ...base, rank: 0, group: [], sendTensor: HINT }), ConfigError, "SC_INVALID_CONFIG", /group/);
      await expectReject(Sidecar.connect({ ...base, rank: 0, group: [0, 0], sendTensor: HINT }), ConfigError, "SC_INVALID_CONFIG", /twice/);
    });

    it("requires a memory hint", async () => {
      await expectReject(Sidecar.connect({ ...base, rank: 0 }), ConfigError, "SC_INVALID_CONFIG", /hint/);
    });

    it("requires the hint's shape to start with -1 and have positive dims", async () => {
      for (const shape of [[4, 256], [], [-1, 0], [-1, -1], [-1, 2.5], [256, -1]]) {
        await expectReject(Sidecar.connect({ ...base, rank: 0, sendTensor: { dtype: "float32", shape } }), ConfigError, "SC_INVALID_CONFIG", /shape/);
        await expectReject(Sidecar.connect({ ...base, rank: 0, recvTensor: { dtype: "float32", shape } }), ConfigError, "SC_INVALID_CONFIG", /shape/);
      }
    });

    it("rejects an unknown dtype, naming it", async () => {
      for (const dtype of ["float", "complex64", "", "FLOAT32", "uint16"]) {
        const e = await expectReject(Sidecar.connect({ ...base, rank: 0, sendTensor: { dtype, shape: [-1, 4] } }), UnknownDtypeError, "SC_UNKNOWN_DTYPE");
        expect(e.message).to.include(JSON.stringify(dtype));
      }
      await expectReject(Sidecar.connect({ ...base, rank: 0, recvTensor: { dtype: "half", shape: [-1, 4] } }), UnknownDtypeError, "SC_UNKNOWN_DTYPE", /half/);
    });

    it("rejects a tensor whose shape or dtype does not match its bytes", async () => {
      await expectThrow(() => Tensor.from(new Uint8Array(10), { dtype: "float32", shape: [-1] }), TensorShapeError, "SC_TENSOR_SHAPE", /whole number/);
      await expectThrow(() => Tensor.from(new Uint8Array(16), { dtype: "float32", shape: [2, 3] }), TensorShapeError, "SC_TENSOR_SHAPE", /holds 6 elements/);
      await expectThrow(() => Tensor.from(new Float32Array(4), { dtype: "int32", shape: [4] }), TensorShapeError, "SC_TENSOR_SHAPE", /Float32Array/);
      await expectThrow(() => Tensor.from(new Float64Array(4), { dtype: "float32", shape: [8] }), TensorShapeError, "SC_TENSOR_SHAPE");
      await expectThrow(() => Tensor.from(new Uint8Array(24), { dtype: "float32", shape: [-1, -1] }), TensorShapeError, "SC_TENSOR_SHAPE", /more than one -1/);
      await expectThrow(() => Tensor.from(new Uint8Array(24), { dtype: "float32", shape: [-1, 4] }), TensorShapeError, "SC_TENSOR_SHAPE");
      await expectThrow(() => Tensor.from(new Uint8Array(8), { dtype: "float32", shape: [2, 1.5] }), TensorShapeError, "SC_TENSOR_SHAPE");
      await expectThrow(() => Tensor.from(new Uint8Array(8), { dtype: "float33", shape: [2] }), UnknownDtypeError, "SC_UNKNOWN_DTYPE");
      await expectThrow(() => Tensor.from([1, 2, 3] as unknown as Uint8Array, { dtype: "uint8", shape: [3] }), UnsupportedObjectError, "SC_UNSUPPORTED_OBJECT");
    });

    it("fails fast, naming the URL, when NATS is unreachable", async () => {
      const port = await freePort();
      const url = `nats://127.0.0.1:${port}`;
      const t0 = Date.now();
      const e = await expectReject(Sidecar.connect({ rank: 0, sendTensor: HINT, natsUrl: url }), NatsUnreachableError, "SC_NATS_UNREACHABLE");
      expect(e.message).to.include(url);
      expect(Date.now() - t0, "connect fails fast").to.be.below(5000);
    });

    it("says so when no sidecar serves the rank", async () => {
      const e = await expectReject(tc.connect({ rank: 7, sendTensor: HINT }), PeerUnreachableError, "SC_PEER_UNREACHABLE");
      expect(e.message).to.match(/rank 7/);
    });
  });

  describe("API calls", () => {
    it("rejects a send to oneself or to a negative rank, and loses nothing", async () => {
      const t = tensorOf("float32", [2, 256]);
      await expectReject(tx.send(t, { id: uid(), dstRanks: [[0]] }), InvalidArgumentError, "SC_INVALID_ARGUMENT", /itself|oneself/);
      await expectReject(tx.send({ a: 1 }, { id: uid(), dstRanks: [[1], [0]] }), InvalidArgumentError, "SC_INVALID_ARGUMENT");
      await expectReject(tx.send(t, { id: uid(), dstRanks: [[-1]] }), InvalidArgumentError, "SC_INVALID_ARGUMENT", /non-negative/);
      await expectReject(tx.send("x", { id: uid(), dstRanks: [[1, -2]] }), InvalidArgumentError, "SC_INVALID_ARGUMENT");
      await expectReject(tx.send(t, { id: uid(), dstRanks: [] }), InvalidArgumentError, "SC_INVALID_ARGUMENT");
      await expectReject(tx.send(t, { id: uid(), dstRanks: [[]] }), InvalidArgumentError, "SC_INVALID_ARGUMENT");
      // A rank beyond the world is refused by the server.
      await expectReject(tx.send(t, { id: uid(), dstRanks: [[9]] }), InvalidArgumentError, "SC_INVALID_ARGUMENT", /world size/);
      await expectReject(tx.send("x", { id: uid(), dstRanks: [[9]] }), InvalidArgumentError, "SC_INVALID_ARGUMENT", /world size/);
      await expectStillWorks(tx, rx, [[1]]);
    });

    it("rejects bad ids, chunk ids and counts", async () => {
      const t = tensorOf("float32", [1, 256]);
      await expectReject(tx.send(t, { id: "", dstRanks: [[1]] }), InvalidArgumentError, "SC_INVALID_ARGUMENT");
      await expectReject(tx.send(t, { id: uid(), dstRanks: [[1]], chunkId: 2, numChunks: 2 }), InvalidArgumentError, "SC_INVALID_ARGUMENT", /out of range/);
      await expectReject(tx.send(t, { id: uid(), dstRanks: [[1]], chunkId: -1 }), InvalidArgumentError, "SC_INVALID_ARGUMENT");
      await expectReject(tx.send(t, { id: uid(), dstRanks: [[1]], numChunks: 0 }), InvalidArgumentError, "SC_INVALID_ARGUMENT");
      await expectReject(rx.recv(uid(), -1), InvalidArgumentError, "SC_INVALID_ARGUMENT");
      await expectReject(rx.recv(uid(), 0, { timeoutMs: -5 }), InvalidArgumentError, "SC_INVALID_ARGUMENT");
      await expectReject(tx.closeStream(uid(), -1, [[1]]), InvalidArgumentError, "SC_INVALID_ARGUMENT");
      await expectReject(tx.closeStream(uid(), 1, [[0]]), InvalidArgumentError, "SC_INVALID_ARGUMENT");
    });

    it("rejects values that are not small objects", async () => {
      for (const v of [new Date(), new Map(), () => 1, Symbol("s"), undefined, { nested: new Set() }, [new Float32Array(2)]]) {
        await expectReject(tx.send(v as never, { id: uid(), dstRanks: [[1]] }), UnsupportedObjectError, "SC_UNSUPPORTED_OBJECT");
      }
    });

    it("refuses an object over NATS's 1 MiB payload limit with ObjectTooLargeError, and loses nothing", async () => {
      const id = uid("too-large");
      const e = await expectReject(tx.send({ blob: new Uint8Array(MiB + 1) }, { id, dstRanks: [[1]] }), ObjectTooLargeError, "SC_OBJECT_TOO_LARGE", /max_payload/);
      expect(e.bytes).to.be.greaterThan(MiB);
      expect(e.limit).to.be.below(MiB + 1);
      await expectReject(tx.send("s".repeat(2 * MiB), { id, dstRanks: [[1]] }), ObjectTooLargeError, "SC_OBJECT_TOO_LARGE");
      // Nothing half-arrived: the id is still free, and the same id carries a small object fine.
      await expectReject(rx.recv(id, 0, { timeoutMs: 300 }), TimeoutError, "SC_TIMEOUT");
      await tx.send({ small: true }, { id, dstRanks: [[1]] });
      expect(await rx.recv(id, 0, { timeoutMs: 10_000 })).to.deep.equal({ small: true });
      await rx.markDone(id, 0);
    });

    it("refuses data larger than the whole slab with SlabCapacityError", async () => {
      await expectReject(tx.send(tensorOf("float32", [600, 256]), { id: uid(), dstRanks: [[1]] }), SlabCapacityError, "SC_SLAB_CAPACITY"); // > 512 KiB pool
      await expectReject(tx.send(tensorOf("uint8", [4 * MiB]), { id: uid(), dstRanks: [[1]] }), SlabCapacityError, "SC_SLAB_CAPACITY"); // > the node's file
      await expectStillWorks(tx, rx, [[1]]);
    });

    it("rejects markDone of something unknown, or not yet arrived", async () => {
      await expectReject(rx.markDone(uid("never"), 0), UnknownChunkError, "SC_UNKNOWN_CHUNK", /never received/);
      const id = uid("half");
      await tx.send(tensorOf("float32", [1, 256]), { id, dstRanks: [[1]], chunkId: 1, numChunks: 2 });
      await expectReject(rx.markDone(id, 0), UnknownChunkError, "SC_UNKNOWN_CHUNK");
      await expectReject(rx.markDone(id, 7), UnknownChunkError, "SC_UNKNOWN_CHUNK");
      // The chunk that did arrive is intact and releasable.
      expect(await rx.recv(id, 1, { timeoutMs: 10_000 })).to.exist;
      await rx.markDone(id, 1);
      await rx.markDone(id, 1); // twice is a no-op
      await tx.send(tensorOf("float32", [1, 256]), { id, dstRanks: [[1]], chunkId: 0, numChunks: 2 });
      await rx.markDone(id, 0);
    });

    it("rejects every call after shutdown with ClosedError, including a recv waiting at the time", async () => {
      const c = await tc.connect({ rank: 1, recvTensor: HINT });
      const pending = c.recv(uid("pending"), 0);
      await sleep(50);
      await c.shutdown();
      await expectReject(pending, ClosedError, "SC_CLOSED");
      await expectReject(c.recv(uid(), 0), ClosedError, "SC_CLOSED");
      await expectReject(c.send("x", { id: uid(), dstRanks: [[0]] }), ClosedError, "SC_CLOSED");
      await expectReject(c.markDone(uid(), 0), ClosedError, "SC_CLOSED");
      await expectReject(c.closeStream(uid(), 1, [[0]]), ClosedError, "SC_CLOSED");
      await c.shutdown(); // idempotent
      await expectStillWorks(tx, rx, [[1]]);
    });
  });

  describe("garbage on the wire", () => {
    /** A raw request: the reply must be a typed error (decoded with the wire codec). */
    async function rawRequest(subject: string, payload: Uint8Array): Promise<{ error?: { code: string; message: string } } & Record<string, unknown>> {
      const msg = await nc.request(subject, payload, { timeout: 10_000 });
      return decode(msg.data) as { error?: { code: string; message: string } };
    }

    const KINDS = [
      Kind.register, Kind.sendBegin, Kind.sendCommit, Kind.sendObject, Kind.close, Kind.recv, Kind.recvCancel, Kind.done,
      Kind.health, Kind.hello, Kind.announce, Kind.release, Kind.peerClose, Kind.received,
    ];
    const deep: unknown = JSON.parse("[".repeat(300) + "]".repeat(300));
    const GARBAGE: [string, Uint8Array][] = [
      ["non-CBOR bytes", Uint8Array.from([0xff, 0xfe, 0xfd, 0x00, 0x13, 0x37])],
      ["an empty payload", new Uint8Array(0)],
      ["truncated CBOR", encode({ id: "x", chunkId: 0, dstRanks: [[1]], dtype: "float32" }).subarray(0, 9)],
      ["a CBOR string", encode("hello")],
      ["a CBOR array", encode([1, 2, 3])],
      ["a CBOR map with a non-string key", Uint8Array.from([0xa1, 0x01, 0x02])],
      ["CBOR nested 300 deep", encode(deep)],
      ["random text", new TextEncoder().encode("PUB sidecar.v1.0.health 5\r\nhello")],
    ];

    it("answers non-CBOR and malformed CBOR to every subject with a typed BAD_MESSAGE error, and keeps serving", async () => {
      for (const rank of [0, 1]) {
        for (const kind of KINDS) {
          for (const [what, payload] of GARBAGE) {
            // health takes an empty map and nothing else; any garbage is refused there too
            const reply = await rawRequest(subjectFor(rank, kind), payload);
            expect(reply.error, `${kind} with ${what}: ${JSON.stringify(reply)}`).to.be.an("object");
            expect(reply.error!.code, `${kind} with ${what}`).to.equal("SC_BAD_MESSAGE");
            expect(reply.error!.message).to.be.a("string").and.not.equal("");
          }
        }
      }
      for (const r of RANKS) expect(tc.alive(r), tc.logs(r)).to.equal(true);
      await expectStillWorks(tx, rx, [[1]]);
    });

    it("answers CBOR that violates the schema with a typed error naming the problem", async () => {
      const worker = { rank: 0, group: [0], concurrentCopy: false };
      const begin = { id: "x", chunkId: 0, numChunks: 1, dstRanks: [[1]], dtype: "float32", shape: [1, 256], length: 1024, worker };
      const cases: [Kind, object, RegExp][] = [
        [Kind.sendBegin, {}, /required/],
        [Kind.sendBegin, { ...begin, chunkId: "zero" }, /chunkId/],
        [Kind.sendBegin, { ...begin, chunkId: -1 }, /chunkId/],
        [Kind.sendBegin, { ...begin, dtype: "complex128" }, /dtype/],
        [Kind.sendBegin, { ...begin, length: -5 }, /length/],
        [Kind.sendBegin, { ...begin, dstRanks: [[-1]] }, /dstRanks/],
        [Kind.sendBegin, { ...begin, dstRanks: "everyone" }, /dstRanks/],
        [Kind.sendBegin, { ...begin, worker: { rank: 0 } }, /worker/],
        [Kind.sendBegin, { ...begin, extra: "field" }, /additional/],
        [Kind.sendBegin, { ...begin, id: "" }, /id/],
        [Kind.sendObject, { id: "x", chunkId: 0, numChunks: 1, dstRanks: [[1]], worker }, /value/],
        [Kind.sendCommit, { tag: 12, worker }, /tag/],
        [Kind.recv, { id: "x", chunkId: 0 }, /waiter/],
        [Kind.recv, { id: 5, chunkId: 0, waiter: "w" }, /id/],
        [Kind.done, { id: "x", chunkId: 1.5 }, /chunkId/],
        [Kind.done, { id: "x", chunkId: 0, more: 1 }, /additional/],
        [Kind.register, { rank: "zero", group: [0] }, /rank|required/],
        [Kind.close, { id: "x", numChunks: -1, dstRanks: [[1]] }, /numChunks/],
        [Kind.announce, { tag: "t", id: "x", chunkId: 0, numChunks: 1, from: { rank: 0 }, body: { kind: "bogus" } }, /./],
        [Kind.release, { tag: "t" }, /rank|required/],
        [Kind.peerClose, { id: "x" }, /numChunks|required/],
      ];
      for (const [kind, message, why] of cases) {
        const reply = await rawRequest(subjectFor(0, kind), encode(message));
        expect(reply.error, `${kind} ${JSON.stringify(message)}: ${JSON.stringify(reply)}`).to.be.an("object");
        expect(reply.error!.code, `${kind} ${JSON.stringify(message)}`).to.equal("SC_BAD_MESSAGE");
        expect(reply.error!.message, `${kind}`).to.match(why);
      }
      expect(tc.alive(0), tc.logs(0)).to.equal(true);
      await expectStillWorks(tx, rx, [[1]]);
    });

    it("answers schema-valid but wrong requests with the matching typed error", async () => {
      const worker = { rank: 0, group: [0], concurrentCopy: false };
      const begin = { id: uid("raw"), chunkId: 0, numChunks: 1, dstRanks: [[1]], dtype: "float32", shape: [1, 256], length: 1024, worker };
      const cases: [Kind, object, string][] = [
        [Kind.sendBegin, { ...begin, dstRanks: [[0]] }, "SC_INVALID_ARGUMENT"],
        [Kind.sendBegin, { ...begin, dstRanks: [[40]] }, "SC_INVALID_ARGUMENT"],
        [Kind.sendBegin, { ...begin, length: 64 * MiB, shape: [64 * 1024, 256] }, "SC_SLAB_CAPACITY"],
        [Kind.sendCommit, { tag: "0:999999", worker }, "SC_UNKNOWN_CHUNK"],
        [Kind.done, { id: uid("never"), chunkId: 0 }, "SC_UNKNOWN_CHUNK"],
        [Kind.release, { tag: "0:999999", rank: 1 }, "SC_UNKNOWN_CHUNK"],
        [Kind.register, { rank: 1, group: [1, 2], concurrentCopy: false, sendTensor: { dtype: "float32", shape: [-1, 4] } }, "SC_INVALID_CONFIG"],
        [Kind.register, { rank: 0, group: [0], concurrentCopy: false }, "SC_INVALID_CONFIG"],
      ];
      for (const [kind, message, code] of cases) {
        const reply = await rawRequest(subjectFor(0, kind), encode(message));
        expect(reply.error?.code, `${kind} ${JSON.stringify(message)}: ${JSON.stringify(reply)}`).to.equal(code);
      }
      expect(tc.alive(0), tc.logs(0)).to.equal(true);
      await expectStillWorks(tx, rx, [[1]]);
    });

    it("refuses a register whose memory hint is invalid, also once the pools are configured", async () => {
      // The pools of rank 0 were sized by the first client's hint; a later bad hint must still be refused, not ignored.
      for (const hint of [{ dtype: "float32", shape: [4, 4] }, { dtype: "float32", shape: [-1, 0] }, { dtype: "float32", shape: [-1, -1] }]) {
        for (const which of ["sendTensor", "recvTensor"]) {
          const reply = await rawRequest(subjectFor(0, Kind.register), encode({ rank: 0, group: [0], concurrentCopy: false, [which]: hint }));
          expect(reply.error?.code, `${which} ${JSON.stringify(hint)}: ${JSON.stringify(reply)}`).to.equal("SC_INVALID_CONFIG");
        }
      }
      await expectStillWorks(tx, rx, [[1]]);
    });

    it("refuses a send whose byte length does not match its dtype and shape", async () => {
      const worker = { rank: 0, group: [0], concurrentCopy: false };
      for (const [shape, length] of [[[4, 4], 7], [[4, 4], 128], [[2, -1], 12], [[3], 13]] as [number[], number][]) {
        const reply = await rawRequest(subjectFor(0, Kind.sendBegin), encode({
          id: uid("raw-shape"), chunkId: 0, numChunks: 1, dstRanks: [[1]], dtype: "float32", shape, length, worker,
        }));
        expect(reply.error?.code, `shape ${JSON.stringify(shape)} with ${length} bytes: ${JSON.stringify(reply)}`).to.equal("SC_TENSOR_SHAPE");
      }
      await expectStillWorks(tx, rx, [[1]]);
    });

    it("gives back the memory of a send whose client began it and vanished", async () => {
      const worker = { rank: 0, group: [0], concurrentCopy: false };
      const id = uid("abandoned");
      const reply = await rawRequest(subjectFor(0, Kind.sendBegin), encode({
        id, chunkId: 0, numChunks: 1, dstRanks: [[1]], dtype: "float32", shape: [4, 256], length: 4096, worker,
      }));
      expect(reply.error, JSON.stringify(reply)).to.equal(undefined);
      expect((await tc.health(0)).send.usedBytes).to.equal(4096);
      // No commit ever comes: the staging timeout (1.5 s here) frees the slot; the receiver never saw a thing.
      await waitFor(async () => (await tc.health(0)).send.usedBytes === 0, "the abandoned slot to be freed");
      expect((await tc.health(0)).transfers.sendFailed).to.be.greaterThan(0);
      await expectReject(rx.recv(id, 0, { timeoutMs: 300 }), TimeoutError, "SC_TIMEOUT");
      await expectStillWorks(tx, rx, [[1]]);
    });

    it("survives garbage published without a reply subject", async () => {
      for (const kind of KINDS) for (const [, payload] of GARBAGE) nc.publish(subjectFor(0, kind), payload);
      nc.publish(subjectFor(0, Kind.sendBegin), encode({ id: "x" }));
      await nc.flush();
      await sleep(200);
      for (const r of RANKS) expect(tc.alive(r), tc.logs(r)).to.equal(true);
      const h = await tc.health(0);
      expect(h.status).to.equal("ALL_GOOD");
      await expectStillWorks(tx, rx, [[1]]);
    });

    it("a tensor announced by a forged peer is refused or served safely, and never crashes the receiver", async () => {
      const id = uid("forged");
      const reply = await rawRequest(subjectFor(1, Kind.announce), encode({
        tag: "0:forged", id, chunkId: 0, numChunks: 1, from: { rank: 0, node: "some-other-node" },
        body: { kind: "tensor", dtype: "float32", shape: [4, 256], length: 4096, node: "some-other-node", offset: 0 },
      }));
      // Another node's tensor needs the inter-node data plane; whatever the answer, the receiver stays up.
      expect(reply).to.be.an("object");
      expect(tc.alive(1), tc.logs(1)).to.equal(true);
      await expectStillWorks(tx, rx, [[1]]);
    });
  });

  it("refuses a same-node announcement that points outside the node slab (clients would view it in place)", async () => {
    const rawNc = await connect({ servers: tc.url });
    try {
      const id = uid("outside");
      const msg = await rawNc.request(subjectFor(1, Kind.announce), encode({
        tag: "0:987654", id, chunkId: 0, numChunks: 1, from: { rank: 0, node: nodeName("badinput") },
        body: { kind: "tensor", dtype: "float32", shape: [1024, 256], length: 1 << 20, node: nodeName("badinput"), offset: 1 << 30 },
      }), { timeout: 5000 });
      const reply = decode(msg.data) as { error?: { code: string; message: string } };
      expect(reply.error?.code).to.equal("SC_BAD_MESSAGE");
      expect(reply.error?.message).to.match(/outside the node slab/);
      expect(await rx.recv(id, 0, { timeoutMs: 300 }).catch((e: Error) => e.name)).to.equal("TimeoutError");
      expect(tc.alive(1), tc.logs(1)).to.equal(true);
    } finally {
      await rawNc.close();
    }
  });

  it("leaves received data intact through all of the above", async () => {
    const id = uid("intact");
    const t = tensorOf("float32", [3, 256], 77);
    await tx.send(t, { id, dstRanks: [[1]] });
    await expectReject(rx.markDone(id, 3), UnknownChunkError, "SC_UNKNOWN_CHUNK");
    await expectReject(tx.send(t, { id, dstRanks: [[0]] }), InvalidArgumentError, "SC_INVALID_ARGUMENT");
    expectTensor(await rx.recv(id, 0, { timeoutMs: 10_000 }), "float32", [3, 256], t.bytes, "intact");
    await rx.markDone(id, 0);
  });
});
