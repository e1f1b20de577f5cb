import { expect } from "chai";
import type { SmallObject } from "../../client/api.js";
import type { Sidecar } from "../../client/sidecar.js";
import { MiB, TestCluster, nodeName, specsOn, uid } from "./helpers.js";

/** Deep equality that also tells -0 from 0, NaN from NaN, number from bigint and Uint8Array from Buffer. */
function expectExact(got: unknown, want: unknown, path = "value"): void {
  if (typeof want === "number") {
    expect(typeof got, `${path}: type`).to.equal("number");
    expect(Object.is(got, want), `${path}: ${String(got)} is not ${String(want)}`).to.equal(true);
    return;
  }
  if (typeof want === "bigint") {
    expect(typeof got, `${path}: type (a bigint must come back as a bigint)`).to.equal("bigint");
    expect(got === want, `${path}: ${String(got)} !== ${String(want)}`).to.equal(true);
    return;
  }
  if (want instanceof Uint8Array) {
    expect(got, `${path}: a Uint8Array`).to.be.instanceOf(Uint8Array);
    expect((got as Uint8Array).constructor, `${path}: a plain Uint8Array`).to.equal(Uint8Array);
    expect(Buffer.from(got as Uint8Array).equals(Buffer.from(want)), `${path}: bytes`).to.equal(true);
    return;
  }
  if (Array.isArray(want)) {
    expect(Array.isArray(got), `${path}: an array`).to.equal(true);
    expect((got as unknown[]).length, `${path}: length`).to.equal(want.length);
    want.forEach((w, i) => expectExact((got as unknown[])[i], w, `${path}[${i}]`));
    return;
  }
  if (want !== null && typeof want === "object") {
    expect(got !== null && typeof got === "object" && !Array.isArray(got), `${path}: a plain object`).to.equal(true);
    expect(Object.getPrototypeOf(got)).to.equal(Object.prototype);
    expect(Object.keys(got as object), `${path}: keys`).to.deep.equal(Object.keys(want));
    for (const [k, w] of Object.entries(want)) expectExact((got as Record<string, unknown>)[k], w, `${path}.${k}`);
    return;
  }
  expect(got, path).to.equal(want);
}

const CASES: [string, SmallObject][] = [
  ["empty string", ""],
  ["ascii string", "hello, sidecar"],
  ["unicode string", "naïve 日本語 🚀 \u0000 end"],
  ["long string", "x".repeat(100_000)],
  ["zero", 0],
  ["negative zero", -0],
  ["small integer", 7],
  ["negative integer", -123456],
  ["2^32", 2 ** 32],
  ["max safe integer", Number.MAX_SAFE_INTEGER],
  ["min safe integer", Number.MIN_SAFE_INTEGER],
  ["float 0.1", 0.1],
  ["float -2.5e-300", -2.5e-300],
  ["float32-exact 1.5", 1.5],
  ["largest double", Number.MAX_VALUE],
  ["smallest subnormal", Number.MIN_VALUE],
  ["pi", Math.PI],
  ["NaN", NaN],
  ["Infinity", Infinity],
  ["-Infinity", -Infinity],
  ["bigint 0n", 0n],
  ["bigint small", 5n],
  ["bigint negative small", -5n],
  ["bigint 2^63-1", 2n ** 63n - 1n],
  ["bigint -2^63", -(2n ** 63n)],
  ["bigint 2^64-1", 2n ** 64n - 1n],
  ["bigint huge", 2n ** 200n + 12345n],
  ["bigint huge negative", -(3n ** 150n)],
  ["true", true],
  ["false", false],
  ["null", null],
  ["empty bytes", new Uint8Array(0)],
  ["bytes", Uint8Array.from([0, 1, 2, 254, 255, 128, 7])],
  ["empty array", []],
  ["empty object", {}],
  ["mixed array", [1, "two", 3n, null, false, 2.25, new Uint8Array([9, 9]), [[]], {}]],
  ["nested object", {
    a: { b: { c: [1, { d: "deep", e: [true, null, -0.5] }] } },
    tokens: 12n, big: 2n ** 100n, bytes: new Uint8Array([1, 2, 3]),
    "key with spaces": "v", "": "empty key", "日本": 1, "1": "numeric-looking key",
  }],
  ["deeply nested arrays", JSON.parse("[".repeat(40) + "1" + "]".repeat(40)) as SmallObject],
];

