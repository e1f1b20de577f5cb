import { createActor, fromPromise, type InspectionEvent } from "xstate";
import { parseDtype, itemSize } from "../core/dtype.js";
import { BadMessageError, ConfigError, PeerUnreachableError, TimeoutError, TransferFailedError, UcxError } from "../core/errors.js";
import { createLogger, type Logger } from "../core/logger.js";
import { slabMachine, poolUsage } from "../actors/slab.js";
import { slotBytesForRow } from "../actors/slabAllocator.js";
import { sendTransferMachine } from "../actors/sendTransfer.js";
import { recvTransferMachine } from "../actors/recvTransfer.js";
import { serverMachine } from "../actors/server.js";
import type { Delivery, Timeouts } from "../actors/ports.js";
import { NatsChannel, type ControlChannel } from "../control/channel.js";
import { PeerDirectory, type PeerInfo } from "../control/peers.js";
import { Kind, inspectSubject } from "../control/subjects.js";
import { toSmallObject } from "../control/codec.js";
import type { ServerConfig } from "./config.js";
import { NodeSlab, layoutFor, slabPath } from "./nodeSlab.js";
import { SendSide, type Worker } from "./sendSide.js";
import { RecvSide, type AnnounceRequest } from "./recvSide.js";
import { DataPlane, ucxTagOf } from "./dataPlane.js";
import { chunkPieces } from "../core/pieces.js";
import { DeviceStaging, type DeviceSource } from "./deviceStaging.js";

/** How often a peer holding a long request is checked for being alive. */
const LIVENESS_PING_MS = 2000;

export type HealthStatus = "ALL_GOOD" | "MEMORY_PRESSURE" | "OFFLINE";

interface Hint { dtype: string; shape: number[] }

/**
 * A sidecar server: owns this rank's share of the node slab (through its
 * slab actor), runs the transfer actors of chunks it sends and receives,
 * and answers clients and peers on `sidecar.v1.<rank>.*`.
 *
 * @example
 * const server = await SidecarServer.start(loadServerConfig());
 * // … serve until a signal …
 * await server.stop();
 */
export class SidecarServer {
  readonly config: ServerConfig;
  readonly log: Logger;
  private readonly lifecycle;
  private readonly slab;
  private channel!: ControlChannel;
  private nodeSlab!: NodeSlab;
  private peers!: PeerDirectory;
  private send!: SendSide;
  private recv!: RecvSide;
  /** UCX between nodes; undefined when UCX could not start (why: dataPlaneError). */
  private dataPlane: DataPlane | undefined;
  private dataPlaneError: Error | undefined;
  private readonly deviceStaging = new DeviceStaging();
  private readonly startedAt = Date.now();
  private readonly groupsAdded = new Set<number>();
  private readonly stopped: Promise<void>;

  private constructor(config: ServerConfig, log: Logger) {
    this.config = config;
    this.log = log;
    this.slab = createActor(slabMachine, { input: { pressureThreshold: config.pressureThreshold } }).start();
    this.lifecycle = createActor(
      serverMachine.provide({
        actors: {
          join: fromPromise(() => this.join()),
          drain: fromPromise(() => this.drain()),
        },
      }),
    );
    this.stopped = new Promise((resolve) => this.lifecycle.subscribe({ complete: () => resolve() }));
  }

  /** Starts a server and resolves once it serves. @throws ConfigError, SlabMapError, NatsUnreachableError */
  static async start(config: ServerConfig, options: { logger?: Logger } = {}): Promise<SidecarServer> {
    const log = options.logger ?? createLogger("sidecar", { rank: config.rank, node: config.nodeName });
    const server = new SidecarServer(config, log);
    await new Promise<void>((resolve, reject) => {
      server.lifecycle.subscribe((snap) => {
        if (snap.value === "serving") resolve();
        if (snap.status === "done") reject(snap.context.error ?? new Error("server stopped while starting"));
      });
      server.lifecycle.start();
    });
    return server;
  }

