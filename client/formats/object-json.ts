/**
 * Object JSON: how mock mode stores a small object in a `.json` file.
 *
 * It is plain JSON, extended with single-key "tagged" objects for the values
 * JSON cannot hold, so every supported value round-trips exactly:
 *
 * | JS value                          | JSON                                  |
 * | --------------------------------- | ------------------------------------- |
 * | string, boolean, null             | itself                                |
 * | finite number other than -0       | itself (shortest round-trip digits)   |
 * | NaN, Infinity, -Infinity, -0      | `{"$number": "NaN"}` (`"Infinity"`, `"-Infinity"`, `"-0"`) |
 * | bigint                            | `{"$bigint": "-123"}` (decimal)       |
 * | Uint8Array (incl. Buffer)         | `{"$bytes": "<standard base64, padded>"}` |
 * | array                             | an array of encoded elements          |
 * | plain object, no key starting `$` | an object of encoded values           |
 * | plain object with a `$…` key      | `{"$object": {<its keys verbatim>: <encoded values>}}` |
 *
 * Inside `$object` the keys are taken verbatim (no tag is recognised at that
 * level); the values are still encoded. When decoding, an object with a key
 * starting with `$` must be exactly one of the four tags above; anything else
 * is malformed. A hand-written JSON file without `$` keys is therefore read
 * as the plain JSON it is. Keys such as `__proto__` are kept as own keys.
 *
 * Decoded objects are plain objects (prototype `Object.prototype`), decoded
 * bytes are `Uint8Array` (never `Buffer`).
 *
 * Not supported (UnsupportedObjectError when encoding): undefined, functions,
 * symbols, symbol keys, sparse arrays, cyclic structures, class instances
 * (Map, Set, Date, typed arrays other than Uint8Array, Tensor, …).
 */
import type { SmallObject } from "../api.js";
import { MockMappingError, UnsupportedObjectError } from "../../core/errors.js";

const TAGS = ["$number", "$bigint", "$bytes", "$object"] as const;
const SPECIAL_NUMBERS: Record<string, number> = { NaN: NaN, Infinity: Infinity, "-Infinity": -Infinity, "-0": -0 };
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Encodes a small object as object JSON (compact, one line).
 *
 * @throws UnsupportedObjectError for any value that is not a supported small object
 */
export function encodeObjectJson(value: unknown): string {
  return encode(value, "value", new Set());
}

function tagged(tag: (typeof TAGS)[number], body: string): string {
  return `{${JSON.stringify(tag)}:${body}}`;
}

