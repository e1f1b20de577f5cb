/**
 * Mock mode: a {@link SidecarClient} that reads and writes files instead of
 * talking to a sidecar server, so an executor can be tested alone.
 *
 * `Sidecar.connect` returns one when `CORNSERVE_MOCK_SIDECAR=1`, passing
 * `CORNSERVE_MOCK_SIDECAR_MAPPING`: JSON `{ "<id>-<chunkId>": "<file path>" }`.
 *
 * - `send` writes the chunk to its mapped file (atomically; parent directories
 *   are created). Host tensors go to `.safetensors` (one tensor named
 *   `"data"`) or `.npy` files, small objects to `.json` files in the object
 *   JSON format of `formats/object-json.ts`.
 * - `recv` reads the mapped file back; a file that does not exist means the
 *   end of the data (`null`). Tensors are viewed with the `recvTensor` hint
 *   when the client has one.
 * - `closeStream` and `markDone` only validate their arguments.
 */
import { mkdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { dirname, extname, basename, join, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import { parseDtype, type Dtype } from "../core/dtype.js";
import {
  AbortedError,
  ClosedError,
  ConfigError,
  InvalidArgumentError,
  MockMappingError,
  NotImplementedError,
  SidecarError,
} from "../core/errors.js";
import { resolveShape, Tensor } from "../core/tensor.js";
import type { RecvOptions, RecvValue, SendData, SendOptions, SidecarClient, TensorHint } from "./api.js";
import { decodeNpy, encodeNpy } from "./formats/npy.js";
import { decodeObjectJson, encodeObjectJson } from "./formats/object-json.js";
import { decodeSafetensors, encodeSafetensors } from "./formats/safetensors.js";
import { checkChunkId, checkCloseStream, checkDstRanks, checkHint, checkId, checkRankGroup, checkRecvOptions, checkSendOptions, isDeviceTensor, safeJson, type ResolvedHint } from "./validate.js";

/** Options of {@link MockSidecar.open}. */
export interface MockSidecarOptions {
  /** The sidecar rank this client pretends to belong to. */
  rank: number;
  /** Its TP group (default `[rank]`); must contain `rank`. */
  group?: readonly number[];
  /** Memory hint for what this client sends (validated, otherwise unused). */
  sendTensor?: TensorHint;
  /** Memory hint for what this client receives; received tensors are viewed with it. */
  recvTensor?: TensorHint;
  /** The mapping JSON (the value of `CORNSERVE_MOCK_SIDECAR_MAPPING`). */
  mappingJson?: string;
}

type FileKind = "safetensors" | "npy" | "json";

const EXTENSIONS: Record<string, FileKind> = { ".safetensors": "safetensors", ".npy": "npy", ".json": "json" };


/** A sidecar client backed by files; see the module comment. */
export class MockSidecar implements SidecarClient {
  readonly rank: number;
  readonly group: readonly number[];
  private readonly mapping: ReadonlyMap<string, string>;
  private readonly recvHint: ResolvedHint | undefined;
  private closed = false;

  private constructor(rank: number, group: readonly number[], mapping: ReadonlyMap<string, string>, recvHint: ResolvedHint | undefined) {
    this.rank = rank;
    this.group = group;
    this.mapping = mapping;
    this.recvHint = recvHint;
  }

  /**
   * Opens a mock client. Relative paths in the mapping are resolved against
   * the current directory now.
   *
   * @throws MockMappingError when the mapping is missing or malformed,
   *   ConfigError when rank, group or a hint is invalid, UnknownDtypeError for a hint's dtype
   */
  static open(options: MockSidecarOptions): MockSidecar {
    if (options === null || typeof options !== "object") throw new ConfigError("MockSidecar.open needs an options object");
    const { rank } = options;
    const group = checkRankGroup(rank, options.group);
    if (options.sendTensor !== undefined) checkHint(options.sendTensor, "sendTensor");
    const recvHint = options.recvTensor === undefined ? undefined : checkHint(options.recvTensor, "recvTensor");
    const mapping = parseMapping(options.mappingJson);
    return new MockSidecar(rank, Object.freeze(group), mapping, recvHint);
  }

  async send(data: SendData, options: SendOptions): Promise<void> {
    this.checkOpen();
    const { chunkId } = checkSendOptions(options, this.group);
    const key = `${options.id}-${chunkId}`;
    const path = this.pathOf(key);
    const kind = kindOf(path, key);

    let bytes: Uint8Array;
    if (data instanceof Tensor) {
      if (kind === "json") throw new MockMappingError(`key ${JSON.stringify(key)} maps to ${path}, a .json file, but the data is a tensor; map it to a .safetensors or .npy file`);
      bytes = kind === "npy" ? encodeNpy(data) : encodeSafetensors(data);
    } else if (isDeviceTensor(data)) {
      throw new NotImplementedError("mock mode stores host tensors only; send a host Tensor (Tensor.from) instead of a device tensor");
    } else {
      if (kind !== "json") throw new MockMappingError(`key ${JSON.stringify(key)} maps to ${path}, a .${kind} file, but the data is a small object; map it to a .json file`);
      bytes = Buffer.from(encodeObjectJson(data) + "\n", "utf8");
    }
    await writeAtomic(path, bytes);
  }

  async closeStream(id: string, numChunks: number, dstRanks: readonly (readonly number[])[]): Promise<void> {
    this.checkOpen();
    checkCloseStream(id, numChunks);
    checkDstRanks(dstRanks, this.group);
  }

  async recv(id: string, chunkId: number = 0, options: RecvOptions = {}): Promise<RecvValue | null> {
    this.checkOpen();
    checkId(id);
    checkChunkId(chunkId);
    checkRecvOptions(options);
    if (options.signal?.aborted) throw new AbortedError(`recv of ${id}-${chunkId} aborted`);
    const key = `${id}-${chunkId}`;
    const path = this.pathOf(key);
    const kind = kindOf(path, key);
    let bytes: Uint8Array;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw new MockMappingError(`cannot read ${path} (mapped from ${JSON.stringify(key)}): ${(err as Error).message}`, { cause: err });
    }
    let value: RecvValue;
    try {
      if (kind === "json") {
        value = decodeObjectJson(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
      } else {
        value = kind === "npy" ? decodeNpy(bytes) : decodeSafetensors(bytes);
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new MockMappingError(`${path} (mapped from ${JSON.stringify(key)}) is not a valid .${kind} file: ${message}`, { cause: err });
    }
    if (value instanceof Tensor && this.recvHint !== undefined) {
      const hint = this.recvHint;
      const shape = resolveShape([-1, ...hint.shape.slice(1)], value.bytes.byteLength, hint.dtype);
      value = Tensor.unchecked(hint.dtype, shape, value.bytes);
    }
    return value;
  }

  async markDone(id: string, chunkId: number = 0): Promise<void> {
    this.checkOpen();
    checkId(id);
    checkChunkId(chunkId);
  }

  /** Closes the client; later calls reject with ClosedError. Calling it again is a no-op. */
  async shutdown(): Promise<void> {
    this.closed = true;
  }

  private checkOpen(): void {
    if (this.closed) throw new ClosedError("mock sidecar client is shut down");
  }

  private pathOf(key: string): string {
    const path = this.mapping.get(key);
    if (path === undefined) {
      const keys = [...this.mapping.keys()];
      const shown = keys.slice(0, 20).map((k) => JSON.stringify(k)).join(", ");
      const more = keys.length > 20 ? `, … (${keys.length - 20} more)` : "";
      throw new MockMappingError(`key ${JSON.stringify(key)} is not in the mock mapping (CORNSERVE_MOCK_SIDECAR_MAPPING); its keys are: ${keys.length === 0 ? "(none)" : shown + more}`);
    }
    return path;
  }

}







function kindOf(path: string, key: string): FileKind {
  const ext = extname(path).toLowerCase();
  const kind = Object.prototype.hasOwnProperty.call(EXTENSIONS, ext) ? EXTENSIONS[ext] : undefined;
  if (kind === undefined) {
    throw new MockMappingError(`key ${JSON.stringify(key)} maps to ${path}, whose extension ${JSON.stringify(ext)} is not one of .safetensors, .npy (tensors) or .json (small objects)`);
  }
  return kind;
}

function parseMapping(json: string | undefined): ReadonlyMap<string, string> {
  if (json === undefined || json.trim() === "") {
    throw new MockMappingError('mock mode needs CORNSERVE_MOCK_SIDECAR_MAPPING: a JSON object {"<id>-<chunkId>": "<file path>"}');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (err) {
    throw new MockMappingError(`CORNSERVE_MOCK_SIDECAR_MAPPING is not valid JSON (${(err as Error).message}); expected {"<id>-<chunkId>": "<file path>"}`, { cause: err });
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new MockMappingError(`CORNSERVE_MOCK_SIDECAR_MAPPING must be a JSON object {"<id>-<chunkId>": "<file path>"}, got ${Array.isArray(parsed) ? "an array" : parsed === null ? "null" : typeof parsed}`);
  }
  const out = new Map<string, string>();
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (typeof value !== "string" || value.length === 0) {
      throw new MockMappingError(`CORNSERVE_MOCK_SIDECAR_MAPPING maps ${JSON.stringify(key)} to ${safeJson(value)}; every value must be a non-empty file path string`);
    }
    if (!/^.+-\d+$/.test(key)) {
      throw new MockMappingError(`CORNSERVE_MOCK_SIDECAR_MAPPING key ${JSON.stringify(key)} is not of the form "<id>-<chunkId>"`);
    }
    out.set(key, resolve(value));
  }
  return out;
}

async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    if (err instanceof SidecarError) throw err;
    throw new MockMappingError(`cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}
