/**
 * NumPy `.npy` reader and writer for host tensors (mock mode).
 *
 * Layout (NumPy's format, NEP 1): the magic `\x93NUMPY`, a major and a minor
 * version byte, the header length (uint16 LE in version 1.0, uint32 LE in
 * 2.0 and 3.0), then the header: a Python dict literal
 * `{'descr': '<f4', 'fortran_order': False, 'shape': (4, 8), }` padded with
 * spaces and ended by `\n` so that the data starts at a multiple of 64 bytes.
 * The data follows: the raw elements in C order.
 *
 * The writer produces version 1.0 byte for byte as NumPy does (including the
 * spare spaces NumPy leaves so the first dimension can grow in place); the
 * reader accepts versions 1.0, 2.0 and 3.0. bfloat16 has no NumPy dtype and
 * is rejected: store it in a `.safetensors` file.
 */
import { itemSize, type Dtype } from "../../core/dtype.js";
import { MockMappingError, TensorShapeError, UnsupportedObjectError } from "../../core/errors.js";
import { Tensor } from "../../core/tensor.js";

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const MAGIC_LEN = MAGIC.length + 2; // magic plus the two version bytes
const ARRAY_ALIGN = 64;
const GROWTH_AXIS_MAX_DIGITS = 21;

const DESCR: Record<Dtype, string | null> = {
  bool: "|b1",
  uint8: "|u1",
  int8: "|i1",
  int16: "<i2",
  int32: "<i4",
  int64: "<i8",
  float16: "<f2",
  bfloat16: null,
  float32: "<f4",
  float64: "<f8",
};

/** Type characters + item size → dtype (the byte-order character is checked separately). */
const FROM_KIND: Record<string, Dtype> = {
  b1: "bool",
  u1: "uint8",
  i1: "int8",
  i2: "int16",
  i4: "int32",
  i8: "int64",
  f2: "float16",
  f4: "float32",
  f8: "float64",
};

function malformed(message: string): MockMappingError {
  return new MockMappingError(`malformed .npy data: ${message}`);
}

/** Checks that a tensor's bytes match its dtype and shape, returning the element count. */
export function checkTensorBytes(t: Tensor): number {
  let numel = 1;
  for (const d of t.shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new TensorShapeError(`tensor shape ${JSON.stringify(t.shape)} has an invalid dimension ${d}`);
    numel *= d;
  }
  const expected = numel * itemSize(t.dtype);
  if (t.bytes.byteLength !== expected) {
    throw new TensorShapeError(`tensor ${t.dtype} ${JSON.stringify(t.shape)} needs ${expected} bytes but holds ${t.bytes.byteLength}`);
  }
  return numel;
}

function shapeRepr(shape: readonly number[]): string {
  if (shape.length === 0) return "()";
  if (shape.length === 1) return `(${shape[0]},)`;
  return `(${shape.join(", ")})`;
}

/**
 * Encodes a host tensor as a `.npy` file (version 1.0; 2.0 only if the header
 * cannot fit in 64 KiB, as NumPy does).
 *
 * @throws UnsupportedObjectError for bfloat16, TensorShapeError when the bytes do not match the shape
 */
