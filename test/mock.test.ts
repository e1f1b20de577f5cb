import { expect } from "chai";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MockSidecar } from "../client/mock.js";
import { decodeNpy, encodeNpy } from "../client/formats/npy.js";
import { decodeSafetensors, encodeSafetensors } from "../client/formats/safetensors.js";
import { decodeObjectJson, encodeObjectJson } from "../client/formats/object-json.js";
import type { SmallObject } from "../client/api.js";
import { DTYPES, itemSize, type Dtype } from "../core/dtype.js";
import {
  AbortedError,
  ClosedError,
  ConfigError,
  InvalidArgumentError,
  MockMappingError,
  NotImplementedError,
  TensorShapeError,
  UnsupportedObjectError,
} from "../core/errors.js";
import { Tensor } from "../core/tensor.js";

const SHAPES: number[][] = [[4, 8], [5], [], [2, 0, 3], [2, 3, 4]];

function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Deterministic bytes for a tensor; bool gets 0/1 values. */
function sampleBytes(dtype: Dtype, shape: readonly number[], seed = 1): Uint8Array {
  const n = numelOf(shape) * itemSize(dtype);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = dtype === "bool" ? (i + seed) % 3 === 0 ? 1 : 0 : (i * 37 + seed * 11) & 0xff;
  return out;
}

function sample(dtype: Dtype, shape: readonly number[], seed = 1): Tensor {
  return Tensor.unchecked(dtype, shape, sampleBytes(dtype, shape, seed));
}

function expectSameTensor(got: unknown, want: Tensor): void {
  expect(got).to.be.instanceOf(Tensor);
  const t = got as Tensor;
  expect(t.dtype).to.equal(want.dtype);
  expect([...t.shape]).to.deep.equal([...want.shape]);
  expect(Buffer.from(t.bytes).equals(Buffer.from(want.bytes))).to.equal(true, "tensor bytes differ");
}

function expectThrows(fn: () => unknown, cls: new (...args: never[]) => Error, pattern?: RegExp): Error {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, "expected a throw").to.be.instanceOf(cls);
  if (pattern) expect((caught as Error).message).to.match(pattern);
  return caught as Error;
}

async function expectRejects(p: Promise<unknown>, cls: new (...args: never[]) => Error, pattern?: RegExp): Promise<Error> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  expect(caught, "expected a rejection").to.be.instanceOf(cls);
  if (pattern) expect((caught as Error).message).to.match(pattern);
  return caught as Error;
}

function u64le(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
}

function concat(...parts: (Uint8Array | string)[]): Uint8Array {
  const bufs = parts.map((p) => (typeof p === "string" ? Buffer.from(p, "latin1") : Buffer.from(p)));
  return new Uint8Array(Buffer.concat(bufs));
}

/** Builds a safetensors file from a header string and data bytes (no padding added). */
function rawSafetensors(header: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  return concat(u64le(Buffer.byteLength(header)), header, data);
}

/** Builds a .npy v1.0 file from a header dict string (padded to 64) and data bytes. */
function rawNpy(dict: string, data: Uint8Array = new Uint8Array(0), version = 1): Uint8Array {
  const lenSize = version === 1 ? 2 : 4;
  let header = dict;
  while ((8 + lenSize + header.length + 1) % 64 !== 0) header += " ";
  header += "\n";
  const len = new Uint8Array(lenSize);
  const dv = new DataView(len.buffer);
  if (lenSize === 2) dv.setUint16(0, header.length, true);
  else dv.setUint32(0, header.length, true);
  return concat("\x93NUMPY", new Uint8Array([version, 0]), len, header, data);
}

