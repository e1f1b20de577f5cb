import { assign, enqueueActions, fromPromise, setup, type ActorRefFrom } from "xstate";
import { InternalError, SidecarError, TimeoutError, AbortedError, TransferFailedError, asSidecarError } from "../core/errors.js";
import type { Allocation } from "./slabAllocator.js";
import type { SlabReply, slabMachine } from "./slab.js";
import { MAX_DELAY_MS, type ChunkBody, type Delivery, type Timeouts } from "./ports.js";

/**
 * One chunk at the sending end. Tensors:
 * `allocating ⇄ waitingForMemory → staging → announcing → transferring? →
 * awaitingRelease? → done`; objects skip straight to `announcing`.
 *
 * - `staging`: the TP workers copy their shards into the slot (one shard
 *   without concurrentCopy); each reports SHARD_STAGED.
 * - `announcing`: every destination head is told where the chunk is; it
 *   answers once it holds the chunk (same node: a reference to this slot; an
 *   object: inline) or once it has allocated a slot for the bytes (another
 *   node: the receiver's own backpressure happens here).
 * - `transferring`: bytes cross the data plane to receivers on other nodes.
 * - `awaitingRelease`: same-node receivers read this slot until they
 *   release it; the slot is freed when the last reference goes.
 *
 * The actor emits `delivered` (every destination holds the chunk) or
 * `failed`; the server answers the workers' send calls from those.
 */

export interface SendTransferInput {
  tag: string;
  id: string;
  chunkId: number;
  numChunks: number | null;
  body: ChunkBody;
  /** Head rank of every destination group. */
  destinations: number[];
  /** Shards that must be staged before announcing (1, or the TP group size with concurrentCopy). */
  shards: number;
  /**
   * Every destination is on another node: the chunk is announced as soon as
   * its slot is allocated, and its pieces (of at most `pieceBytes`) are sent
   * while the workers are still staging the rest (`transferBytes` waits for
   * each piece).
   */
  streamed: boolean;
  pieceBytes: number;
  slab: ActorRefFrom<typeof slabMachine>;
  timeouts: Timeouts;
}

export interface SendTransferContext extends SendTransferInput {
  allocation: Allocation | null;
  staged: number[];
  deliveries: Delivery[];
  /** Same-node receivers still reading the slot. */
  holders: number[];
  /**
   * Receivers whose release came before the announcement's reply was
   * processed (both can arrive in one read): they are not holders.
   */
  releasedEarly: number[];
  error: SidecarError | null;
  /** The workers have been told the outcome (it is told once). */
  reported: boolean;
}

export type SendTransferEvent =
  | SlabReply
  | { type: "SHARD_STAGED"; shard: number }
  | { type: "STAGING_FAILED"; error: SidecarError }
  | { type: "RELEASED"; rank: number }
  | { type: "ABORT"; reason: string };

export type SendTransferEmitted =
  | { type: "delivered"; deliveries: Delivery[] }
  | { type: "failed"; error: SidecarError };

/** Announces the chunk to every destination; never rejects, failures are per destination. */
export type AnnounceInput = { context: SendTransferContext };
/** Moves the bytes to receivers on other nodes; resolves when each has them. */
export type TransferInput = { context: SendTransferContext; targets: { rank: number; ucxTag: string; ucxAddress: Uint8Array }[] };

const notProvided = (what: string) =>
  fromPromise<never, unknown>(async () => {
    throw new InternalError(`send transfer actor "${what}" was not provided by the server`);
  });

