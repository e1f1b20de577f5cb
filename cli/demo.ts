import { createHash } from "node:crypto";
import cliProgress from "cli-progress";
import { Sidecar } from "../client/sidecar.js";
import type { SidecarClient } from "../client/api.js";
import { Tensor } from "../core/tensor.js";
import { startCluster, type LocalCluster } from "../cluster/localCluster.js";
import { table } from "./table.js";

/**
 * `sidecar demo`: the main job on an embedded default. A private
 * nats-server and four sidecars on this host, as two simulated nodes (each
 * its own slab file; tensors between them cross UCX over loopback TCP); an
 * encoder (rank 0, node A) hands embeddings to an LLM whose TP group is
 * ranks 2 and 3 (node B), the LLM hands audio
 * codes to a vocoder (rank 1), and the encoder streams a final summary.
 * Everything received is checked byte for byte; the summary shows what moved,
 * how fast, and that the slabs are empty again.
 */

const ROW = 1024;
const ROWS_PER_CHUNK = 256; // 1 MiB of float32 per chunk
const CHUNKS = 2;

function embedding(request: number, chunk: number): Float32Array {
  const a = new Float32Array(ROWS_PER_CHUNK * ROW);
  for (let i = 0; i < a.length; i += 97) a[i] = request * 1000 + chunk + i * 1e-3;
  return a;
}

const digest = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");


const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
// A TP member's memory is pooled by its group head, so its own pools stay unconfigured.
const pool = (p: { usedBytes: number; totalBytes: number }) => (p.totalBytes === 0 ? "(pooled by head)" : `${p.usedBytes} / ${mib(p.totalBytes)}`);