describe("mock formats: safetensors", () => {
  for (const dtype of DTYPES) {
    it(`round-trips ${dtype} in every shape`, () => {
      for (const shape of SHAPES) {
        const t = sample(dtype, shape);
        const bytes = encodeSafetensors(t);
        const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
        expect(headerLen % 8).to.equal(0, "header is padded to 8 bytes");
        expect(bytes.byteLength).to.equal(8 + headerLen + t.bytes.byteLength);
        expectSameTensor(decodeSafetensors(bytes), t);
      }
    });
  }

  it("writes a known-good file byte for byte", () => {
    const t = Tensor.from(new Float32Array([1, 2]), { dtype: "float32", shape: [2] });
    // 57 bytes of JSON + 7 spaces = 64: the data starts at byte 72.
    const want = concat(
      new Uint8Array([64, 0, 0, 0, 0, 0, 0, 0]),
      '{"data":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}       ',
      new Uint8Array([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40]),
    );
    const got = encodeSafetensors(t);
    expect(Buffer.from(got).toString("hex")).to.equal(Buffer.from(want).toString("hex"));
    const back = decodeSafetensors(want);
    expect(Array.from(back.view() as Float32Array)).to.deep.equal([1, 2]);
  });

  it("uses the safetensors dtype codes", () => {
    const codes: Record<Dtype, string> = { bool: "BOOL", uint8: "U8", int8: "I8", int16: "I16", int32: "I32", int64: "I64", float16: "F16", bfloat16: "BF16", float32: "F32", float64: "F64" };
    for (const dtype of DTYPES) {
      const bytes = encodeSafetensors(sample(dtype, [3]));
      const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString("utf8")) as Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>;
      expect(Object.keys(header)).to.deep.equal(["data"]);
      expect(header.data!.dtype).to.equal(codes[dtype]);
      expect(header.data!.shape).to.deep.equal([3]);
      expect(header.data!.data_offsets).to.deep.equal([0, 3 * itemSize(dtype)]);
    }
  });

  it("reads a file with metadata, several tensors and an unaligned source buffer", () => {
    const a = new Uint8Array([1, 2, 3, 4]);
    const b = new Uint8Array([9, 9]);
    const header = '{"__metadata__":{"format":"pt"},"other":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},"data":{"dtype":"I16","shape":[2],"data_offsets":[0,4]}}';
    const file = rawSafetensors(header, concat(a, b));
    // Place it at an odd offset of a larger buffer.
    const big = new Uint8Array(file.byteLength + 1);
    big.set(file, 1);
    const t = decodeSafetensors(big.subarray(1));
    expect(t.dtype).to.equal("int16");
    expect([...t.shape]).to.deep.equal([2]);
    expect(t.bytes.byteOffset % 2).to.equal(0);
    expect(Array.from(t.view() as Int16Array)).to.deep.equal([0x0201, 0x0403]);
    // Any other name is readable when asked for.
    expect(Array.from(decodeSafetensors(file, "other").bytes)).to.deep.equal([9, 9]);
    // A file whose only tensor has another name is read too.
    const single = rawSafetensors('{"weight":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', new Uint8Array([7]));
    expect(Array.from(decodeSafetensors(single).bytes)).to.deep.equal([7]);
  });

  it("rejects malformed files with typed errors", () => {
    const ok = '{"data":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    const data8 = new Uint8Array(8);
    expectThrows(() => decodeSafetensors(new Uint8Array(5)), MockMappingError, /too short/);
    expectThrows(() => decodeSafetensors(concat(u64le(1000), ok, data8)), MockMappingError, /beyond the end/);
    expectThrows(() => decodeSafetensors(concat(new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0x80]), ok)), MockMappingError, /limit/);
    expectThrows(() => decodeSafetensors(concat(u64le(0))), MockMappingError, /too small/);
    expectThrows(() => decodeSafetensors(rawSafetensors("{not json}", data8)), MockMappingError, /not valid JSON/);
    expectThrows(() => decodeSafetensors(rawSafetensors("[1, 2]")), MockMappingError, /start with/);
    expectThrows(() => decodeSafetensors(rawSafetensors('{"data":{"dtype":"U16","shape":[4],"data_offsets":[0,8]}}', data8)), MockMappingError, /U16.*not supported/);
    expectThrows(() => decodeSafetensors(rawSafetensors('{"data":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', data8)), TensorShapeError, /needs 12/);
    expectThrows(() => decodeSafetensors(rawSafetensors(ok, new Uint8Array(12))), MockMappingError, /data buffer is 12 bytes/);
    expectThrows(() => decodeSafetensors(rawSafetensors('{"data":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', data8)), MockMappingError, /starts at 4/);
    expectThrows(() => decodeSafetensors(rawSafetensors('{"data":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', data8)), MockMappingError, /shape/);
    expectThrows(() => decodeSafetensors(rawSafetensors('{"data":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}', data8)), MockMappingError, /data_offsets/);
    expectThrows(
      () => decodeSafetensors(rawSafetensors('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', new Uint8Array(2))),
      MockMappingError,
      /2 tensors and none is named "data"/,
    );
    expectThrows(() => decodeSafetensors(rawSafetensors("{}")), MockMappingError, /no tensor/);
    expectThrows(() => decodeSafetensors(rawSafetensors('{"__metadata__":{"a":1},"data":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}')), MockMappingError, /__metadata__/);
  });

  it("refuses to encode a tensor whose bytes do not match its shape", () => {
    expectThrows(() => encodeSafetensors(Tensor.unchecked("float32", [3], new Uint8Array(8))), TensorShapeError);
  });
});

