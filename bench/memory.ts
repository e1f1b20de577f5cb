import { Sidecar } from "../client/sidecar.js";
import { startCluster } from "../cluster/localCluster.js";

/**
 * Does a server that completed 100 000 transfers hold more memory than one
 * that completed 1 000? Sidecars run with --expose-gc; heap is read after a
 * collection through health.
 */
export async function benchMemory(options: { small?: number; large?: number; concurrency?: number } = {}): Promise<{ small: number; large: number; heapSmall: number; heapLarge: number; seconds: number }> {
  const small = options.small ?? 1000;
  const large = options.large ?? 100_000;
  const concurrency = options.concurrency ?? 64;
  const cluster = await startCluster([{ rank: 0, node: "bench-mem", shmSize: 8 << 20 }, { rank: 1, node: "bench-mem", shmSize: 8 << 20 }], { nodeArgs: ["--expose-gc"] });
  const a = await Sidecar.connect({ rank: 0, sendTensor: { dtype: "uint8", shape: [-1, 64] }, natsUrl: cluster.url });
  const b = await Sidecar.connect({ rank: 1, recvTensor: { dtype: "uint8", shape: [-1, 64] }, natsUrl: cluster.url });
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
    await run(small);
    const heapSmall = await heap();
    await run(large);
    const heapLarge = await heap();
    return { small, large, heapSmall, heapLarge, seconds: (performance.now() - t) / 1000 };
  } finally {
    await a.shutdown();
    await b.shutdown();
    await cluster.stop();
  }
}
