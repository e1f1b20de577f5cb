/**
 * Model-based tests of the four machines in actors/: `xstate/graph` walks
 * each machine (or, for the slab, a pure model that runs the real slab
 * machine), and every edge of the resulting graph is replayed on a real
 * actor: the transfer machines run with fake-but-real promise actors (the
 * test resolves or rejects each invocation), the real slab machine answers
 * their memory requests, and a SimulatedClock fires the timed transitions.
 *
 * After each replay the real actor must be in the state the graph
 * predicted, a transfer that finished must have given all its memory back,
 * and the union of the replays must visit every state node and take every
 * transition the machine defines: a state or transition nobody can reach
 * makes the coverage test fail.
 */
import { expect } from "chai";
import {
  __unsafe_getAllOwnEventDescriptors as getAllOwnEventDescriptors, createActor, fromPromise, fromTransition, SimulatedClock, type AnyStateMachine, type AnyStateNode, type InspectionEvent,
} from "xstate";
import { getAdjacencyMap, getShortestPaths, getStateNodes } from "xstate/graph";
import { recvTransferMachine } from "../../actors/recvTransfer.js";
import { sendTransferMachine } from "../../actors/sendTransfer.js";
import { serverMachine } from "../../actors/server.js";
import { poolUsage, slabMachine, type PoolName, type SlabReply } from "../../actors/slab.js";
import type { Allocation } from "../../actors/slabAllocator.js";
import type { Timeouts } from "../../actors/ports.js";
import { SlabCapacityError } from "../../core/errors.js";

// ---------------------------------------------------------------- coverage

/** Everything a machine defines: its state nodes and transitions (`<source>|<event>|<index>`). */
function inventory(machine: AnyStateMachine): { states: string[]; transitions: string[] } {
  const nodes = getStateNodes(machine.root) as AnyStateNode[];
  const transitions: string[] = [];
  for (const node of [machine.root as AnyStateNode, ...nodes]) {
    for (const [type, defs] of node.transitions) defs.forEach((_d: unknown, i: number) => transitions.push(`${node.id}|${type}|${i}`));
    (node.always ?? []).forEach((_d: unknown, i: number) => transitions.push(`${node.id}|always|${i}`));
  }
  return { states: nodes.map((n) => n.id), transitions };
}

/** Collects the states and transitions real actors go through (from the inspection stream's microsteps). */
class Coverage {
  readonly states = new Set<string>();
  readonly transitions = new Set<string>();

  constructor(private readonly machineId: string) {}

  private addValue(value: unknown, prefix = this.machineId): void {
    if (typeof value === "string") this.states.add(`${prefix}.${value}`);
    else if (value && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) {
        this.states.add(`${prefix}.${k}`);
        this.addValue(v, `${prefix}.${k}`);
      }
    }
  }

  snapshot(value: unknown): void {
    this.addValue(value);
  }

  readonly inspect = (ev: InspectionEvent): void => {
    if (ev.type !== "@xstate.microstep") return;
    const snap = ev.snapshot as { value?: unknown; machine?: { id: string } };
    if (snap.machine?.id !== this.machineId) return;
    this.addValue(snap.value);
    for (const t of (ev as unknown as { _transitions: { source: AnyStateNode; eventType: string; target?: AnyStateNode[] }[] })._transitions) {
      const src = t.source;
      const always = (src.always ?? []) as unknown[];
      const key = always.includes(t) ? `${src.id}|always|${always.indexOf(t)}` : `${src.id}|${t.eventType}|${(src.transitions.get(t.eventType) ?? []).indexOf(t as never)}`;
      this.transitions.add(key);
      if (src.id !== this.machineId) this.states.add(src.id);
      for (const target of t.target ?? []) this.states.add(target.id);
    }
  };

  expectComplete(machine: AnyStateMachine): void {
    const all = inventory(machine);
    const missedStates = all.states.filter((s) => !this.states.has(s));
    const missedTransitions = all.transitions.filter((t) => !this.transitions.has(t));
    expect(missedStates, `states of ${machine.id} never visited by a real actor`).to.deep.equal([]);
    expect(missedTransitions, `transitions of ${machine.id} never taken by a real actor`).to.deep.equal([]);
  }
}