describe("mock formats: npy", () => {
  for (const dtype of DTYPES) {
    if (dtype === "bfloat16") {
      it("rejects bfloat16 with a pointer to .safetensors", () => {
        expectThrows(() => encodeNpy(sample("bfloat16", [2])), UnsupportedObjectError, /bfloat16 cannot be stored in \.npy.*\.safetensors/);
      });
      continue;
    }
    it(`round-trips ${dtype} in every shape`, () => {
      for (const shape of SHAPES) {
        const t = sample(dtype, shape);
        const bytes = encodeNpy(t);
        expect((bytes.byteLength - t.bytes.byteLength) % 64).to.equal(0, "data starts at a multiple of 64");
        expect(bytes[bytes.byteLength - t.bytes.byteLength - 1]).to.equal(0x0a, "header ends with a newline");
        expectSameTensor(decodeNpy(bytes), t);
      }
    });
  }

  it("writes a known-good header byte for byte", () => {
    const t = Tensor.from(new Int16Array([1, -2, 3]), { dtype: "int16", shape: [3] });
    // magic, version 1.0, header length 118 (0x76), the dict, 20 spaces NumPy
    // leaves for growing the first axis, 40 spaces of padding to 128, "\n".
    const dict = "{'descr': '<i2', 'fortran_order': False, 'shape': (3,), }";
    const want = concat(
      new Uint8Array([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00, 0x76, 0x00]),
      dict + " ".repeat(20) + " ".repeat(40) + "\n",
      new Uint8Array([0x01, 0x00, 0xfe, 0xff, 0x03, 0x00]),
    );
    expect(want.byteLength).to.equal(128 + 6);
    expect(Buffer.from(encodeNpy(t)).toString("hex")).to.equal(Buffer.from(want).toString("hex"));
    expect(Array.from(decodeNpy(want).view() as Int16Array)).to.deep.equal([1, -2, 3]);
  });

  it("writes the descr codes NumPy uses", () => {
    const want: Partial<Record<Dtype, string>> = { bool: "|b1", uint8: "|u1", int8: "|i1", int16: "<i2", int32: "<i4", int64: "<i8", float16: "<f2", float32: "<f4", float64: "<f8" };
    for (const [dtype, descr] of Object.entries(want)) {
      const header = Buffer.from(encodeNpy(sample(dtype as Dtype, [2, 3]))).toString("latin1", 10, 128);
      expect(header.startsWith(`{'descr': '${descr}', 'fortran_order': False, 'shape': (2, 3), }`)).to.equal(true, header);
    }
  });

  it("reads version 2.0 and 3.0 headers, double quotes and '?'", () => {
    const data = new Uint8Array([1, 0, 2, 0]);
    for (const version of [2, 3]) {
      const t = decodeNpy(rawNpy("{'descr': '<u1', 'fortran_order': False, 'shape': (2, 2), }", data, version));
      expect(t.dtype).to.equal("uint8");
      expect([...t.shape]).to.deep.equal([2, 2]);
    }
    const t = decodeNpy(rawNpy('{"shape": (4,), "fortran_order": False, "descr": "?"}', new Uint8Array([1, 0, 1, 1])));
    expect(t.dtype).to.equal("bool");
    // Fortran order is harmless for one dimension.
    expect(decodeNpy(rawNpy("{'descr': '<i2', 'fortran_order': True, 'shape': (2,), }", data)).dtype).to.equal("int16");
    // Single-byte types ignore byte order.
    expect(decodeNpy(rawNpy("{'descr': '>i1', 'fortran_order': False, 'shape': (4,), }", data)).dtype).to.equal("int8");
  });

  it("rejects malformed files with typed errors", () => {
    const d = (descr: string, shape = "(2,)", fortran = "False") => `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }`;
    const four = new Uint8Array(4);
    expectThrows(() => decodeNpy(concat("\x93NUMPX\x01\x00")), MockMappingError, /magic/);
    expectThrows(() => decodeNpy(concat("\x93NUMPY\x04\x00\x10\x00")), MockMappingError, /version 4\.0/);
    expectThrows(() => decodeNpy(concat("\x93NUMPY\x01\x00\xff\x00{}")), MockMappingError, /beyond the end/);
    expectThrows(() => decodeNpy(concat("\x93NUMPY\x02\x00\x10\x00")), MockMappingError, /header length/);
    expectThrows(() => decodeNpy(rawNpy(d("<u2"), four)), MockMappingError, /not supported/);
    expectThrows(() => decodeNpy(rawNpy(d("<c8"), four)), MockMappingError, /not supported/);
    expectThrows(() => decodeNpy(rawNpy(d(">i2"), four)), MockMappingError, /big-endian/);
    expectThrows(() => decodeNpy(rawNpy(d("<i2", "(2, 1)", "True"), four)), MockMappingError, /Fortran/);
    expectThrows(() => decodeNpy(rawNpy(d("<i2", "(3,)"), four)), TensorShapeError, /needs 6/);
    expectThrows(() => decodeNpy(rawNpy(d("<i2", "(1,)"), four)), TensorShapeError, /needs 2/);
    expectThrows(() => decodeNpy(rawNpy("{'descr': '<i2', 'shape': (2,), }", four)), MockMappingError, /keys/);
    expectThrows(() => decodeNpy(rawNpy("{'descr': '<i2', 'fortran_order': False, 'shape': (2,), 'x': 1, }", four)), MockMappingError, /keys/);
    expectThrows(() => decodeNpy(rawNpy("[1, 2]", four)), MockMappingError, /not a dict/);
    expectThrows(() => decodeNpy(rawNpy("{'descr': '<i2', 'fortran_order': False, 'shape': (2,)", four)), MockMappingError);
    expectThrows(() => decodeNpy(rawNpy(d("<i2", "(-2,)"), four)), MockMappingError, /shape/);
    expectThrows(() => decodeNpy(rawNpy("{'descr': [('a', '<i2')], 'fortran_order': False, 'shape': (2,), }", four)), MockMappingError, /structured/);
    expectThrows(() => decodeNpy(rawNpy("{'descr': '<i2', 'fortran_order': 0, 'shape': (2,), }", four)), MockMappingError, /fortran_order/);
    expectThrows(() => decodeNpy(rawNpy("{'descr': '<i2', 'fortran_order': False, 'shape': (2,), } junk", four)), MockMappingError, /unexpected/);
  });
});

