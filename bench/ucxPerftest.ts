import { spawn } from "node:child_process";
import { freePort } from "../cluster/natsServer.js";

/**
 * The reference for the inter-node figures: `ucx_perftest -t tag_bw`
 * between two processes on this host, a server (no host argument) and a
 * client (`127.0.0.1`), with the same `UCX_*` transports as the sidecars.
 */

export interface PerftestResult {
  /** Message size in bytes. */
  bytes: number;
  iterations: number;
  /** Overall time per message (µs), as ucx_perftest reports it. */
  usecPerMessage: number;
  /** Time per message in ms (the same figure). */
  msPerMessage: number;
  /** Overall bandwidth as ucx_perftest prints it ("MB/s", which UCX counts in MiB/s). */
  reportedMBps: number;
  /** Bytes per second, from the time per message. */
  bytesPerSecond: number;
}

export interface PerftestOptions {
  bytes: number;
  iterations: number;
  warmup: number;
  /** `UCX_*` variables for both processes (UCX_TLS, UCX_NET_DEVICES, …). */
  env: Record<string, string>;
  test?: string;
  /** Ceiling for the whole run (server and client). */
  timeoutMs?: number;
}

interface Run { code: number | null; stdout: string; stderr: string }

function runProcess(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): { done: Promise<Run>; kill: () => void } {
  const child = spawn("ucx_perftest", args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr = (stderr + d).slice(-8000)));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const done = new Promise<Run>((resolve, reject) => {
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ucx_perftest (${(err as Error).message}): install ucx-utils (scripts/setup.sh does)`));
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  return { done, kill: () => child.kill("SIGKILL") };
}

/**
 * Parses the final line of a `ucx_perftest -f` run (or the `Final:` line of a
 * plain one): iterations, overhead 50%ile / average / overall (µs),
 * bandwidth average / overall (MB/s), message rate average / overall.
 */
export function parsePerftest(stdout: string): { iterations: number; usecOverall: number; mbpsOverall: number } | undefined {
  // A column can read "inf" (an average over a zero-length interval); only the overall ones are used.
  const lines = stdout.split("\n").map((l) => l.trim()).filter((l) => /^(Final:\s*)?\d+(\s+([\d.]+|inf|nan|-nan)){7}$/.test(l));
  const last = lines.at(-1);
  if (!last) return undefined;
  const n = last.replace(/^Final:\s*/, "").split(/\s+/).map(Number);
  if (!(n[3]! > 0) || !Number.isFinite(n[3]!)) return undefined;
  return { iterations: n[0]!, usecOverall: n[3]!, mbpsOverall: n[5]! };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * One tag_bw measurement. The server's "waiting" line is block-buffered, so
 * the client retries its connection until the server listens.
 * @throws Error when ucx_perftest is missing, fails or prints no result
 */
export async function runUcxPerftest(o: PerftestOptions): Promise<PerftestResult> {
  const timeoutMs = o.timeoutMs ?? 60_000;
  const env = { ...process.env, ...o.env };
  const test = o.test ?? "tag_bw";
  const port = await freePort();
  const common = ["-t", test, "-s", String(o.bytes), "-n", String(o.iterations), "-w", String(o.warmup), "-p", String(port), "-f"];
  const server = runProcess(common, env, timeoutMs);
  const deadline = Date.now() + 10_000;
  try {
    for (;;) {
      await sleep(100);
      const client = await runProcess(["127.0.0.1", ...common], env, timeoutMs).done;
      const parsed = parsePerftest(client.stdout);
      if (client.code === 0 && parsed) {
        await server.done;
        return {
          bytes: o.bytes, iterations: parsed.iterations, usecPerMessage: parsed.usecOverall, msPerMessage: parsed.usecOverall / 1000,
          reportedMBps: parsed.mbpsOverall, bytesPerSecond: o.bytes / (parsed.usecOverall * 1e-6),
        };
      }
      const refused = /connect\(\) failed|Connection refused/i.test(client.stderr + client.stdout);
      if (!refused || Date.now() > deadline) {
        throw new Error(`ucx_perftest ${test} -s ${o.bytes} failed (exit ${client.code}):\n${client.stdout.slice(-2000)}${client.stderr.slice(-2000)}`);
      }
    }
  } finally {
    server.kill();
    await server.done.catch(() => {});
  }
}
