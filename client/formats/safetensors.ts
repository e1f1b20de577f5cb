/**
 * `.safetensors` reader and writer for host tensors (mock mode).
 *
 * Layout (Hugging Face safetensors): an unsigned 64-bit little-endian header
 * length N, then N bytes of UTF-8 JSON, then the data buffer. The JSON maps
 * tensor names to `{"dtype": "F32", "shape": [4, 8], "data_offsets": [begin,
 * end]}` (offsets relative to the data buffer) plus an optional
 * `"__metadata__"` map of strings. The header is padded with spaces so the
 * data buffer starts at a multiple of 8 bytes.
 *
 * Mock mode stores one tensor per file, named `"data"`. The reader takes the
 * tensor named `"data"` or, failing that, the file's only tensor.
 */
import type { Dtype } from "../../core/dtype.js";
import { itemSize } from "../../core/dtype.js";
import { MockMappingError, TensorShapeError } from "../../core/errors.js";
import { Tensor } from "../../core/tensor.js";
import { checkTensorBytes } from "./npy.js";

/** The tensor name mock mode writes and prefers when reading. */
export const SAFETENSORS_TENSOR_NAME = "data";

/** Same limit as the reference implementation: a header larger than this is refused. */
const MAX_HEADER_SIZE = 100_000_000;

const CODE: Record<Dtype, string> = {
  bool: "BOOL",
  uint8: "U8",
  int8: "I8",
  int16: "I16",
  int32: "I32",
  int64: "I64",
  float16: "F16",
  bfloat16: "BF16",
  float32: "F32",
  float64: "F64",
};

const FROM_CODE: Record<string, Dtype> = Object.fromEntries(Object.entries(CODE).map(([d, c]) => [c, d as Dtype]));

function malformed(message: string): MockMappingError {
  return new MockMappingError(`malformed .safetensors data: ${message}`);
}

/**
 * Encodes a host tensor as a `.safetensors` file holding one tensor named `name` (default `"data"`).
 *
 * @throws TensorShapeError when the tensor's bytes do not match its shape
 */
export function encodeSafetensors(t: Tensor, name: string = SAFETENSORS_TENSOR_NAME): Uint8Array {
  checkTensorBytes(t);
  const n = t.bytes.byteLength;
  let header = JSON.stringify({ [name]: { dtype: CODE[t.dtype], shape: [...t.shape], data_offsets: [0, n] } });
  const len = Buffer.byteLength(header, "utf8");
  header += " ".repeat((8 - (len % 8)) % 8);
  const headerBytes = Buffer.from(header, "utf8");
  const out = new Uint8Array(8 + headerBytes.byteLength + n);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  out.set(t.bytes, 8 + headerBytes.byteLength);
  return out;
}

interface Entry { name: string; dtype: Dtype | null; code: string; shape: number[]; begin: number; end: number }

/**
 * Decodes a `.safetensors` file into the host tensor named `name` (default
 * `"data"`, or the file's only tensor). The data is copied into a fresh,
 * aligned buffer.
 *
 * @throws MockMappingError for a malformed file (bad header length, header
 *   beyond the file, bad JSON, unknown dtype, offsets that do not tile the
 *   data buffer, …), TensorShapeError when a tensor's byte range does not
 *   match its shape × item size
 */
export function decodeSafetensors(bytes: Uint8Array, name: string = SAFETENSORS_TENSOR_NAME): Tensor {
  if (bytes.byteLength < 8) throw malformed(`file is ${bytes.byteLength} bytes, too short to hold the 8-byte header length`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = dv.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_SIZE)) throw malformed(`header length ${n64} is larger than the ${MAX_HEADER_SIZE}-byte limit`);
  const n = Number(n64);
  if (n < 2) throw malformed(`header length ${n} is too small for a JSON object`);
  if (8 + n > bytes.byteLength) throw malformed(`header length ${n} extends beyond the end of the file (${bytes.byteLength} bytes)`);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    throw malformed("header is not valid UTF-8");
  }
  if (!text.startsWith("{")) throw malformed("header does not start with '{'");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw malformed(`header is not valid JSON (${(err as Error).message})`);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw malformed("header is not a JSON object");

  const dataLength = bytes.byteLength - 8 - n;
  const entries: Entry[] = [];
  for (const [key, info] of Object.entries(json as Record<string, unknown>)) {
    if (key === "__metadata__") {
      if (info === null || typeof info !== "object" || Array.isArray(info) || Object.values(info).some((v) => typeof v !== "string")) {
        throw malformed("__metadata__ is not an object of strings");
      }
      continue;
    }
    entries.push(parseEntry(key, info));
  }
  // The offsets must tile the data buffer exactly, with no gaps or overlaps.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const e of sorted) {
    if (e.begin !== cursor) throw malformed(`tensor ${JSON.stringify(e.name)} starts at ${e.begin}, expected ${cursor} (offsets must tile the data buffer)`);
    cursor = e.end;
  }
  if (cursor !== dataLength) throw malformed(`tensor data ends at ${cursor} but the data buffer is ${dataLength} bytes`);

  const chosen = entries.find((e) => e.name === name) ?? (entries.length === 1 ? entries[0] : undefined);
  if (chosen === undefined) {
    throw malformed(entries.length === 0 ? "file holds no tensor" : `file holds ${entries.length} tensors and none is named ${JSON.stringify(name)}`);
  }
  if (chosen.dtype === null) {
    throw malformed(`dtype ${JSON.stringify(chosen.code)} is not supported (supported: ${Object.values(CODE).join(" ")})`);
  }
  let numel = 1;
  for (const d of chosen.shape) numel *= d;
  const expected = numel * itemSize(chosen.dtype);
  if (expected !== chosen.end - chosen.begin) {
    throw new TensorShapeError(`.safetensors tensor ${JSON.stringify(chosen.name)} has ${chosen.end - chosen.begin} bytes but ${chosen.code} ${JSON.stringify(chosen.shape)} needs ${expected}`);
  }
  const data = new Uint8Array(expected);
  data.set(bytes.subarray(8 + n + chosen.begin, 8 + n + chosen.end));
  return Tensor.unchecked(chosen.dtype, chosen.shape, data);
}

function parseEntry(name: string, info: unknown): Entry {
  if (info === null || typeof info !== "object" || Array.isArray(info)) throw malformed(`entry ${JSON.stringify(name)} is not an object`);
  const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
  if (typeof dtype !== "string") throw malformed(`entry ${JSON.stringify(name)} has no dtype string`);
  if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || (d as number) < 0)) {
    throw malformed(`entry ${JSON.stringify(name)} has a shape that is not a list of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || offsets.some((o) => !Number.isSafeInteger(o) || (o as number) < 0) || (offsets[0] as number) > (offsets[1] as number)) {
    throw malformed(`entry ${JSON.stringify(name)} has data_offsets that are not [begin, end] with 0 <= begin <= end`);
  }
  return { name, dtype: Object.prototype.hasOwnProperty.call(FROM_CODE, dtype) ? FROM_CODE[dtype]! : null, code: dtype, shape: shape as number[], begin: offsets[0] as number, end: offsets[1] as number };
}
