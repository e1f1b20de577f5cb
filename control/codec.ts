import { Encoder } from "cbor-x";
import { BadMessageError, UnsupportedObjectError } from "../core/errors.js";
import type { SmallObject } from "../client/api.js";

// Records, tagged classes and Maps are off: a message decodes to plain data
// only (objects, arrays, strings, numbers, bigints, byte strings). 64-bit
// integers come back as bigint, so a bigint sent is a bigint received.
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, int64AsType: "bigint", tagUint8Array: false } as ConstructorParameters<typeof Encoder>[0]);

/** Encodes a control message. */
export function encode(message: unknown): Uint8Array {
  return cbor.encode(message);
}

/** Decodes a control message; anything malformed becomes a BadMessageError. */
export function decode(bytes: Uint8Array): unknown {
  try {
    return cbor.decode(bytes);
  } catch (err) {
    throw new BadMessageError(`undecodable CBOR control message (${bytes.byteLength} bytes): ${(err as Error).message}`, { cause: err });
  }
}

const MAX_DEPTH = 64;

/**
 * Checks that `value` is a small object Sidecar can carry (string, number,
 * bigint, boolean, null, Uint8Array, arrays and plain objects of these).
 * @throws UnsupportedObjectError naming the offending path.
 */
export function checkSmallObject(value: unknown, path = "value", depth = 0): asserts value is SmallObject {
  if (depth > MAX_DEPTH) throw new UnsupportedObjectError(`${path}: nested deeper than ${MAX_DEPTH} levels`);
  switch (typeof value) {
    case "string": case "number": case "bigint": case "boolean": return;
    case "object": {
      if (value === null || value instanceof Uint8Array) return;
      if (Array.isArray(value)) {
        value.forEach((v, i) => checkSmallObject(v, `${path}[${i}]`, depth + 1));
        return;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        throw new UnsupportedObjectError(`${path}: a ${(value as object).constructor?.name ?? "class instance"} is not a small object (use plain objects, arrays, strings, numbers, bigints, booleans, null or Uint8Array)`);
      }
      for (const [k, v] of Object.entries(value)) checkSmallObject(v, `${path}.${k}`, depth + 1);
      return;
    }
    default:
      throw new UnsupportedObjectError(`${path}: a ${typeof value} is not a small object`);
  }
}

/**
 * Turns a decoded value into a small object: byte strings become plain
 * Uint8Arrays, and anything that is not plain data is refused.
 * @throws BadMessageError
 */
export function toSmallObject(value: unknown, depth = 0): SmallObject {
  if (depth > MAX_DEPTH) throw new BadMessageError(`object nested deeper than ${MAX_DEPTH} levels`);
  switch (typeof value) {
    case "string": case "number": case "bigint": case "boolean": return value;
    case "object": {
      if (value === null) return null;
      if (value instanceof Uint8Array) return value.constructor === Uint8Array ? value : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
      if (Array.isArray(value)) return value.map((v) => toSmallObject(v, depth + 1));
      if (Object.getPrototypeOf(value) !== Object.prototype) throw new BadMessageError("object payload holds a non-plain value");
      const out: { [key: string]: SmallObject } = {};
      for (const [k, v] of Object.entries(value)) out[k] = toSmallObject(v, depth + 1);
      return out;
    }
    default:
      throw new BadMessageError(`object payload holds a ${typeof value}`);
  }
}
