import { Deferred } from "../core/deferred.js";
import { AbortedError, InvalidArgumentError, SidecarError, TimeoutError, TransferFailedError, UcxError } from "../core/errors.js";
import { MAX_PIECES, type ByteRange } from "../core/pieces.js";
import type { Logger } from "../core/logger.js";
import { UcxWorker, type UcxEndpoint } from "../native/ucx-cuda/index.js";
import type { SlabMapping } from "../native/ucx-cuda/index.js";

/**
 * The inter-node data plane of one server: its UCX worker (the node slab is
 * registered with it), the endpoints to peers' workers, and the
 * acknowledgements of chunks that landed.
 *
 * - Endpoints are opened lazily from the worker address a receiver put in
 *   its `peer.announce` reply, cached per rank, and reopened when that
 *   address changes (the peer restarted) or the endpoint failed.
 * - UCX tags are built from the transfer tag (`<sender rank>:<sequence>`)
 *   and a piece index, so they are unique by construction.
 * - A chunk travels as tagged pieces (core/pieces.ts), each received
 *   straight into its range of the slot the receiver allocated; a piece is
 *   sent as soon as `ready(piece)` says it is staged, so copying into the
 *   slab and sending overlap.
 */

const RANK_BITS = 16n;
const SEQ_BITS = 40n;
const PIECE_BITS = 8n; // MAX_PIECES

/** The UCX tag of a piece of transfer `tag` ("<rank>:<sequence>"). */
export function ucxTagOf(tag: string, piece: number): bigint {
  const m = /^(\d+):(\d+)$/.exec(tag);
  if (!m) throw new InvalidArgumentError(`malformed transfer tag ${JSON.stringify(tag)}`);
  const rank = BigInt(m[1]!);
  const seq = BigInt(m[2]!);
  if (rank >= 1n << RANK_BITS || seq >= 1n << SEQ_BITS || piece < 0 || piece >= MAX_PIECES) {
    throw new InvalidArgumentError(`transfer tag ${tag} piece ${piece} does not fit a UCX tag`);
  }
  return (rank << (SEQ_BITS + PIECE_BITS)) | (seq << PIECE_BITS) | BigInt(piece);
}


interface Peer { address: Uint8Array; endpoint: UcxEndpoint }

export class DataPlane {
  readonly address: Uint8Array;
  private readonly peers = new Map<number, Peer>();
  private readonly acks = new Map<string, Deferred<void>>();
  private closed = false;

  private constructor(private readonly worker: UcxWorker, private readonly log: Logger) {
    this.address = worker.address;
  }

  /**
   * Creates the worker (UCX reads its `UCX_*` variables here) and registers
   * the node slab with it.
   * @throws UcxError, NativeLoadError
   */
  static open(slab: SlabMapping, name: string, log: Logger): DataPlane {
    const worker = UcxWorker.create({ name });
    try {
      worker.registerMemory(slab);
    } catch (err) {
      void worker.close().catch(() => {});
      throw err;
    }
    return new DataPlane(worker, log);
  }

  private endpoint(rank: number, address: Uint8Array): UcxEndpoint {
    const known = this.peers.get(rank);
    if (known && !known.endpoint.error && !known.endpoint.isClosed && sameBytes(known.address, address)) return known.endpoint;
    if (known) this.drop(rank);
    const endpoint = this.worker.connect(address, (err) => {
      this.log.warn({ err, peer: rank }, "UCX endpoint failed; it is reopened on next use");
      if (this.peers.get(rank)?.endpoint === endpoint) this.drop(rank);
    });
    this.peers.set(rank, { address: Uint8Array.from(address), endpoint });
    return endpoint;
  }

  /** Forgets the endpoint to `rank` (it failed, or the peer restarted). */
  drop(rank: number): void {
    const known = this.peers.get(rank);
    if (!known) return;
    this.peers.delete(rank);
    void known.endpoint.close().catch(() => {});
  }

  /**
   * Sends the `pieces` of `bytes` (a view of this node's slab) to the worker
   * at `address`, each once `ready(i)` resolves (at once without it), and
   * resolves once the receiver acknowledged the chunk (`peer.received`),
   * within `timeoutMs`.
   * @throws UcxError, TimeoutError, TransferFailedError, and what `ready` rejects with
   */
  async send(rank: number, address: Uint8Array, tag: string, bytes: Uint8Array, pieces: readonly ByteRange[], options: { timeoutMs: number; signal?: AbortSignal; ready?: (piece: number) => Promise<void> }): Promise<void> {
    const { timeoutMs, signal, ready } = options;
    if (this.closed) throw new UcxError("the data plane is closed", "UCS_ERR_CANCELED");
    const key = ackKey(tag, rank);
    const ack = new Deferred<void>();
    this.acks.set(key, ack);
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => ack.reject(new AbortedError(`transfer ${tag} to rank ${rank} aborted`));
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      // One deadline for the bytes and the acknowledgement: a transport
      // without peer-failure reports (shared memory in UCX 1.13) never fails a send.
      timer = setTimeout(() => ack.reject(new TimeoutError(`rank ${rank} did not acknowledge transfer ${tag} within ${timeoutMs} ms`)), timeoutMs);
      const ep = this.endpoint(rank, address);
      const sent = Promise.all(pieces.map(async (r, i) => {
        if (ready) await ready(i);
        await ep.send(ucxTagOf(tag, i), bytes.subarray(r.start, r.end));
      }));
      await Promise.race([sent.then(() => ack.promise), ack.promise]);
    } catch (err) {
      // A broken or silent endpoint is not reused; the next transfer reconnects.
      if (err instanceof UcxError || err instanceof TimeoutError) this.drop(rank);
      throw err instanceof SidecarError
        ? err
        : new TransferFailedError(`transfer ${tag} to rank ${rank}: ${(err as Error).message}`, { cause: err });
    } finally {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      this.acks.delete(key);
    }
  }

  /** A receiver acknowledged transfer `tag` (unknown acks are ignored: the transfer already gave up). */
  acknowledged(tag: string, rank: number): void {
    this.acks.get(ackKey(tag, rank))?.resolve();
  }

  /**
   * Receives the pieces of transfer `tag` into `into` (a view of this
   * node's slab). Aborting the signal cancels the posted receives.
   * @throws UcxError, AbortedError
   */
  async receive(tag: string, into: Uint8Array, pieces: readonly ByteRange[], signal?: AbortSignal): Promise<void> {
    if (this.closed) throw new UcxError("the data plane is closed", "UCS_ERR_CANCELED");
    const got = await Promise.all(pieces.map((r, i) => this.worker.recv(ucxTagOf(tag, i), into.subarray(r.start, r.end), { signal })));
    got.forEach((g, i) => {
      const want = pieces[i]!.end - pieces[i]!.start;
      if (g.length !== want) throw new TransferFailedError(`transfer ${tag} piece ${i}: ${g.length} bytes arrived, ${want} expected`);
    });
  }

  /** Closes every endpoint, the worker and its context (pending receives are cancelled). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const a of this.acks.values()) a.reject(new AbortedError("data plane closed"));
    this.acks.clear();
    const endpoints = [...this.peers.values()].map((p) => p.endpoint);
    this.peers.clear();
    await Promise.all(endpoints.map((e) => e.close().catch(() => {})));
    await this.worker.close();
  }
}

function ackKey(tag: string, rank: number): string {
  return `${tag}>${rank}`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}
