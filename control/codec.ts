import { Encoder, addExtension } from "cbor-x";
import { BadMessageError, UnsupportedObjectError } from "../core/errors.js";
import type { SmallObject } from "../client/api.js";

// Records, tagged classes and Maps are off: a message decodes to plain data
// only (objects, arrays, strings, numbers, bigints, byte strings). 64-bit
// integers come back as bigint, so a bigint sent is a bigint received.
//
// Two values plain CBOR decoding would lose are kept exactly:
// - `-0`: cbor-x writes it as the integer 0, so it travels as the one
//   private tag below (tag content null) and decodes back to -0;
// - an own `__proto__` key (JSON.parse makes those): cbor-x renames it when
//   it builds objects, so maps decode as Maps and become plain objects here,
//   with `__proto__` defined as data, never as the prototype.
const NEGATIVE_ZERO_TAG = 51967;
class NegativeZero {}
const NEGATIVE_ZERO = new NegativeZero();
addExtension({ Class: NegativeZero, tag: NEGATIVE_ZERO_TAG, encode: (_v: unknown, enc: (v: unknown) => Uint8Array) => enc(null), decode: () => -0 });

const cbor = new Encoder({ useRecords: false, mapsAsObjects: false, int64AsType: "bigint", tagUint8Array: false } as ConstructorParameters<typeof Encoder>[0]);

// Replaces -0 with its marker; returns the value itself when it holds none (the common case).
function markNegativeZero(v: unknown, depth = 0): unknown {
  if (typeof v === "number") return Object.is(v, -0) ? NEGATIVE_ZERO : v;
  if (v === null || typeof v !== "object" || v instanceof Uint8Array || depth > 128) return v;
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const m = markNegativeZero(v[i], depth + 1);
      if (m !== v[i]) (out ??= v.slice())[i] = m;
    }
    return out ?? v;
  }
  let out: Record<string, unknown> | undefined;
  for (const k of Object.keys(v)) {
    const x = (v as Record<string, unknown>)[k];
    const m = markNegativeZero(x, depth + 1);
    if (m !== x) {
      out ??= copyObject(v as Record<string, unknown>);
      setOwn(out, k, m);
    }
  }
  return out ?? v;
}

function setOwn(o: Record<string, unknown>, k: string, v: unknown): void {
  if (k === "__proto__") Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  else o[k] = v;
}

function copyObject(v: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) setOwn(out, k, v[k]);
  return out;
}

// Maps (every CBOR map) become plain objects with string keys.
function plain(v: unknown, depth = 0): unknown {
  if (v === null || typeof v !== "object" || v instanceof Uint8Array) return v;
  if (depth > 128) throw new BadMessageError("control message nested deeper than 128 levels");
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = plain(v[i], depth + 1);
    return v;
  }
  if (v instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of v) {
      if (typeof k !== "string") throw new BadMessageError(`control message has a map key of type ${typeof k}; keys must be strings`);
      setOwn(out, k, plain(x, depth + 1));
    }
    return out;
  }
  return v;
}

/** Encodes a control message. */
export function encode(message: unknown): Uint8Array {
  return cbor.encode(markNegativeZero(message));
}

/** Decodes a control message; anything malformed becomes a BadMessageError. */
export function decode(bytes: Uint8Array): unknown {
  let raw: unknown;
  try {
    raw = cbor.decode(bytes);
  } catch (err) {
    throw new BadMessageError(`undecodable CBOR control message (${bytes.byteLength} bytes): ${(err as Error).message}`, { cause: err });
  }
  return plain(raw);
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
      for (const [k, v] of Object.entries(value)) setOwn(out, k, toSmallObject(v, depth + 1));
      return out;
    }
    default:
      throw new BadMessageError(`object payload holds a ${typeof value}`);
  }
}
