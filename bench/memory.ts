import { openPair } from "./pair.js";

/**
 * Does a server that completed 100 000 transfers hold more memory than one
 * that completed 1 000? Sidecars run with --expose-gc; the heap of both is
 * read after collections, through health, at each checkpoint (a running
 * total of completed object transfers). A server keeps bounded memory of
 * finished ids (so late TP workers and late recv calls get the right answer):
 * it fills in the first ~16 000 transfers, then the heap must stay flat.
 */
export interface MemoryPoint { transfers: number; heapBytes: number }

export async function benchMemory(options: { checkpoints?: number[]; concurrency?: number } = {}): Promise<{ points: MemoryPoint[]; seconds: number }> {
  const checkpoints = options.checkpoints ?? [1000, 20_000, 50_000, 100_000];
  const concurrency = options.concurrency ?? 64;
  const node = `bench-mem-${process.pid}`;
  const pair = await openPair([node, node], 8 << 20, { dtype: "uint8", shape: [-1, 64] }, { nodeArgs: ["--expose-gc"] });
  const { cluster, a, b } = pair;
  let next = 0;
  const run = async (upTo: number) => {
    const lane = async () => {
      while (next < upTo) {
        const id = `m${next++}`;
        await a.send({ i: next, s: "payload" }, { id, dstRanks: [[1]] });
        await b.recv(id, 0);
        await b.markDone(id, 0);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, lane));
  };
  const heap = async () => {
    await new Promise((r) => setTimeout(r, 200));
    // Collect a few times: a single pass leaves floating garbage.
    let h = Infinity;
    for (let i = 0; i < 3; i++) {
      const [s, r] = await Promise.all([cluster.health(0, true), cluster.health(1, true)]);
      h = Math.min(h, s.memory!.heapUsed + r.memory!.heapUsed);
    }
    return h;
  };
  try {
    const t = performance.now();
    const points: MemoryPoint[] = [];
    for (const upTo of checkpoints) {
      await run(upTo);
      points.push({ transfers: upTo, heapBytes: await heap() });
    }
    return { points, seconds: (performance.now() - t) / 1000 };
  } finally {
    await pair.close();
  }
}
