import { SlabMapError, SidecarError } from "../../core/errors.js";
import { loadBinding, nativeError } from "./loader.js";

/**
 * A shared-memory file mapped into this process. `buffer` covers the whole
 * mapping; views of it stay valid until {@link SlabMapping.close}, after which
 * the buffer is detached (every view reads as empty) and the memory unmapped.
 *
 * @example
 * const m = SlabMapping.open("/dev/shm/sidecar-node0.slab", 1 << 20);
 * new Uint8Array(m.buffer, 4096, 16).fill(7);
 * m.close();
 */
export class SlabMapping {
  readonly path: string;
  readonly size: number;
  readonly buffer: ArrayBuffer;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly native: any;
  private closed = false;

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private constructor(path: string, size: number, native: any) {
    this.path = path;
    this.size = size;
    this.native = native;
    this.buffer = native.buffer() as ArrayBuffer;
  }

  /**
   * Opens (creating when missing) and maps `size` bytes of the file at
   * `path`. The file grows to `size` if it is smaller; its memory is reserved
   * up front, so a full /dev/shm fails here. `populate` pre-faults the pages.
   */
  static open(path: string, size: number, options: { populate?: boolean } = {}): SlabMapping {
    const { Slab } = loadBinding();
    try {
      return new SlabMapping(path, size, new Slab(path, size, options.populate ?? false));
    } catch (err) {
      throw wrap(err);
    }
  }

  /** Removes a slab file; false when it was not there. */
  static unlink(path: string): boolean {
    const { Slab } = loadBinding();
    try {
      return Slab.unlink(path) as boolean;
    } catch (err) {
      throw wrap(err);
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Detaches the buffer and unmaps the memory. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close();
  }
}

function wrap(err: unknown): Error {
  if (err instanceof SidecarError) return err;
  return nativeError(err, (message, _status, _n, cause) => new SlabMapError(message, { cause }));
}
