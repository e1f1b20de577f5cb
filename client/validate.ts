import { itemSize, parseDtype, type Dtype } from "../core/dtype.js";
import { ConfigError, InvalidArgumentError } from "../core/errors.js";
import type { DeviceTensor, RecvOptions, SendOptions, TensorHint } from "./api.js";

/** Argument checks shared by the real client and the mock client. */

export interface ResolvedHint { dtype: Dtype; shape: readonly number[] }

export interface ResolvedSend { id: string; chunkId: number; numChunks: number | null; stream: boolean; dstRanks: number[][] }

export function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

export function checkId(id: unknown): asserts id is string {
  if (typeof id !== "string" || id.length === 0) throw new InvalidArgumentError(`id must be a non-empty string, got ${safeJson(id)}`);
  if (id.length > 512) throw new InvalidArgumentError(`id must be at most 512 characters, got ${id.length}`);
}

export function checkChunkId(chunkId: unknown): asserts chunkId is number {
  if (!Number.isSafeInteger(chunkId) || (chunkId as number) < 0) throw new InvalidArgumentError(`chunkId must be a non-negative integer, got ${String(chunkId)}`);
}

export function checkRecvOptions(options: RecvOptions): void {
  if (options === null || typeof options !== "object") throw new InvalidArgumentError("recv options must be an object");
  const { timeoutMs, signal } = options;
  if (timeoutMs !== undefined && (typeof timeoutMs !== "number" || Number.isNaN(timeoutMs) || timeoutMs < 0)) {
    throw new InvalidArgumentError(`timeoutMs must be a non-negative number, got ${String(timeoutMs)}`);
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new InvalidArgumentError("signal must be an AbortSignal");
}

/** A memory hint: a known dtype and a shape `[-1, d1, …]` of positive dims. */
export function checkHint(hint: TensorHint, which: string): ResolvedHint {
  if (hint === null || typeof hint !== "object") throw new ConfigError(`${which} must be { dtype, shape }`);
  const dtype = parseDtype(hint.dtype);
  const { shape } = hint;
  if (!Array.isArray(shape) || shape.length === 0 || shape[0] !== -1 || shape.slice(1).some((d) => !Number.isSafeInteger(d) || d <= 0)) {
    throw new ConfigError(`${which}.shape must be [-1, ...positive integers], got ${safeJson(shape)}`);
  }
  return { dtype, shape: Object.freeze([...shape]) };
}

/** Rank and group of a client; returns the group sorted. */
export function checkRankGroup(rank: unknown, group: readonly number[] | undefined): number[] {
  if (!Number.isSafeInteger(rank) || (rank as number) < 0) throw new ConfigError(`rank must be a non-negative integer, got ${String(rank)}`);
  const g = group === undefined ? [rank as number] : group;
  if (!Array.isArray(g) || g.length === 0 || g.some((r) => !Number.isSafeInteger(r) || r < 0)) {
    throw new ConfigError(`group must be a non-empty list of non-negative integers, got ${safeJson(group)}`);
  }
  if (new Set(g).size !== g.length) throw new ConfigError(`group ${safeJson(g)} lists a rank twice`);
  if (!g.includes(rank as number)) throw new ConfigError(`rank ${String(rank)} is not in its group ${safeJson(g)}`);
  return [...g].sort((a, b) => a - b);
}

/** Destination groups: non-empty lists of non-negative ranks, none holding the sender's own group head. */
export function checkDstRanks(dstRanks: unknown, ownGroup: readonly number[]): number[][] {
  if (!Array.isArray(dstRanks) || dstRanks.length === 0) throw new InvalidArgumentError(`dstRanks must be a non-empty list of rank groups, got ${safeJson(dstRanks)}`);
  const head = Math.min(...ownGroup);
  for (const g of dstRanks) {
    if (!Array.isArray(g) || g.length === 0 || g.some((r) => !Number.isSafeInteger(r) || r < 0)) {
      throw new InvalidArgumentError(`dstRanks must be a list of non-empty lists of non-negative integers, got ${safeJson(dstRanks)}`);
    }
    if ((g as number[]).includes(head)) {
      throw new InvalidArgumentError(`dstRanks ${safeJson(dstRanks)} include this client's own group head ${head}; a sidecar cannot send to itself`);
    }
  }
  return (dstRanks as number[][]).map((g) => [...g]);
}

/** The options of a send, with defaults applied. */
export function checkSendOptions(options: SendOptions, ownGroup: readonly number[]): ResolvedSend {
  if (options === null || typeof options !== "object") throw new InvalidArgumentError("send needs an options object { id, dstRanks, … }");
  checkId(options.id);
  const dstRanks = checkDstRanks(options.dstRanks, ownGroup);
  const stream = options.stream ?? false;
  if (typeof stream !== "boolean") throw new InvalidArgumentError(`stream must be a boolean, got ${String(stream)}`);
  const chunkId = options.chunkId ?? 0;
  checkChunkId(chunkId);
  let numChunks: number | null = null;
  if (!stream) {
    numChunks = options.numChunks ?? 1;
    if (!Number.isSafeInteger(numChunks) || numChunks < 1) throw new InvalidArgumentError(`numChunks must be a positive integer, got ${String(numChunks)}`);
    if (chunkId >= numChunks) throw new InvalidArgumentError(`chunkId ${chunkId} is out of range for numChunks ${numChunks}`);
  }
  return { id: options.id, chunkId, numChunks, stream, dstRanks };
}

export function checkCloseStream(id: unknown, numChunks: unknown): void {
  checkId(id);
  if (!Number.isSafeInteger(numChunks) || (numChunks as number) < 0) throw new InvalidArgumentError(`numChunks must be a non-negative integer, got ${String(numChunks)}`);
}

export function isDeviceTensor(v: unknown): v is DeviceTensor {
  return v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Uint8Array) && (v as { kind?: unknown }).kind === "device";
}

/** A GPU tensor handed over by CUDA IPC handle: what the sidecar needs to copy it to its slab. */
export interface ResolvedDeviceTensor {
  dtype: Dtype;
  shape: number[];
  length: number;
  device: { index: number; ipcHandle: Uint8Array; offset: number };
}

export const IPC_HANDLE_BYTES = 64;

export function checkDeviceTensor(t: DeviceTensor): ResolvedDeviceTensor {
  const dtype = parseDtype(t.dtype);
  const { shape } = t;
  if (!Array.isArray(shape) || shape.length === 0 || shape.length > 16 || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new InvalidArgumentError(`a device tensor's shape must be 1 to 16 non-negative integers (no -1), got ${safeJson(shape)}`);
  }
  if (!Number.isSafeInteger(t.device) || t.device < 0) throw new InvalidArgumentError(`device must be a CUDA device index (a non-negative integer), got ${String(t.device)}`);
  if (!(t.ipcHandle instanceof Uint8Array) || t.ipcHandle.byteLength !== IPC_HANDLE_BYTES) {
    throw new InvalidArgumentError(`ipcHandle must be the ${IPC_HANDLE_BYTES} bytes of a cudaIpcMemHandle_t, got ${t.ipcHandle instanceof Uint8Array ? `${t.ipcHandle.byteLength} bytes` : safeJson(t.ipcHandle)}`);
  }
  const offset = t.offset ?? 0;
  if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidArgumentError(`offset must be a non-negative integer, got ${String(offset)}`);
  const length = shape.reduce((a, b) => a * b, 1) * itemSize(dtype);
  return { dtype, shape: [...shape], length, device: { index: t.device, ipcHandle: Uint8Array.from(t.ipcHandle), offset } };
}
