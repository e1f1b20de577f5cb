import { createActor, type ActorRefFrom, type InspectionEvent } from "xstate";
import { AbortedError, ClosedError, TimeoutError, UnknownChunkError } from "../core/errors.js";
import { LruMap } from "../core/lru.js";
import type { slabMachine } from "../actors/slab.js";
import { recvTransferMachine, type RecvTransferActor } from "../actors/recvTransfer.js";
import type { ChunkBody, Timeouts } from "../actors/ports.js";

/**
 * The receiving half of a server (it runs at each group head): one
 * receive-transfer actor per announced chunk, the chunk counts of each id,
 * and the recv calls waiting for chunks that have not arrived.
 */

export type RecvReply = ChunkBody | { kind: "end" };

interface Waiter {
  waiter: string;
  resolve: (r: RecvReply) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
}

interface Chunk {
  tag: string;
  actor: RecvTransferActor;
  body: ChunkBody;
  ready: boolean;
}

interface IdState {
  /** Total chunks, once known (from a non-stream send or closeStream). */
  count: number | null;
  chunks: Map<number, Chunk>;
  released: Set<number>;
  waiters: Map<number, Waiter[]>;
}

export interface AnnounceRequest {
  tag: string; id: string; chunkId: number; numChunks: number | null;
  from: { rank: number; node: string }; body: ChunkBody;
}

export interface RecvSideOptions {
  node: string;
  slab: ActorRefFrom<typeof slabMachine>;
  timeouts: Timeouts;
  machine: typeof recvTransferMachine;
  inspect?: (ev: InspectionEvent) => void;
}

export class RecvSide {
  private readonly ids = new Map<string, IdState>();
  // Ids whose every chunk was released: their count, so a late recv still gets `null` past the end.
  private readonly finished = new LruMap<string, number>(16384);
  private readonly waiterIndex = new Map<string, { id: string; chunkId: number }>();
  private closed = false;
  received = 0;

  constructor(private readonly o: RecvSideOptions) {}

  get held(): number {
    let n = 0;
    for (const s of this.ids.values()) n += s.chunks.size;
    return n;
  }

  private state(id: string): IdState {
    let s = this.ids.get(id);
    if (!s) {
      s = { count: null, chunks: new Map(), released: new Set(), waiters: new Map() };
      this.ids.set(id, s);
    }
    return s;
  }

  /** A sender announces a chunk; resolves once this end holds it (or allocated a slot for it). */
  async announce(req: AnnounceRequest, onAllocated?: (chunk: { allocation: { offset: number; bytes: number } }) => void): Promise<{ held: boolean; duplicate?: boolean }> {
    if (this.closed) throw new ClosedError("sidecar is shutting down");
    if (this.finished.has(req.id)) return { held: true, duplicate: true };
    const s = this.state(req.id);
    if (s.chunks.has(req.chunkId) || s.released.has(req.chunkId)) return { held: true, duplicate: true };
    if (req.numChunks !== null) s.count = req.numChunks;
    const intraNode = req.body.kind === "object" || (req.body.kind === "tensor" && req.body.node === this.o.node);
    const actor = createActor(this.o.machine, {
      id: `recv-${req.tag}`,
      input: { tag: req.tag, id: req.id, chunkId: req.chunkId, fromRank: req.from.rank, body: req.body, intraNode, slab: this.o.slab, timeouts: this.o.timeouts },
      inspect: this.o.inspect,
    });
    const chunk: Chunk = { tag: req.tag, actor, body: req.body, ready: false };
    s.chunks.set(req.chunkId, chunk);
    const settled = new Promise<{ held: boolean }>((resolve, reject) => {
      actor.on("ready", () => {
        chunk.ready = true;
        const allocation = actor.getSnapshot().context.allocation;
        let body = req.body;
        if (body.kind === "tensor") {
          // The piece layout is a data-plane detail: clients are served the chunk without it,
          // and one that crossed nodes as a chunk of this node, in this end's slot.
          const { shards: _shards, pieceBytes: _pieceBytes, ...tensor } = body;
          body = allocation ? { ...tensor, node: this.o.node, offset: allocation.offset } : tensor;
        }
        chunk.body = body;
        this.received += 1;
        this.wake(req.id, req.chunkId, body);
        resolve({ held: true });
      });
      actor.on("allocated", ({ allocation }) => {
        onAllocated?.({ allocation });
        resolve({ held: false });
      });
      actor.on("failed", ({ error }) => reject(error));
    });
    actor.subscribe({
      next: (snap) => {
        if (snap.status === "done") this.drop(req.id, req.chunkId, chunk);
      },
      error: () => this.drop(req.id, req.chunkId, chunk),
    });
    actor.start();
    this.wakeEnded(req.id);
    return settled;
  }

  // A chunk's actor finished (released, expired or failed): forget it. One
  // that failed before it was ever ready was not delivered: the sender may send it again.
  private drop(id: string, chunkId: number, chunk: Chunk): void {
    const s = this.ids.get(id);
    if (!s || s.chunks.get(chunkId) !== chunk) return;
    s.chunks.delete(chunkId);
    if (chunk.ready) s.released.add(chunkId);
    chunk.actor.stop();
    this.maybeFinish(id, s);
  }

  private maybeFinish(id: string, s: IdState): void {
    if (s.count === null || s.chunks.size > 0 || s.waiters.size > 0) return;
    for (let c = 0; c < s.count; c++) if (!s.released.has(c)) return;
    this.ids.delete(id);
    this.finished.set(id, s.count);
  }

