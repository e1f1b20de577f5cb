/**
 * Shared pieces of the integration tests: every test file starts its own
 * private nats-server and real `sidecar serve` processes (no mocks), with
 * node names unique to this test process so that slab files never collide.
 */
import { expect } from "chai";
import { existsSync } from "node:fs";
import { startCluster, type HealthReply, type LocalCluster, type SidecarSpec } from "../../cluster/localCluster.js";
import { Sidecar } from "../../client/sidecar.js";
import type { RecvValue, SidecarClient, SidecarOptions } from "../../client/api.js";
import { itemSize, type Dtype } from "../../core/dtype.js";
import { SidecarError } from "../../core/errors.js";
import { Tensor } from "../../core/tensor.js";

export const MiB = 1024 * 1024;

/** A node name unique to this test process and file (it names the slab file). */
export function nodeName(tag: string): string {
  return `it-${tag}-${process.pid}`;
}

export function slabFile(node: string): string {
  return `/dev/shm/sidecar-${node}.slab`;
}

/** Ranks `ranks` on one node, each with `shmSize` bytes of slab. */
export function specsOn(node: string, ranks: number[], shmSize = 16 * MiB, env?: Record<string, string>): SidecarSpec[] {
  return ranks.map((rank) => ({ rank, node, shmSize, ...(env ? { env } : {}) }));
}

/** A cluster plus the clients opened on it, all closed by {@link TestCluster.stop}. */
export class TestCluster {
  private readonly clients: SidecarClient[] = [];
  constructor(readonly cluster: LocalCluster) {}

  static async start(specs: SidecarSpec[], options?: Parameters<typeof startCluster>[1]): Promise<TestCluster> {
    return new TestCluster(await startCluster(specs, options));
  }

  get url(): string {
    return this.cluster.url;
  }

  /** Opens a real client on this cluster's NATS. */
  async connect(options: Omit<SidecarOptions, "natsUrl">): Promise<Sidecar> {
    const c = (await Sidecar.connect({ ...options, natsUrl: this.url })) as Sidecar;
    this.clients.push(c);
    return c;
  }

  health(rank: number): Promise<HealthReply> {
    return this.cluster.health(rank);
  }

  /** The sidecar's logs (for failure messages). */
  logs(rank: number): string {
    return this.cluster.sidecars.get(rank)?.logs() ?? "";
  }

  /** True when the rank's sidecar process is still running. */
  alive(rank: number): boolean {
    const s = this.cluster.sidecars.get(rank);
    return s !== undefined && s.process.exitCode === null && s.process.signalCode === null;
  }

  async stop(): Promise<void> {
    for (const c of this.clients.splice(0)) await c.shutdown().catch(() => {});
    await this.cluster.stop();
  }
}

/** Deterministic, position- and seed-dependent bytes (never constant). */
export function pattern(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = (x + i) & 0xff;
  }
  return out;
}

/** Sample bytes valid for `dtype` (bool: 0/1 only). */
export function sampleBytes(dtype: Dtype, numel: number, seed = 1): Uint8Array {
  const bytes = pattern(numel * itemSize(dtype), seed);
  if (dtype === "bool") for (let i = 0; i < bytes.length; i++) bytes[i] = bytes[i]! & 1;
  return bytes;
}

export function tensorOf(dtype: Dtype, shape: number[], seed = 1): Tensor {
  const numel = shape.reduce((a, b) => a * b, 1);
  return Tensor.from(sampleBytes(dtype, numel, seed), { dtype, shape });
}

/** Asserts a received value is a tensor with exactly this dtype, shape and bytes. */
export function expectTensor(got: RecvValue | null, dtype: string, shape: readonly number[], bytes: Uint8Array, what = "tensor"): Tensor {
  expect(got, `${what}: expected a Tensor`).to.be.instanceOf(Tensor);
  const t = got as Tensor;
  expect(t.dtype, `${what}: dtype`).to.equal(dtype);
  expect([...t.shape], `${what}: shape`).to.deep.equal([...shape]);
  expect(t.bytes.byteLength, `${what}: byte length`).to.equal(bytes.byteLength);
  const same = Buffer.from(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength).equals(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  if (!same) {
    let i = 0;
    while (t.bytes[i] === bytes[i]) i++;
    expect.fail(`${what}: bytes differ first at ${i} (got ${t.bytes[i]}, want ${bytes[i]})`);
  }
  return t;
}

/** Awaits `p` and asserts it rejects with an instance of `cls` whose code is `code`. */
export async function expectReject<E extends Error>(
  p: Promise<unknown> | (() => Promise<unknown>), cls: abstract new (...args: never[]) => E, code: string, message?: RegExp,
): Promise<E> {
  let caught: unknown;
  try {
    await (typeof p === "function" ? p() : p);
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected a rejection with ${cls.name} (${code})`).to.exist;
  expect(caught, `got ${(caught as Error)?.constructor?.name}: ${(caught as Error)?.message}`).to.be.instanceOf(cls);
  expect(caught).to.be.instanceOf(SidecarError);
  expect((caught as SidecarError).code).to.equal(code);
  if (message) expect((caught as Error).message).to.match(message);
  return caught as E;
}

/** Calls `fn` and asserts it throws synchronously (or rejects) with `cls` and `code`. */
export async function expectThrow<E extends Error>(fn: () => unknown, cls: abstract new (...args: never[]) => E, code: string, message?: RegExp): Promise<E> {
  return expectReject(async () => fn(), cls, code, message);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` until it returns true (or a value), failing after `timeoutMs`. */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) expect.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Waits until the rank's send pool holds nothing and nobody waits for memory. */
export async function waitForIdle(tc: TestCluster, rank: number, timeoutMs = 10_000): Promise<HealthReply> {
  let last: HealthReply | undefined;
  const idle = async () => {
    last = await tc.health(rank);
    return last.send.usedBytes === 0 && last.send.waiting === 0 && last.recv.usedBytes === 0 && last.recv.waiting === 0;
  };
  try {
    await waitFor(idle, `rank ${rank} to release all memory`, timeoutMs);
  } catch (err) {
    (err as Error).message += ` (last: ${JSON.stringify(last && { send: last.send, recv: last.recv })})`;
    throw err;
  }
  return last!;
}

let unique = 0;
/** A transfer id unique in this test process. */
export function uid(prefix = "t"): string {
  unique += 1;
  return `${prefix}-${process.pid}-${unique}`;
}

/** Fisher–Yates with a seeded generator: a reproducible random order. */
export function shuffled<T>(items: readonly T[], seed = 7): T[] {
  const out = [...items];
  let x = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    const j = x % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * Proves a sender/receiver pair still works: a fresh tensor and a fresh
 * object go through byte-exact, and the chunks are released.
 */
export async function expectStillWorks(tx: SidecarClient, rx: SidecarClient, dstRanks: number[][]): Promise<void> {
  const id = uid("still");
  const t = tensorOf("float32", [4, 8], 99);
  await tx.send(t, { id, dstRanks, numChunks: 2, chunkId: 0 });
  await tx.send({ ok: true, n: 42 }, { id, dstRanks, numChunks: 2, chunkId: 1 });
  expectTensor(await rx.recv(id, 0, { timeoutMs: 10_000 }), "float32", [4, 8], t.bytes, "still-works tensor");
  expect(await rx.recv(id, 1, { timeoutMs: 10_000 })).to.deep.equal({ ok: true, n: 42 });
  expect(await rx.recv(id, 2, { timeoutMs: 10_000 })).to.equal(null);
  await rx.markDone(id, 0);
  await rx.markDone(id, 1);
}

export { existsSync };