  private get timeouts(): Timeouts {
    const c = this.config;
    return { memoryWaitMs: c.memoryWaitMs, stagingMs: c.stagingMs, transferMs: c.transferMs, readyTtlMs: c.readyTtlMs };
  }

  private self(): PeerInfo {
    return { rank: this.config.rank, node: this.config.nodeName, ...(this.dataPlane ? { ucxAddress: this.dataPlane.address } : {}) };
  }

  private requireDataPlane(peer: number): DataPlane {
    if (this.dataPlane) return this.dataPlane;
    throw new UcxError(`rank ${peer} is on another node, and this sidecar's UCX data plane did not start: ${this.dataPlaneError?.message ?? "unknown reason"}`, "UCS_ERR_UNSUPPORTED", { cause: this.dataPlaneError });
  }

  private async join(): Promise<void> {
    const c = this.config;
    const layout = layoutFor(slabPath(c.shmDir, c.nodeName), c.localPeerRanks, c.shmSize, c.sendFraction);
    this.nodeSlab = NodeSlab.open(layout, c.rank, c.populate);
    try {
      this.dataPlane = DataPlane.open(this.nodeSlab.mapping, `sidecar-${c.rank}`, this.log);
    } catch (err) {
      // Same-node transfers need no UCX; transfers to other nodes fail with this reason.
      this.dataPlaneError = err as Error;
      this.log.warn({ err }, "UCX data plane unavailable: transfers to other nodes will fail");
    }
    try {
      this.channel = await NatsChannel.connect(c.natsUrl, {
        name: `sidecar-${c.rank}`,
        onServeError: (err, subject) => this.log.warn({ err, subject }, "control message failed"),
      });
    } catch (err) {
      await this.dataPlane?.close().catch(() => {});
      this.nodeSlab.close();
      throw err;
    }
    this.peers = new PeerDirectory(this.channel, () => this.self());
    const inspect = c.inspect ? this.inspector() : undefined;
    this.send = new SendSide({
      rank: c.rank, worldSize: c.worldSize, node: c.nodeName, slab: this.slab, timeouts: this.timeouts, inspect,
      pieceBytes: c.pieceBytes,
      allRemote: (destinations) => this.allRemote(destinations),
      machine: sendTransferMachine.provide({
        actors: {
          announce: fromPromise(({ input }) => this.announce(input.context)),
          transferBytes: fromPromise(({ input, signal }) => this.transferBytes(input, signal)),
        },
      }),
    });
    this.recv = new RecvSide({
      node: c.nodeName, slab: this.slab, timeouts: this.timeouts, inspect,
      machine: recvTransferMachine.provide({
        actors: {
          release: fromPromise(({ input }) => this.releaseToSender(input.context)),
          receiveBytes: fromPromise(({ input, signal }) => this.receiveBytes(input.context, signal)),
        },
      }),
    });
    this.serveAll();
    await (this.channel as NatsChannel).flush();
    this.log.info({ slab: layout.path, shmSize: c.shmSize, peers: c.localPeerRanks }, "sidecar serving");
  }

