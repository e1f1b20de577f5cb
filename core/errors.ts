/**
 * Every error Sidecar raises is a {@link SidecarError} subclass with a stable
 * `code`. Codes travel on the wire (a server answers a bad request with
 * `{ error: { code, message } }`) and the client turns them back into the same
 * class, so `err instanceof ObjectTooLargeError` works across processes.
 *
 * Foreign errors (NATS, fs, UCX, CUDA) are wrapped once where they enter and
 * kept as `cause`.
 */

/** Stable error codes, one per condition. The README's table mirrors this. */
export const ErrorCode = {
  INVALID_CONFIG: "SC_INVALID_CONFIG",
  INVALID_ARGUMENT: "SC_INVALID_ARGUMENT",
  UNKNOWN_DTYPE: "SC_UNKNOWN_DTYPE",
  TENSOR_SHAPE: "SC_TENSOR_SHAPE",
  UNSUPPORTED_OBJECT: "SC_UNSUPPORTED_OBJECT",
  OBJECT_TOO_LARGE: "SC_OBJECT_TOO_LARGE",
  SLAB_CAPACITY: "SC_SLAB_CAPACITY",
  UNKNOWN_CHUNK: "SC_UNKNOWN_CHUNK",
  CLOSED: "SC_CLOSED",
  NATS_UNREACHABLE: "SC_NATS_UNREACHABLE",
  PEER_UNREACHABLE: "SC_PEER_UNREACHABLE",
  TIMEOUT: "SC_TIMEOUT",
  ABORTED: "SC_ABORTED",
  NOT_IMPLEMENTED: "SC_NOT_IMPLEMENTED",
  BAD_MESSAGE: "SC_BAD_MESSAGE",
  TRANSFER_FAILED: "SC_TRANSFER_FAILED",
  MOCK_MAPPING: "SC_MOCK_MAPPING",
  NATIVE_LOAD: "SC_NATIVE_LOAD",
  SLAB_MAP: "SC_SLAB_MAP",
  UCX: "SC_UCX",
  CUDA_UNAVAILABLE: "SC_CUDA_UNAVAILABLE",
  CUDA: "SC_CUDA",
  INTERNAL: "SC_INTERNAL",
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Base class of every error Sidecar raises. */
export class SidecarError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
  /** The wire form of this error, as carried in an error reply. */
  toWire(): { code: ErrorCode; message: string; requested?: number; capacity?: number } {
    const extra = this as unknown as { requested?: number; capacity?: number; bytes?: number; limit?: number };
    const requested = extra.requested ?? extra.bytes;
    const capacity = extra.capacity ?? extra.limit;
    return { code: this.code, message: this.message, ...(requested !== undefined ? { requested } : {}), ...(capacity !== undefined ? { capacity } : {}) };
  }
}

/** Client or server configuration is invalid (rank not in group, no memory hint, …). */
export class ConfigError extends SidecarError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.INVALID_CONFIG, message, options);
  }
}

/** An argument to an API call is invalid (send to self, negative rank, bad chunk id, …). */
export class InvalidArgumentError extends SidecarError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.INVALID_ARGUMENT, message, options);
  }
}

/** A dtype name Sidecar does not know. */
export class UnknownDtypeError extends SidecarError {
  readonly dtype: string;
  constructor(dtype: string) {
    super(ErrorCode.UNKNOWN_DTYPE, `unknown dtype ${JSON.stringify(dtype)}; expected one of bool, uint8, int8, int16, int32, int64, float16, bfloat16, float32, float64`);
    this.dtype = dtype;
  }
}

/** A tensor's bytes do not match its dtype and shape, or a shape is malformed. */
export class TensorShapeError extends SidecarError {
  constructor(message: string) {
    super(ErrorCode.TENSOR_SHAPE, message);
  }
}

/** A value that is neither a tensor nor a supported small object. */
export class UnsupportedObjectError extends SidecarError {
  constructor(message: string) {
    super(ErrorCode.UNSUPPORTED_OBJECT, message);
  }
}

/** A small object whose encoding exceeds what one control message can carry. */
export class ObjectTooLargeError extends SidecarError {
  readonly bytes: number;
  readonly limit: number;
  constructor(bytes: number, limit: number) {
    super(ErrorCode.OBJECT_TOO_LARGE, `object encodes to ${bytes} bytes; the control plane carries at most ${limit} bytes inline (NATS max_payload); send it as a tensor instead`);
    this.bytes = bytes;
    this.limit = limit;
  }
}

/** A request that can never fit in the slab, however long it waits. */
export class SlabCapacityError extends SidecarError {
  readonly requested: number;
  readonly capacity: number;
  constructor(requested: number, capacity: number, which: string) {
    super(ErrorCode.SLAB_CAPACITY, `${which} slab can never hold ${requested} bytes: its whole capacity is ${capacity} bytes (raise SIDECAR_SHM_SIZE or split the data into chunks)`);
    this.requested = requested;
    this.capacity = capacity;
  }
}

/** markDone (or a release) of a chunk this sidecar does not hold. */
export class UnknownChunkError extends SidecarError {
  constructor(message: string) {
    super(ErrorCode.UNKNOWN_CHUNK, message);
  }
}

/** The client or server was shut down. */
export class ClosedError extends SidecarError {
  constructor(message = "sidecar client is shut down") {
    super(ErrorCode.CLOSED, message);
  }
}

