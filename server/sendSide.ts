import { createActor, type ActorRefFrom, type InspectionEvent } from "xstate";
import { Deferred } from "../core/deferred.js";
import { InvalidArgumentError, SidecarError, TimeoutError, TransferFailedError, UnknownChunkError, asSidecarError } from "../core/errors.js";
import { LruMap } from "../core/lru.js";
import { resolveShape } from "../core/tensor.js";
import type { Dtype } from "../core/dtype.js";
import type { SmallObject } from "../client/api.js";
import type { slabMachine } from "../actors/slab.js";
import { sendTransferMachine, type SendTransferActor } from "../actors/sendTransfer.js";
import { MAX_DELAY_MS, type ChunkBody, type Timeouts } from "../actors/ports.js";
import { chunkPieces, shardRange, type ByteRange, type Piece } from "../core/pieces.js";

/**
 * The sending half of a server: one send-transfer actor per chunk in
 * flight, keyed by `<id>#<chunk>` (TP workers of a group join the same one)
 * and by tag (rank:sequence, unique by construction).
 */

export interface Worker { rank: number; group: number[]; concurrentCopy: boolean }

export interface BeginRequest {
  id: string; chunkId: number; numChunks: number | null; dstRanks: number[][];
  dtype: Dtype; shape: number[]; length: number; worker: Worker;
}

/**
 * Where a worker copies: its byte range of the slot. With `pieceBytes`, the
 * chunk is streamed (core/pieces.ts: `chunkPieces(length, shards,
 * pieceBytes)`): the worker reports each of its pieces but the last with
 * `client.send.staged` as it copies, and the sidecar sends it on at once.
 */
export interface BeginReply { tag: string; done: boolean; offset?: number; copyStart?: number; copyEnd?: number; shards?: number; pieceBytes?: number }

interface Entry {
  tag: string;
  key: string;
  actor: SendTransferActor;
  /** Every destination holds the chunk (or the transfer failed). */
  outcome: Deferred<void>;
  /** The slot, once allocated. */
  allocated: Deferred<number>;
  length: number;
  group: number[];
  concurrentCopy: boolean;
  /** Streamed chunks: each piece's staging, awaited by the data plane. */
  pieces: Piece[];
  pieceStaged: Deferred<void>[];
  /** Streamed chunks: the staging deadline (the `staging` state's, for chunks that skip that state). */
  stagingTimer?: NodeJS.Timeout;
}

type Outcome = { ok: true } | { ok: false; error: SidecarError };

export interface SendSideOptions {
  rank: number;
  worldSize: number;
  node: string;
  slab: ActorRefFrom<typeof slabMachine>;
  timeouts: Timeouts;
  /** The transfer machine with its side effects provided by the server. */
  machine: typeof sendTransferMachine;
  /** Largest piece of a streamed chunk (0: never stream). */
  pieceBytes: number;
  /** Whether every one of these destination heads is on another node (then a tensor chunk is streamed). */
  allRemote: (destinations: number[]) => Promise<boolean>;
  inspect?: (ev: InspectionEvent) => void;
}

export class SendSide {
  private readonly byKey = new Map<string, Entry>();
  private readonly byTag = new Map<string, Entry>();
  // Chunks whose first worker is still finding out whether to stream them (TP workers arriving meanwhile join).
  private readonly starting = new Map<string, Promise<Entry>>();
  // Outcomes of finished chunks, for TP workers that arrive after the others finished.
  private readonly finishedByKey = new LruMap<string, { tag: string; outcome: Outcome }>(8192);
  private readonly finishedByTag = new LruMap<string, Outcome>(8192);
  private seq = 0;
  completed = 0;
  failed = 0;

  constructor(private readonly o: SendSideOptions) {}

  get inFlight(): number {
    return this.byTag.size;
  }

  /** Checks destinations: known ranks, not this sidecar's own group. */
  checkDestinations(dstRanks: number[][], worker: Worker): number[] {
    const ownHead = Math.min(...worker.group);
    return dstRanks.map((g) => {
      for (const r of g) {
        if (r >= this.o.worldSize) throw new InvalidArgumentError(`destination rank ${r} is not below the world size ${this.o.worldSize}`);
        if (worker.group.includes(r)) throw new InvalidArgumentError(`cannot send to rank ${r}: it is in the sender's own group [${worker.group.join(", ")}]`);
      }
      const head = Math.min(...g);
      if (head === ownHead) throw new InvalidArgumentError("cannot send to oneself");
      return head;
    });
  }

  private nextTag(): string {
    this.seq += 1;
    return `${this.o.rank}:${this.seq}`;
  }

