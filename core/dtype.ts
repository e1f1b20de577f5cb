import { UnknownDtypeError } from "./errors.js";

/** The element types Sidecar moves. Names follow PyTorch/NumPy. */
export const DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64"] as const;
export type Dtype = (typeof DTYPES)[number];

type TypedArrayCtor =
  | Uint8ArrayConstructor | Int8ArrayConstructor | Int16ArrayConstructor | Uint16ArrayConstructor
  | Int32ArrayConstructor | BigInt64ArrayConstructor | Float32ArrayConstructor | Float64ArrayConstructor;

export type TypedArray =
  | Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | BigInt64Array | Float32Array | Float64Array;

interface DtypeInfo { readonly itemSize: number; readonly array: TypedArrayCtor }

// float16 and bfloat16 have no JS element type in Node 20: they are viewed as raw 16-bit words.
const INFO: Record<Dtype, DtypeInfo> = {
  bool: { itemSize: 1, array: Uint8Array },
  uint8: { itemSize: 1, array: Uint8Array },
  int8: { itemSize: 1, array: Int8Array },
  int16: { itemSize: 2, array: Int16Array },
  int32: { itemSize: 4, array: Int32Array },
  int64: { itemSize: 8, array: BigInt64Array },
  float16: { itemSize: 2, array: Uint16Array },
  bfloat16: { itemSize: 2, array: Uint16Array },
  float32: { itemSize: 4, array: Float32Array },
  float64: { itemSize: 8, array: Float64Array },
};

export function isDtype(name: unknown): name is Dtype {
  return typeof name === "string" && Object.prototype.hasOwnProperty.call(INFO, name);
}

/** Checks a dtype name, throwing {@link UnknownDtypeError} for anything else. */
export function parseDtype(name: unknown): Dtype {
  if (!isDtype(name)) throw new UnknownDtypeError(String(name));
  return name;
}

export function itemSize(dtype: Dtype): number {
  return INFO[dtype].itemSize;
}

export function typedArrayFor(dtype: Dtype): TypedArrayCtor {
  return INFO[dtype].array;
}
