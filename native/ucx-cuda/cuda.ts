import { CudaError, CudaUnavailableError, InvalidArgumentError, SidecarError } from "../../core/errors.js";
import { loadBinding, nativeError, type RawBinding } from "./loader.js";

/** Whether CUDA can be used here, and why not. */
export interface CudaAvailability {
  available: boolean;
  /** What was found, or why CUDA is unusable (library missing, cudaGetDeviceCount error, no devices). */
  reason: string;
  deviceCount: number;
  /** The libcudart that loaded, or null. */
  library: string | null;
}

/**
 * The CUDA runtime, loaded at run time (dlopen of libcudart), so the addon
 * works without CUDA. When CUDA is unusable every call but `availability()`
 * throws (or rejects with) {@link CudaUnavailableError} saying why; CUDA
 * failures become {@link CudaError} with the CUDA error number. Copies and
 * memset run on a stream, waited for off the JS thread.
 *
 * @example
 * const a = cuda.availability();
 * if (a.available) {
 *   const p = cuda.malloc(0, 1 << 20);
 *   await cuda.memset(0, p, 7, 1 << 20);
 *   const host = new Uint8Array(1 << 20);
 *   await cuda.copyToHost(0, p, host);
 *   cuda.free(0, p);
 * } else console.log(a.reason);
 */
export const cuda: {
  availability(): CudaAvailability;
  malloc(device: number, bytes: number): bigint;
  free(device: number, ptr: bigint): void;
  ipcGetHandle(device: number, ptr: bigint): Uint8Array;
  ipcOpenHandle(device: number, handle: Uint8Array): bigint;
  ipcCloseHandle(device: number, ptr: bigint): void;
  copyToHost(device: number, src: bigint, dst: Uint8Array): Promise<void>;
  copyToDevice(device: number, src: Uint8Array, dst: bigint): Promise<void>;
  memset(device: number, ptr: bigint, value: number, bytes: number): Promise<void>;
} = {
  availability(): CudaAvailability {
    let native: RawBinding;
    try {
      native = loadBinding();
    } catch (err) {
      return { available: false, reason: `native addon not loaded: ${(err as Error).message}`, deviceCount: 0, library: null };
    }
    try {
      return { ...(native.cuda.availability() as CudaAvailability) };
    } catch (err) {
      return { available: false, reason: `CUDA probe failed: ${(err as Error).message}`, deviceCount: 0, library: null };
    }
  },
  malloc: (device, bytes) => call((c) => c.malloc(device, bytes)),
  free: (device, ptr) => call((c) => c.free(device, ptr)),
  ipcGetHandle: (device, ptr) => call((c) => c.ipcGetHandle(device, ptr)),
  ipcOpenHandle: (device, handle) => call((c) => c.ipcOpenHandle(device, handle)),
  ipcCloseHandle: (device, ptr) => call((c) => c.ipcCloseHandle(device, ptr)),
  copyToHost: (device, src, dst) => callAsync((c) => c.copyToHost(device, src, dst)),
  copyToDevice: (device, src, dst) => callAsync((c) => c.copyToDevice(device, src, dst)),
  memset: (device, ptr, value, bytes) => callAsync((c) => c.memset(device, ptr, value, bytes)),
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function call<T>(fn: (c: any) => T): T {
  const a = cuda.availability();
  if (!a.available) throw new CudaUnavailableError(`CUDA unavailable: ${a.reason}`);
  try {
    return fn(loadBinding().cuda);
  } catch (err) {
    throw wrap(err);
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function callAsync(fn: (c: any) => Promise<void>): Promise<void> {
  const pending = call(fn);
  try {
    await pending;
  } catch (err) {
    throw wrap(err);
  }
}

function wrap(err: unknown): Error {
  if (err instanceof SidecarError) return err;
  const code = (err as { code?: string })?.code;
  if (code === "SC_CUDA_UNAVAILABLE") return nativeError(err, (m) => new CudaUnavailableError(m));
  if (code === "SC_INVALID_ARGUMENT") return nativeError(err, (m) => new InvalidArgumentError(m));
  return nativeError(err, (m, _s, n) => new CudaError(m, n ?? -1));
}