describe("mock formats: object JSON", () => {
  const awkwardKeys: Record<string, SmallObject> = {};
  for (const k of ["", "$", "$bigint", "$object", "$$", "__proto__", "constructor", "toString", "a.b", "1", "0", "ключ", "emoji😀", 'quo"te', "new\nline"]) {
    Object.defineProperty(awkwardKeys, k, { value: `v:${k}`, enumerable: true, writable: true, configurable: true });
  }
  const cases: [string, SmallObject][] = [
    ["a string", "hello"],
    ["an empty string", ""],
    ["unicode and a lone surrogate", "héllo 😀 \ud800 \u0000"],
    ["an integer", 42],
    ["a fraction", 0.1],
    ["a tiny number", 5e-324],
    ["a huge number", 1.7976931348623157e308],
    ["a negative number", -3.5],
    ["zero", 0],
    ["negative zero", -0],
    ["NaN", NaN],
    ["Infinity", Infinity],
    ["-Infinity", -Infinity],
    ["a bigint", 123n],
    ["a huge negative bigint", -(2n ** 200n)],
    ["true", true],
    ["false", false],
    ["null", null],
    ["bytes", new Uint8Array([0, 1, 2, 253, 254, 255])],
    ["empty bytes", new Uint8Array(0)],
    ["an empty array", []],
    ["an empty object", {}],
    ["an array of everything", ["x", 1, -0, NaN, 2n, true, null, new Uint8Array([9]), [], {}]],
    ["awkward keys", awkwardKeys],
    ["tag-like objects", { $number: "NaN", $bytes: "AA==", $bigint: "1", $object: { $object: { $object: 1 } } }],
    ["deep nesting", { a: [{ b: { c: [[[{ $d: [1n, new Uint8Array([1, 2, 3])] }]]] } }], e: { f: { g: Infinity } } }],
  ];
  for (const [name, value] of cases) {
    it(`round-trips ${name}`, () => {
      const text = encodeObjectJson(value);
      expect(() => JSON.parse(text)).not.to.throw();
      const back = decodeObjectJson(text);
      expect(back).to.deep.equal(value);
      if (typeof value === "number") expect(Object.is(back, value)).to.equal(true, `${String(back)} is not ${String(value)}`);
      if (value instanceof Uint8Array) expect((back as object).constructor).to.equal(Uint8Array);
    });
  }

  it("keeps -0 and __proto__ exactly", () => {
    const back = decodeObjectJson(encodeObjectJson([-0, 0])) as number[];
    expect(Object.is(back[0], -0)).to.equal(true);
    expect(Object.is(back[1], 0)).to.equal(true);
    const o = decodeObjectJson(encodeObjectJson(awkwardKeys)) as Record<string, SmallObject>;
    expect(Object.getPrototypeOf(o)).to.equal(Object.prototype);
    expect(Object.prototype.hasOwnProperty.call(o, "__proto__")).to.equal(true);
    expect(Object.getOwnPropertyDescriptor(o, "__proto__")!.value).to.equal("v:__proto__");
    expect(Object.keys(o).sort()).to.deep.equal(Object.keys(awkwardKeys).sort());
  });

  it("writes the documented tagged forms", () => {
    expect(encodeObjectJson(123n)).to.equal('{"$bigint":"123"}');
    expect(encodeObjectJson(new Uint8Array([1, 2, 3]))).to.equal('{"$bytes":"AQID"}');
    expect(encodeObjectJson(Buffer.from("hi"))).to.equal('{"$bytes":"aGk="}');
    expect(encodeObjectJson(NaN)).to.equal('{"$number":"NaN"}');
    expect(encodeObjectJson(-0)).to.equal('{"$number":"-0"}');
    expect(encodeObjectJson(-Infinity)).to.equal('{"$number":"-Infinity"}');
    expect(encodeObjectJson({ $x: 1, y: [true] })).to.equal('{"$object":{"$x":1,"y":[true]}}');
    expect(encodeObjectJson({ a: "b", n: null })).to.equal('{"a":"b","n":null}');
    expect(decodeObjectJson('{"plain": [1, "two", {"three": 3}]}')).to.deep.equal({ plain: [1, "two", { three: 3 }] });
  });

  it("rejects values it cannot encode", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const sparse = [1, , 3];
    const withSymbol = { [Symbol("s")]: 1 };
    const bad: [string, unknown, RegExp][] = [
      ["undefined", undefined, /undefined/],
      ["a function", () => 1, /function/],
      ["a symbol", Symbol("x"), /symbol/],
      ["a Map", new Map(), /Map instance/],
      ["a Set", new Set([1]), /Set instance/],
      ["a Date", new Date(0), /Date instance/],
      ["a class instance", new (class Foo {})(), /Foo instance/],
      ["a Float32Array", new Float32Array(2), /Float32Array instance.*tensors/],
      ["a tensor", sample("uint8", [2]), /Tensor instance/],
      ["a nested undefined", { a: [1, { b: undefined }] }, /value\["a"\]\[1\]\["b"\] is a undefined/],
      ["a cycle", cyclic, /itself/],
      ["a sparse array", sparse, /hole/],
      ["symbol keys", withSymbol, /symbol keys/],
    ];
    for (const [, v, re] of bad) expectThrows(() => encodeObjectJson(v), UnsupportedObjectError, re);
    // Shared (non-cyclic) references are fine.
    const shared = { x: 1 };
    expect(decodeObjectJson(encodeObjectJson([shared, shared]))).to.deep.equal([{ x: 1 }, { x: 1 }]);
  });

  it("rejects malformed object JSON", () => {
    for (const text of [
      "{nope",
      "",
      '{"$bigint":"1.5"}',
      '{"$bigint":12}',
      '{"$number":"nan"}',
      '{"$number":1}',
      '{"$bytes":"A"}',
      '{"$bytes":"!!!!"}',
      '{"$object":[1]}',
      '{"$object":null}',
      '{"$unknown":1}',
      '{"$bigint":"1","extra":2}',
      '[{"ok":1},{"$x":2}]',
    ]) {
      expectThrows(() => decodeObjectJson(text), MockMappingError, /malformed object JSON/);
    }
  });
});

