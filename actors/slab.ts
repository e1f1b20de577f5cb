import { assign, setup } from "xstate";
import { SlabCapacityError } from "../core/errors.js";
import { SlabAllocator, type Allocation, type Region } from "./slabAllocator.js";

/**
 * The slab actor: the one owner of a server's memory. It keeps a send pool
 * and a receive pool, each an allocator plus a first-come queue of waiters.
 * A request that fits is granted at once; one that fits only later waits in
 * line (and the requester moves to its own `waitingForMemory` state); one
 * that can never fit is refused at once. The actor is `pressured` while at
 * least `pressureThreshold` requests wait, which health reports as
 * MEMORY_PRESSURE.
 */

export type PoolName = "send" | "recv";

/** What the slab answers to an ALLOCATE, through the request's `reply`. */
export type SlabReply =
  | { type: "MEMORY_GRANTED"; allocation: Allocation }
  | { type: "MEMORY_WAIT"; ahead: number }
  | { type: "MEMORY_IMPOSSIBLE"; error: SlabCapacityError };

export type SlabEvent =
  | { type: "CONFIGURE"; pool: PoolName; slotBytes: number; regions: readonly Region[] }
  | { type: "ADD_REGION"; pool: PoolName; region: Region }
  | { type: "ALLOCATE"; pool: PoolName; bytes: number; requestId: string; reply: (r: SlabReply) => void }
  | { type: "CANCEL"; pool: PoolName; requestId: string }
  | { type: "FREE"; pool: PoolName; allocation: Allocation };

interface Waiter { requestId: string; bytes: number; reply: (r: SlabReply) => void }
interface Pool { allocator: SlabAllocator | null; waiters: Waiter[] }

export interface SlabContext {
  send: Pool;
  recv: Pool;
  pressureThreshold: number;
}

function waiting(ctx: SlabContext): number {
  return ctx.send.waiters.length + ctx.recv.waiters.length;
}

// Grants queued requests in arrival order while the head of the line fits.
function drain(pool: Pool): void {
  const alloc = pool.allocator;
  if (!alloc) return;
  while (pool.waiters.length > 0) {
    const granted = alloc.allocate(pool.waiters[0]!.bytes);
    if (!granted) return;
    const w = pool.waiters.shift()!;
    w.reply({ type: "MEMORY_GRANTED", allocation: granted });
  }
}

export const slabMachine = setup({
  types: {
    context: {} as SlabContext,
    events: {} as SlabEvent,
    input: {} as { pressureThreshold?: number },
  },
  actions: {
    // A pool is configured once, by the first memory hint; later hints share its slots.
    configure: assign(({ context, event }) => {
      if (event.type !== "CONFIGURE" || context[event.pool].allocator) return {};
      const allocator = new SlabAllocator(event.slotBytes, event.regions);
      return { [event.pool]: { allocator, waiters: context[event.pool].waiters } };
    }),
    addRegion: ({ context, event }) => {
      if (event.type !== "ADD_REGION") return;
      const pool = context[event.pool];
      pool.allocator?.addRegion(event.region);
      drain(pool);
    },
    allocate: ({ context, event }) => {
      if (event.type !== "ALLOCATE") return;
      const pool = context[event.pool];
      const alloc = pool.allocator;
      if (!alloc) {
        event.reply({ type: "MEMORY_IMPOSSIBLE", error: new SlabCapacityError(event.bytes, 0, `${event.pool} (not configured: no client registered a memory hint)`) });
        return;
      }
      if (!alloc.canEverFit(event.bytes)) {
        event.reply({ type: "MEMORY_IMPOSSIBLE", error: new SlabCapacityError(event.bytes, alloc.largestPossible, event.pool) });
        return;
      }
      // First come, first served: nobody overtakes a waiter.
      const granted = pool.waiters.length === 0 ? alloc.allocate(event.bytes) : null;
      if (granted) {
        event.reply({ type: "MEMORY_GRANTED", allocation: granted });
        return;
      }
      pool.waiters.push({ requestId: event.requestId, bytes: event.bytes, reply: event.reply });
      event.reply({ type: "MEMORY_WAIT", ahead: pool.waiters.length - 1 });
    },
    cancel: ({ context, event }) => {
      if (event.type !== "CANCEL") return;
      const pool = context[event.pool];
      const i = pool.waiters.findIndex((w) => w.requestId === event.requestId);
      if (i >= 0) pool.waiters.splice(i, 1);
      drain(pool);
    },
    free: ({ context, event }) => {
      if (event.type !== "FREE") return;
      const pool = context[event.pool];
      pool.allocator?.freeAllocation(event.allocation);
      drain(pool);
    },
  },
  guards: {
    pressured: ({ context }) => waiting(context) >= context.pressureThreshold,
  },
}).createMachine({
  id: "slab",
  context: ({ input }) => ({
    send: { allocator: null, waiters: [] },
    recv: { allocator: null, waiters: [] },
    pressureThreshold: input.pressureThreshold ?? 1,
  }),
  initial: "calm",
  on: {
    CONFIGURE: { actions: "configure" },
    ADD_REGION: { actions: "addRegion" },
    ALLOCATE: { actions: "allocate" },
    CANCEL: { actions: "cancel" },
    FREE: { actions: "free" },
  },
  states: {
    calm: { always: { guard: "pressured", target: "pressured" } },
    pressured: { always: { guard: ({ context }) => waiting(context) < context.pressureThreshold, target: "calm" } },
  },
});

/** Memory figures of one pool, for health. */
export function poolUsage(ctx: SlabContext, pool: PoolName): { usedBytes: number; totalBytes: number; waiting: number; slotBytes: number } {
  const p = ctx[pool];
  return { usedBytes: p.allocator?.usedBytes ?? 0, totalBytes: p.allocator?.totalBytes ?? 0, waiting: p.waiters.length, slotBytes: p.allocator?.slotBytes ?? 0 };
}