export function encodeNpy(t: Tensor): Uint8Array {
  checkTensorBytes(t);
  const descr = DESCR[t.dtype];
  if (descr === null || descr === undefined) {
    throw new UnsupportedObjectError(`${t.dtype} cannot be stored in .npy (NumPy has no such dtype); map this key to a .safetensors file`);
  }
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeRepr(t.shape)}, }`;
  if (t.shape.length > 0) dict += " ".repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - String(t.shape[0]).length));
  const hlen = dict.length + 1; // + the final "\n"
  let major = 1;
  let lenSize = 2;
  let padlen = ARRAY_ALIGN - ((MAGIC_LEN + lenSize + hlen) % ARRAY_ALIGN);
  if (hlen + padlen > 0xffff) {
    major = 2;
    lenSize = 4;
    padlen = ARRAY_ALIGN - ((MAGIC_LEN + lenSize + hlen) % ARRAY_ALIGN);
  }
  const headerTotal = hlen + padlen;
  const prefix = MAGIC_LEN + lenSize;
  const out = new Uint8Array(prefix + headerTotal + t.bytes.byteLength);
  out.set(MAGIC, 0);
  out[6] = major;
  out[7] = 0;
  const dv = new DataView(out.buffer);
  if (lenSize === 2) dv.setUint16(8, headerTotal, true);
  else dv.setUint32(8, headerTotal, true);
  const header = dict + " ".repeat(padlen) + "\n";
  for (let i = 0; i < header.length; i++) out[prefix + i] = header.charCodeAt(i);
  out.set(t.bytes, prefix + headerTotal);
  return out;
}

/**
 * Decodes a `.npy` file (versions 1.0, 2.0, 3.0) into a host tensor. The
 * data is copied into a fresh, aligned buffer.
 *
 * @throws MockMappingError for a malformed or unsupported file (bad magic,
 *   header beyond the file, unknown/big-endian dtype, Fortran order, …),
 *   TensorShapeError when the data size does not match the shape
 */
export function decodeNpy(bytes: Uint8Array): Tensor {
  if (bytes.byteLength < MAGIC_LEN + 2 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw malformed("missing the \\x93NUMPY magic");
  }
  const major = bytes[6]!;
  const minor = bytes[7]!;
  if (![1, 2, 3].includes(major) || minor !== 0) throw malformed(`unsupported format version ${major}.${minor} (expected 1.0, 2.0 or 3.0)`);
  const lenSize = major === 1 ? 2 : 4;
  if (bytes.byteLength < MAGIC_LEN + lenSize) throw malformed("file ends inside the header length");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen = lenSize === 2 ? dv.getUint16(MAGIC_LEN, true) : dv.getUint32(MAGIC_LEN, true);
  const dataStart = MAGIC_LEN + lenSize + hlen;
  if (dataStart > bytes.byteLength) throw malformed(`header length ${hlen} extends beyond the end of the file (${bytes.byteLength} bytes)`);
  const headerBytes = bytes.subarray(MAGIC_LEN + lenSize, dataStart);
  let headerText: string;
  if (major === 3) {
    try {
      headerText = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
    } catch {
      throw malformed("version 3.0 header is not valid UTF-8");
    }
  } else {
    headerText = Buffer.from(headerBytes.buffer, headerBytes.byteOffset, headerBytes.byteLength).toString("latin1");
  }
  const header = parseHeader(headerText);
  const dtype = parseDescr(header.descr);
  const shape = header.shape;
  if (header.fortranOrder && shape.length > 1) {
    throw malformed("Fortran-ordered (column-major) arrays are not supported; save a C-ordered array (np.ascontiguousarray)");
  }
  let numel = 1;
  for (const d of shape) numel *= d;
  const expected = numel * itemSize(dtype);
  const available = bytes.byteLength - dataStart;
  if (!Number.isSafeInteger(expected) || available !== expected) {
    throw new TensorShapeError(`.npy data holds ${available} bytes but ${dtype} ${shapeRepr(shape)} needs ${expected}`);
  }
  const data = new Uint8Array(expected);
  data.set(bytes.subarray(dataStart, dataStart + expected));
  return Tensor.unchecked(dtype, shape, data);
}

function parseDescr(descr: unknown): Dtype {
  if (typeof descr !== "string") throw malformed(`structured dtypes are not supported (descr ${JSON.stringify(descr)})`);
  const m = /^([<>|=]?)([a-zA-Z?])(\d*)$/.exec(descr);
  if (!m) throw malformed(`unknown dtype descr ${JSON.stringify(descr)}`);
  const order = m[1]!;
  let kind = m[2]! + m[3]!;
  if (kind === "?") kind = "b1";
  const dtype = FROM_KIND[kind];
  if (dtype === undefined) {
    throw malformed(`dtype descr ${JSON.stringify(descr)} is not supported (supported: ${Object.values(DESCR).filter((d) => d !== null).join(" ")})`);
  }
  if (order === ">" && itemSize(dtype) > 1) throw malformed(`big-endian data (descr ${JSON.stringify(descr)}) is not supported; save it little-endian (arr.astype('${descr.replace(">", "<")}'))`);
  return dtype;
}

interface NpyHeader { descr: unknown; fortranOrder: boolean; shape: number[] }

type PyValue = string | number | boolean | null | PyValue[] | Map<string, PyValue>;

/** Parses NumPy's header: a Python dict literal with exactly the keys descr, fortran_order and shape. */
function parseHeader(text: string): NpyHeader {
  const p = new PyLiteralParser(text);
  const value = p.parseTop();
  if (!(value instanceof Map)) throw malformed("header is not a dict");
  const keys = [...value.keys()].sort();
  if (keys.join(",") !== "descr,fortran_order,shape") throw malformed(`header keys are ${JSON.stringify(keys)}; expected descr, fortran_order and shape`);
  const fortranOrder = value.get("fortran_order");
  if (typeof fortranOrder !== "boolean") throw malformed("fortran_order is not True or False");
  const shape = value.get("shape");
  if (!Array.isArray(shape) || shape.some((d) => typeof d !== "number" || !Number.isSafeInteger(d) || d < 0)) {
    throw malformed(`shape is not a tuple of non-negative integers`);
  }
  return { descr: value.get("descr"), fortranOrder, shape: shape as number[] };
}

class PyLiteralParser {
  private pos = 0;
  constructor(private readonly s: string) {}

  parseTop(): PyValue {
    const v = this.value();
    this.ws();
    if (this.pos !== this.s.length) throw malformed(`unexpected text after the header dict at offset ${this.pos}`);
    return v;
  }

  private ws(): void {
    while (this.pos < this.s.length && /\s/.test(this.s[this.pos]!)) this.pos++;
  }

  private value(): PyValue {
    this.ws();
    const c = this.s[this.pos];
    if (c === undefined) throw malformed("header ends unexpectedly");
    if (c === "{") return this.dict();
    if (c === "(") return this.seq("(", ")");
    if (c === "[") return this.seq("[", "]");
    if (c === "'" || c === '"') return this.str();
    if (/[-+\d]/.test(c)) return this.int();
    for (const [word, v] of [["True", true], ["False", false], ["None", null]] as const) {
      if (this.s.startsWith(word, this.pos)) {
        this.pos += word.length;
        return v;
      }
    }
    throw malformed(`unexpected character ${JSON.stringify(c)} at offset ${this.pos} of the header`);
  }

  private dict(): Map<string, PyValue> {
    this.pos++; // {
    const out = new Map<string, PyValue>();
    for (;;) {
      this.ws();
      if (this.s[this.pos] === "}") {
        this.pos++;
        return out;
      }
      const key = this.value();
      if (typeof key !== "string") throw malformed("header dict has a key that is not a string");
      this.ws();
      if (this.s[this.pos] !== ":") throw malformed(`expected ':' at offset ${this.pos} of the header`);
      this.pos++;
      if (out.has(key)) throw malformed(`header dict repeats the key ${JSON.stringify(key)}`);
      out.set(key, this.value());
      this.ws();
      if (this.s[this.pos] === ",") this.pos++;
      else if (this.s[this.pos] !== "}") throw malformed(`expected ',' or '}' at offset ${this.pos} of the header`);
    }
  }

  private seq(open: string, close: string): PyValue[] {
    this.pos++; // open
    const out: PyValue[] = [];
    for (;;) {
      this.ws();
      if (this.s[this.pos] === close) {
        this.pos++;
        return out;
      }
      out.push(this.value());
      this.ws();
      if (this.s[this.pos] === ",") this.pos++;
      else if (this.s[this.pos] !== close) throw malformed(`expected ',' or '${close}' at offset ${this.pos} of the header (after '${open}')`);
    }
  }

  private str(): string {
    const quote = this.s[this.pos]!;
    this.pos++;
    let out = "";
    for (;;) {
      const c = this.s[this.pos];
      if (c === undefined) throw malformed("unterminated string in the header");
      this.pos++;
      if (c === quote) return out;
      if (c === "\\") {
        const e = this.s[this.pos];
        if (e === undefined) throw malformed("unterminated string in the header");
        this.pos++;
        out += e === "n" ? "\n" : e === "t" ? "\t" : e;
      } else {
        out += c;
      }
    }
  }

  private int(): number {
    const m = /^[-+]?\d+L?/.exec(this.s.slice(this.pos));
    if (!m) throw malformed(`bad number at offset ${this.pos} of the header`);
    this.pos += m[0].length;
    const n = Number(m[0].replace(/L$/, ""));
    if (!Number.isSafeInteger(n)) throw malformed(`number ${m[0]} in the header is out of range`);
    return n;
  }
}
