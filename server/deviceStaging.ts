import { cuda } from "../native/ucx-cuda/index.js";

/** Where a producer's GPU tensor is: a CUDA IPC handle of its allocation and the tensor's byte offset in it. */
export interface DeviceSource {
  index: number;
  ipcHandle: Uint8Array;
  offset: number;
}

/**
 * Copies producers' GPU tensors into this server's slab (device → host on a
 * CUDA stream, waited for off the JS thread), so NVLink stays free for the
 * executors. An IPC handle is opened for the copies that need it at once
 * and closed after the last one: the producer may free its memory once
 * `send` resolves. Without CUDA every copy fails with CudaUnavailableError.
 */
export class DeviceStaging {
  private readonly opened = new Map<string, { ptr: bigint; users: number }>();

  /** Copies the bytes `[start, start + into.length)` of the tensor at `src` into `into` (a view of the slab). */
  async copy(src: DeviceSource, into: Uint8Array, start: number): Promise<void> {
    const key = `${src.index}:${Buffer.from(src.ipcHandle).toString("hex")}`;
    let mapping = this.opened.get(key);
    if (!mapping) {
      mapping = { ptr: cuda.ipcOpenHandle(src.index, src.ipcHandle), users: 0 };
      this.opened.set(key, mapping);
    }
    mapping.users += 1;
    try {
      await cuda.copyToHost(src.index, mapping.ptr + BigInt(src.offset + start), into);
    } finally {
      mapping.users -= 1;
      if (mapping.users === 0) {
        this.opened.delete(key);
        cuda.ipcCloseHandle(src.index, mapping.ptr);
      }
    }
  }
}
