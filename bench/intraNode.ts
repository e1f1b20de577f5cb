import { connect } from "nats";
import { Tensor } from "../core/tensor.js";
import { openPair } from "./pair.js";
import { median, percentile } from "./stats.js";

/**
 * Same-node figures, each next to a reference measured in the same run:
 * a 64 MiB tensor send→recv vs a 64 MiB memcpy, and a small object
 * send→recv vs a raw NATS request/reply.
 */

export interface IntraNodeResult {
  tensorBytes: number;
  memcpyMs: number;
  transferMs: number;
  objectP50Ms: number;
  objectP99Ms: number;
  natsP50Ms: number;
  natsP99Ms: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// Between rounds: a consumer posts its recv before the producer sends (as a
// real one, waiting for its next input, does), and the previous round's
// background traffic (markDone's release at the sender) has settled. Both
// the sidecar rounds and the raw NATS reference rounds are paced the same.
const SETTLE_MS = 2;

function memcpyMs(bytes: number, rounds: number): number {
  const src = Buffer.alloc(bytes, 7);
  const dst = Buffer.alloc(bytes);
  src.copy(dst); // warm both
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t = performance.now();
    src.copy(dst);
    times.push(performance.now() - t);
  }
  return median(times);
}

export async function benchIntraNode(options: { bytes?: number; rounds?: number; objects?: number } = {}): Promise<IntraNodeResult> {
  const bytes = options.bytes ?? 64 * 1024 * 1024;
  const rounds = options.rounds ?? 15;
  const objects = options.objects ?? 2000;
  const node = `bench-intra-${process.pid}`;
  const pair = await openPair([node, node], 4 * bytes, { dtype: "float32", shape: [-1, 4096] });
  const { cluster, a, b } = pair;
  try {
    const data = new Float32Array(bytes / 4).fill(1.5);
    const tensor = Tensor.from(data, { dtype: "float32", shape: [-1, 4096] });

    const transfer: number[] = [];
    for (let i = -3; i < rounds; i++) {
      const id = `t${i}`;
      const got = b.recv(id, 0);
      await sleep(SETTLE_MS);
      const t = performance.now();
      await Promise.all([a.send(tensor, { id, dstRanks: [[1]] }), got]);
      const dt = performance.now() - t;
      await b.markDone(id, 0);
      if (i >= 0) transfer.push(dt);
    }
    const memcpy = memcpyMs(bytes, rounds);

    const obj: number[] = [];
    const payload = { request: "abcdefghij".repeat(8), n: 42 };
    for (let i = -200; i < objects; i++) {
      const id = `o${i}`;
      const got = b.recv(id, 0);
      await sleep(SETTLE_MS);
      const t = performance.now();
      await Promise.all([a.send(payload, { id, dstRanks: [[1]] }), got]);
      if (i >= 0) obj.push(performance.now() - t);
      await b.markDone(id, 0);
    }

    // The reference: a raw nats.js request/reply of about the same size on the same server.
    const nc = await connect({ servers: cluster.url });
    const nc2 = await connect({ servers: cluster.url });
    const sub = nc2.subscribe("bench.echo", { callback: (_e, m) => m.respond(m.data) });
    await nc2.flush();
    const raw = new Uint8Array(100);
    const rr: number[] = [];
    for (let i = -200; i < objects; i++) {
      await sleep(SETTLE_MS);
      const t = performance.now();
      await nc.request("bench.echo", raw, { timeout: 5000 });
      if (i >= 0) rr.push(performance.now() - t);
    }
    sub.unsubscribe();
    await nc.close();
    await nc2.close();
    return {
      tensorBytes: bytes, memcpyMs: memcpy, transferMs: median(transfer),
      objectP50Ms: median(obj), objectP99Ms: percentile(obj, 99), natsP50Ms: median(rr), natsP99Ms: percentile(rr, 99),
    };
  } finally {
    await pair.close();
  }
}