  private serveAll(): void {
    const ch = this.channel;
    const rank = this.config.rank;
    ch.serve(rank, Kind.health, (m: { gc?: boolean }) => this.health(m.gc === true));
    ch.serve(rank, Kind.register, (m) => this.register(m));
    ch.serve(rank, Kind.sendBegin, (m) => this.send.begin(m));
    ch.serve(rank, Kind.sendCommit, async (m: { tag: string; worker: Worker; device?: DeviceSource }) => {
      const device = m.device;
      await this.send.commit(m.tag, m.worker, device && ((slot) => this.deviceStaging.copy(device, this.nodeSlab.view(slot.offset + slot.start, slot.end - slot.start), slot.start)));
      return {};
    });
    ch.serve(rank, Kind.sendStaged, (m: { tag: string; worker: Worker; piece: number }) => { this.send.staged(m.tag, m.worker, m.piece); return {}; });
    ch.serve(rank, Kind.sendObject, async (m) => { await this.send.sendObject({ ...m, value: toSmallObject(m.value) }); return {}; });
    ch.serve(rank, Kind.close, (m: { id: string; numChunks: number; dstRanks: number[][] }) => this.closeStream(m));
    ch.serve(rank, Kind.recv, (m: { id: string; chunkId: number; waiter: string; timeoutMs?: number }) => this.recv.recv(m.id, m.chunkId, m.waiter, m.timeoutMs));
    ch.serve(rank, Kind.recvCancel, (m: { waiter: string }) => { this.recv.cancel(m.waiter); return {}; });
    ch.serve(rank, Kind.done, (m: { id: string; chunkId: number }) => { this.recv.done(m.id, m.chunkId); return {}; });
    ch.serve(rank, Kind.hello, (m: PeerInfo) => {
      const before = this.peers.learn(m);
      if (before?.ucxAddress && (!m.ucxAddress || Buffer.compare(before.ucxAddress, m.ucxAddress) !== 0)) this.dataPlane?.drop(m.rank);
      return this.self();
    });
    ch.serve(rank, Kind.announce, (m: AnnounceRequest) => this.announced(m));
    ch.serve(rank, Kind.release, (m: { tag: string; rank: number }) => { this.send.released(m.tag, m.rank); return {}; });
    ch.serve(rank, Kind.peerClose, (m: { id: string; numChunks: number }) => { this.recv.close(m.id, m.numChunks); return {}; });
    ch.serve(rank, Kind.peerAbort, (m: { tag: string; id: string; chunkId: number; reason: string }) => { this.recv.abort(m.id, m.chunkId, m.tag, m.reason); return {}; });
    ch.serve(rank, Kind.received, (m: { tag: string; rank: number }) => { this.dataPlane?.acknowledged(m.tag, m.rank); return {}; });
  }

  // Publishes each transfer's state changes for `sidecar watch`.
  private inspector(): (ev: InspectionEvent) => void {
    const subject = inspectSubject(this.config.rank);
    return (ev) => {
      if (ev.type !== "@xstate.snapshot") return;
      const id = (ev.actorRef as { id?: string }).id ?? "";
      if (!id.startsWith("send-") && !id.startsWith("recv-")) return;
      const snap = ev.snapshot as { value?: unknown; status?: string };
      this.channel.publish(subject, { actor: id, state: snap.value ?? null, status: snap.status ?? null, event: ev.event.type, at: Date.now() });
    };
  }

