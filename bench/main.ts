import { table } from "../cli/table.js";
import { benchIntraNode } from "./intraNode.js";
import { benchMemory } from "./memory.js";
import { ms } from "./stats.js";

/**
 * `npm run bench`: every figure next to a reference measured in the same run,
 * and their ratio (absolute times on these machines drift ±2×).
 * `--only intra|memory` runs one part.
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
  out(table([
    ["completed transfers", "heap used", "ratio"],
    [String(m.small), `${(m.heapSmall / 1048576).toFixed(1)} MiB`, "1.00"],
    [String(m.small + m.large), `${(m.heapLarge / 1048576).toFixed(1)} MiB`, (m.heapLarge / m.heapSmall).toFixed(2)],
  ]));
  out(`(${m.small + m.large} object transfers in ${m.seconds.toFixed(1)} s)`);
}