describe("MockSidecar", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "sidecar-mock-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const mapping = (m: Record<string, string>) => JSON.stringify(Object.fromEntries(Object.entries(m).map(([k, v]) => [k, join(dir, v)])));

  describe("open", () => {
    it("rejects a missing or malformed mapping", () => {
      expectThrows(() => MockSidecar.open({ rank: 0 }), MockMappingError, /CORNSERVE_MOCK_SIDECAR_MAPPING/);
      expectThrows(() => MockSidecar.open({ rank: 0, mappingJson: "" }), MockMappingError, /CORNSERVE_MOCK_SIDECAR_MAPPING/);
      expectThrows(() => MockSidecar.open({ rank: 0, mappingJson: "{oops" }), MockMappingError, /not valid JSON/);
      expectThrows(() => MockSidecar.open({ rank: 0, mappingJson: "[]" }), MockMappingError, /an array/);
      expectThrows(() => MockSidecar.open({ rank: 0, mappingJson: "null" }), MockMappingError, /null/);
      expectThrows(() => MockSidecar.open({ rank: 0, mappingJson: '"x"' }), MockMappingError, /JSON object/);
      expectThrows(() => MockSidecar.open({ rank: 0, mappingJson: '{"a-0": 5}' }), MockMappingError, /"a-0" to 5/);
      expectThrows(() => MockSidecar.open({ rank: 0, mappingJson: '{"a-0": ""}' }), MockMappingError, /non-empty/);
      expectThrows(() => MockSidecar.open({ rank: 0, mappingJson: '{"a_0": "x.json"}' }), MockMappingError, /<id>-<chunkId>/);
    });

    it("validates rank, group and hints", () => {
      const mappingJson = "{}";
      expectThrows(() => MockSidecar.open({ rank: -1, mappingJson }), ConfigError);
      expectThrows(() => MockSidecar.open({ rank: 0, group: [1, 2], mappingJson }), ConfigError, /not in its group/);
      expectThrows(() => MockSidecar.open({ rank: 0, group: [], mappingJson }), ConfigError);
      expectThrows(() => MockSidecar.open({ rank: 0, recvTensor: { dtype: "float32", shape: [4, 8] }, mappingJson }), ConfigError, /-1/);
      expect(() => MockSidecar.open({ rank: 0, recvTensor: { dtype: "float99", shape: [-1] }, mappingJson })).to.throw(/unknown dtype/);
      const c = MockSidecar.open({ rank: 3, group: [3, 2], mappingJson });
      expect(c.rank).to.equal(3);
      expect([...c.group]).to.deep.equal([2, 3]);
    });
  });

  it("sends and receives tensors of every dtype through both formats", async () => {
    const m: Record<string, string> = {};
    DTYPES.forEach((dtype, i) => {
      m[`st-${i}`] = `st/${dtype}.safetensors`;
      if (dtype !== "bfloat16") m[`np-${i}`] = `np/${dtype}.npy`;
    });
    const tx = MockSidecar.open({ rank: 0, mappingJson: mapping(m) });
    const rx = MockSidecar.open({ rank: 1, mappingJson: mapping(m) });
    const n = DTYPES.length;
    for (const [i, dtype] of DTYPES.entries()) {
      const t = sample(dtype, [3, 5], i + 2);
      await tx.send(t, { id: "st", dstRanks: [[1]], chunkId: i, numChunks: n });
      expectSameTensor(await rx.recv("st", i), t);
      if (dtype !== "bfloat16") {
        await tx.send(t, { id: "np", dstRanks: [[1]], chunkId: i, numChunks: n });
        expectSameTensor(await rx.recv("np", i), t);
      } else {
        await expectRejects(tx.send(t, { id: "np", dstRanks: [[1]], chunkId: i, numChunks: n }), MockMappingError, /"np-7" is not in the mock mapping/);
      }
    }
    // Files were written in place; no temporary files are left behind.
    expect(readdirSync(join(dir, "st")).sort()).to.deep.equal(DTYPES.map((d) => `${d}.safetensors`).sort());
    expect(readdirSync(join(dir, "np")).every((f) => f.endsWith(".npy"))).to.equal(true);
    // A received tensor's bytes are aligned for a typed-array view.
    const f64 = (await rx.recv("st", DTYPES.indexOf("float64"))) as Tensor;
    expect(f64.bytes.byteOffset % 8).to.equal(0);
    expect(() => f64.view()).not.to.throw();
  });

  it("rejects bfloat16 mapped to .npy with a clear error", async () => {
    const c = MockSidecar.open({ rank: 0, mappingJson: mapping({ "x-0": "x.npy" }) });
    await expectRejects(c.send(sample("bfloat16", [2]), { id: "x", dstRanks: [[1]] }), UnsupportedObjectError, /map this key to a \.safetensors file/);
    expect(existsSync(join(dir, "x.npy"))).to.equal(false);
  });

  it("sends and receives small objects", async () => {
    const value: SmallObject = { prompt: "hi", ids: [1n, 2n], raw: new Uint8Array([1, 2]), score: NaN, nested: { $weird: [-0, null, true] } };
    const c0 = MockSidecar.open({ rank: 0, mappingJson: mapping({ "obj-0": "deep/er/obj.json", "obj-1": "obj1.json" }) });
    const c1 = MockSidecar.open({ rank: 1, mappingJson: mapping({ "obj-0": "deep/er/obj.json", "obj-1": "obj1.json" }) });
    await c0.send(value, { id: "obj", dstRanks: [[1]], stream: true });
    await c0.send("second", { id: "obj", dstRanks: [[1]], chunkId: 1, stream: true });
    await c0.closeStream("obj", 2, [[1]]);
    expect(await c1.recv("obj")).to.deep.equal(value);
    expect(await c1.recv("obj", 1)).to.equal("second");
    const text = readFileSync(join(dir, "deep/er/obj.json"), "utf8");
    expect(text.endsWith("\n")).to.equal(true);
    expect(JSON.parse(text)).to.have.property("prompt", "hi");
  });

  it("returns null past the end of the data", async () => {
    const c = MockSidecar.open({ rank: 1, mappingJson: mapping({ "a-0": "a0.json", "a-1": "a1.safetensors" }) });
    expect(await c.recv("a", 0)).to.equal(null);
    expect(await c.recv("a", 1)).to.equal(null);
    writeFileSync(join(dir, "a0.json"), "[1]");
    expect(await c.recv("a", 0)).to.deep.equal([1]);
  });

  it("rejects keys that are not in the mapping, naming the key and the mapping's keys", async () => {
    const c = MockSidecar.open({ rank: 0, mappingJson: mapping({ "a-0": "a.json", "b-3": "b.json" }) });
    const e1 = await expectRejects(c.recv("a", 1), MockMappingError, /"a-1" is not in the mock mapping/);
    expect(e1.message).to.include('"a-0"').and.include('"b-3"');
    await expectRejects(c.send({ x: 1 }, { id: "zzz", dstRanks: [[1]] }), MockMappingError, /"zzz-0"/);
  });

  it("rejects data that does not fit the file's extension", async () => {
    const c = MockSidecar.open({ rank: 0, mappingJson: mapping({ "t-0": "t.json", "o-0": "o.npy", "s-0": "s.safetensors", "u-0": "u.txt" }) });
    const dst = [[1]];
    await expectRejects(c.send(sample("float32", [2]), { id: "t", dstRanks: dst }), MockMappingError, /tensor/);
    await expectRejects(c.send({ a: 1 }, { id: "o", dstRanks: dst }), MockMappingError, /small object.*\.json/);
    await expectRejects(c.send("s", { id: "s", dstRanks: dst }), MockMappingError, /small object/);
    await expectRejects(c.send("u", { id: "u", dstRanks: dst }), MockMappingError, /extension ".txt"/);
    await expectRejects(c.recv("u"), MockMappingError, /extension ".txt"/);
    await expectRejects(c.send(new Map() as unknown as SmallObject, { id: "t", dstRanks: dst }), UnsupportedObjectError, /Map/);
    await expectRejects(c.send(undefined as unknown as SmallObject, { id: "t", dstRanks: dst }), UnsupportedObjectError);
    const device = { kind: "device" as const, dtype: "float32", shape: [2], device: 0, ipcHandle: new Uint8Array(64) };
    await expectRejects(c.send(device, { id: "s", dstRanks: dst }), NotImplementedError, /host tensors only/);
    expect(readdirSync(dir)).to.deep.equal([]);
  });

  it("validates send, closeStream, recv and markDone arguments like the real client", async () => {
    const c = MockSidecar.open({ rank: 2, group: [2, 3], mappingJson: mapping({ "x-0": "x.json", "x-5": "x5.json" }) });
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ id: "x", dstRanks: [] }, /non-empty/],
      [{ id: "x", dstRanks: [[]] }, /non-empty lists/],
      [{ id: "x", dstRanks: [[-1]] }, /non-negative/],
      [{ id: "x", dstRanks: [[1.5]] }, /non-negative integers/],
      [{ id: "x", dstRanks: [1] }, /lists/],
      [{ id: "x" }, /dstRanks/],
      [{ id: "x", dstRanks: [[0], [2]] }, /own group head 2/],
      [{ id: "x", dstRanks: [[1, 2]] }, /itself/],
      [{ id: "", dstRanks: [[0]] }, /id/],
      [{ id: 5, dstRanks: [[0]] }, /id/],
      [{ id: "x", dstRanks: [[0]], chunkId: -1 }, /chunkId/],
      [{ id: "x", dstRanks: [[0]], chunkId: 0.5 }, /chunkId/],
      [{ id: "x", dstRanks: [[0]], chunkId: 1 }, /out of range/],
      [{ id: "x", dstRanks: [[0]], chunkId: 5, numChunks: 5 }, /out of range/],
      [{ id: "x", dstRanks: [[0]], numChunks: 0 }, /numChunks/],
    ];
    for (const [opts, re] of bad) await expectRejects(c.send("v", opts as never), InvalidArgumentError, re);
    // Sending to the group's other member is allowed by the head rule; to another group is fine.
    await c.send("v", { id: "x", dstRanks: [[0, 1]], chunkId: 5, stream: true });
    await c.send("v", { id: "x", dstRanks: [[4], [0]], chunkId: 5, numChunks: 6 });
    await expectRejects(c.closeStream("x", -1, [[0]]), InvalidArgumentError);
    await expectRejects(c.closeStream("x", 2, [[2]]), InvalidArgumentError, /itself/);
    await expectRejects(c.recv("x", -1), InvalidArgumentError);
    await expectRejects(c.recv("", 0), InvalidArgumentError);
    await expectRejects(c.recv("x", 0, { timeoutMs: -5 }), InvalidArgumentError);
    await expectRejects(c.markDone("x", 1.5), InvalidArgumentError);
    await c.markDone("x", 5);
    await c.closeStream("x", 6, [[0]]);
  });

  it("views received tensors with the recvTensor hint", async () => {
    const m = mapping({ "h-0": "h.safetensors", "h-1": "h.npy" });
    const tx = MockSidecar.open({ rank: 0, mappingJson: m });
    const rx = MockSidecar.open({ rank: 1, recvTensor: { dtype: "float32", shape: [-1, 16] }, mappingJson: m });
    const values = Float32Array.from({ length: 32 }, (_, i) => i * 0.5);
    const t = Tensor.from(values, { dtype: "float32", shape: [4, 8] });
    await tx.send(t, { id: "h", dstRanks: [[1]], numChunks: 2 });
    await tx.send(t, { id: "h", dstRanks: [[1]], chunkId: 1, numChunks: 2 });
    for (const chunk of [0, 1]) {
      const got = (await rx.recv("h", chunk)) as Tensor;
      expect(got.dtype).to.equal("float32");
      expect([...got.shape]).to.deep.equal([2, 16]);
      expect(Array.from(got.view() as Float32Array)).to.deep.equal(Array.from(values));
    }
    // The hint's dtype reinterprets the bytes.
    const rx16 = MockSidecar.open({ rank: 1, recvTensor: { dtype: "int16", shape: [-1, 4] }, mappingJson: m });
    const as16 = (await rx16.recv("h")) as Tensor;
    expect(as16.dtype).to.equal("int16");
    expect([...as16.shape]).to.deep.equal([16, 4]);
    // Without a hint the file's own dtype and shape come back.
    expectSameTensor(await tx.recv("h"), t);
    // A hint that cannot view the data is a TensorShapeError.
    const rx5 = MockSidecar.open({ rank: 1, recvTensor: { dtype: "float32", shape: [-1, 5] }, mappingJson: m });
    await expectRejects(rx5.recv("h"), TensorShapeError);
    const rx64 = MockSidecar.open({ rank: 1, recvTensor: { dtype: "float64", shape: [-1, 3] }, mappingJson: m });
    await expectRejects(rx64.recv("h", 1), TensorShapeError);
  });

  it("rejects malformed files with a MockMappingError naming the path", async () => {
    const files: Record<string, [string, Uint8Array | string]> = {
      "a-0": ["bad.safetensors", new Uint8Array([1, 2, 3])],
      "a-1": ["bad.npy", "not an npy file at all"],
      "a-2": ["bad.json", "{broken"],
      "a-3": ["size.npy", rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", new Uint8Array(8))],
      "a-4": ["badutf8.json", new Uint8Array([0x22, 0xff, 0x22])],
      "a-5": ["tag.json", '{"$bigint": "x"}'],
    };
    const m: Record<string, string> = {};
    for (const [key, [file, content]] of Object.entries(files)) {
      m[key] = file;
      writeFileSync(join(dir, file), content);
    }
    mkdirSync(join(dir, "adir.json"));
    m["a-6"] = "adir.json";
    const c = MockSidecar.open({ rank: 0, mappingJson: mapping(m) });
    for (const [key, [file]] of Object.entries(files)) {
      const chunk = Number(key.split("-")[1]);
      const err = await expectRejects(c.recv("a", chunk), MockMappingError);
      expect(err.message).to.include(join(dir, file));
      expect(err.message).to.include(`"${key}"`);
    }
    const err = await expectRejects(c.recv("a", 6), MockMappingError);
    expect(err.message).to.include(join(dir, "adir.json"));
  });

  it("rejects an already-aborted signal", async () => {
    const c = MockSidecar.open({ rank: 0, mappingJson: mapping({ "a-0": "a.json" }) });
    const ac = new AbortController();
    expect(await c.recv("a", 0, { signal: ac.signal, timeoutMs: 10 })).to.equal(null);
    ac.abort();
    await expectRejects(c.recv("a", 0, { signal: ac.signal }), AbortedError);
  });

  it("rejects every call after shutdown", async () => {
    const c = MockSidecar.open({ rank: 0, mappingJson: mapping({ "a-0": "a.json" }) });
    await c.send(1, { id: "a", dstRanks: [[1]] });
    await c.shutdown();
    await c.shutdown();
    await expectRejects(c.send(1, { id: "a", dstRanks: [[1]] }), ClosedError);
    await expectRejects(c.recv("a"), ClosedError);
    await expectRejects(c.markDone("a"), ClosedError);
    await expectRejects(c.closeStream("a", 1, [[1]]), ClosedError);
  });

  it("replaces files atomically and overwrites earlier data", async () => {
    const c = MockSidecar.open({ rank: 0, mappingJson: mapping({ "a-0": "a.safetensors" }) });
    await c.send(sample("uint8", [4]), { id: "a", dstRanks: [[1]] });
    const t2 = sample("int64", [2, 2], 7);
    await c.send(t2, { id: "a", dstRanks: [[1]] });
    expectSameTensor(await c.recv("a"), t2);
    expect(readdirSync(dir)).to.deep.equal(["a.safetensors"]);
  });
});