/** NATS could not be reached. */
export class NatsUnreachableError extends SidecarError {
  readonly url: string;
  constructor(url: string, options?: { cause?: unknown }) {
    super(ErrorCode.NATS_UNREACHABLE, `cannot reach NATS at ${url}: ${(options?.cause as Error | undefined)?.message ?? "connection failed"}`, options);
    this.url = url;
  }
}

/** No sidecar answers on a rank's subjects. */
export class PeerUnreachableError extends SidecarError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.PEER_UNREACHABLE, message, options);
  }
}

/** A wait ran past its deadline. */
export class TimeoutError extends SidecarError {
  constructor(message: string) {
    super(ErrorCode.TIMEOUT, message);
  }
}

/** A wait was cancelled through its AbortSignal. */
export class AbortedError extends SidecarError {
  constructor(message = "operation aborted") {
    super(ErrorCode.ABORTED, message);
  }
}

/** A feature this build does not have. */
export class NotImplementedError extends SidecarError {
  constructor(message: string) {
    super(ErrorCode.NOT_IMPLEMENTED, message);
  }
}

/** A control message that failed decoding or schema validation. */
export class BadMessageError extends SidecarError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.BAD_MESSAGE, message, options);
  }
}

/** A transfer failed after it started (peer gone, data plane error, …). */
export class TransferFailedError extends SidecarError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.TRANSFER_FAILED, message, options);
  }
}

/** Mock mode: the mapping is missing, malformed or lacks a key. */
export class MockMappingError extends SidecarError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.MOCK_MAPPING, message, options);
  }
}

/** The native addon could not be loaded. */
export class NativeLoadError extends SidecarError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.NATIVE_LOAD, message, options);
  }
}

/** The shared-memory slab could not be created, mapped or unmapped. */
export class SlabMapError extends SidecarError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.SLAB_MAP, message, options);
  }
}

/** A UCX call failed. `status` is UCX's own status name (e.g. UCS_ERR_UNREACHABLE). */
export class UcxError extends SidecarError {
  readonly status: string;
  constructor(message: string, status = "UCS_ERR_UNKNOWN", options?: { cause?: unknown }) {
    super(ErrorCode.UCX, message, options);
    this.status = status;
  }
}

/** CUDA is not usable on this machine (no libcudart, no driver, no device). */
export class CudaUnavailableError extends SidecarError {
  constructor(message: string) {
    super(ErrorCode.CUDA_UNAVAILABLE, message);
  }
}

/** A CUDA runtime call failed. */
export class CudaError extends SidecarError {
  readonly cudaCode: number;
  constructor(message: string, cudaCode = -1) {
    super(ErrorCode.CUDA, message);
    this.cudaCode = cudaCode;
  }
}

/** A bug: something that should not happen. */
export class InternalError extends SidecarError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.INTERNAL, message, options);
  }
}

/** Numeric fields some errors carry across the wire. */
export interface WireError { code: string; message: string; requested?: number; capacity?: number }

/** Rebuilds a typed error from its wire form (an error reply). */
export function errorFromWire(wire: WireError): SidecarError {
  const m = wire.message;
  switch (wire.code) {
    case ErrorCode.INVALID_CONFIG: return new ConfigError(m);
    case ErrorCode.INVALID_ARGUMENT: return new InvalidArgumentError(m);
    case ErrorCode.TENSOR_SHAPE: return new TensorShapeError(m);
    case ErrorCode.UNSUPPORTED_OBJECT: return new UnsupportedObjectError(m);
    case ErrorCode.UNKNOWN_CHUNK: return new UnknownChunkError(m);
    case ErrorCode.CLOSED: return new ClosedError(m);
    case ErrorCode.PEER_UNREACHABLE: return new PeerUnreachableError(m);
    case ErrorCode.TIMEOUT: return new TimeoutError(m);
    case ErrorCode.ABORTED: return new AbortedError(m);
    case ErrorCode.NOT_IMPLEMENTED: return new NotImplementedError(m);
    case ErrorCode.BAD_MESSAGE: return new BadMessageError(m);
    case ErrorCode.TRANSFER_FAILED: return new TransferFailedError(m);
    case ErrorCode.CUDA_UNAVAILABLE: return new CudaUnavailableError(m);
    case ErrorCode.CUDA: return new CudaError(m);
    case ErrorCode.UCX: return new UcxError(m);
    case ErrorCode.SLAB_MAP: return new SlabMapError(m);
    case ErrorCode.MOCK_MAPPING: return new MockMappingError(m);
    case ErrorCode.NATIVE_LOAD: return new NativeLoadError(m);
    case ErrorCode.UNKNOWN_DTYPE: return withMessage(new UnknownDtypeError(/"(.*)"/.exec(m)?.[1] ?? ""), m);
    case ErrorCode.NATS_UNREACHABLE: return withMessage(new NatsUnreachableError(/ at (\S+?):? /.exec(m)?.[1] ?? ""), m);
    case ErrorCode.SLAB_CAPACITY: return withMessage(new SlabCapacityError(wire.requested ?? 0, wire.capacity ?? 0, "remote"), m);
    case ErrorCode.OBJECT_TOO_LARGE: return withMessage(new ObjectTooLargeError(wire.requested ?? 0, wire.capacity ?? 0), m);
    default: return new InternalError(m);
  }
}

function withMessage<E extends Error>(e: E, message: string): E {
  e.message = message;
  return e;
}

/** Wraps anything thrown into a SidecarError (InternalError when it is foreign). */
export function asSidecarError(err: unknown): SidecarError {
  if (err instanceof SidecarError) return err;
  return new InternalError(err instanceof Error ? err.message : String(err), { cause: err });
}
