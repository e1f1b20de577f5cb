// Needs a CUDA GPU; run by scripts/gpu-tests.sh. Elsewhere every test skips
// after printing why.
import { expect } from "chai";
import { randomFillSync } from "node:crypto";
import { CudaError } from "../../core/errors.js";
import { cuda } from "../../native/ucx-cuda/index.js";

describe("GPU (CUDA runtime through the native addon)", function () {
  this.timeout(120_000);
  const a = cuda.availability();
  const MiB = 1 << 20;

  before(function () {
    if (!a.available) {
      // scripts/gpu-tests.sh sets this: there, no GPU is a failure, not a skip.
      if (process.env.SIDECAR_REQUIRE_GPU === "1") throw new Error(`a GPU is required here, but ${a.reason}`);
      console.log(`      skipping GPU tests: ${a.reason}`);
      this.skip();
    }
    console.log(`      ${a.reason}`);
  });

  it("allocates and frees device memory; bad arguments fail cleanly", async () => {
    const p = cuda.malloc(0, 4 * MiB);
    expect(p).to.be.a("bigint");
    expect(p).to.not.equal(0n);
    await cuda.memset(0, p, 0xab, 4 * MiB);
    const host = new Uint8Array(4 * MiB);
    await cuda.copyToHost(0, p, host);
    expect(host.every((b) => b === 0xab)).to.equal(true);
    cuda.free(0, p);
    expect(() => cuda.malloc(a.deviceCount, 16)).to.throw(/out of range/);
    expect(() => cuda.malloc(0, 1e15)).to.throw(CudaError);
  });

  it("exports a 64-byte IPC handle and refuses malformed ones", () => {
    const p = cuda.malloc(0, MiB);
    const handle = cuda.ipcGetHandle(0, p);
    expect(handle).to.be.instanceOf(Uint8Array);
    expect(handle.length).to.equal(64);
    expect(handle.some((b) => b !== 0)).to.equal(true);
    expect(() => cuda.ipcOpenHandle(0, new Uint8Array(10))).to.throw(/64 bytes/);
    cuda.free(0, p);
  });

  it("opens an IPC handle in a second process and reads the bytes written here", async () => {
    const { spawn } = await import("node:child_process");
    const { fileURLToPath } = await import("node:url");
    const size = 8 * MiB;
    const src = randomFillSync(new Uint8Array(size));
    const p = cuda.malloc(0, size);
    await cuda.copyToDevice(0, src, p);
    const handle = cuda.ipcGetHandle(0, p);
    const peer = fileURLToPath(new URL("./ipc-peer.ts", import.meta.url));
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ["--import", "tsx", peer, Buffer.from(handle).toString("hex"), String(size)], { stdio: ["ignore", "pipe", "inherit"] });
      let s = "";
      child.stdout.on("data", (d: Buffer) => (s += d.toString()));
      child.once("error", reject);
      child.once("exit", (code) => (code === 0 ? resolve(s) : reject(new Error(`ipc peer exited ${code}: ${s}`))));
    });
    const { createHash } = await import("node:crypto");
    expect(out.trim()).to.equal(createHash("sha256").update(src).digest("hex"));
    cuda.free(0, p);
  });

  it("copies host → device → host byte-exact (64 MiB, and an odd size)", async () => {
    for (const size of [64 * MiB, 12345]) {
      const src = randomFillSync(new Uint8Array(size));
      const back = new Uint8Array(size);
      const p = cuda.malloc(0, size);
      await cuda.copyToDevice(0, src, p);
      await cuda.copyToHost(0, p, back);
      expect(Buffer.from(back).equals(Buffer.from(src))).to.equal(true);
      cuda.free(0, p);
    }
  });

  it("device → device through host copies, several concurrently", async () => {
    const n = 4;
    const size = 4 * MiB;
    const srcs = Array.from({ length: n }, () => randomFillSync(new Uint8Array(size)));
    const ptrs = srcs.map(() => cuda.malloc(0, size));
    await Promise.all(srcs.map((s, i) => cuda.copyToDevice(0, s, ptrs[i]!)));
    const hosts = srcs.map(() => new Uint8Array(size));
    await Promise.all(ptrs.map((p, i) => cuda.copyToHost(0, p, hosts[i]!)));
    const second = srcs.map(() => cuda.malloc(0, size));
    await Promise.all(hosts.map((h, i) => cuda.copyToDevice(0, h, second[i]!)));
    const finals = srcs.map(() => new Uint8Array(size));
    await Promise.all(second.map((p, i) => cuda.copyToHost(0, p, finals[i]!)));
    finals.forEach((f, i) => expect(Buffer.from(f).equals(Buffer.from(srcs[i]!)), `copy ${i}`).to.equal(true));
    [...ptrs, ...second].forEach((p) => cuda.free(0, p));
  });
});