// ---------------------------------------------------------------- paths

interface Step { event: { type: string } & Record<string, unknown>; state: unknown }
interface Path { steps: Step[]; state: unknown }

/**
 * One path per edge of the machine's reachable graph: the shortest path to
 * the edge's source state, then the edge. Together they take every
 * transition the traversal can reach.
 */
function edgePaths(logic: unknown, options: Record<string, unknown>, serialize: (s: never) => string): Path[] {
  const opts = { ...options, serializeState: (s: never) => serialize(s) };
  // Paths start with the traversal's own `xstate.init` step: the replay starts the actor instead.
  const shortest = (getShortestPaths(logic as never, opts as never) as unknown as Path[])
    .map((p) => ({ ...p, steps: p.steps.filter((s) => s.event.type !== "xstate.init") }));
  const toState = new Map<string, Path>();
  for (const p of shortest) toState.set(serialize(p.state as never), p);
  const adjacency = getAdjacencyMap(logic as never, opts as never) as Record<string, { state: unknown; transitions: Record<string, { event: Step["event"]; state: unknown }> }>;
  const out: Path[] = [];
  for (const [key, node] of Object.entries(adjacency)) {
    const head = toState.get(key);
    if (!head) continue;
    out.push(head);
    for (const t of Object.values(node.transitions)) out.push({ steps: [...head.steps, { event: t.event, state: t.state }], state: t.state });
  }
  return out;
}

const settle = async (): Promise<void> => {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
};

// ---------------------------------------------------------------- fake world

const SLOT = 4096;
const TIMEOUTS = { memoryWaitMs: 1000, stagingMs: 2000, transferMs: 3000, readyTtlMs: 500 } as Timeouts;
const LONGER_THAN_ANY_TIMEOUT = 60_000;

/** The invoked promise actors, settled by the test. */
class Invocations {
  private readonly pending = new Map<string, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  readonly started: string[] = [];

  actor() {
    return fromPromise<never, unknown>(({ self }) => new Promise<never>((resolve, reject) => {
      this.started.push(self.id);
      this.pending.set(self.id, { resolve: resolve as (v: unknown) => void, reject });
    }));
  }

  settle(invokeId: string, outcome: { output?: unknown } | { error: unknown }): void {
    const p = this.pending.get(invokeId);
    expect(p, `the machine invoked ${invokeId} (invoked: ${this.started.join(", ")}; pending: ${[...this.pending.keys()].join(", ")})`).to.exist;
    this.pending.delete(invokeId);
    if ("error" in outcome) p!.reject(outcome.error);
    else p!.resolve(outcome.output);
  }
}

/**
 * The real slab machine behind a gate: a transfer's ALLOCATE waits at the
 * gate until the test lets it through (as when the slab's mailbox is busy),
 * so the transfer really rests in `allocating`.
 */
class GatedSlab {
  readonly slab = createActor(slabMachine, { input: { pressureThreshold: 1 } }).start();
  private readonly gate: Extract<Parameters<typeof this.slab.send>[0], { type: "ALLOCATE" }>[] = [];
  private blocker: Allocation | null = null;
  lastReply: SlabReply["type"] | null = null;

  constructor(private readonly pool: PoolName) {
    this.slab.send({ type: "CONFIGURE", pool, slotBytes: SLOT, regions: [{ start: 0, bytes: 2 * SLOT }] });
  }

  /** What the transfer machine sees as its slab. */
  get ref(): never {
    return {
      send: (ev: { type: string }) => {
        if (ev.type === "ALLOCATE") this.gate.push(ev as never);
        else this.slab.send(ev as never);
      },
    } as never;
  }