export const sendTransferMachine = setup({
  types: {
    context: {} as SendTransferContext,
    events: {} as SendTransferEvent,
    input: {} as SendTransferInput,
    emitted: {} as SendTransferEmitted,
  },
  actors: {
    announce: notProvided("announce") as unknown as ReturnType<typeof fromPromise<Delivery[], AnnounceInput>>,
    transferBytes: notProvided("transferBytes") as unknown as ReturnType<typeof fromPromise<void, TransferInput>>,
  },
  actions: {
    requestMemory: ({ context, self }) => {
      const slab = context.slab;
      slab.send({
        type: "ALLOCATE",
        pool: "send",
        bytes: (context.body as { length: number }).length,
        requestId: context.tag,
        reply: (r) => {
          // A grant that arrives after this actor stopped goes straight back.
          if (self.getSnapshot().status !== "active") {
            if (r.type === "MEMORY_GRANTED") slab.send({ type: "FREE", pool: "send", allocation: r.allocation });
            return;
          }
          self.send(r);
        },
      });
    },
    cancelMemoryRequest: ({ context }) => context.slab.send({ type: "CANCEL", pool: "send", requestId: context.tag }),
    recordAllocation: assign({ allocation: ({ event }) => (event as Extract<SlabReply, { type: "MEMORY_GRANTED" }>).allocation }),
    recordShard: assign({
      staged: ({ context, event }) => {
        const { shard } = event as { shard: number };
        return context.staged.includes(shard) ? context.staged : [...context.staged, shard];
      },
    }),
    freeMemory: ({ context }) => {
      if (context.allocation) context.slab.send({ type: "FREE", pool: "send", allocation: context.allocation });
    },
    emitDelivered: enqueueActions(({ context, enqueue }) => {
      if (context.reported) return;
      enqueue.assign({ reported: true });
      enqueue.emit({ type: "delivered", deliveries: context.deliveries });
    }),
    emitFailed: enqueueActions(({ context, enqueue }) => {
      if (context.reported) return;
      enqueue.assign({ reported: true });
      enqueue.emit({ type: "failed", error: context.error ?? new InternalError("transfer failed without a reason") });
    }),
  },
  guards: {
    isObject: ({ context }) => context.body.kind === "object",
    allStaged: ({ context }) => context.staged.length >= context.shards,
    streamed: ({ context }) => context.streamed,
    hasError: ({ context }) => context.error !== null,
    needsDataPlane: ({ context }) => context.deliveries.some((d) => "ucxTag" in d),
    hasHolders: ({ context }) => context.holders.length > 0,
  },
  delays: {
    memoryWait: ({ context }) => Math.min(context.timeouts.memoryWaitMs, MAX_DELAY_MS),
    staging: ({ context }) => Math.min(context.timeouts.stagingMs, MAX_DELAY_MS),
  },
}).createMachine({
  id: "send",
  context: ({ input }) => ({ ...input, allocation: null, staged: [], deliveries: [], holders: [], releasedEarly: [], error: null, reported: false }),
  initial: "start",
  on: {
    ABORT: { target: ".aborted", actions: assign({ error: ({ event }) => new AbortedError(`send ${(event as { reason: string }).reason}`) }) },
    // Streamed chunks are staged while announcing and transferring.
    SHARD_STAGED: { actions: "recordShard" },
    // A release before awaitingRelease (handled there) is remembered, never dropped.
    RELEASED: { actions: assign({ releasedEarly: ({ context, event }) => [...context.releasedEarly, event.rank] }) },
  },
  states: {
    start: { always: [{ guard: "isObject", target: "announcing" }, { target: "allocating" }] },
    allocating: {
      entry: "requestMemory",
      on: {
        MEMORY_GRANTED: [
          { guard: "streamed", target: "announcing", actions: "recordAllocation" },
          { target: "staging", actions: "recordAllocation" },
        ],
        MEMORY_WAIT: { target: "waitingForMemory" },
        MEMORY_IMPOSSIBLE: { target: "failed", actions: assign({ error: ({ event }) => event.error }) },
      },
    },
    waitingForMemory: {
      on: {
        MEMORY_GRANTED: [
          { guard: "streamed", target: "announcing", actions: "recordAllocation" },
          { target: "staging", actions: "recordAllocation" },
        ],
        ABORT: { target: "aborted", actions: ["cancelMemoryRequest", assign({ error: ({ event }) => new AbortedError(`send aborted while waiting for memory: ${event.reason}`) })] },
      },
      after: {
        memoryWait: {
          target: "failed",
          actions: ["cancelMemoryRequest", assign({ error: ({ context }) => new TimeoutError(`send ${context.id}#${context.chunkId} waited ${context.timeouts.memoryWaitMs} ms for slab memory`) })],
        },
      },
    },
    staging: {
      always: { guard: "allStaged", target: "announcing" },
      on: {
        STAGING_FAILED: { target: "failed", actions: assign({ error: ({ event }) => event.error }) },
        SHARD_STAGED: { actions: "recordShard" },
      },
      after: {
        staging: {
          target: "failed",
          actions: assign({ error: ({ context }) => new TimeoutError(`send ${context.id}#${context.chunkId}: only ${context.staged.length} of ${context.shards} TP shards were copied within ${context.timeouts.stagingMs} ms (does every worker of the group call send?)`) }),
        },
      },
    },
    announcing: {
      invoke: {
        src: "announce",
        input: ({ context }) => ({ context }),
        onDone: {
          target: "announced",
          actions: assign(({ context, event }) => {
            const deliveries = event.output;
            const failure = deliveries.find((d): d is Extract<Delivery, { failed: Error }> => "failed" in d);
            return {
              deliveries,
              holders: deliveries
                .filter((d) => "held" in d && d.held && d.intraNode && !d.duplicate && !context.releasedEarly.includes(d.rank))
                .map((d) => d.rank),
              error: failure ? asSidecarError(failure.failed) : null,
            };
          }),
        },
        onError: { target: "failed", actions: assign({ error: ({ event }) => asSidecarError(event.error) }) },
      },
    },
    announced: {
      always: [
        { guard: "hasError", target: "releasing" },
        { guard: "needsDataPlane", target: "transferring" },
        { target: "releasing" },
      ],
    },
    transferring: {
      invoke: {
        src: "transferBytes",
        input: ({ context }) => ({
          context,
          targets: context.deliveries.filter((d): d is Extract<Delivery, { ucxTag: string }> => "ucxTag" in d).map((d) => ({ rank: d.rank, ucxTag: d.ucxTag, ucxAddress: d.ucxAddress })),
        }),
        onDone: { target: "releasing" },
        onError: { target: "releasing", actions: assign({ error: ({ event }) => new TransferFailedError(`data plane: ${(event.error as Error).message}`, { cause: event.error }) }) },
      },
    },
    // Tells the workers how it went, then keeps the slot while same-node receivers read it.
    releasing: {
      always: [
        { guard: "hasError", target: "awaitingRelease", actions: "emitFailed" },
        { target: "awaitingRelease", actions: "emitDelivered" },
      ],
    },
    awaitingRelease: {
      always: [
        { guard: ({ context }) => context.holders.length === 0 && context.error !== null, target: "failed" },
        { guard: ({ context }) => context.holders.length === 0, target: "done" },
      ],
      on: {
        RELEASED: { actions: assign({ holders: ({ context, event }) => context.holders.filter((r) => r !== event.rank) }) },
      },
    },
    done: { type: "final", entry: "freeMemory" },
    failed: { type: "final", entry: ["freeMemory", "emitFailed"] },
    aborted: { type: "final", entry: ["freeMemory", "emitFailed"] },
  },
});

export type SendTransferActor = ActorRefFrom<typeof sendTransferMachine>;
