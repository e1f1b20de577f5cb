import { assign, emit, fromPromise, setup, type ActorRefFrom } from "xstate";
import { AbortedError, InternalError, SidecarError, TimeoutError, asSidecarError } from "../core/errors.js";
import type { Allocation } from "./slabAllocator.js";
import type { SlabReply, slabMachine } from "./slab.js";
import { MAX_DELAY_MS, type ChunkBody, type Timeouts } from "./ports.js";

/**
 * One chunk at the receiving head:
 * `announced → ready` for a same-node tensor (a reference to the sender's
 * slot) or an object (inline); `announced → allocating ⇄ waitingForMemory →
 * receiving → ready` for a tensor from another node. `ready` serves any
 * number of recv calls until markDone (`released`) or, when a TTL is set,
 * until it runs out (`expired`). Leaving `ready` frees this end's slot and
 * tells the sender (named actor `release`).
 */

export interface RecvTransferInput {
  tag: string;
  id: string;
  chunkId: number;
  fromRank: number;
  body: ChunkBody;
  /** The sender's slab is on this node: read it in place. */
  intraNode: boolean;
  slab: ActorRefFrom<typeof slabMachine>;
  timeouts: Timeouts;
}

export interface RecvTransferContext extends RecvTransferInput {
  /** This end's slot (inter-node only). */
  allocation: Allocation | null;
  error: SidecarError | null;
}

export type RecvTransferEvent =
  | SlabReply
  | { type: "MARK_DONE" }
  | { type: "ABORT"; reason: string };

export type RecvTransferEmitted =
  | { type: "allocated"; allocation: Allocation }
  | { type: "ready" }
  | { type: "failed"; error: SidecarError };

const notProvided = (what: string) =>
  fromPromise<never, unknown>(async () => {
    throw new InternalError(`receive transfer actor "${what}" was not provided by the server`);
  });

export const recvTransferMachine = setup({
  types: {
    context: {} as RecvTransferContext,
    events: {} as RecvTransferEvent,
    input: {} as RecvTransferInput,
    emitted: {} as RecvTransferEmitted,
  },
  actors: {
    /** Waits for the bytes of an inter-node chunk to land in `allocation`. */
    receiveBytes: notProvided("receiveBytes") as unknown as ReturnType<typeof fromPromise<void, { context: RecvTransferContext }>>,
    /** Tells the sender this end no longer needs the chunk. */
    release: notProvided("release") as unknown as ReturnType<typeof fromPromise<void, { context: RecvTransferContext }>>,
  },
  actions: {
    requestMemory: ({ context, self }) => {
      const slab = context.slab;
      slab.send({
        type: "ALLOCATE",
        pool: "recv",
        bytes: (context.body as { length: number }).length,
        requestId: context.tag,
        reply: (r) => {
          if (self.getSnapshot().status !== "active") {
            if (r.type === "MEMORY_GRANTED") slab.send({ type: "FREE", pool: "recv", allocation: r.allocation });
            return;
          }
          self.send(r);
        },
      });
    },
    cancelMemoryRequest: ({ context }) => context.slab.send({ type: "CANCEL", pool: "recv", requestId: context.tag }),
    freeMemory: ({ context }) => {
      if (context.allocation) context.slab.send({ type: "FREE", pool: "recv", allocation: context.allocation });
    },
    emitReady: emit({ type: "ready" as const }),
    emitAllocated: emit(({ context }) => ({ type: "allocated" as const, allocation: context.allocation! })),
    emitFailed: emit(({ context }) => ({ type: "failed" as const, error: context.error ?? new InternalError("receive failed without a reason") })),
  },
  guards: {
    inPlace: ({ context }) => context.intraNode || context.body.kind === "object",
    hasTtl: ({ context }) => context.timeouts.readyTtlMs > 0,
  },
  delays: {
    memoryWait: ({ context }) => Math.min(context.timeouts.memoryWaitMs, MAX_DELAY_MS),
    transfer: ({ context }) => Math.min(context.timeouts.transferMs, MAX_DELAY_MS),
    readyTtl: ({ context }) => Math.min(context.timeouts.readyTtlMs || MAX_DELAY_MS, MAX_DELAY_MS),
  },
}).createMachine({
  id: "recv",
  context: ({ input }) => ({ ...input, allocation: null, error: null }),
  initial: "announced",
  states: {
    announced: { always: [{ guard: "inPlace", target: "ready" }, { target: "allocating" }] },
    allocating: {
      entry: "requestMemory",
      on: {
        MEMORY_GRANTED: { target: "receiving", actions: assign({ allocation: ({ event }) => event.allocation }) },
        MEMORY_WAIT: { target: "waitingForMemory" },
        MEMORY_IMPOSSIBLE: { target: "failed", actions: assign({ error: ({ event }) => event.error }) },
        ABORT: { target: "failed", actions: assign({ error: ({ event }) => new AbortedError(`receive aborted: ${event.reason}`) }) },
      },
    },
    waitingForMemory: {
      on: {
        MEMORY_GRANTED: { target: "receiving", actions: assign({ allocation: ({ event }) => event.allocation }) },
        ABORT: { target: "failed", actions: ["cancelMemoryRequest", assign({ error: ({ event }) => new AbortedError(`receive aborted while waiting for memory: ${event.reason}`) })] },
      },
      after: {
        memoryWait: {
          target: "failed",
          actions: ["cancelMemoryRequest", assign({ error: ({ context }) => new TimeoutError(`receive ${context.id}#${context.chunkId} waited ${context.timeouts.memoryWaitMs} ms for slab memory`) })],
        },
      },
    },
    receiving: {
      entry: "emitAllocated",
      invoke: {
        src: "receiveBytes",
        input: ({ context }) => ({ context }),
        onDone: { target: "ready" },
        onError: { target: "failed", actions: assign({ error: ({ event }) => asSidecarError(event.error) }) },
      },
      on: { ABORT: { target: "failed", actions: assign({ error: ({ event }) => new AbortedError(`receive aborted: ${event.reason}`) }) } },
      after: {
        transfer: {
          target: "failed",
          actions: assign({ error: ({ context }) => new TimeoutError(`receive ${context.id}#${context.chunkId}: the bytes from rank ${context.fromRank} did not arrive within ${context.timeouts.transferMs} ms`) }),
        },
      },
    },
    ready: {
      entry: "emitReady",
      on: {
        MARK_DONE: { target: "releasing" },
        ABORT: { target: "releasing" },
      },
      after: { readyTtl: { guard: "hasTtl", target: "expiring" } },
    },
    releasing: {
      invoke: { src: "release", input: ({ context }) => ({ context }), onDone: "released", onError: "released" },
    },
    expiring: {
      invoke: { src: "release", input: ({ context }) => ({ context }), onDone: "expired", onError: "expired" },
    },
    released: { type: "final", entry: "freeMemory" },
    expired: { type: "final", entry: "freeMemory" },
    failed: { type: "final", entry: ["freeMemory", "emitFailed"] },
  },
});

export type RecvTransferActor = ActorRefFrom<typeof recvTransferMachine>;
