import { AbortedError, InvalidArgumentError, SidecarError, UcxError } from "../../core/errors.js";
import { loadBinding, nativeError, type RawBinding } from "./loader.js";
import type { SlabMapping } from "./slab.js";

const ALL_TAG_BITS = 0xffff_ffff_ffff_ffffn;

/**
 * A UCX worker (one UCP context and one single-threaded UCP worker) driven
 * by the Node event loop: its event fd is watched with libuv, so nothing
 * busy-polls and nothing blocks the loop. Completions settle Promises.
 *
 * @example
 * const a = UcxWorker.create({ name: "a" });
 * const b = UcxWorker.create({ name: "b" });
 * const ep = a.connect(b.address);
 * const into = new Uint8Array(1024);
 * const got = b.recv(7n, into);
 * await ep.send(7n, new Uint8Array(1024).fill(1));
 * console.log((await got).length); // 1024
 * await ep.close(); await a.close(); await b.close();
 */
export class UcxWorker {
  /** ucp_worker_get_address bytes (a copy); hand these to the peer. */
  readonly address: Uint8Array;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private readonly native: any;
  private closing: Promise<void> | undefined;

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private constructor(native: any) {
    this.native = native;
    this.address = native.address() as Uint8Array;
  }

  /** Creates the context (TAG + WAKEUP features) and the worker. UCX reads its `UCX_*` environment here. */
  static create(options: { name?: string } = {}): UcxWorker {
    const { UcxWorker: Native } = binding();
    try {
      return new UcxWorker(new Native(options.name));
    } catch (err) {
      throw wrap(err);
    }
  }

  get isClosed(): boolean {
    return this.native.isClosed() as boolean;
  }

  /** Registers the whole slab with UCX (ucp_mem_map), an optimisation for transfers in it. Unmapped at close. */
  registerMemory(slab: SlabMapping): void {
    try {
      this.native.registerMemory(slab.native);
    } catch (err) {
      throw wrap(err);
    }
  }

  /**
   * Opens an endpoint to a peer worker's address. Transport failures mark
   * the endpoint failed, reject its pending sends with {@link UcxError} and
   * call `onError`. Where no transport to the peer can report failures (UCX
   * 1.13's shared-memory transports), the endpoint has no error handling:
   * see {@link UcxEndpoint.peerErrorHandling}.
   */
  connect(peerAddress: Uint8Array, onError?: (err: UcxError) => void): UcxEndpoint {
    if (!(peerAddress instanceof Uint8Array)) throw new InvalidArgumentError("connect(peerAddress: Uint8Array)");
    const { UcxEndpoint: Native } = binding();
    // The native callback comes from the worker's settle step; a throwing
    // user callback becomes an uncaught exception, as with any event.
    let endpoint: UcxEndpoint | undefined;
    const nativeOnError = (raw: unknown): void => {
      const err = wrap(raw) as UcxError;
      endpoint?.markFailed(err);
      onError?.(err);
    };
    try {
      endpoint = new UcxEndpoint(this, new Native(this.native, peerAddress, nativeOnError));
    } catch (err) {
      throw wrap(err);
    }
    return endpoint;
  }

  /**
   * Receives the next message whose tag matches `tag` under `tagMask`
   * (default: all bits) into `into`, which stays referenced until done.
   * Rejects with {@link AbortedError} when `signal` aborts first, and with
   * {@link UcxError} `UCS_ERR_MESSAGE_TRUNCATED` when the message is larger
   * than `into`.
   */
  async recv(tag: bigint, into: Uint8Array, options: { tagMask?: bigint; signal?: AbortSignal } = {}): Promise<{ length: number; senderTag: bigint }> {
    const { signal } = options;
    if (signal?.aborted) throw new AbortedError("UCX recv aborted before it was posted");
    let posted: [Promise<{ length: number; senderTag: bigint }>, number];
    try {
      posted = this.native.recv(tag, options.tagMask ?? ALL_TAG_BITS, into);
    } catch (err) {
      throw wrap(err);
    }
    const [promise, id] = posted;
    const onAbort = (): void => this.native.cancel(id);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      return await promise;
    } catch (err) {
      if (signal?.aborted && (err as { status?: string }).status === "UCS_ERR_CANCELED") {
        throw new AbortedError("UCX recv aborted");
      }
      throw wrap(err);
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Cancels pending recvs (they reject with UcxError `UCS_ERR_CANCELED`),
   * closes every endpoint, unmaps registered memory, then destroys the
   * worker and the context. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.native.close();
      } catch (err) {
        throw wrap(err);
      }
    })();
    return this.closing;
  }
}

/** An endpoint to a peer worker; from {@link UcxWorker.connect}. */
export class UcxEndpoint {
  /** The worker this endpoint belongs to (kept alive by it). */
  readonly worker: UcxWorker;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private readonly native: any;
  private failure: UcxError | undefined;
  private closing: Promise<void> | undefined;

  /** @internal */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  constructor(worker: UcxWorker, native: any) {
    this.worker = worker;
    this.native = native;
  }

  get isClosed(): boolean {
    return this.native.isClosed() as boolean;
  }

  /** The transport failure that broke this endpoint, if any. */
  get error(): UcxError | undefined {
    return this.failure;
  }

  /** Whether UCX reports peer failures on this endpoint (UCP_ERR_HANDLING_MODE_PEER). */
  get peerErrorHandling(): boolean {
    return this.native.peerErrorHandling() as boolean;
  }

  /** @internal */
  markFailed(err: UcxError): void {
    this.failure ??= err;
  }

  /** Tag-sends `data` (referenced until done); resolves when UCX completes the send, immediate completions included. */
  async send(tag: bigint, data: Uint8Array): Promise<void> {
    try {
      await this.native.send(tag, data);
    } catch (err) {
      throw wrap(err);
    }
  }

  /** Closes the endpoint, flushing it first (forced when it failed). Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.native.close();
      } catch (err) {
        throw wrap(err);
      }
    })();
    return this.closing;
  }
}

/** The UCX library version, from ucp_get_version_string. */
export function ucxVersion(): string {
  return binding().UcxWorker.version() as string;
}

function binding(): RawBinding {
  return loadBinding();
}

function wrap(err: unknown): Error {
  if (err instanceof SidecarError) return err;
  const code = (err as { code?: string })?.code;
  if (code === "SC_INVALID_ARGUMENT") return nativeError(err, (m) => new InvalidArgumentError(m));
  return nativeError(err, (message, status, _n, cause) => new UcxError(message, status, { cause }));
}