  /** A client joins: its memory hints size the slots (first hint wins), its group's memory joins the pools. */
  private register(m: { rank: number; group: number[]; sendTensor?: Hint; recvTensor?: Hint; concurrentCopy: boolean }) {
    const c = this.config;
    const head = Math.min(...m.group);
    if (head !== c.rank) throw new ConfigError(`rank ${c.rank} is not the head of group [${m.group.join(", ")}]; clients register with rank ${head}`);
    if (!m.group.includes(m.rank)) throw new ConfigError(`rank ${m.rank} is not in its group [${m.group.join(", ")}]`);
    const sendHint = m.sendTensor ?? m.recvTensor;
    const recvHint = m.recvTensor ?? m.sendTensor;
    if (!sendHint || !recvHint) throw new ConfigError("a client needs a memory hint: sendTensor or recvTensor");
    const slot = (h: Hint) => {
      const dtype = parseDtype(h.dtype);
      if (h.shape[0] !== -1 || h.shape.slice(1).some((d) => !Number.isSafeInteger(d) || d <= 0)) {
        throw new ConfigError(`memory hint shape must be [-1, d1, d2, …] with positive dims, got ${JSON.stringify(h.shape)}`);
      }
      return slotBytesForRow(h.shape.slice(1).reduce((a, b) => a * b, 1) * itemSize(dtype));
    };
    // Both hints are checked on every register, not only the one that configures a pool.
    const slotBytes = { send: slot(sendHint), recv: slot(recvHint) };
    const regions = (which: "send" | "recv") => m.group
      .filter((r) => !this.groupsAdded.has(r))
      .map((r) => (which === "send" ? this.nodeSlab.sendRegion(r) : this.nodeSlab.recvRegion(r)))
      .filter((x): x is NonNullable<typeof x> => x !== null);
    const ctx = this.slab.getSnapshot().context;
    for (const pool of ["send", "recv"] as const) {
      const add = regions(pool);
      if (!ctx[pool].allocator) this.slab.send({ type: "CONFIGURE", pool, slotBytes: slotBytes[pool], regions: add });
      else for (const region of add) this.slab.send({ type: "ADD_REGION", pool, region });
    }
    for (const r of m.group) if (this.nodeSlab.sendRegion(r)) this.groupsAdded.add(r);
    const after = this.slab.getSnapshot().context;
    return {
      rank: c.rank, node: c.nodeName, slabPath: this.nodeSlab.layout.path, slabBytes: this.nodeSlab.layout.totalBytes,
      sendSlotBytes: after.send.allocator!.slotBytes, recvSlotBytes: after.recv.allocator!.slotBytes, maxPayload: this.channel.maxPayload,
    };
  }

  private async closeStream(m: { id: string; numChunks: number; dstRanks: number[][] }) {
    const heads = m.dstRanks.map((g) => Math.min(...g));
    await Promise.all(heads.map((h) => this.channel.request(h, Kind.peerClose, { id: m.id, numChunks: m.numChunks }, { timeoutMs: 10_000 })));
    return {};
  }

  // The send actor's `announce`: tells every destination head about the chunk.
  private async announce(ctx: import("../actors/sendTransfer.js").SendTransferContext): Promise<Delivery[]> {
    // Inter-node bytes travel in the pieces of core/pieces.ts; the receiver needs the layout.
    const body = ctx.body.kind === "tensor" ? { ...ctx.body, offset: ctx.allocation!.offset, shards: ctx.shards, pieceBytes: ctx.pieceBytes } : ctx.body;
    return Promise.all(ctx.destinations.map(async (rank): Promise<Delivery> => {
      try {
        const peer = await this.peers.info(rank);
        const interNode = body.kind === "tensor" && peer.node !== this.config.nodeName;
        if (interNode) this.requireDataPlane(rank);
        // A streamed chunk is announced before it is staged: a same-node receiver would read it half-written.
        else if (ctx.streamed) throw new TransferFailedError(`rank ${rank} is on this node (${peer.node}) now, but ${ctx.tag} was streamed as if it were not; send it again`);
        // The receiver may hold this request while it waits for memory: watch that it stays alive.
        const reply = await this.whileAlive(rank, `holding the announcement of ${ctx.tag}`, this.channel.request<{ held: boolean; ucxTag?: string; ucxAddress?: Uint8Array; duplicate?: boolean }>(rank, Kind.announce, {
          tag: ctx.tag, id: ctx.id, chunkId: ctx.chunkId, numChunks: ctx.numChunks, from: { rank: this.config.rank, node: this.config.nodeName }, body,
        }, { timeoutMs: this.config.memoryWaitMs + 10_000 }));
        if (reply.held) return { rank, held: true, intraNode: body.kind === "tensor" && !interNode, duplicate: reply.duplicate };
        if (!reply.ucxAddress || !reply.ucxTag) throw new UcxError(`rank ${rank} allocated a slot for ${ctx.tag} but sent no UCX address`, "UCS_ERR_INVALID_PARAM");
        return { rank, held: false, ucxTag: reply.ucxTag, ucxAddress: reply.ucxAddress };
      } catch (err) {
        if (err instanceof PeerUnreachableError || err instanceof TimeoutError) this.peers.forget(rank);
        return { rank, failed: err as Error };
      }
    }));
  }

