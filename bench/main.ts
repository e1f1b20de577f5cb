import { table } from "../cli/table.js";
import { benchIntraNode } from "./intraNode.js";
import { benchInterNode } from "./interNode.js";
import { benchMemory } from "./memory.js";
import { gbps, ms } from "./stats.js";

/**
 * `npm run bench`: every figure next to a reference measured in the same run,
 * and their ratio (absolute times on these machines drift ±2×).
 * `--only intra|memory|inter` runs one part.
 */
const only = process.argv.includes("--only") ? process.argv[process.argv.indexOf("--only") + 1] : undefined;
const out = (s: string) => process.stdout.write(s + "\n");

if (!only || only === "intra") {
  out("== same node: 64 MiB tensor and small objects between two sidecars ==");
  const r = await benchIntraNode();
  const mb = r.tensorBytes / 1048576;
  out(table([
    ["measure", "sidecar", "reference", "ratio", "goal"],
    [`${mb} MiB tensor send→recv vs ${mb} MiB memcpy`, ms(r.transferMs), ms(r.memcpyMs), `memcpy/transfer = ${(r.memcpyMs / r.transferMs).toFixed(2)}`, "≥ 0.80"],
    ["small object send→recv p50 vs NATS req/reply p50", ms(r.objectP50Ms), ms(r.natsP50Ms), `${(r.objectP50Ms / r.natsP50Ms).toFixed(2)}×`, "≤ 2×"],
    ["small object send→recv p99 vs NATS req/reply p99", ms(r.objectP99Ms), ms(r.natsP99Ms), `${(r.objectP99Ms / r.natsP99Ms).toFixed(2)}×`, "-"],
  ]));
  out("");
}

if (!only || only === "memory") {
  out("== server memory after many transfers (heap after GC, both sidecars) ==");
  const m = await benchMemory();
  const first = m.points[0]!;
  out(table([
    ["completed transfers", "heap used", "vs first", "vs previous"],
    ...m.points.map((p, i) => [
      String(p.transfers), `${(p.heapBytes / 1048576).toFixed(1)} MiB`, (p.heapBytes / first.heapBytes).toFixed(2),
      i === 0 ? "-" : (p.heapBytes / m.points[i - 1]!.heapBytes).toFixed(2),
    ]),
  ]));
  out(`(${m.points.at(-1)!.transfers} object transfers in ${m.seconds.toFixed(1)} s; the server remembers the last 8192 sent and 16384 received ids, so the heap fills until about 16 000 transfers, then stays flat)`);
}

if (!only || only === "inter") {
  if (!only) out("");
  out("== two simulated nodes: tensor send→recv over UCX vs ucx_perftest tag_bw and JetStream Object Store put+get ==");
  const r = await benchInterNode();
  const size = (b: number) => `${b / 1048576} MiB`;
  const cell = (b: number, t: number) => `${ms(t)} (${gbps(b, t)})`;
  // ucx_perftest busy-polls: on a loaded machine it slows far more than the event-driven sidecars, and a ratio above 1 says so.
  let starved = false;
  const vsPerftest = (row: { sidecarMs: number; perftest: { msPerMessage: number } }) => {
    const x = row.perftest.msPerMessage / row.sidecarMs;
    if (x > 1) starved = true;
    return `${x.toFixed(2)}${x > 1 ? "*" : ""}`;
  };
  out("UCX_TLS=tcp UCX_NET_DEVICES=lo; ratio = bandwidth of sidecar / reference (goal ≥ 0.80 of ucx_perftest at 64 MiB)");
  out(table([
    ["size", "sidecar", "ucx_perftest", "ratio", "JetStream OS", "ratio"],
    ...r.tcp.rows.map((row) => {
      const os = r.objectStore.find((o) => o.bytes === row.bytes)!;
      return [
        size(row.bytes), cell(row.bytes, row.sidecarMs), cell(row.bytes, row.perftest.msPerMessage),
        vsPerftest(row), cell(row.bytes, os.ms), `${(os.ms / row.sidecarMs).toFixed(1)}×`,
      ];
    }),
  ]));
  out("");
  out("UCX_TLS=shm,self (shared memory between the simulated nodes)");
  out(table([
    ["size", "sidecar", "ucx_perftest", "ratio"],
    ...r.shm.rows.map((row) => [
      size(row.bytes), cell(row.bytes, row.sidecarMs), cell(row.bytes, row.perftest.msPerMessage), vsPerftest(row),
    ]),
  ]));
  const runs = (t: typeof r.tcp) => t.rows.map((row) => `${size(row.bytes)} ${row.perftestRuns.map((x) => x.msPerMessage.toFixed(2)).join("/")}`).join(", ");
  out("(sidecar: median send→recv, recv posted first, the client's copy into the slab included; ucx_perftest: best of its runs, overall time per message;");
  out(` JetStream OS: median putBlob+getBlob; ${r.seconds.toFixed(1)} s. ucx_perftest runs, ms per message: tcp ${runs(r.tcp)}; shm ${runs(r.shm)})`);
  if (starved) out("* above 1: every ucx_perftest run of that size was slowed down (it busy-polls, and this machine was loaded); rerun on a quieter machine");
}
