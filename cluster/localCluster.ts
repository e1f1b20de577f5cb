import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { NatsChannel } from "../control/channel.js";
import { Kind } from "../control/subjects.js";
import { startNatsServer, stopChild, type NatsServerHandle } from "./natsServer.js";

/**
 * A small cluster on this host: a private nats-server and real
 * `sidecar serve` processes, for the demo, the tests and the benchmarks.
 */

export interface SidecarSpec {
  rank: number;
  /** Node name (its slab file); ranks with the same node share one. */
  node: string;
  shmSize?: number;
  env?: Record<string, string>;
}

export interface LocalCluster {
  nats: NatsServerHandle;
  url: string;
  worldSize: number;
  sidecars: Map<number, { spec: SidecarSpec; process: ChildProcess; logs: () => string }>;
  /** Health of a rank, straight from its sidecar. */
  health(rank: number, gc?: boolean): Promise<HealthReply>;
  stopSidecar(rank: number): Promise<void>;
  startSidecar(spec: SidecarSpec): Promise<void>;
  stop(): Promise<void>;
}

export interface PoolHealth { usedBytes: number; totalBytes: number; waiting: number; slotBytes?: number }
export interface HealthReply {
  status: string; rank: number; node: string; send: PoolHealth; recv: PoolHealth;
  transfers: Record<string, unknown>; uptimeMs: number; memory?: { heapUsed: number; rss: number };
}

/** How to run the CLI from here: the built JS, or the TypeScript source through tsx. */
export function cliCommand(): { command: string; args: string[] } {
  const js = fileURLToPath(new URL("../cli/main.js", import.meta.url));
  if (existsSync(js)) return { command: process.execPath, args: [js] };
  const ts = fileURLToPath(new URL("../cli/main.ts", import.meta.url));
  return { command: process.execPath, args: ["--import", "tsx", ts] };
}

export async function startCluster(specs: SidecarSpec[], options: { env?: Record<string, string>; nodeArgs?: string[] } = {}): Promise<LocalCluster> {
  const nats = await startNatsServer();
  const worldSize = Math.max(...specs.map((s) => s.rank)) + 1;
  const control = await NatsChannel.connect(nats.url, { name: "cluster-control" });
  const sidecars: LocalCluster["sidecars"] = new Map();
  const allSpecs = new Map(specs.map((s) => [s.rank, s]));

  const health = (rank: number, gc = false) => control.request<HealthReply>(rank, Kind.health, { gc }, { timeoutMs: 5000 });

  const startSidecar = async (spec: SidecarSpec) => {
    allSpecs.set(spec.rank, spec);
    const peers = [...allSpecs.values()].filter((s) => s.node === spec.node).map((s) => s.rank);
    const { command, args } = cliCommand();
    const env = {
      // Everything here is on this host: keep UCX's TCP lanes on loopback
      // unless the caller picked devices.
      UCX_NET_DEVICES: "lo",
      ...process.env,
      ...options.env,
      ...spec.env,
      SIDECAR_RANK: String(spec.rank),
      SIDECAR_WORLD_SIZE: String(worldSize),
      SIDECAR_LOCAL_PEER_RANKS: peers.join(","),
      SIDECAR_SHM_SIZE: String(spec.shmSize ?? 64 * 1024 * 1024),
      SIDECAR_NATS_URL: nats.url,
      SIDECAR_NODE_NAME: spec.node,
      SIDECAR_LOG_LEVEL: process.env.SIDECAR_LOG_LEVEL ?? "warn",
    };
    const child = spawn(command, [...(options.nodeArgs ?? []), ...args, "serve"], { env, stdio: ["ignore", "pipe", "pipe"] });
    let logs = "";
    const keep = (d: Buffer) => (logs = (logs + d.toString()).slice(-20_000));
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    sidecars.set(spec.rank, { spec, process: child, logs: () => logs });
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`sidecar ${spec.rank} exited with ${child.exitCode}:\n${logs}`);
      try {
        const h = await health(spec.rank);
        if (h.status !== "OFFLINE") return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`sidecar ${spec.rank} did not come up:\n${logs}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const stopSidecar = async (rank: number) => {
    const s = sidecars.get(rank);
    if (!s) return;
    await stopChild(s.process);
    sidecars.delete(rank);
  };

  try {
    // Sidecars of one node first in rank order, so the slab file is created once.
    await Promise.all(specs.map((s) => startSidecar(s)));
  } catch (err) {
    for (const s of sidecars.values()) await stopChild(s.process);
    await control.close();
    await nats.stop();
    throw err;
  }

  return {
    nats, url: nats.url, worldSize, sidecars, health, stopSidecar, startSidecar,
    stop: async () => {
      await Promise.all([...sidecars.keys()].map((r) => stopSidecar(r)));
      await control.close();
      await nats.stop();
    },
  };
}
