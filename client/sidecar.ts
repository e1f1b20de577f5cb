import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { itemSize } from "../core/dtype.js";
import {
  AbortedError, ClosedError, ConfigError, ObjectTooLargeError, SlabCapacityError, SlabMapError, TensorShapeError,
} from "../core/errors.js";
import { resolveShape, Tensor } from "../core/tensor.js";
import { chunkPieces } from "../core/pieces.js";
import { NatsChannel } from "../control/channel.js";
import { checkSmallObject, encode, toSmallObject } from "../control/codec.js";
import { Kind } from "../control/subjects.js";
import { SlabMapping } from "../native/ucx-cuda/index.js";
import type { RecvOptions, RecvValue, SendData, SendOptions, SidecarClient, SidecarOptions, SmallObject } from "./api.js";
import { MockSidecar } from "./mock.js";
import {
  checkChunkId, checkCloseStream, checkDstRanks, checkHint, checkId, checkRankGroup, checkRecvOptions, checkSendOptions,
  checkDeviceTensor, isDeviceTensor, type ResolvedDeviceTensor, type ResolvedHint,
} from "./validate.js";

const FOREVER_MS = 2_147_483_647;
// Room left in a NATS message for the envelope around an inline object.
const ENVELOPE_BYTES = 4096;

interface Registration {
  rank: number; node: string; slabPath: string; slabBytes: number; sendSlotBytes: number; recvSlotBytes: number; maxPayload: number;
}

type RecvBody =
  | { kind: "tensor"; dtype: string; shape: number[]; length: number; node: string; offset: number }
  | { kind: "object"; value: unknown }
  | { kind: "end" };

/**
 * An executor's handle on its sidecar. Every client talks to its group's
 * head sidecar over NATS; tensors go through the node's shared-memory slab,
 * which the client maps too (one copy in on send, zero copies on recv).
 *
 * @example
 * const sc = await Sidecar.connect({ rank: 0, sendTensor: { dtype: "float32", shape: [-1, 1024] } });
 * await sc.send(Tensor.from(new Float32Array(4 * 1024), { dtype: "float32", shape: [4, 1024] }), { id: "req-1", dstRanks: [[1]] });
 * await sc.send({ prompt: "hello", tokens: 12n }, { id: "req-1-meta", dstRanks: [[1]] });
 * await sc.shutdown();
 *
 * // on rank 1:
 * const t = await sc.recv("req-1", 0);          // Tensor, a view of the slab
 * await sc.markDone("req-1", 0);               // the view is no longer needed
 */
export class Sidecar implements SidecarClient {
  readonly rank: number;
  readonly group: readonly number[];
  /** The group's head: the sidecar this client talks to. */
  readonly head: number;
  private readonly channel: NatsChannel;
  private readonly reg: Registration;
  private readonly slab: SlabMapping;
  private readonly recvHint: ResolvedHint | undefined;
  private readonly concurrentCopy: boolean;
  private readonly pending = new Set<AbortController>();
  private closed = false;

  private constructor(o: {
    rank: number; group: number[]; channel: NatsChannel; reg: Registration; slab: SlabMapping; recvHint?: ResolvedHint; concurrentCopy: boolean;
  }) {
    this.rank = o.rank;
    this.group = Object.freeze(o.group);
    this.head = o.group[0]!;
    this.channel = o.channel;
    this.reg = o.reg;
    this.slab = o.slab;
    this.recvHint = o.recvHint;
    this.concurrentCopy = o.concurrentCopy;
  }

