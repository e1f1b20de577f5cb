import { Tensor } from "../core/tensor.js";
import { openPair } from "./pair.js";
import { benchObjectStore, type ObjectStoreResult } from "./objectStore.js";
import { median } from "./stats.js";
import { runUcxPerftest, type PerftestResult } from "./ucxPerftest.js";

/**
 * Inter-node figures: a tensor moved between two sidecars on different
 * simulated nodes (each its own slab file; bytes cross over UCX), next to
 * `ucx_perftest -t tag_bw` with the same transports and size, and a NATS
 * JetStream Object Store put+get of the same bytes, all in the same run.
 */

export interface SizePlan {
  bytes: number;
  /** Sidecar rounds (after `warmup` unmeasured ones); the median is reported. */
  rounds: number;
  warmup: number;
  /** ucx_perftest iterations and warm-up iterations, per run (the best run is the reference). */
  perftestIters: number;
  perftestWarmup: number;
  /** Object Store rounds (slow: about 33 MB/s). */
  osRounds: number;
  osWarmup: number;
}

export const DEFAULT_PLAN: SizePlan[] = [
  { bytes: 1 << 20, rounds: 32, warmup: 5, perftestIters: 200, perftestWarmup: 20, osRounds: 5, osWarmup: 1 },
  { bytes: 16 << 20, rounds: 16, warmup: 3, perftestIters: 40, perftestWarmup: 4, osRounds: 2, osWarmup: 1 },
  { bytes: 64 << 20, rounds: 12, warmup: 2, perftestIters: 10, perftestWarmup: 2, osRounds: 2, osWarmup: 0 },
];

export const TCP_ENV = { UCX_TLS: "tcp", UCX_NET_DEVICES: "lo" };
export const SHM_ENV = { UCX_TLS: "shm,self" };

export interface TransportResult {
  env: Record<string, string>;
  /** perftest: the best of the runs (ucx_perftest busy-polls, so a loaded machine slows it most); perftestRuns: all of them. */
  rows: { bytes: number; sidecarMs: number; perftest: PerftestResult; perftestRuns: PerftestResult[] }[];
}

export interface InterNodeResult {
  tcp: TransportResult;
  shm: TransportResult;
  objectStore: ObjectStoreResult[];
  seconds: number;
}

/**
 * Per size, median send→recv time (ms) between rank 0 on one simulated node
 * and rank 1 on another, and the best of `blocks` ucx_perftest runs with
 * the same transports (the conservative reference: a busy-polling perftest
 * pair on a shared 2-core machine can run 10× slower than its best),
 * measured alternately (perftest run, then a block of sidecar rounds, …) so
 * that drifting load on a shared machine hits both.
 * Sidecar: `recv` is posted first, then `send`; the clock stops when `recv`
 * resolves. The client's copy into the slab is part of the send.
 */
export async function benchTransport(plan: SizePlan[], env: Record<string, string>, blocks = 4): Promise<TransportResult> {
  const maxBytes = Math.max(...plan.map((p) => p.bytes));
  const shmSize = 4 * maxBytes; // each pool (send, recv) is half of it
  const tag = `${process.pid}-${env.UCX_TLS?.replace(/\W/g, "") ?? "default"}`;
  const pair = await openPair([`bench-a-${tag}`, `bench-b-${tag}`], shmSize, { dtype: "float32", shape: [-1, 4096] }, { env });
  const { a, b } = pair;
  try {
    const rows: TransportResult["rows"] = [];
    for (const p of plan) {
      const data = new Uint8Array(p.bytes);
      for (let i = 0; i < data.length; i += 4096) data[i] = (i >>> 12) & 255;
      const tensor = Tensor.from(data, { dtype: "float32", shape: [-1, 4096] });
      let n = 0;
      const round = async (check: boolean) => {
        const id = `inter-${p.bytes}-${n++}`;
        const got = b.recv(id, 0);
        const t = performance.now();
        const sent = a.send(tensor, { id, dstRanks: [[1]] });
        const value = await got;
        const dt = performance.now() - t;
        await sent;
        // Outside the clock: the bytes arrived intact.
        if (check && (!(value instanceof Tensor) || Buffer.compare(Buffer.from(value.bytes), Buffer.from(data)) !== 0)) {
          throw new Error(`inter-node transfer of ${p.bytes} bytes arrived corrupted`);
        }
        await b.markDone(id, 0);
        return dt;
      };
      for (let i = 0; i < p.warmup; i++) await round(i === 0);
      const times: number[] = [];
      const perftests: PerftestResult[] = [];
      for (let k = 0; k < blocks; k++) {
        try {
          perftests.push(await runUcxPerftest({ bytes: p.bytes, iterations: p.perftestIters, warmup: p.perftestWarmup, env }));
        } catch (err) {
          // One bad run on a busy machine does not void the others; all failing does.
          if (k === blocks - 1 && perftests.length === 0) throw err;
          process.stderr.write(`bench: a ucx_perftest run failed: ${(err as Error).message.split("\n")[0]}\n`);
        }
        const share = Math.ceil(((k + 1) * p.rounds) / blocks) - Math.ceil((k * p.rounds) / blocks);
        for (let i = 0; i < share; i++) times.push(await round(false));
      }
      const best = perftests.reduce((x, y) => (y.msPerMessage < x.msPerMessage ? y : x));
      rows.push({ bytes: p.bytes, sidecarMs: median(times), perftest: best, perftestRuns: perftests });
    }
    return { env, rows };
  } finally {
    await pair.close();
  }
}

export async function benchInterNode(plan: SizePlan[] = DEFAULT_PLAN): Promise<InterNodeResult> {
  const t = performance.now();
  const tcp = await benchTransport(plan, TCP_ENV);
  const objectStore = await benchObjectStore(plan.map((p) => ({ bytes: p.bytes, rounds: p.osRounds, warmup: p.osWarmup })));
  const shm = await benchTransport(plan, SHM_ENV);
  return { tcp, shm, objectStore, seconds: (performance.now() - t) / 1000 };
}