describe("mock formats against NumPy (python3)", function () {
  let work: string;
  let numpy = false;
  before(function () {
    try {
      execFileSync("python3", ["-c", "import numpy"], { stdio: "ignore" });
      numpy = true;
    } catch {
      console.log("      (skipping NumPy cross-checks: python3 with numpy is not available)");
      this.skip();
    }
    work = mkdtempSync(join(tmpdir(), "sidecar-mock-np-"));
  });
  after(() => {
    if (numpy) rmSync(work, { recursive: true, force: true });
  });

  const NPY_DTYPES = DTYPES.filter((d) => d !== "bfloat16");
  const NP_NAME: Record<Dtype, string> = { bool: "bool", uint8: "uint8", int8: "int8", int16: "int16", int32: "int32", int64: "int64", float16: "float16", bfloat16: "uint16", float32: "float32", float64: "float64" };

  it("writes .npy files byte for byte as NumPy does, reads NumPy's v1/v2/v3 files, and NumPy reads ours", () => {
    const cases: { name: string; dtype: Dtype; shape: number[]; hex: string }[] = [];
    for (const dtype of NPY_DTYPES) {
      // 20 ones: NumPy's spare growth spaces push this header from 128 to 192 bytes.
      for (const [si, shape] of [...SHAPES, new Array<number>(20).fill(1), [123456789012, 0]].entries()) {
        const name = `${dtype}_${si}`;
        const t = sample(dtype, shape, si + 3);
        writeFileSync(join(work, `ts_${name}.npy`), encodeNpy(t));
        cases.push({ name, dtype, shape, hex: Buffer.from(t.bytes).toString("hex") });
      }
    }
    writeFileSync(join(work, "cases.json"), JSON.stringify(cases));
    const script = `
import json, sys, os
import numpy as np
work = sys.argv[1]
cases = json.load(open(os.path.join(work, "cases.json")))
bad = []
for c in cases:
    want = np.frombuffer(bytes.fromhex(c["hex"]), dtype=np.dtype(c["dtype"])).reshape(c["shape"])
    np.save(os.path.join(work, "np_" + c["name"] + ".npy"), want)
    for v in [(2, 0), (3, 0)]:
        with open(os.path.join(work, "np%d_%s.npy" % (v[0], c["name"])), "wb") as f:
            np.lib.format.write_array(f, want, version=v)
    got = np.load(os.path.join(work, "ts_" + c["name"] + ".npy"))
    if got.dtype != want.dtype or got.shape != want.shape or got.tobytes() != want.tobytes():
        bad.append(c["name"])
print(json.dumps(bad))
`;
    const out = execFileSync("python3", ["-c", script, work], { encoding: "utf8" });
    expect(JSON.parse(out)).to.deep.equal([], "NumPy read these of our files differently");
    for (const c of cases) {
      const ours = readFileSync(join(work, `ts_${c.name}.npy`));
      const theirs = readFileSync(join(work, `np_${c.name}.npy`));
      expect(ours.toString("hex")).to.equal(theirs.toString("hex"), `${c.name}: our .npy differs from NumPy's`);
      const want = Tensor.unchecked(c.dtype, c.shape, new Uint8Array(Buffer.from(c.hex, "hex")));
      for (const prefix of ["np", "np2", "np3"]) {
        expectSameTensor(decodeNpy(readFileSync(join(work, `${prefix}_${c.name}.npy`))), want);
      }
      expect(readFileSync(join(work, `np2_${c.name}.npy`))[6]).to.equal(2);
      expect(readFileSync(join(work, `np3_${c.name}.npy`))[6]).to.equal(3);
    }
  });

  it("writes .safetensors files that an independent Python reader accepts", () => {
    const cases: { name: string; dtype: Dtype; shape: number[]; hex: string }[] = [];
    for (const dtype of DTYPES) {
      for (const [si, shape] of SHAPES.entries()) {
        const name = `${dtype}_${si}`;
        const t = sample(dtype, shape, si + 5);
        writeFileSync(join(work, `ts_${name}.safetensors`), encodeSafetensors(t));
        cases.push({ name, dtype, shape, hex: Buffer.from(t.bytes).toString("hex") });
      }
    }
    writeFileSync(join(work, "st_cases.json"), JSON.stringify({ cases, np: NP_NAME }));
    // Written from the safetensors format description, independently of client/formats.
    const script = `
import json, sys, os, struct
import numpy as np
work = sys.argv[1]
spec = json.load(open(os.path.join(work, "st_cases.json")))
codes = {"BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "I32": "int32", "I64": "int64", "F16": "float16", "BF16": "uint16", "F32": "float32", "F64": "float64"}
bad = []
for c in spec["cases"]:
    raw = open(os.path.join(work, "ts_" + c["name"] + ".safetensors"), "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    text = raw[8:8 + n].decode("utf-8")
    header = json.loads(text)
    info = header["data"]
    data = raw[8 + n:]
    want = np.frombuffer(bytes.fromhex(c["hex"]), dtype=np.dtype(spec["np"][c["dtype"]])).reshape(c["shape"])
    begin, end = info["data_offsets"]
    got = np.frombuffer(data[begin:end], dtype=np.dtype(codes[info["dtype"]])).reshape(info["shape"])
    ok = (n % 8 == 0 and text == text.rstrip(" ") + " " * (len(text) - len(text.rstrip(" ")))
          and list(header.keys()) == ["data"] and begin == 0 and end == len(data)
          and got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes())
    # What the reference serializer writes for one tensor: compact JSON, keys in this order, space padding to 8.
    ref = json.dumps({"data": {"dtype": info["dtype"], "shape": list(want.shape), "data_offsets": [0, want.nbytes]}}, separators=(",", ":"))
    ref += " " * ((8 - len(ref) % 8) % 8)
    if not ok or text != ref:
        bad.append(c["name"])
print(json.dumps(bad))
`;
    const out = execFileSync("python3", ["-c", script, work], { encoding: "utf8" });
    expect(JSON.parse(out)).to.deep.equal([], "the Python reader disagreed on these files");
  });
});