  /** The sender gave up on an inter-node chunk it announced: a slot reserved for it is freed now, not at the transfer deadline. */
  abort(id: string, chunkId: number, tag: string, reason: string): void {
    const chunk = this.ids.get(id)?.chunks.get(chunkId);
    if (chunk && chunk.tag === tag && !chunk.ready) chunk.actor.send({ type: "ABORT", reason: `the sender gave up: ${reason}` });
  }

  /** A stream's chunk count arrived (maybe before its chunks). */
  close(id: string, numChunks: number): void {
    if (this.finished.has(id)) return;
    const s = this.state(id);
    s.count = numChunks;
    this.wakeEnded(id);
    this.maybeFinish(id, s);
  }

  /** Waits for a chunk; `end` once the count is known and the chunk is past it. */
  recv(id: string, chunkId: number, waiter: string, timeoutMs?: number): Promise<RecvReply> {
    if (this.closed) return Promise.reject(new ClosedError("sidecar is shutting down"));
    const count = this.finished.get(id);
    if (count !== undefined) {
      if (chunkId >= count) return Promise.resolve({ kind: "end" });
      return Promise.reject(new UnknownChunkError(`chunk ${chunkId} of ${id} was already released (markDone)`));
    }
    const s = this.state(id);
    const chunk = s.chunks.get(chunkId);
    if (chunk?.ready) return Promise.resolve(chunk.body);
    if (s.count !== null && chunkId >= s.count) return Promise.resolve({ kind: "end" });
    if (s.released.has(chunkId)) return Promise.reject(new UnknownChunkError(`chunk ${chunkId} of ${id} was already released (markDone)`));
    return new Promise<RecvReply>((resolve, reject) => {
      const w: Waiter = { waiter, resolve, reject };
      if (timeoutMs !== undefined) {
        w.timer = setTimeout(() => {
          this.removeWaiter(id, chunkId, w);
          reject(new TimeoutError(`recv ${id}#${chunkId} timed out after ${timeoutMs} ms`));
        }, Math.min(timeoutMs, 2_147_483_647));
      }
      const list = s.waiters.get(chunkId) ?? [];
      list.push(w);
      s.waiters.set(chunkId, list);
      this.waiterIndex.set(waiter, { id, chunkId });
    });
  }

  /** A client gave up on a recv (abort). */
  cancel(waiter: string): void {
    const at = this.waiterIndex.get(waiter);
    if (!at) return;
    const w = this.ids.get(at.id)?.waiters.get(at.chunkId)?.find((x) => x.waiter === waiter);
    if (!w) return;
    this.removeWaiter(at.id, at.chunkId, w);
    w.reject(new AbortedError(`recv ${at.id}#${at.chunkId} aborted by the client`));
  }

  private removeWaiter(id: string, chunkId: number, w: Waiter): void {
    if (w.timer) clearTimeout(w.timer);
    this.waiterIndex.delete(w.waiter);
    const s = this.ids.get(id);
    const list = s?.waiters.get(chunkId);
    if (!s || !list) return;
    const rest = list.filter((x) => x !== w);
    if (rest.length) s.waiters.set(chunkId, rest);
    else s.waiters.delete(chunkId);
    if (s.waiters.size === 0 && s.chunks.size === 0 && s.released.size === 0 && s.count === null) this.ids.delete(id);
    else this.maybeFinish(id, s);
  }

  private wake(id: string, chunkId: number, reply: RecvReply): void {
    const s = this.ids.get(id);
    const list = s?.waiters.get(chunkId);
    if (!s || !list) return;
    s.waiters.delete(chunkId);
    for (const w of list) {
      if (w.timer) clearTimeout(w.timer);
      this.waiterIndex.delete(w.waiter);
      w.resolve(reply);
    }
  }

  private wakeEnded(id: string): void {
    const s = this.ids.get(id);
    if (!s || s.count === null) return;
    for (const chunkId of [...s.waiters.keys()]) if (chunkId >= s.count) this.wake(id, chunkId, { kind: "end" });
  }

  /** markDone: releases a chunk. Releasing a released chunk is a no-op; an unknown one is an error. */
  done(id: string, chunkId: number): void {
    if (this.finished.has(id)) return;
    const s = this.ids.get(id);
    const chunk = s?.chunks.get(chunkId);
    if (chunk?.ready) {
      chunk.actor.send({ type: "MARK_DONE" });
      return;
    }
    if (s?.released.has(chunkId)) return;
    if (chunk) throw new UnknownChunkError(`chunk ${chunkId} of ${id} has not arrived yet; markDone only what recv returned`);
    throw new UnknownChunkError(`markDone of unknown chunk ${chunkId} of ${JSON.stringify(id)}: this sidecar never received it`);
  }

  /** Stops everything (shutdown): waiters get ClosedError, chunks are released. */
  closeAll(): void {
    this.closed = true;
    for (const [id, s] of [...this.ids]) {
      for (const [chunkId, list] of s.waiters) for (const w of [...list]) {
        this.removeWaiter(id, chunkId, w);
        w.reject(new ClosedError("sidecar is shutting down"));
      }
      for (const c of s.chunks.values()) c.actor.send({ type: "ABORT", reason: "shutdown" });
    }
  }

  states(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of this.ids.values()) for (const c of s.chunks.values()) {
      const v = String(c.actor.getSnapshot().value);
      out[v] = (out[v] ?? 0) + 1;
    }
    return out;
  }
}
