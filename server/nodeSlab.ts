import { join } from "node:path";
import { ConfigError } from "../core/errors.js";
import { SlabMapping } from "../native/ucx-cuda/index.js";
import type { Region } from "../actors/slabAllocator.js";

/**
 * The node's slab file: one per node, shared by every sidecar of the node
 * and their clients.
 *
 *   [ header 4 KiB | send pool of each local rank … | receive pool of each local rank … ]
 *
 * Send pools sit side by side so that a TP group's pools merge into one
 * run of slots. The header records the layout (every sidecar of the node must
 * agree on it) and the pid of each live sidecar, so the last one to stop
 * removes the file.
 */

const HEADER_BYTES = 4096;
const MAGIC = 0x5343534c; // "SCSL"
const VERSION = 1;
// Header words (Uint32): magic, version, rank count, send bytes/4096, recv bytes/4096, then ranks[], then pids[].
const W_MAGIC = 0, W_VERSION = 1, W_COUNT = 2, W_SEND = 3, W_RECV = 4, W_RANKS = 8;
const MAX_RANKS = 480;

export interface SlabLayout {
  path: string;
  totalBytes: number;
  sendBytes: number;
  recvBytes: number;
  ranks: number[];
}

export function slabPath(shmDir: string, nodeName: string): string {
  return join(shmDir, `sidecar-${nodeName}.slab`);
}

export function layoutFor(path: string, ranks: number[], shmSize: number, sendFraction: number): SlabLayout {
  if (ranks.length > MAX_RANKS) throw new ConfigError(`at most ${MAX_RANKS} sidecars per node, got ${ranks.length}`);
  const page = 4096;
  const sendBytes = Math.floor((shmSize * sendFraction) / page) * page;
  const recvBytes = Math.floor((shmSize - sendBytes) / page) * page;
  return { path, sendBytes, recvBytes, ranks, totalBytes: HEADER_BYTES + ranks.length * (sendBytes + recvBytes) };
}

export class NodeSlab {
  readonly layout: SlabLayout;
  readonly mapping: SlabMapping;
  private readonly rank: number;
  private readonly words: Uint32Array;

  private constructor(layout: SlabLayout, mapping: SlabMapping, rank: number) {
    this.layout = layout;
    this.mapping = mapping;
    this.rank = rank;
    this.words = new Uint32Array(mapping.buffer, 0, HEADER_BYTES / 4);
  }

  /**
   * Maps the node's slab file, creating it (or taking over one whose owners
   * are all gone), and records this sidecar as live.
   * @throws ConfigError when live sidecars of the node use another layout; SlabMapError
   */
  static open(layout: SlabLayout, rank: number, populate: boolean): NodeSlab {
    const mapping = SlabMapping.open(layout.path, layout.totalBytes, { populate });
    const slab = new NodeSlab(layout, mapping, rank);
    try {
      slab.claim();
    } catch (err) {
      mapping.close();
      throw err;
    }
    return slab;
  }

  private pidIndex(i: number): number {
    return W_RANKS + MAX_RANKS + i;
  }

  private claim(): void {
    const w = this.words;
    const { ranks, sendBytes, recvBytes } = this.layout;
    const same = w[W_MAGIC] === MAGIC && w[W_VERSION] === VERSION && w[W_COUNT] === ranks.length &&
      w[W_SEND] === sendBytes / 4096 && w[W_RECV] === recvBytes / 4096 && ranks.every((r, i) => w[W_RANKS + i] === r);
    if (w[W_MAGIC] === MAGIC && !same && this.livePeers().length > 0) {
      throw new ConfigError(`slab file ${this.layout.path} is in use by sidecars (pids ${this.livePeers().join(", ")}) with another layout; every sidecar of a node needs the same SIDECAR_LOCAL_PEER_RANKS and SIDECAR_SHM_SIZE`);
    }
    if (!same) {
      w.fill(0, 0, this.pidIndex(MAX_RANKS));
      w[W_VERSION] = VERSION;
      w[W_COUNT] = ranks.length;
      w[W_SEND] = sendBytes / 4096;
      w[W_RECV] = recvBytes / 4096;
      ranks.forEach((r, i) => (w[W_RANKS + i] = r));
      w[W_MAGIC] = MAGIC;
    }
    w[this.pidIndex(ranks.indexOf(this.rank))] = process.pid;
  }

  // Pids of other sidecars of this node that are still running.
  private livePeers(): number[] {
    const out: number[] = [];
    const count = Math.min(this.words[W_COUNT] ?? 0, MAX_RANKS);
    for (let i = 0; i < count; i++) {
      const pid = this.words[this.pidIndex(i)]!;
      if (pid === 0 || pid === process.pid) continue;
      try {
        process.kill(pid, 0);
        out.push(pid);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EPERM") out.push(pid);
      }
    }
    return out;
  }

  /** Send pool region of a local rank (null when the rank is on another node). */
  sendRegion(rank: number): Region | null {
    const i = this.layout.ranks.indexOf(rank);
    if (i < 0) return null;
    return { start: HEADER_BYTES + i * this.layout.sendBytes, bytes: this.layout.sendBytes };
  }

  /** Receive pool region of a local rank. */
  recvRegion(rank: number): Region | null {
    const i = this.layout.ranks.indexOf(rank);
    if (i < 0) return null;
    return { start: HEADER_BYTES + this.layout.ranks.length * this.layout.sendBytes + i * this.layout.recvBytes, bytes: this.layout.recvBytes };
  }

  /** Bytes of the slab at `offset` (a view: no copy). */
  view(offset: number, length: number): Uint8Array {
    return new Uint8Array(this.mapping.buffer, offset, length);
  }

  /** Unmaps the slab and, when no other sidecar of the node is live, removes the file. */
  close(): { removed: boolean } {
    if (this.mapping.isClosed) return { removed: false };
    const i = this.layout.ranks.indexOf(this.rank);
    if (this.words[this.pidIndex(i)] === process.pid) this.words[this.pidIndex(i)] = 0;
    const last = this.livePeers().length === 0;
    this.mapping.close();
    return { removed: last ? SlabMapping.unlink(this.layout.path) : false };
  }
}
