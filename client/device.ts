import { cuda } from "../native/ucx-cuda/index.js";
import type { Tensor } from "../core/tensor.js";

/** Device memory holding a copy of a tensor; free it with `cuda.free(device, ptr)`. */
export interface DeviceCopy {
  device: number;
  ptr: bigint;
  bytes: number;
}

/**
 * Copies a tensor (typically one `recv` returned, a view of the slab) onto
 * a GPU of this process: a fresh device allocation, host → device on a
 * CUDA stream, waited for without blocking the event loop. Call it before
 * `markDone`.
 *
 * @throws CudaUnavailableError (no usable GPU here, with the reason), CudaError
 * @example
 * const t = (await sc.recv("req-1", 0)) as Tensor;
 * const onGpu = await copyToDevice(t, 0);
 * await sc.markDone("req-1", 0);
 * // … hand onGpu.ptr to a kernel, then:
 * cuda.free(onGpu.device, onGpu.ptr);
 */
export async function copyToDevice(t: Tensor, device: number): Promise<DeviceCopy> {
  const bytes = t.bytes.byteLength;
  const ptr = cuda.malloc(device, Math.max(bytes, 1));
  try {
    if (bytes > 0) await cuda.copyToDevice(device, t.bytes, ptr);
  } catch (err) {
    cuda.free(device, ptr);
    throw err;
  }
  return { device, ptr, bytes };
}