function encode(v: unknown, where: string, stack: Set<object>): string {
  switch (typeof v) {
    case "string":
    case "boolean":
      return JSON.stringify(v);
    case "number":
      if (Number.isNaN(v)) return tagged("$number", '"NaN"');
      if (v === Infinity) return tagged("$number", '"Infinity"');
      if (v === -Infinity) return tagged("$number", '"-Infinity"');
      if (Object.is(v, -0)) return tagged("$number", '"-0"');
      return JSON.stringify(v);
    case "bigint":
      return tagged("$bigint", JSON.stringify(v.toString()));
    case "object":
      break;
    default:
      throw new UnsupportedObjectError(`${where} is a ${typeof v}; small objects hold strings, numbers, bigints, booleans, null, Uint8Array, arrays and plain objects`);
  }
  if (v === null) return "null";
  if (v instanceof Uint8Array) {
    return tagged("$bytes", JSON.stringify(Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64")));
  }
  if (stack.has(v)) throw new UnsupportedObjectError(`${where} refers back to itself (cyclic structures cannot be encoded)`);
  stack.add(v);
  try {
    if (Array.isArray(v)) {
      const parts: string[] = [];
      for (let i = 0; i < v.length; i++) {
        if (!(i in v)) throw new UnsupportedObjectError(`${where}[${i}] is a hole (sparse arrays are not supported)`);
        parts.push(encode(v[i], `${where}[${i}]`, stack));
      }
      return `[${parts.join(",")}]`;
    }
    const proto = Object.getPrototypeOf(v) as unknown;
    if (proto !== Object.prototype && proto !== null) {
      const name = (v as { constructor?: { name?: string } }).constructor?.name ?? "object";
      const hint = ArrayBuffer.isView(v) ? " (send typed arrays as tensors, or as a Uint8Array of bytes)" : "";
      throw new UnsupportedObjectError(`${where} is a ${name} instance; small objects hold only plain objects, arrays and primitives${hint}`);
    }
    if (Object.getOwnPropertySymbols(v).length > 0) throw new UnsupportedObjectError(`${where} has symbol keys, which cannot be encoded`);
    const keys = Object.keys(v);
    const parts = keys.map((k) => `${JSON.stringify(k)}:${encode((v as Record<string, unknown>)[k], `${where}[${JSON.stringify(k)}]`, stack)}`);
    const body = `{${parts.join(",")}}`;
    return keys.some((k) => k.startsWith("$")) ? tagged("$object", body) : body;
  } finally {
    stack.delete(v);
  }
}

function malformed(message: string): MockMappingError {
  return new MockMappingError(`malformed object JSON: ${message}`);
}

/**
 * Decodes object JSON back into the small object it was encoded from.
 *
 * @throws MockMappingError when the text is not valid JSON or uses a `$` key that is not a well-formed tag
 */
export function decodeObjectJson(text: string): SmallObject {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw malformed(`not valid JSON (${(err as Error).message})`);
  }
  return decode(json, "$");
}

function setOwn(obj: Record<string, SmallObject>, key: string, value: SmallObject): void {
  // defineProperty keeps keys such as "__proto__" as own data properties.
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function decode(j: unknown, path: string): SmallObject {
  if (j === null || typeof j === "string" || typeof j === "number" || typeof j === "boolean") return j;
  if (Array.isArray(j)) return j.map((e, i) => decode(e, `${path}[${i}]`));
  const obj = j as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (!keys.some((k) => k.startsWith("$"))) return decodeEntries(obj, keys, path);
  if (keys.length !== 1 || !(TAGS as readonly string[]).includes(keys[0]!)) {
    throw malformed(`object at ${path} has keys ${JSON.stringify(keys)}; a key starting with "$" must be a single ${TAGS.join("/")} tag (wrap objects with such keys as {"$object": {...}})`);
  }
  const tag = keys[0]!;
  const body = obj[tag];
  switch (tag) {
    case "$number":
      if (typeof body !== "string" || !Object.prototype.hasOwnProperty.call(SPECIAL_NUMBERS, body)) {
        throw malformed(`$number at ${path} must be one of ${Object.keys(SPECIAL_NUMBERS).map((s) => JSON.stringify(s)).join(", ")}`);
      }
      return SPECIAL_NUMBERS[body]!;
    case "$bigint":
      if (typeof body !== "string" || !/^-?\d+$/.test(body)) throw malformed(`$bigint at ${path} must be a decimal integer string`);
      return BigInt(body);
    case "$bytes": {
      if (typeof body !== "string" || !BASE64.test(body)) throw malformed(`$bytes at ${path} must be a padded standard base64 string`);
      const buf = Buffer.from(body, "base64");
      const out = new Uint8Array(buf.byteLength);
      out.set(buf);
      return out;
    }
    default: {
      if (body === null || typeof body !== "object" || Array.isArray(body)) throw malformed(`$object at ${path} must hold a JSON object`);
      const inner = body as Record<string, unknown>;
      return decodeEntries(inner, Object.keys(inner), path);
    }
  }
}

function decodeEntries(obj: Record<string, unknown>, keys: string[], path: string): SmallObject {
  const out: Record<string, SmallObject> = {};
  for (const k of keys) setOwn(out, k, decode(obj[k], `${path}[${JSON.stringify(k)}]`));
  return out;
}