  // Settles like `work`, but fails with PeerUnreachableError once `rank` has
  // no sidecar any more (a health ping gets no responders), so a peer that
  // dies during a long wait is noticed in seconds, not at the wait's deadline.
  // A slow answer is not taken for death: only "nobody serves that rank" is.
  private whileAlive<T>(rank: number, what: string, work: Promise<T>): Promise<T> {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const gone = new Promise<never>((_, reject) => {
      const schedule = () => {
        if (settled) return;
        timer = setTimeout(() => {
          this.channel.request(rank, Kind.health, {}, { timeoutMs: LIVENESS_PING_MS }).then(schedule, (err) => {
            if (err instanceof PeerUnreachableError && !settled) reject(new PeerUnreachableError(`rank ${rank} went away while ${what}`, { cause: err }));
            else schedule();
          });
        }, LIVENESS_PING_MS);
      };
      schedule();
    });
    gone.catch(() => {});
    return Promise.race([work, gone]).finally(() => {
      settled = true;
      clearTimeout(timer);
    });
  }

  // Whether every destination head is on another node (then a tensor chunk is streamed).
  private async allRemote(destinations: number[]): Promise<boolean> {
    if (!this.dataPlane) return false;
    try {
      const peers = await Promise.all(destinations.map((r) => this.peers.info(r)));
      return peers.every((p) => p.node !== this.config.nodeName);
    } catch {
      return false; // the announcement reports an unreachable peer
    }
  }

  // A sender announced a chunk to this head. Another node's tensor gets a
  // slot here first (maybe after waiting for memory); the reply then names
  // the UCX tag and this worker's address, and the bytes follow.
  private async announced(m: AnnounceRequest) {
    if (m.body.kind === "object") return this.recv.announce({ ...m, body: { kind: "object", value: toSmallObject(m.body.value) } });
    if (m.body.node !== this.config.nodeName) this.requireDataPlane(m.from.rank);
    else if (m.body.offset + m.body.length > this.nodeSlab.layout.totalBytes) {
      // Clients would view these bytes of the node slab in place: they must be inside it.
      throw new BadMessageError(`announced chunk ${m.tag} lies outside the node slab (offset ${m.body.offset} + ${m.body.length} bytes > ${this.nodeSlab.layout.totalBytes})`);
    }
    const reply = await this.recv.announce(m);
    if (reply.held) return reply;
    return { held: false, ucxTag: ucxTagOf(m.tag, 0).toString(), ucxAddress: this.dataPlane!.address };
  }

  // The send actor's `transferBytes`: the staged slot goes to every receiver on another node.
  private async transferBytes(input: import("../actors/sendTransfer.js").TransferInput, signal: AbortSignal): Promise<void> {
    const ctx = input.context;
    const body = ctx.body as import("../actors/ports.js").TensorBody;
    const bytes = this.nodeSlab.view(ctx.allocation!.offset, body.length);
    const dp = this.requireDataPlane(input.targets[0]?.rank ?? -1);
    const pieces = chunkPieces(body.length, ctx.shards, ctx.pieceBytes);
    const started = performance.now();
    // A streamed chunk goes out piece by piece while the workers still copy the rest.
    const ready = ctx.streamed ? (piece: number) => this.send.pieceReady(ctx.tag, piece) : undefined;
    try {
      await Promise.all(input.targets.map((t) => dp.send(t.rank, t.ucxAddress, ctx.tag, bytes, pieces, { timeoutMs: this.config.transferMs, signal, ready })));
    } catch (err) {
      // The receivers reserved slots for this chunk: let them go now rather than at their transfer deadline.
      const abort = { tag: ctx.tag, id: ctx.id, chunkId: ctx.chunkId, reason: (err as Error).message.slice(0, 2000) };
      for (const t of input.targets) this.channel.request(t.rank, Kind.peerAbort, abort, { timeoutMs: 5000 }).catch(() => {});
      throw err;
    }
    this.log.debug({ tag: ctx.tag, bytes: body.length, to: input.targets.map((t) => t.rank), ms: +(performance.now() - started).toFixed(3) }, "chunk sent and acknowledged");
  }