  /**
   * Connects to the group head's sidecar (or, with `CORNSERVE_MOCK_SIDECAR=1`,
   * opens a mock client that reads and writes the files named by
   * `CORNSERVE_MOCK_SIDECAR_MAPPING` and talks to no server).
   *
   * @throws ConfigError (rank not in group, no memory hint, bad hint),
   *   UnknownDtypeError, NatsUnreachableError (with the URL),
   *   PeerUnreachableError (no sidecar serves the head rank)
   */
  static async connect(options: SidecarOptions): Promise<SidecarClient> {
    if (options === null || typeof options !== "object") throw new ConfigError("Sidecar.connect needs an options object");
    const group = checkRankGroup(options.rank, options.group);
    if (options.sendTensor === undefined && options.recvTensor === undefined) {
      throw new ConfigError("a memory hint is required: pass sendTensor or recvTensor ({ dtype, shape: [-1, …] })");
    }
    const sendHint = options.sendTensor === undefined ? undefined : checkHint(options.sendTensor, "sendTensor");
    const recvHint = options.recvTensor === undefined ? undefined : checkHint(options.recvTensor, "recvTensor");
    if (/^(1|true)$/i.test(process.env.CORNSERVE_MOCK_SIDECAR ?? "")) {
      return MockSidecar.open({ ...options, group, mappingJson: process.env.CORNSERVE_MOCK_SIDECAR_MAPPING });
    }
    const url = options.natsUrl ?? process.env.SIDECAR_NATS_URL ?? "nats://127.0.0.1:4222";
    const timeoutMs = options.connectTimeoutMs ?? 5000;
    const channel = await NatsChannel.connect(url, { name: `sidecar-client-${options.rank}`, timeoutMs });
    try {
      const reg = await channel.request<Registration>(group[0]!, Kind.register, {
        rank: options.rank, group, concurrentCopy: options.concurrentCopy ?? false,
        ...(sendHint ? { sendTensor: { dtype: sendHint.dtype, shape: [...sendHint.shape] } } : {}),
        ...(recvHint ? { recvTensor: { dtype: recvHint.dtype, shape: [...recvHint.shape] } } : {}),
      }, { timeoutMs });
      // The head's slab must already be here: a client on another host (or
      // another /dev/shm) would otherwise map a fresh file of zeros.
      if (!existsSync(reg.slabPath)) {
        throw new SlabMapError(`slab file ${reg.slabPath} of rank ${reg.rank} (node ${reg.node}) is not on this host; a client must run on its sidecar's node and share its /dev/shm`);
      }
      const slab = SlabMapping.open(reg.slabPath, reg.slabBytes, { populate: !/^(0|false|no|off)$/i.test(process.env.SIDECAR_SHM_POPULATE ?? "") });
      return new Sidecar({ rank: options.rank, group, channel, reg, slab, recvHint, concurrentCopy: options.concurrentCopy ?? false });
    } catch (err) {
      await channel.close();
      throw err;
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new ClosedError();
  }

  private get worker() {
    return { rank: this.rank, group: [...this.group], concurrentCopy: this.concurrentCopy };
  }

  /**
   * Sends one chunk to every destination group; resolves once each holds it.
   * Each TP worker of a group calls this with the full replica.
   *
   * @throws InvalidArgumentError (send to self, negative rank, bad chunk),
   *   ObjectTooLargeError, SlabCapacityError, UnsupportedObjectError,
   *   TransferFailedError, UcxError (another node, data plane down),
   *   CudaUnavailableError / CudaError (a DeviceTensor the head could not copy)
   */
  async send(data: SendData, options: SendOptions): Promise<void> {
    this.checkOpen();
    const o = checkSendOptions(options, this.group);
    if (isDeviceTensor(data)) return this.sendDeviceTensor(checkDeviceTensor(data), o);
    if (data instanceof Tensor) return this.sendTensor(data, o);
    checkSmallObject(data);
    const message = { id: o.id, chunkId: o.chunkId, numChunks: o.numChunks, dstRanks: o.dstRanks, value: data, worker: this.worker };
    const encoded = encode(message);
    const limit = this.reg.maxPayload - ENVELOPE_BYTES;
    if (encoded.byteLength > limit) throw new ObjectTooLargeError(encoded.byteLength, limit);
    // Encoded once: the size check and the request share the bytes.
    await this.channel.request(this.head, Kind.sendObject, message, { timeoutMs: FOREVER_MS, encoded });
  }

  private async sendTensor(t: Tensor, o: ReturnType<typeof checkSendOptions>): Promise<void> {
    const length = t.bytes.byteLength;
    if (length > this.reg.slabBytes) throw new SlabCapacityError(length, this.reg.slabBytes, "the node");
    const begin = await this.channel.request<{ tag: string; done: boolean; offset?: number; copyStart?: number; copyEnd?: number; shards?: number; pieceBytes?: number }>(
      this.head, Kind.sendBegin,
      { id: o.id, chunkId: o.chunkId, numChunks: o.numChunks, dstRanks: o.dstRanks, dtype: t.dtype, shape: [...t.shape], length, worker: this.worker },
      { timeoutMs: FOREVER_MS },
    );
    if (begin.done) return;
    const start = begin.copyStart ?? 0;
    const end = begin.copyEnd ?? 0;
    // The one copy of a send: this worker's shard into the slot.
    const slot = new Uint8Array(this.slab.buffer, begin.offset!, length);
    if (begin.pieceBytes && end > start) {
      // Streamed (every destination is on another node): piece by piece,
      // telling the head after each so the piece crosses while the next is
      // copied. The commit covers the last piece, and any report that is lost.
      const mine = chunkPieces(length, begin.shards ?? 1, begin.pieceBytes)
        .map((p, index) => ({ ...p, index }))
        .filter((p) => p.start >= start && p.end <= end && p.end > p.start);
      for (const [k, p] of mine.entries()) {
        slot.set(t.bytes.subarray(p.start, p.end), p.start);
        if (k === mine.length - 1) break;
        this.channel.request(this.head, Kind.sendStaged, { tag: begin.tag, worker: this.worker, piece: p.index }, { timeoutMs: 15_000 }).catch(() => {});
        await Promise.resolve(); // lets the connection write the report now
      }
    } else if (end > start) {
      slot.set(t.bytes.subarray(start, end), start);
    }
    await this.channel.request(this.head, Kind.sendCommit, { tag: begin.tag, worker: this.worker }, { timeoutMs: FOREVER_MS });
  }

  // A GPU tensor: the head copies it from the producer's device memory (CUDA IPC) into the slot.
  private async sendDeviceTensor(t: ResolvedDeviceTensor, o: ReturnType<typeof checkSendOptions>): Promise<void> {
    if (t.length > this.reg.slabBytes) throw new SlabCapacityError(t.length, this.reg.slabBytes, "the node");
    const begin = await this.channel.request<{ tag: string; done: boolean }>(
      this.head, Kind.sendBegin,
      { id: o.id, chunkId: o.chunkId, numChunks: o.numChunks, dstRanks: o.dstRanks, dtype: t.dtype, shape: t.shape, length: t.length, worker: this.worker },
      { timeoutMs: FOREVER_MS },
    );
    if (begin.done) return;
    await this.channel.request(this.head, Kind.sendCommit, { tag: begin.tag, worker: this.worker, device: t.device }, { timeoutMs: FOREVER_MS });
  }

  /** Ends a stream: its chunk count is `numChunks` (it may arrive before the chunks it counts). */
  async closeStream(id: string, numChunks: number, dstRanks: readonly (readonly number[])[]): Promise<void> {
    this.checkOpen();
    checkCloseStream(id, numChunks);
    const dst = checkDstRanks(dstRanks, this.group);
    await this.channel.request(this.head, Kind.close, { id, numChunks, dstRanks: dst }, { timeoutMs: 15_000 });
  }

  /**
   * Waits for a chunk and returns it: a Tensor (a zero-copy view of the slab,
   * typed with this client's `recvTensor` hint, valid until markDone), a small
   * object, or `null` when the chunk is at or past the end of the data.
   * Idempotent: any number of consumers may recv the same chunk.
   *
   * @throws TimeoutError, AbortedError, ClosedError, TensorShapeError
   */
  async recv(id: string, chunkId = 0, options: RecvOptions = {}): Promise<RecvValue | null> {
    this.checkOpen();
    checkId(id);
    checkChunkId(chunkId);
    checkRecvOptions(options);
    if (options.signal?.aborted) throw new AbortedError(`recv ${id}#${chunkId} aborted`);
    const waiter = randomUUID();
    const local = new AbortController();
    this.pending.add(local);
    const onAbort = () => {
      local.abort();
      this.channel.request(this.head, Kind.recvCancel, { waiter }, { timeoutMs: 5000 }).catch(() => {});
    };
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const timeoutMs = options.timeoutMs === undefined ? undefined : Math.ceil(options.timeoutMs);
      const body = await this.channel.request<RecvBody>(
        this.head, Kind.recv,
        { id, chunkId, waiter, ...(timeoutMs !== undefined ? { timeoutMs } : {}) },
        { timeoutMs: timeoutMs === undefined ? FOREVER_MS : timeoutMs + 5000, signal: local.signal },
      );
      return this.toValue(body);
    } catch (err) {
      if (this.closed) throw new ClosedError("sidecar client was shut down during recv");
      throw err;
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      this.pending.delete(local);
    }
  }