  private start(key: string, id: string, chunkId: number, numChunks: number | null, body: ChunkBody, destinations: number[], worker: Worker, streamed = false): Entry {
    const tag = this.nextTag();
    const shards = body.kind === "tensor" && worker.concurrentCopy ? worker.group.length : 1;
    const length = body.kind === "tensor" ? body.length : 0;
    const pieceBytes = streamed ? this.o.pieceBytes : 0;
    const actor = createActor(this.o.machine, {
      id: `send-${tag}`,
      input: { tag, id, chunkId, numChunks, body, destinations, shards, streamed, pieceBytes, slab: this.o.slab, timeouts: this.o.timeouts },
      inspect: this.o.inspect,
    });
    const pieces = body.kind === "tensor" ? chunkPieces(length, shards, pieceBytes) : [];
    const entry: Entry = {
      tag, key, actor, outcome: new Deferred<void>(), allocated: new Deferred<number>(),
      length, group: worker.group, concurrentCopy: worker.concurrentCopy,
      pieces, pieceStaged: streamed ? pieces.map(() => new Deferred<void>()) : [],
    };
    actor.on("delivered", () => entry.outcome.resolve());
    actor.on("failed", ({ error }) => {
      entry.outcome.reject(error);
      entry.allocated.reject(error);
    });
    actor.subscribe({
      next: (snap) => {
        if (!entry.allocated.settled && snap.context.allocation) {
          entry.allocated.resolve(snap.context.allocation.offset);
          if (entry.pieceStaged.length > 0) this.startStagingDeadline(entry);
        }
        if (snap.status === "done") this.finish(entry, snap.value === "done");
      },
      error: (err) => {
        const e = new TransferFailedError(`send transfer ${tag} crashed: ${(err as Error).message}`, { cause: err });
        entry.outcome.reject(e);
        entry.allocated.reject(e);
        this.finish(entry, false);
      },
    });
    this.byKey.set(key, entry);
    this.byTag.set(tag, entry);
    actor.start();
    return entry;
  }

  private finish(entry: Entry, ok: boolean): void {
    if (!this.byTag.has(entry.tag)) return;
    this.byTag.delete(entry.tag);
    if (this.byKey.get(entry.key) === entry) this.byKey.delete(entry.key);
    const error = entry.actor.getSnapshot().context.error;
    const outcome: Outcome = ok ? { ok: true } : { ok: false, error: error ?? new TransferFailedError(`send ${entry.tag} failed`) };
    if (!entry.outcome.settled) {
      if (outcome.ok) entry.outcome.resolve();
      else entry.outcome.reject(outcome.error);
    }
    if (ok) this.completed += 1;
    else this.failed += 1;
    clearTimeout(entry.stagingTimer);
    for (const d of entry.pieceStaged) if (!d.settled) d.reject(outcome.ok ? new TransferFailedError(`send ${entry.tag} ended`) : outcome.error);
    this.finishedByKey.set(entry.key, { tag: entry.tag, outcome });
    this.finishedByTag.set(entry.tag, outcome);
    entry.actor.stop();
  }

  /**
   * A worker starts (or joins) the send of a tensor chunk; resolves once the
   * slot is allocated, with the byte range this worker must copy.
   */
  async begin(req: BeginRequest): Promise<BeginReply> {
    const key = `${req.id}#${req.chunkId}`;
    const destinations = this.checkDestinations(req.dstRanks, req.worker);
    // The receivers view the bytes with this dtype and shape: they must agree with the length (TensorShapeError otherwise).
    const shape = resolveShape(req.shape, req.length, req.dtype);
    let entry = this.byKey.get(key);
    if (!entry) {
      const finished = this.finishedByKey.get(key);
      if (finished) {
        if (!finished.outcome.ok) throw finished.outcome.error;
        return { tag: finished.tag, done: true };
      }
      let starting = this.starting.get(key);
      if (!starting) {
        const body: ChunkBody = { kind: "tensor", dtype: req.dtype, shape, length: req.length, node: this.o.node, offset: 0 };
        starting = (async () => {
          const streamed = this.o.pieceBytes > 0 && req.length > 0 && (await this.o.allRemote(destinations));
          return this.start(key, req.id, req.chunkId, req.numChunks, body, destinations, req.worker, streamed);
        })().finally(() => this.starting.delete(key));
        this.starting.set(key, starting);
      }
      entry = await starting;
    }
    if (entry.length !== req.length) throw new InvalidArgumentError(`TP workers disagree on ${key}: ${entry.length} bytes vs ${req.length}`);
    const offset = await entry.allocated.promise;
    const { start, end } = this.shardRange(entry, req.worker.rank, key);
    const streamed = entry.pieceStaged.length > 0;
    return {
      tag: entry.tag, done: false, offset, copyStart: start, copyEnd: end,
      ...(streamed ? { shards: entry.concurrentCopy ? entry.group.length : 1, pieceBytes: this.o.pieceBytes } : {}),
    };
  }

  // The bytes of the slot a worker copies: its shard with concurrentCopy, else all for shard 0 and none for the rest.
  private shardRange(entry: Entry, rank: number, what: string): ByteRange {
    const shard = entry.group.indexOf(rank);
    if (shard < 0) throw new InvalidArgumentError(`worker rank ${rank} is not in the group [${entry.group.join(", ")}] of ${what}`);
    if (entry.concurrentCopy) return shardRange(entry.length, entry.group.length, shard);
    return { start: 0, end: shard === 0 ? entry.length : 0 };
  }

