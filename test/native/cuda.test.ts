import { expect } from "chai";
import { CudaUnavailableError } from "../../core/errors.js";
import { cuda } from "../../native/ucx-cuda/index.js";

describe("native CUDA (loaded at run time)", () => {
  const a = cuda.availability();

  it("reports availability with a reason, and never throws", () => {
    expect(a.available).to.be.a("boolean");
    expect(a.reason).to.be.a("string").that.is.not.empty;
    expect(a.deviceCount).to.be.a("number");
    if (a.available) {
      expect(a.deviceCount).to.be.greaterThan(0);
      expect(a.library).to.be.a("string");
    } else {
      expect(a.deviceCount).to.equal(0);
      console.log(`      CUDA unavailable here: ${a.reason}`);
    }
  });

  it("without a usable GPU, every call fails with one CudaUnavailableError saying why", async function () {
    if (a.available) {
      console.log("      (a GPU is present: covered by test/gpu)");
      this.skip();
    }
    const expectUnavailable = (err: unknown) => {
      expect(err).to.be.instanceOf(CudaUnavailableError);
      expect((err as Error).message).to.include("CUDA unavailable").and.include(a.reason);
    };
    const sync: (() => unknown)[] = [
      () => cuda.malloc(0, 1024),
      () => cuda.free(0, 1n),
      () => cuda.ipcGetHandle(0, 1n),
      () => cuda.ipcOpenHandle(0, new Uint8Array(64)),
      () => cuda.ipcCloseHandle(0, 1n),
    ];
    for (const fn of sync) {
      let thrown: unknown;
      try {
        fn();
      } catch (err) {
        thrown = err;
      }
      expectUnavailable(thrown);
    }
    const host = new Uint8Array(16);
    const async: (() => Promise<void>)[] = [
      () => cuda.copyToHost(0, 1n, host),
      () => cuda.copyToDevice(0, host, 1n),
      () => cuda.memset(0, 1n, 0, 16),
    ];
    for (const fn of async) {
      const p = fn();
      expect(p).to.be.instanceOf(Promise);
      let rejected: unknown;
      await p.then(
        () => undefined,
        (err) => (rejected = err),
      );
      expectUnavailable(rejected);
    }
  });
});
