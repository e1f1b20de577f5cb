import { itemSize, parseDtype, typedArrayFor, type Dtype, type TypedArray } from "./dtype.js";
import { TensorShapeError, UnsupportedObjectError } from "./errors.js";

export interface TensorSpec {
  dtype: Dtype | string;
  shape: readonly number[];
}

/**
 * A dense, row-major tensor on the host: a dtype, a shape and the raw
 * little-endian bytes. A received tensor is a zero-copy view of the sidecar's
 * slab, valid until `markDone` is called for its chunk.
 *
 * @example
 * const t = Tensor.from(new Float32Array(8 * 256), { dtype: "float32", shape: [8, 256] });
 * t.bytes.byteLength; // 8192
 * (t.view() as Float32Array)[0] = 1;
 */
export class Tensor {
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  /** The raw little-endian bytes (a view: no copy is made). */
  readonly bytes: Uint8Array;

  private constructor(dtype: Dtype, shape: readonly number[], bytes: Uint8Array) {
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.bytes = bytes;
  }

  /**
   * Wraps bytes or a typed array as a tensor without copying. One dimension
   * may be `-1`; it is resolved from the byte length. A typed array must match
   * the dtype's element type (`Uint16Array` for float16/bfloat16, `Uint8Array`
   * for bool); a `Uint8Array` is accepted as raw bytes for any dtype.
   *
   * @throws UnknownDtypeError, TensorShapeError
   */
  static from(data: Uint8Array | TypedArray | ArrayBuffer, spec: TensorSpec): Tensor {
    const dtype = parseDtype(spec.dtype);
    const bytes = toBytes(data, dtype);
    const shape = resolveShape(spec.shape, bytes.byteLength, dtype);
    return new Tensor(dtype, shape, bytes);
  }

  /** @internal Builds a tensor from already-checked parts. */
  static unchecked(dtype: Dtype, shape: readonly number[], bytes: Uint8Array): Tensor {
    return new Tensor(dtype, shape, bytes);
  }

  /** Number of elements. */
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /**
   * A typed-array view of the elements (no copy). Needs the byte offset to be
   * aligned to the element size, which slab slots always are.
   */
  view(): TypedArray {
    const Ctor = typedArrayFor(this.dtype);
    const size = itemSize(this.dtype);
    if (this.bytes.byteOffset % size !== 0) {
      throw new TensorShapeError(`tensor bytes at offset ${this.bytes.byteOffset} are not aligned to ${size}; copy them first (bytes.slice())`);
    }
    return new Ctor(this.bytes.buffer as ArrayBuffer, this.bytes.byteOffset, this.bytes.byteLength / size);
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(", ")}])`;
  }
}

function toBytes(data: unknown, dtype: Dtype): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data) && !(data instanceof DataView)) {
    const Ctor = typedArrayFor(dtype);
    if (!(data instanceof Ctor)) {
      throw new TensorShapeError(`a ${data.constructor.name} cannot hold ${dtype} elements; pass a ${Ctor.name} or raw bytes (Uint8Array)`);
    }
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  throw new UnsupportedObjectError(`Tensor.from needs a Uint8Array, a typed array or an ArrayBuffer, got ${describe(data)}`);
}

/** Resolves one `-1` in `shape` so that the shape covers exactly `byteLength` bytes of `dtype`. */
export function resolveShape(shape: readonly number[], byteLength: number, dtype: Dtype): number[] {
  if (!Array.isArray(shape) || shape.length === 0) throw new TensorShapeError(`shape must be a non-empty array of integers, got ${JSON.stringify(shape)}`);
  const size = itemSize(dtype);
  if (byteLength % size !== 0) throw new TensorShapeError(`${byteLength} bytes is not a whole number of ${dtype} elements (${size} bytes each)`);
  const numel = byteLength / size;
  let unknown = -1;
  let known = 1;
  shape.forEach((d, i) => {
    if (d === -1) {
      if (unknown !== -1) throw new TensorShapeError(`shape ${JSON.stringify(shape)} has more than one -1`);
      unknown = i;
    } else if (!Number.isSafeInteger(d) || d < 0) {
      throw new TensorShapeError(`shape ${JSON.stringify(shape)} has an invalid dimension ${d}`);
    } else {
      known *= d;
    }
  });
  const out = [...shape];
  if (unknown !== -1) {
    if (known === 0 || numel % known !== 0) throw new TensorShapeError(`${numel} ${dtype} elements cannot be viewed as ${JSON.stringify(shape)}`);
    out[unknown] = numel / known;
  } else if (known !== numel) {
    throw new TensorShapeError(`shape ${JSON.stringify(shape)} holds ${known} elements but the data has ${numel} ${dtype} elements (${byteLength} bytes)`);
  }
  return out;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "object") return (v as object).constructor?.name ?? "object";
  return typeof v;
}