  // The receive actor's `receiveBytes`: the bytes land in this end's slot, then the sender hears so.
  private async receiveBytes(ctx: import("../actors/recvTransfer.js").RecvTransferContext, signal: AbortSignal): Promise<void> {
    const body = ctx.body as import("../actors/ports.js").TensorBody;
    const into = this.nodeSlab.view(ctx.allocation!.offset, body.length);
    const started = performance.now();
    await this.requireDataPlane(ctx.fromRank).receive(ctx.tag, into, chunkPieces(body.length, body.shards ?? 1, body.pieceBytes ?? 0), signal);
    this.log.debug({ tag: ctx.tag, bytes: body.length, from: ctx.fromRank, ms: +(performance.now() - started).toFixed(3) }, "chunk received");
    // Acknowledged on the next turn of the loop, once the actor is ready and
    // the waiting recv calls are answered: the consumer should not wait for the ack.
    setImmediate(() => {
      this.channel.request(ctx.fromRank, Kind.received, { tag: ctx.tag, rank: this.config.rank }, { timeoutMs: 5000 })
        .catch((err) => this.log.warn({ err, tag: ctx.tag, sender: ctx.fromRank }, "could not acknowledge a received chunk"));
    });
  }

  // The receive actor's `release`: a same-node chunk's reference goes back to its sender.
  private async releaseToSender(ctx: import("../actors/recvTransfer.js").RecvTransferContext): Promise<void> {
    if (!(ctx.intraNode && ctx.body.kind === "tensor")) return;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.channel.request(ctx.fromRank, Kind.release, { tag: ctx.tag, rank: this.config.rank }, { timeoutMs: 5000 });
        return;
      } catch (err) {
        if (attempt >= 3) {
          this.log.warn({ err, tag: ctx.tag, sender: ctx.fromRank }, "could not release a chunk at its sender");
          return;
        }
      }
    }
  }

  /** Health and memory of this sidecar. */
  health(collect = false) {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (collect && gc) gc();
    const life = this.lifecycle.getSnapshot().value;
    const slab = this.slab.getSnapshot();
    const status: HealthStatus = life !== "serving" ? "OFFLINE" : slab.value === "pressured" ? "MEMORY_PRESSURE" : "ALL_GOOD";
    const mem = process.memoryUsage();
    return {
      status,
      rank: this.config.rank,
      node: this.config.nodeName,
      send: poolUsage(slab.context, "send"),
      recv: poolUsage(slab.context, "recv"),
      transfers: {
        sending: this.send?.inFlight ?? 0, sendStates: this.send?.states() ?? {}, sent: this.send?.completed ?? 0, sendFailed: this.send?.failed ?? 0,
        held: this.recv?.held ?? 0, recvStates: this.recv?.states() ?? {}, received: this.recv?.received ?? 0,
      },
      uptimeMs: Date.now() - this.startedAt,
      memory: { heapUsed: mem.heapUsed, rss: mem.rss, external: mem.external, gcExposed: gc !== undefined },
    };
  }

  private async drain(): Promise<void> {
    this.send?.abortAll("server shutdown");
    this.recv?.closeAll();
    await this.channel?.close();
    await this.dataPlane?.close().catch((err) => this.log.warn({ err }, "closing the UCX data plane failed"));
    const { removed } = this.nodeSlab?.close() ?? { removed: false };
    this.slab.stop();
    this.log.info({ removedSlab: removed }, "sidecar stopped");
  }

  /** Stops serving, aborts transfers, disconnects and unmaps (removing the slab file if it is the node's last sidecar). */
  async stop(): Promise<void> {
    this.lifecycle.send({ type: "STOP" });
    await this.stopped;
  }
}
