#!/usr/bin/env node
import { Command } from "commander";
import { serve, describeStartError } from "./serve.js";
import { health } from "./health.js";
import { watch } from "./watch.js";

const program = new Command();
program.name("sidecar").description("Sidecar: moves tensors and small objects between GPU task executors").version("0.1.0");

program
  .command("serve")
  .description("run a sidecar server until SIGINT/SIGTERM (settings from SIDECAR_* variables; flags override them)")
  .option("--rank <n>", "this sidecar's rank (SIDECAR_RANK)")
  .option("--world-size <n>", "number of sidecars (SIDECAR_WORLD_SIZE)")
  .option("--local-peers <list>", "comma list of ranks on this node (SIDECAR_LOCAL_PEER_RANKS)")
  .option("--shm-size <bytes>", "slab bytes per sidecar, e.g. 268435456 or 256M (SIDECAR_SHM_SIZE)")
  .option("--nats-url <url>", "NATS URL (SIDECAR_NATS_URL)")
  .option("--node-name <name>", "this node's name; names the slab file (SIDECAR_NODE_NAME)")
  .option("--is-local", "everything on this host (SIDECAR_IS_LOCAL=true)")
  .option("--inspect", "publish transfer state changes for `sidecar watch` (SIDECAR_INSPECT=true)")
  .action(async (flags) => {
    try {
      await serve(flags);
    } catch (err) {
      process.stderr.write(describeStartError(err) + "\n");
      process.exit(1);
    }
  });

program
  .command("health <rank>")
  .description("print ALL_GOOD, MEMORY_PRESSURE or OFFLINE; exit 0 only for ALL_GOOD")
  .option("--json", "print the whole health object (slab usedBytes/totalBytes, transfers, memory)")
  .option("--nats-url <url>", "NATS URL (SIDECAR_NATS_URL)")
  .option("--timeout <ms>", "how long to wait", "3000")
  .action(async (rank, flags) => process.exit(await health(rank, flags)));

program
  .command("watch [rank]")
  .description("print transfer state changes live (sidecars need SIDECAR_INSPECT=true)")
  .option("--nats-url <url>", "NATS URL (SIDECAR_NATS_URL)")
  .option("--json", "one JSON object per line")
  .action(async (rank, flags) => {
    await watch(rank, flags);
    process.exit(0);
  });

program
  .command("demo")
  .description("start a private nats-server and four sidecars, move tensors and objects between executors, print a summary")
  .option("--requests <n>", "encoder requests to move", "24")
  .action(async (flags) => {
    const { demo } = await import("./demo.js");
    process.exit(await demo(flags));
  });

await program.parseAsync(process.argv);
