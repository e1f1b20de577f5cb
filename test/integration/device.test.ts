/**
 * GPU tensors through the API on any machine: argument checks, and (where
 * CUDA is unusable, as on CI) one clear typed error that fails the send,
 * frees its slot and leaves the sidecar working. With a GPU, test/gpu/
 * runs the real device → slab → device round trips.
 */
import { expect } from "chai";
import { CudaUnavailableError, InvalidArgumentError, UnknownDtypeError } from "../../core/errors.js";
import type { DeviceTensor } from "../../client/api.js";
import type { Sidecar } from "../../client/sidecar.js";
import { copyToDevice } from "../../client/device.js";
import { cuda } from "../../native/ucx-cuda/index.js";
import { MiB, TestCluster, expectReject, expectStillWorks, nodeName, specsOn, tensorOf, uid, waitForIdle } from "./helpers.js";

const fakeHandle = () => new Uint8Array(64).fill(7);

describe("integration: GPU tensors in the API", function () {
  this.timeout(60_000);
  let tc: TestCluster;
  let tx: Sidecar;
  let rx: Sidecar;
  const cudaState = cuda.availability();

  before(async () => {
    tc = await TestCluster.start(specsOn(nodeName("device"), [0, 1], 8 * MiB));
    tx = await tc.connect({ rank: 0, sendTensor: { dtype: "float32", shape: [-1, 8] } });
    rx = await tc.connect({ rank: 1, recvTensor: { dtype: "float32", shape: [-1, 8] } });
  });

  after(async () => {
    await tc?.stop();
  });

  it("checks a device tensor's fields before anything is sent", async () => {
    const base: DeviceTensor = { kind: "device", dtype: "float32", shape: [4, 8], device: 0, ipcHandle: fakeHandle() };
    const bad: [Partial<DeviceTensor>, typeof InvalidArgumentError | typeof UnknownDtypeError, string, RegExp][] = [
      [{ ipcHandle: new Uint8Array(10) }, InvalidArgumentError, "SC_INVALID_ARGUMENT", /64 bytes.*got 10 bytes/],
      [{ device: -1 }, InvalidArgumentError, "SC_INVALID_ARGUMENT", /device/],
      [{ shape: [-1, 8] }, InvalidArgumentError, "SC_INVALID_ARGUMENT", /shape/],
      [{ offset: 1.5 }, InvalidArgumentError, "SC_INVALID_ARGUMENT", /offset/],
      [{ dtype: "complex64" }, UnknownDtypeError, "SC_UNKNOWN_DTYPE", /complex64/],
    ];
    for (const [patch, cls, code, message] of bad) {
      await expectReject(tx.send({ ...base, ...patch } as DeviceTensor, { id: uid("dev-bad"), dstRanks: [[1]] }), cls as never, code, message);
    }
    const h = await tc.health(0);
    expect(h.transfers.sending).to.equal(0);
  });

  it("without a usable GPU, a device tensor fails with CudaUnavailableError saying why, and frees its slot", async function () {
    if (cudaState.available) {
      console.log("      (a GPU is present: test/gpu covers device tensors for real)");
      this.skip();
    }
    const id = uid("dev-none");
    const err = await expectReject(
      tx.send({ kind: "device", dtype: "float32", shape: [64, 8], device: 0, ipcHandle: fakeHandle() }, { id, dstRanks: [[1]] }),
      CudaUnavailableError, "SC_CUDA_UNAVAILABLE",
    );
    expect(err.message).to.contain(cudaState.reason.slice(0, 20));
    expect(await rx.recv(id, 0, { timeoutMs: 300 }).catch((e: Error) => e.name)).to.equal("TimeoutError");
    await waitForIdle(tc, 0);
    await expectReject(copyToDevice(tensorOf("float32", [2, 8]), 0), CudaUnavailableError, "SC_CUDA_UNAVAILABLE");
    await expectStillWorks(tx, rx, [[1]]);
    expect(tc.alive(0) && tc.alive(1)).to.equal(true);
  });
});