  private toValue(body: RecvBody): RecvValue | null {
    if (body.kind === "end") return null;
    if (body.kind === "object") return toSmallObject(body.value) as SmallObject;
    if (body.node !== this.reg.node) throw new TensorShapeError(`chunk lives on node ${body.node}, but this client maps node ${this.reg.node}'s slab`);
    const bytes = new Uint8Array(this.slab.buffer, body.offset, body.length);
    if (!this.recvHint) return Tensor.from(bytes, { dtype: body.dtype, shape: body.shape });
    const dtype = this.recvHint.dtype;
    if (body.length % itemSize(dtype) !== 0) throw new TensorShapeError(`${body.length} bytes of ${body.dtype} data cannot be viewed as ${dtype}`);
    return Tensor.unchecked(dtype, resolveShape([-1, ...this.recvHint.shape.slice(1)], body.length, dtype), bytes);
  }

  /** Releases a received chunk (its slab memory returns once every receiver let go). @throws UnknownChunkError */
  async markDone(id: string, chunkId = 0): Promise<void> {
    this.checkOpen();
    checkId(id);
    checkChunkId(chunkId);
    await this.channel.request(this.head, Kind.done, { id, chunkId }, { timeoutMs: 15_000 });
  }

  /** Disconnects. Pending recvs reject with ClosedError; received tensors become empty views. */
  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending) p.abort();
    await this.channel.close();
    this.slab.close();
  }
}
