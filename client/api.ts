import type { Dtype } from "../core/dtype.js";
import type { Tensor } from "../core/tensor.js";

/** A memory hint: what a client sends or receives. `shape[0]` must be -1. */
export interface TensorHint {
  dtype: Dtype | string;
  shape: readonly number[];
}

/** Options of {@link Sidecar.connect}. */
export interface SidecarOptions {
  /** The sidecar rank this client belongs to. */
  rank: number;
  /** The TP group of sidecar ranks (default `[rank]`); must contain `rank`. Its lowest rank is the head. */
  group?: readonly number[];
  /** Memory hint for what this client sends. At least one of `sendTensor`/`recvTensor` is needed. */
  sendTensor?: TensorHint;
  /** Memory hint for what this client receives; received tensors are viewed with it. */
  recvTensor?: TensorHint;
  /** TP groups: every worker copies its own shard in parallel (otherwise shard 0 copies it all). */
  concurrentCopy?: boolean;
  /** NATS URL; default `SIDECAR_NATS_URL`, else `nats://127.0.0.1:4222`. */
  natsUrl?: string;
  /** How long to wait for NATS and the sidecar server when connecting (default 5000 ms). */
  connectTimeoutMs?: number;
}

/** A small object: what travels inline in a control message. */
export type SmallObject =
  | string
  | number
  | bigint
  | boolean
  | null
  | Uint8Array
  | SmallObject[]
  | { [key: string]: SmallObject };

/** A tensor in GPU memory, handed to the sidecar through a CUDA IPC handle. */
export interface DeviceTensor {
  kind: "device";
  dtype: Dtype | string;
  shape: readonly number[];
  /** CUDA device index of the producer's memory. */
  device: number;
  /** `cudaIpcMemHandle_t` bytes (64) of the allocation holding the tensor. */
  ipcHandle: Uint8Array;
  /** Byte offset of the tensor inside that allocation. */
  offset?: number;
}

/** What `send` accepts. */
export type SendData = Tensor | DeviceTensor | SmallObject;

/** What `recv` returns: a tensor, a small object, or `null` past the end of the data. */
export type RecvValue = Tensor | SmallObject;

export interface SendOptions {
  /** The transfer id (shared by all chunks of one piece of data). */
  id: string;
  /** Destination TP groups, each a list of sidecar ranks; each group's lowest rank receives. */
  dstRanks: readonly (readonly number[])[];
  /** This chunk's index (default 0). */
  chunkId?: number;
  /** How many chunks the data has (default 1); ignored when `stream` is true. */
  numChunks?: number;
  /** The chunk count is not known yet; `closeStream` ends the stream. */
  stream?: boolean;
}

export interface RecvOptions {
  /** Give up after this many milliseconds with a TimeoutError (default: wait forever). */
  timeoutMs?: number;
  /** Cancels the wait with an AbortedError. */
  signal?: AbortSignal;
}

/** The operations an executor uses; the real client and the mock client both implement them. */
export interface SidecarClient {
  readonly rank: number;
  readonly group: readonly number[];
  send(data: SendData, options: SendOptions): Promise<void>;
  closeStream(id: string, numChunks: number, dstRanks: readonly (readonly number[])[]): Promise<void>;
  recv(id: string, chunkId?: number, options?: RecvOptions): Promise<RecvValue | null>;
  markDone(id: string, chunkId?: number): Promise<void>;
  shutdown(): Promise<void>;
}
