import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "nats";
import { startNatsServer } from "../cluster/natsServer.js";
import { median } from "./stats.js";

/**
 * The reference a NATS user would reach for first: a JetStream Object Store
 * put followed by a get of the same bytes, on a private nats-server with
 * JetStream (default store settings, file storage in a temporary directory).
 */

export interface ObjectStoreRound { bytes: number; rounds: number; warmup: number }

export interface ObjectStoreResult {
  bytes: number;
  /** Median put+get time (ms). */
  ms: number;
  rounds: number;
}

export async function benchObjectStore(plan: ObjectStoreRound[]): Promise<ObjectStoreResult[]> {
  const storeDir = mkdtempSync(join(tmpdir(), "sidecar-bench-js-"));
  const server = await startNatsServer({ jetstream: true, storeDir });
  try {
    const nc = await connect({ servers: server.url });
    try {
      const js = nc.jetstream();
      const os = await js.views.os("bench");
      const out: ObjectStoreResult[] = [];
      for (const p of plan) {
        const data = new Uint8Array(p.bytes).fill(3);
        const times: number[] = [];
        for (let i = -p.warmup; i < p.rounds; i++) {
          const name = `o-${p.bytes}-${i + p.warmup}`;
          const t = performance.now();
          await os.putBlob({ name }, data);
          const got = await os.getBlob(name);
          const dt = performance.now() - t;
          if (!got || got.byteLength !== p.bytes) throw new Error(`object store returned ${got?.byteLength ?? "nothing"} bytes for ${name}, ${p.bytes} expected`);
          await os.delete(name);
          if (i >= 0) times.push(dt);
        }
        out.push({ bytes: p.bytes, ms: median(times), rounds: p.rounds });
      }
      return out;
    } finally {
      await nc.close();
    }
  } finally {
    await server.stop();
    rmSync(storeDir, { recursive: true, force: true });
  }
}