describe("integration: small objects", function () {
  this.timeout(60_000);
  let tc: TestCluster;
  let tx: Sidecar;
  let rx1: Sidecar;
  let rx2: Sidecar;
  let rx3: Sidecar;

  before(async () => {
    const node = nodeName("objects");
    tc = await TestCluster.start(specsOn(node, [0, 1, 2, 3], 8 * MiB));
    tx = await tc.connect({ rank: 0, sendTensor: { dtype: "uint8", shape: [-1, 4096] } });
    rx1 = await tc.connect({ rank: 1, recvTensor: { dtype: "uint8", shape: [-1, 4096] } });
    rx2 = await tc.connect({ rank: 2, group: [2, 3], recvTensor: { dtype: "uint8", shape: [-1, 4096] } });
    rx3 = await tc.connect({ rank: 3, group: [2, 3], recvTensor: { dtype: "uint8", shape: [-1, 4096] } });
  });

  after(async () => {
    await tc?.stop();
  });

  for (const [name, value] of CASES) {
    it(`round-trips ${name} exactly`, async () => {
      const id = uid("obj");
      await tx.send(value, { id, dstRanks: [[1]] });
      const got = await rx1.recv(id, 0, { timeoutMs: 10_000 });
      expectExact(got, value);
      expectExact(await rx1.recv(id, 0, { timeoutMs: 10_000 }), value, "second recv");
      expect(await rx1.recv(id, 1, { timeoutMs: 10_000 })).to.equal(null);
      await rx1.markDone(id, 0);
    });
  }

  it("keeps a JSON-parsed __proto__ key as data and never touches prototypes", async () => {
    const id = uid("proto");
    const value = JSON.parse('{"__proto__": {"polluted": 1}, "ok": 2}') as SmallObject;
    await tx.send(value, { id, dstRanks: [[1]] });
    const got = (await rx1.recv(id, 0, { timeoutMs: 10_000 })) as Record<string, unknown>;
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    expect(Object.getPrototypeOf(got)).to.equal(Object.prototype);
    expect(got.ok).to.equal(2);
    expect(Object.prototype.hasOwnProperty.call(got, "__proto__"), "own __proto__ key survives").to.equal(true);
    expect(Object.getOwnPropertyDescriptor(got, "__proto__")?.value).to.deep.equal({ polluted: 1 });
    await rx1.markDone(id, 0);
  });

  it("carries an object close to NATS's payload limit", async () => {
    const id = uid("near-limit");
    const value = { blob: pattern512k(), text: "y".repeat(400_000) };
    await tx.send(value, { id, dstRanks: [[1]] });
    expectExact(await rx1.recv(id, 0, { timeoutMs: 10_000 }), value);
    await rx1.markDone(id, 0);
  });

  it("broadcasts one object to several destination groups at once", async () => {
    const id = uid("bcast");
    const value: SmallObject = { prompt: "describe the image", tokens: [1n, 2n, 3n], temperature: 0.7, stop: null };
    // Receivers wait before the send: group [1] and TP group [2, 3] (head 2; both its members read it).
    const waits = [rx1.recv(id, 0), rx2.recv(id, 0), rx3.recv(id, 0), rx3.recv(id, 0)];
    await tx.send(value, { id, dstRanks: [[1], [2, 3]] });
    const got = await Promise.all(waits);
    got.forEach((g, i) => expectExact(g, value, `receiver ${i}`));
    await rx1.markDone(id, 0);
    await rx2.markDone(id, 0);
    // The second group member's markDone of the same chunk is a no-op, not an error.
    await rx3.markDone(id, 0);
  });

  it("sends the chunks of one id to several groups, objects in any order", async () => {
    const id = uid("bcast-chunks");
    const values: SmallObject[] = ["zero", 1, { two: 2n }, [3], null];
    for (const c of [3, 1, 4, 0, 2]) await tx.send(values[c]!, { id, dstRanks: [[2, 3], [1]], chunkId: c, numChunks: values.length });
    for (const rx of [rx1, rx2, rx3]) {
      for (let c = 0; c < values.length; c++) expectExact(await rx.recv(id, c, { timeoutMs: 10_000 }), values[c], `rank ${rx.rank} chunk ${c}`);
      expect(await rx.recv(id, values.length, { timeoutMs: 10_000 })).to.equal(null);
    }
    for (let c = 0; c < values.length; c++) {
      await rx1.markDone(id, c);
      await rx2.markDone(id, c);
    }
  });
});

function pattern512k(): Uint8Array {
  const out = new Uint8Array(512 * 1024);
  for (let i = 0; i < out.length; i++) out[i] = (i * 31 + (i >> 8)) & 0xff;
  return out;
}