export async function demo(flags: { requests?: string }): Promise<number> {
  const requests = Math.max(1, Number(flags.requests ?? 24));
  // Two simulated nodes on this host: each its own slab file, UCX between them.
  const nodeA = `demo-a-${process.pid}`;
  const nodeB = `demo-b-${process.pid}`;
  process.stdout.write(`Starting a private nats-server and 4 sidecars on 2 simulated nodes (${nodeA}: ranks 0,1; ${nodeB}: ranks 2,3)…\n`);
  let cluster: LocalCluster | undefined;
  const clients: SidecarClient[] = [];
  try {
    cluster = await startCluster([0, 1, 2, 3].map((rank) => ({ rank, node: rank < 2 ? nodeA : nodeB, shmSize: 32 * 1024 * 1024 })),
      { env: { UCX_TLS: process.env.UCX_TLS ?? "tcp,self" } });
    const natsUrl = cluster.url;
    const hint = { dtype: "float32", shape: [-1, ROW] };
    const encoder = await Sidecar.connect({ rank: 0, sendTensor: hint, natsUrl });
    const llm = await Promise.all([2, 3].map((rank) => Sidecar.connect({ rank, group: [2, 3], recvTensor: hint, concurrentCopy: true, natsUrl })));
    const vocoder = await Sidecar.connect({ rank: 1, recvTensor: { dtype: "int32", shape: [-1, 1] }, natsUrl });
    clients.push(encoder, ...llm, vocoder);

    const bar = new cliProgress.SingleBar({ format: "moving  [{bar}] {value}/{total} requests | {mib} MiB | {eta_formatted} left", hideCursor: true }, cliProgress.Presets.shades_classic);
    bar.start(requests, 0, { mib: "0.0" });
    let tensorBytes = 0;
    let mismatches = 0;
    const objectLatencies: number[] = [];
    const t0 = performance.now();

    for (let r = 0; r < requests; r++) {
      const id = `req-${r}`;
      const expected = Array.from({ length: CHUNKS }, (_, c) => embedding(r, c));
      // Encoder → LLM: chunks in reverse order; the LLM reads them in order.
      const sends = [...expected.keys()].reverse().map((c) =>
        encoder.send(Tensor.from(expected[c]!, { dtype: "float32", shape: [ROWS_PER_CHUNK, ROW] }), { id, dstRanks: [[2, 3]], chunkId: c, numChunks: CHUNKS }));
      for (let c = 0; c < CHUNKS; c++) {
        // Both TP workers read the same chunk; the head releases it.
        const got = (await Promise.all(llm.map((w) => w.recv(id, c)))) as Tensor[];
        for (const t of got) if (digest(t.bytes) !== digest(new Uint8Array(expected[c]!.buffer))) mismatches++;
        tensorBytes += got[0]!.bytes.byteLength;
        await llm[0]!.markDone(id, c);
      }
      await Promise.all(sends);
      // LLM → vocoder: both TP workers send the same small object.
      const codes = { request: r, codes: Array.from({ length: 32 }, (_, i) => (r * 31 + i) % 4096), final: r === requests - 1, tokens: BigInt(r) * 1_000_000_007n };
      const s = performance.now();
      await Promise.all(llm.map((w) => w.send(codes, { id: `${id}-codes`, dstRanks: [[1]] })));
      const back = (await vocoder.recv(`${id}-codes`)) as typeof codes;
      objectLatencies.push(performance.now() - s);
      if (JSON.stringify(back, (_, v) => (typeof v === "bigint" ? `${v}n` : v)) !== JSON.stringify(codes, (_, v) => (typeof v === "bigint" ? `${v}n` : v))) mismatches++;
      await vocoder.markDone(`${id}-codes`);
      bar.update(r + 1, { mib: (tensorBytes / 1048576).toFixed(1) });
    }
    const tensorSeconds = (performance.now() - t0) / 1000;

    // A stream whose length is known only at the end, closed before the consumer reads it.
    const streamId = "summary-stream";
    const lines = ["encoder done", `requests ${requests}`, "bye"];
    await Promise.all(lines.map((line, i) => encoder.send(line, { id: streamId, dstRanks: [[1]], chunkId: i, stream: true })));
    await encoder.closeStream(streamId, lines.length, [[1]]);
    const streamed: string[] = [];
    for (let i = 0; ; i++) {
      const v = await vocoder.recv(streamId, i);
      if (v === null) break;
      streamed.push(v as string);
      await vocoder.markDone(streamId, i);
    }
    if (streamed.join("|") !== lines.join("|")) mismatches++;
    bar.stop();

    await new Promise((r) => setTimeout(r, 100));
    const health = await Promise.all([0, 1, 2, 3].map((r) => cluster!.health(r)));
    objectLatencies.sort((a, b) => a - b);
    const p50 = objectLatencies[Math.floor(objectLatencies.length / 2)]!;
    process.stdout.write("\n" + table([
      ["what moved", "count", "bytes", "time", "rate"],
      ["tensors encoder(0) → LLM TP group [2,3], across nodes (UCX)", String(requests * CHUNKS), mib(tensorBytes), `${tensorSeconds.toFixed(2)} s`, `${(tensorBytes / 1048576 / tensorSeconds).toFixed(0)} MiB/s (incl. checks)`],
      ["objects LLM [2,3] → vocoder(1), across nodes (inline)", String(requests), "inline", `p50 ${p50.toFixed(2)} ms`, "send→recv"],
      ["stream encoder(0) → vocoder(1), same node, closed early", String(streamed.length), "inline", "-", "-"],
    ]) + "\n\n" + table([
      ["sidecar", "status", "send slab used", "recv slab used", "sent", "received"],
      ...health.map((h) => [String(h.rank), h.status, pool(h.send), pool(h.recv), String(h.transfers.sent), String(h.transfers.received)]),
    ]) + "\n\n");
    const leaked = health.some((h) => h.send.usedBytes !== 0 || h.recv.usedBytes !== 0);
    if (mismatches > 0) process.stdout.write(`FAILED: ${mismatches} values did not arrive intact\n`);
    if (leaked) process.stdout.write("FAILED: slab memory still in use after every chunk was released\n");
    if (mismatches === 0 && !leaked) process.stdout.write("All data arrived byte-exact; every slab is empty again.\n");
    return mismatches === 0 && !leaked ? 0 : 1;
  } catch (err) {
    process.stderr.write(`demo failed: ${(err as Error).stack ?? err}\n`);
    return 1;
  } finally {
    for (const c of clients) await c.shutdown().catch(() => {});
    await cluster?.stop();
  }
}