  /** Takes all the memory, so that the next request has to wait. */
  fill(): void {
    this.slab.send({ type: "ALLOCATE", pool: this.pool, bytes: 2 * SLOT, requestId: "blocker", reply: (r) => { if (r.type === "MEMORY_GRANTED") this.blocker = r.allocation; } });
    expect(this.blocker).to.not.equal(null);
  }

  freeBlocker(): void {
    if (!this.blocker) return;
    this.slab.send({ type: "FREE", pool: this.pool, allocation: this.blocker });
    this.blocker = null;
  }

  get gated(): number {
    return this.gate.length;
  }

  /** Lets the waiting ALLOCATE requests reach the slab. */
  open(): void {
    for (const ev of this.gate.splice(0)) {
      const reply = ev.reply;
      this.slab.send({ ...ev, reply: (r) => { this.lastReply = r.type; reply(r); } });
    }
  }

  usage() {
    return poolUsage(this.slab.getSnapshot().context, this.pool);
  }
}

/** How each kind of event of a path is brought about on the real actor. */
async function drive(
  actor: { send: (e: never) => void; getSnapshot: () => { value: unknown } },
  event: Step["event"], world: { slab: GatedSlab; calls: Invocations; clock: SimulatedClock },
): Promise<void> {
  const { type } = event;
  if (type === "MEMORY_GRANTED" || type === "MEMORY_WAIT" || type === "MEMORY_IMPOSSIBLE") {
    if (world.slab.gated > 0) {
      world.slab.open(); // the slab answers on its own: its state was set up to give this answer
      expect(world.slab.lastReply, `the real slab answered ${type}`).to.equal(type);
    } else {
      expect(type, "a grant to a waiting request").to.equal("MEMORY_GRANTED");
      world.slab.freeBlocker(); // memory frees up: the slab grants the waiter
      expect(world.slab.lastReply).to.equal("MEMORY_GRANTED");
    }
  } else if (type.startsWith("xstate.done.actor.")) {
    world.calls.settle(type.slice("xstate.done.actor.".length), { output: event.output });
  } else if (type.startsWith("xstate.error.actor.")) {
    world.calls.settle(type.slice("xstate.error.actor.".length), { error: event.error });
  } else if (type.startsWith("xstate.after.")) {
    world.clock.increment(LONGER_THAN_ANY_TIMEOUT);
  } else {
    actor.send(event as never);
  }
  await settle();
}

/** Sets the slab up so that it gives the path's first memory answer. */
function prepareSlab(path: Path, slab: GatedSlab): { impossible: boolean } {
  const first = path.steps.find((s) => s.event.type.startsWith("MEMORY_"))?.event.type;
  if (first === "MEMORY_WAIT") slab.fill();
  return { impossible: first === "MEMORY_IMPOSSIBLE" };
}

function snapshotKey(s: { value: unknown; status: string }): string {
  return JSON.stringify({ value: s.value, status: s.status });
}

// ---------------------------------------------------------------- the machines

const ERROR = new Error("injected failure");
const CAPACITY = new SlabCapacityError(3 * SLOT, 2 * SLOT, "send");

/**
 * What tells two transfer states apart: every context field (new ones
 * included), with the slab, the input's fixed parts and live objects
 * reduced to what matters.
 */
function contextFields(key: string, value: unknown): unknown {
  if (key === "slab" || key === "body" || key === "timeouts") return undefined;
  if (key === "error" || key === "allocation") return value !== null && value !== undefined;
  if (key === "deliveries") return (value as unknown[]).map((d) => Object.keys(d as object).sort().join(","));
  // Lists of ranks or shards are sets: a repeated event (a second RELEASED of the same rank) is the same state.
  if (Array.isArray(value) && value.every((v) => typeof v === "number")) return [...new Set(value as number[])].sort((a, b) => a - b);
  return value;
}

