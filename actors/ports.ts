import type { Dtype } from "../core/dtype.js";
import type { SmallObject } from "../client/api.js";

/**
 * What the transfer actors need from the world, handed to them by the
 * server: they never touch NATS or the data plane themselves.
 */

export interface TensorBody {
  kind: "tensor";
  dtype: Dtype;
  shape: number[];
  /** Bytes of data (the slot may be larger). */
  length: number;
  /** Inter-node: the piece layout (core/pieces.ts): TP shards staged separately (default 1)… */
  shards?: number;
  /** …and the largest piece of a shard (0 or absent: one piece per shard). */
  pieceBytes?: number;
  /** Node whose slab holds `offset`. */
  node: string;
  offset: number;
}

export interface ObjectBody {
  kind: "object";
  value: SmallObject;
}

export type ChunkBody = TensorBody | ObjectBody;

/** How one destination group took an announcement. */
export type Delivery =
  | { rank: number; held: true; intraNode: boolean; duplicate?: boolean }
  | { rank: number; held: false; ucxTag: string; ucxAddress: Uint8Array }
  | { rank: number; failed: Error };

export interface Timeouts {
  /** Longest wait in waitingForMemory before failing. */
  memoryWaitMs: number;
  /** Longest wait for every TP shard to be copied in. */
  stagingMs: number;
  /** Longest an inter-node chunk's bytes may take to cross (and be acknowledged). */
  transferMs: number;
  /** Longest a received chunk stays ready without markDone (0: forever). */
  readyTtlMs: number;
}

export const MAX_DELAY_MS = 2_147_483_647;
