import { connect, ErrorCode as NatsErrorCode, type Msg, type NatsConnection, type Subscription } from "nats";
import {
  AbortedError, BadMessageError, ClosedError, NatsUnreachableError, PeerUnreachableError, SidecarError, TimeoutError,
  asSidecarError, errorFromWire, type WireError,
} from "../core/errors.js";
import { decode, encode } from "./codec.js";
import { validate } from "./schemas.js";
import { ReplyKind, subjectFor, type Kind } from "./subjects.js";

export interface RequestOptions {
  /** Deadline of the request (default 5000 ms; capped at ~24 days). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** `encode(message)`, when the caller already has it (it is sent instead of encoding again). */
  encoded?: Uint8Array;
}

/** Answers one request kind; a thrown error becomes a typed error reply. */
export type Handler = (message: any, info: { subject: string }) => unknown | Promise<unknown>;

/**
 * The control plane as the rest of the runtime sees it: typed, validated
 * request/reply between ranks. Actors and the server never import `nats`;
 * they are handed one of these.
 */
export interface ControlChannel {
  /** Sends a request to `rank`'s `kind` handler and returns its validated reply. */
  request<R>(rank: number, kind: Kind, message: object, options?: RequestOptions): Promise<R>;
  /** Serves `kind` for `rank`: decodes, validates, calls `handler`, replies. */
  serve(rank: number, kind: Kind, handler: Handler): void;
  /** Fire-and-forget publication (the inspection stream). */
  publish(subject: string, message: object): void;
  /** Raw subscription for watchers; returns an unsubscribe function. */
  watch(subject: string, onMessage: (message: unknown, subject: string) => void): () => void;
  /** Largest payload the server accepts (NATS max_payload). */
  readonly maxPayload: number;
  readonly url: string;
  close(): Promise<void>;
}

const MAX_TIMER_MS = 2_147_483_647;
const DEFAULT_TIMEOUT_MS = 5000;

/** A ControlChannel over one NATS connection. */
export class NatsChannel implements ControlChannel {
  readonly url: string;
  private readonly nc: NatsConnection;
  private readonly subs: Subscription[] = [];
  private readonly onServeError: (err: SidecarError, subject: string) => void;
  private closed = false;

  private constructor(url: string, nc: NatsConnection, onServeError: (err: SidecarError, subject: string) => void) {
    this.url = url;
    this.nc = nc;
    this.onServeError = onServeError;
  }

  /**
   * Connects to NATS, failing fast (within `timeoutMs`) with the URL in the error.
   * @throws NatsUnreachableError
   */
  static async connect(url: string, options: { name?: string; timeoutMs?: number; onServeError?: (err: SidecarError, subject: string) => void } = {}): Promise<NatsChannel> {
    try {
      const nc = await connect({
        servers: url,
        name: options.name,
        timeout: options.timeoutMs ?? 5000,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        waitOnFirstConnect: false,
        // nats.js otherwise captures two stack traces (new Error()) per request
        // to decorate errors; our errors carry the subject and rank instead.
        noAsyncTraces: true,
      });
      return new NatsChannel(url, nc, options.onServeError ?? (() => {}));
    } catch (err) {
      throw new NatsUnreachableError(url, { cause: err });
    }
  }

  get maxPayload(): number {
    return this.nc.info?.max_payload ?? 1024 * 1024;
  }

  async request<R>(rank: number, kind: Kind, message: object, options: RequestOptions = {}): Promise<R> {
    if (this.closed) throw new ClosedError("control channel is closed");
    const subject = subjectFor(rank, kind);
    const timeout = Math.min(Math.max(1, options.timeoutMs ?? DEFAULT_TIMEOUT_MS), MAX_TIMER_MS);
    const { signal } = options;
    if (signal?.aborted) throw new AbortedError(`${kind} to rank ${rank} aborted`);
    const pending = this.nc.request(subject, options.encoded ?? encode(message), { timeout });
    let onAbort: (() => void) | undefined;
    let msg: Msg;
    try {
      if (signal) {
        const aborted = new Promise<never>((_, reject) => {
          onAbort = () => reject(new AbortedError(`${kind} to rank ${rank} aborted`));
          signal.addEventListener("abort", onAbort, { once: true });
        });
        msg = await Promise.race([pending, aborted]);
      } else {
        msg = await pending;
      }
    } catch (err) {
      if (err instanceof SidecarError) throw err;
      const code = (err as { code?: string }).code;
      if (code === NatsErrorCode.NoResponders) {
        throw new PeerUnreachableError(`no sidecar serves rank ${rank} (${subject}): is it running and connected to ${this.url}?`, { cause: err });
      }
      if (code === NatsErrorCode.Timeout) throw new TimeoutError(`${kind} to rank ${rank} timed out after ${timeout} ms`);
      if (this.closed || this.nc.isClosed()) throw new ClosedError("control channel is closed");
      throw new PeerUnreachableError(`${kind} to rank ${rank} failed: ${(err as Error).message}`, { cause: err });
    } finally {
      if (onAbort) signal!.removeEventListener("abort", onAbort);
      pending.catch(() => {});
    }
    const reply = decode(msg.data) as { error?: WireError } | null;
    if (reply && typeof reply === "object" && "error" in reply) {
      validate("error.reply", reply);
      throw errorFromWire(reply.error!);
    }
    return validate<R>(ReplyKind[kind], reply);
  }

  serve(rank: number, kind: Kind, handler: Handler): void {
    const subject = subjectFor(rank, kind);
    const sub = this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) {
          this.onServeError(asSidecarError(err), subject);
          return;
        }
        void this.answer(kind, msg, handler);
      },
    });
    this.subs.push(sub);
  }

  // Never throws: every failure becomes an error reply (or a logged drop when there is no reply subject).
  private async answer(kind: Kind, msg: Msg, handler: Handler): Promise<void> {
    let reply: unknown;
    try {
      const message = validate(kind, decode(msg.data));
      reply = (await handler(message, { subject: msg.subject })) ?? {};
    } catch (err) {
      const e = asSidecarError(err);
      if (!(e instanceof BadMessageError) && e.code === "SC_INTERNAL") this.onServeError(e, msg.subject);
      reply = { error: e.toWire() };
    }
    if (!msg.reply || this.closed) return;
    try {
      msg.respond(encode(reply));
    } catch (err) {
      this.onServeError(asSidecarError(err), msg.subject);
    }
  }

  publish(subject: string, message: object): void {
    if (this.closed) return;
    try {
      this.nc.publish(subject, encode(message));
    } catch (err) {
      this.onServeError(asSidecarError(err), subject);
    }
  }

  watch(subject: string, onMessage: (message: unknown, subject: string) => void): () => void {
    const sub = this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        try {
          onMessage(decode(msg.data), msg.subject);
        } catch {
          // a watcher ignores what it cannot decode
        }
      },
    });
    return () => sub.unsubscribe();
  }

  /** Waits until the server has processed every subscription made so far. */
  async flush(): Promise<void> {
    await this.nc.flush();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.nc.drain();
    } catch {
      await this.nc.close().catch(() => {});
    }
  }
}