interface MachineCase {
  name: string;
  machine: AnyStateMachine;
  inputs: { label: string; input: (slab: never, impossible: boolean) => unknown }[];
  events: Step["event"][];
  serialize: (s: { value: unknown; status: string; context: Record<string, unknown> }) => string;
  pool: PoolName;
  provide: (calls: Invocations) => AnyStateMachine;
}

const sendEvents: Step["event"][] = [
  { type: "MEMORY_GRANTED", allocation: { offset: 0, bytes: SLOT } },
  { type: "MEMORY_WAIT", ahead: 0 },
  { type: "MEMORY_IMPOSSIBLE", error: CAPACITY },
  { type: "SHARD_STAGED", shard: 0 },
  { type: "SHARD_STAGED", shard: 1 },
  { type: "RELEASED", rank: 1 },
  { type: "RELEASED", rank: 2 },
  { type: "ABORT", reason: "test" },
  { type: "STAGING_FAILED", error: ERROR },
  ...[
    [{ rank: 1, held: true, intraNode: true }],
    [{ rank: 1, held: true, intraNode: true }, { rank: 2, held: true, intraNode: true }],
    [{ rank: 1, held: true, intraNode: false }],
    [{ rank: 1, held: true, intraNode: true, duplicate: true }],
    [{ rank: 1, failed: ERROR }],
    [{ rank: 1, held: true, intraNode: true }, { rank: 2, failed: ERROR }],
    [{ rank: 1, held: false, ucxTag: "7", ucxAddress: new Uint8Array([1]) }],
    [{ rank: 1, held: false, ucxTag: "7", ucxAddress: new Uint8Array([1]) }, { rank: 2, held: true, intraNode: true }],
  ].map((output) => ({ type: "xstate.done.actor.0.send.announcing", output })),
  { type: "xstate.error.actor.0.send.announcing", error: ERROR },
  { type: "xstate.done.actor.0.send.transferring", output: undefined },
  { type: "xstate.error.actor.0.send.transferring", error: ERROR },
];

const recvEvents: Step["event"][] = [
  { type: "MEMORY_GRANTED", allocation: { offset: 0, bytes: SLOT } },
  { type: "MEMORY_WAIT", ahead: 0 },
  { type: "MEMORY_IMPOSSIBLE", error: CAPACITY },
  { type: "MARK_DONE" },
  { type: "ABORT", reason: "test" },
  ...["receiving", "releasing", "expiring"].flatMap((s) => [
    { type: `xstate.done.actor.0.recv.${s}`, output: undefined },
    { type: `xstate.error.actor.0.recv.${s}`, error: ERROR },
  ]),
];

const CASES: MachineCase[] = [
  {
    name: "send transfer",
    machine: sendTransferMachine,
    pool: "send",
    provide: (calls) => sendTransferMachine.provide({ actors: { announce: calls.actor() as never, transferBytes: calls.actor() as never } }),
    inputs: [
      { label: "tensor, one shard", input: (slab, impossible) => sendInput(slab, impossible, "tensor", 1) },
      { label: "tensor, two shards (concurrentCopy)", input: (slab, impossible) => sendInput(slab, impossible, "tensor", 2) },
      { label: "tensor, streamed to other nodes", input: (slab, impossible) => sendInput(slab, impossible, "tensor", 2, true) },
      { label: "object", input: (slab, impossible) => sendInput(slab, impossible, "object", 1) },
    ],
    events: sendEvents,
    serialize: (s) => JSON.stringify({ value: s.value, status: s.status, context: s.context }, contextFields),
  },
  {
    name: "receive transfer",
    machine: recvTransferMachine,
    pool: "recv",
    provide: (calls) => recvTransferMachine.provide({ actors: { receiveBytes: calls.actor() as never, release: calls.actor() as never } }),
    inputs: [
      { label: "same-node tensor, TTL", input: (slab, impossible) => recvInput(slab, impossible, "tensor", true, 500) },
      { label: "object, no TTL", input: (slab, impossible) => recvInput(slab, impossible, "object", true, 0) },
      { label: "other-node tensor, TTL", input: (slab, impossible) => recvInput(slab, impossible, "tensor", false, 500) },
      { label: "other-node tensor, no TTL", input: (slab, impossible) => recvInput(slab, impossible, "tensor", false, 0) },
    ],
    events: recvEvents,
    serialize: (s) => JSON.stringify({ value: s.value, status: s.status, context: s.context }, contextFields),
  },
  {
    name: "server lifecycle",
    machine: serverMachine,
    pool: "send",
    provide: (calls) => serverMachine.provide({ actors: { join: calls.actor() as never, drain: calls.actor() as never } }),
    inputs: [{ label: "default", input: () => undefined }],
    events: [
      { type: "STOP" },
      { type: "xstate.done.actor.0.server.joining", output: undefined },
      { type: "xstate.error.actor.0.server.joining", error: ERROR },
      { type: "xstate.done.actor.0.server.draining", output: undefined },
      { type: "xstate.error.actor.0.server.draining", error: ERROR },
    ],
    serialize: (s) => JSON.stringify({ value: s.value, status: s.status }),
  },
];