  // Indexes of the pieces a worker stages.
  private piecesOf(entry: Entry, rank: number): number[] {
    const shard = entry.group.indexOf(rank);
    const mine = entry.concurrentCopy ? shard : shard === 0 ? 0 : -1;
    return entry.pieces.flatMap((p, i) => (p.shard === mine ? [i] : []));
  }

  /** A worker copied one of its pieces of a streamed chunk: the data plane may send it. */
  staged(tag: string, worker: Worker, piece: number): void {
    const entry = this.byTag.get(tag);
    if (!entry) {
      if (this.finishedByTag.has(tag)) return;
      throw new UnknownChunkError(`no send transfer with tag ${tag}`);
    }
    if (!this.piecesOf(entry, worker.rank).includes(piece)) {
      throw new InvalidArgumentError(`piece ${piece} of ${tag} is not one that worker rank ${worker.rank} stages`);
    }
    entry.pieceStaged[piece]?.resolve();
  }

  // A streamed chunk's pieces must all be staged within stagingMs of its allocation, as a staged chunk's shards must.
  private startStagingDeadline(entry: Entry): void {
    const ms = this.o.timeouts.stagingMs;
    entry.stagingTimer = setTimeout(() => {
      const error = new TimeoutError(`send ${entry.key}: not every piece was staged within ${ms} ms (does every worker of the group call send?)`);
      for (const d of entry.pieceStaged) if (!d.settled) d.reject(error);
    }, Math.min(ms, MAX_DELAY_MS));
  }

  /** Resolves once piece `piece` of streamed transfer `tag` is staged; rejects if the transfer ends first or staging runs late. */
  pieceReady(tag: string, piece: number): Promise<void> {
    const d = this.byTag.get(tag)?.pieceStaged[piece];
    return d ? d.promise : Promise.reject(new UnknownChunkError(`no staged piece ${piece} of ${tag}`));
  }

  /**
   * A worker's shard is in the slot (or, with `stage`, gets there now: the
   * server copies a GPU tensor in); resolves when every destination holds
   * the chunk. A failed `stage` fails the whole transfer with its error.
   */
  async commit(tag: string, worker: Worker, stage?: (slot: { offset: number; start: number; end: number }) => Promise<void>): Promise<void> {
    const entry = this.byTag.get(tag);
    if (!entry) {
      const outcome = this.finishedByTag.get(tag);
      if (!outcome) throw new UnknownChunkError(`no send transfer with tag ${tag}`);
      if (!outcome.ok) throw outcome.error;
      return;
    }
    const range = this.shardRange(entry, worker.rank, tag);
    if (stage && range.end > range.start) {
      try {
        await stage({ offset: await entry.allocated.promise, ...range });
      } catch (err) {
        const error = asSidecarError(err);
        entry.actor.send({ type: "STAGING_FAILED", error });
        // A streamed chunk is past `staging`: its data plane is waiting for these pieces.
        for (const d of entry.pieceStaged) if (!d.settled) d.reject(error);
        throw err;
      }
    }
    for (const i of this.piecesOf(entry, worker.rank)) entry.pieceStaged[i]?.resolve();
    const shard = entry.group.indexOf(worker.rank);
    if (entry.concurrentCopy || shard === 0) entry.actor.send({ type: "SHARD_STAGED", shard });
    await entry.outcome.promise;
  }

  /** Sends a small object; resolves when every destination holds it. */
  async sendObject(req: { id: string; chunkId: number; numChunks: number | null; dstRanks: number[][]; value: SmallObject; worker: Worker }): Promise<void> {
    const key = `${req.id}#${req.chunkId}`;
    const destinations = this.checkDestinations(req.dstRanks, req.worker);
    let entry = this.byKey.get(key);
    if (!entry) {
      const finished = this.finishedByKey.get(key);
      if (finished) {
        if (!finished.outcome.ok) throw finished.outcome.error;
        return;
      }
      entry = this.start(key, req.id, req.chunkId, req.numChunks, { kind: "object", value: req.value }, destinations, req.worker);
    }
    await entry.outcome.promise;
  }

  /** A same-node receiver let go of a chunk. */
  released(tag: string, rank: number): void {
    const entry = this.byTag.get(tag);
    if (!entry) {
      if (this.finishedByTag.has(tag)) return;
      throw new UnknownChunkError(`release of unknown send transfer ${tag}`);
    }
    entry.actor.send({ type: "RELEASED", rank });
  }

  /** Stops every transfer (shutdown). */
  abortAll(reason: string): void {
    for (const entry of [...this.byTag.values()]) {
      entry.actor.send({ type: "ABORT", reason });
      if (this.byTag.has(entry.tag)) this.finish(entry, false);
    }
  }

  /** States of the transfers in flight, for health. */
  states(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const e of this.byTag.values()) {
      const v = String(e.actor.getSnapshot().value);
      out[v] = (out[v] ?? 0) + 1;
    }
    return out;
  }
}