function sendInput(slab: never, impossible: boolean, kind: "tensor" | "object", shards: number, streamed = false) {
  const body = kind === "object"
    ? { kind: "object", value: { hello: "world" } }
    : { kind: "tensor", dtype: "uint8", shape: [impossible ? 3 * SLOT : SLOT], length: impossible ? 3 * SLOT : SLOT, node: "n", offset: 0 };
  return { tag: "0:1", id: "graph", chunkId: 0, numChunks: 1, body, destinations: [1, 2], shards, streamed, pieceBytes: streamed ? 64 : 0, slab, timeouts: TIMEOUTS };
}

function recvInput(slab: never, impossible: boolean, kind: "tensor" | "object", intraNode: boolean, readyTtlMs: number) {
  const body = kind === "object"
    ? { kind: "object", value: 1 }
    : { kind: "tensor", dtype: "uint8", shape: [impossible ? 3 * SLOT : SLOT], length: impossible ? 3 * SLOT : SLOT, node: intraNode ? "here" : "there", offset: 0 };
  return { tag: "0:1", id: "graph", chunkId: 0, fromRank: 0, body, intraNode, slab, timeouts: { ...TIMEOUTS, readyTtlMs } };
}

// ---------------------------------------------------------------- tests

describe("actors: every state and transition, walked with xstate/graph and replayed on real actors", function () {
  this.timeout(60_000);

  for (const c of CASES) {
    describe(c.name, () => {
      const coverage = new Coverage(c.machine.id);
      let replayed = 0;

      for (const { label, input } of c.inputs) {
        it(`replays every edge of the graph (${label})`, async () => {
          const traversalSlab = new GatedSlab(c.pool);
          // Only events the state takes (getAdjacencyMap alone would also try every other event as a no-op).
          const filterEvents = (snap: { status: string; can: (e: unknown) => boolean }, ev: unknown) => snap.status === "active" && snap.can(ev);
          // Every event the state names (timers and invocations included), with the payloads listed above where there are some.
          const events = (snap: never) => (getAllOwnEventDescriptors(snap) as string[]).flatMap((type) => {
            const listed = c.events.filter((e) => e.type === type);
            return listed.length ? listed : [{ type }];
          });
          const paths = edgePaths(c.machine, { input: input(traversalSlab.ref, false), events, filterEvents }, c.serialize as never);
          expect(paths.length, "the traversal found paths").to.be.greaterThan(1);
          for (const path of paths) {
            const what = `${label}: ${path.steps.map((s) => s.event.type).join(" → ") || "(initial)"}`;
            const slab = new GatedSlab(c.pool);
            const { impossible } = prepareSlab(path, slab);
            const calls = new Invocations();
            const clock = new SimulatedClock();
            const actor = createActor(c.provide(calls), { input: input(slab.ref, impossible), clock, inspect: coverage.inspect } as never);
            actor.start();
            await settle();
            coverage.snapshot(actor.getSnapshot().value);
            for (const [i, step] of path.steps.entries()) {
              try {
                await drive(actor as never, step.event, { slab, calls, clock });
              } catch (err) {
                (err as Error).message = `${what}: step ${i + 1}: ${(err as Error).message}`;
                throw err;
              }
              const got = actor.getSnapshot() as unknown as { value: unknown; status: string };
              expect(snapshotKey(got), `${what}: after step ${i + 1} (${step.event.type})`).to.equal(snapshotKey(step.state as never));
            }
            const end = actor.getSnapshot() as unknown as { value: unknown; status: string; context: Record<string, unknown> };
            expect(c.serialize(end), `${what}: final state`).to.equal(c.serialize(path.state as never));
            if (end.status === "done" && c.machine !== serverMachine) {
              // A finished transfer holds no memory and leaves nobody waiting, whatever the path.
              slab.open();
              slab.freeBlocker();
              await settle();
              const u = slab.usage();
              expect({ used: u.usedBytes, waiting: u.waiting }, `${what}: memory after the transfer finished`).to.deep.equal({ used: 0, waiting: 0 });
            }
            actor.stop();
            slab.slab.stop();
            replayed += 1;
          }
        });
      }

      it("visited every state node and took every transition", () => {
        expect(replayed).to.be.greaterThan(0);
        coverage.expectComplete(c.machine);
      });
    });
  }

  describe("slab", () => {
    // A pure model of the slab: each state is the list of events so far, replayed on a fresh, real slab actor.
    type SlabStep =
      | { type: "CONFIGURE"; pool: PoolName }
      | { type: "ADD_REGION"; pool: PoolName }
      | { type: "ALLOCATE"; pool: PoolName; slots: number; requestId: string }
      | { type: "CANCEL"; pool: PoolName; requestId: string }
      | { type: "FREE"; pool: PoolName };
    interface Model { history: SlabStep[]; value: string; send: string; recv: string }

    const coverage = new Coverage(slabMachine.id);

    function run(history: SlabStep[], inspect?: (ev: InspectionEvent) => void, threshold = 2) {
      const slab = createActor(slabMachine, { input: { pressureThreshold: threshold }, inspect }).start();
      const granted: Record<PoolName, Allocation[]> = { send: [], recv: [] };
      const replies: SlabReply["type"][] = [];
      let regions = 0;
      for (const ev of history) {
        if (ev.type === "CONFIGURE") slab.send({ type: "CONFIGURE", pool: ev.pool, slotBytes: SLOT, regions: [{ start: 0, bytes: 2 * SLOT }] });
        else if (ev.type === "ADD_REGION") slab.send({ type: "ADD_REGION", pool: ev.pool, region: { start: (10 + regions++) * 4 * SLOT, bytes: SLOT } });
        else if (ev.type === "ALLOCATE") {
          slab.send({
            type: "ALLOCATE", pool: ev.pool, bytes: ev.slots * SLOT, requestId: ev.requestId,
            reply: (r) => { replies.push(r.type); if (r.type === "MEMORY_GRANTED") granted[ev.pool].push(r.allocation); },
          });
        } else if (ev.type === "CANCEL") slab.send({ type: "CANCEL", pool: ev.pool, requestId: ev.requestId });
        else {
          const a = granted[ev.pool].shift();
          if (a) slab.send({ type: "FREE", pool: ev.pool, allocation: a });
        }
      }
      const snap = slab.getSnapshot();
      const describe = (p: PoolName) => {
        const u = poolUsage(snap.context, p);
        return `${u.totalBytes / SLOT}:${u.usedBytes / SLOT}:${u.waiting}`;
      };
      const model: Model = { history, value: String(snap.value), send: describe("send"), recv: describe("recv") };
      slab.stop();
      return { model, replies, snap };
    }

    // The send pool gets every kind of event; the receive pool enough to show that waiters of both pools add up.
    const events: SlabStep[] = [
      { type: "CONFIGURE", pool: "send" },
      { type: "ADD_REGION", pool: "send" },
      { type: "ALLOCATE", pool: "send", slots: 1, requestId: "send-a" },
      { type: "ALLOCATE", pool: "send", slots: 2, requestId: "send-b" },
      { type: "ALLOCATE", pool: "send", slots: 9, requestId: "send-never" },
      { type: "CANCEL", pool: "send", requestId: "send-a" },
      { type: "FREE", pool: "send" },
      { type: "CONFIGURE", pool: "recv" },
      { type: "ALLOCATE", pool: "recv", slots: 2, requestId: "recv-b" },
      { type: "CANCEL", pool: "recv", requestId: "recv-b" },
    ];

    // Bounded: at most 2 waiters per pool and one extra region, so the graph is finite.
    const logic = fromTransition((m: Model, ev: SlabStep) => run([...m.history, ev]).model, run([]).model);
    const keyOf = (m: Model) => `${m.value}|${m.send}|${m.recv}`;
    const filterEvents = (snap: { context: Model }, ev: SlabStep) => {
      const [total, , waiting] = snap.context[ev.pool === "send" ? "send" : "recv"].split(":").map(Number);
      if (ev.type === "ALLOCATE") return waiting! < 2;
      if (ev.type === "ADD_REGION") return total! < 3;
      return true;
    };

    it("replays every edge of the slab's graph on a real slab actor", async () => {
      const paths = edgePaths(logic, { events, filterEvents }, ((s: { context: Model }) => keyOf(s.context)) as never);
      expect(paths.length).to.be.greaterThan(20);
      const values = new Set<string>();
      for (const path of paths) {
        const expected = (path.state as { context: Model }).context;
        const history = path.steps.map((s) => s.event as unknown as SlabStep);
        const { model, replies } = run(history, coverage.inspect);
        expect(keyOf(model), history.map((e) => e.type).join(" → ")).to.equal(keyOf(expected));
        values.add(model.value);
        // Every request is answered at once: a grant, a wait, or a refusal.
        expect(replies.length).to.be.at.least(history.filter((e) => e.type === "ALLOCATE").length);
        // Health follows the waiters: pressured exactly when at least 2 wait.
        const waiting = Number(model.send.split(":")[2]) + Number(model.recv.split(":")[2]);
        expect(model.value, history.map((e) => e.type).join(" → ")).to.equal(waiting >= 2 ? "pressured" : "calm");
      }
      expect([...values].sort()).to.deep.equal(["calm", "pressured"]);
      // With threshold 1, a single waiter is enough.
      const one = run([{ type: "CONFIGURE", pool: "send" }, { type: "ALLOCATE", pool: "send", slots: 2, requestId: "x" }, { type: "ALLOCATE", pool: "send", slots: 1, requestId: "y" }], coverage.inspect, 1);
      expect(String(one.snap.value)).to.equal("pressured");
    });

    it("grants in arrival order, refuses the impossible at once, and never overtakes a waiter", () => {
      const { replies } = run([
        { type: "CONFIGURE", pool: "send" },
        { type: "ALLOCATE", pool: "send", slots: 9, requestId: "huge" },
        { type: "ALLOCATE", pool: "send", slots: 2, requestId: "a" },
        { type: "ALLOCATE", pool: "send", slots: 2, requestId: "b" },
        { type: "ALLOCATE", pool: "send", slots: 1, requestId: "c" },
        { type: "FREE", pool: "send" },
      ]);
      expect(replies).to.deep.equal(["MEMORY_IMPOSSIBLE", "MEMORY_GRANTED", "MEMORY_WAIT", "MEMORY_WAIT", "MEMORY_GRANTED"]);
    });

    it("visited every state node and took every transition", () => {
      coverage.expectComplete(slabMachine);
    });
  });
});
