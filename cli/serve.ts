import { loadServerConfig } from "../server/config.js";
import { SidecarServer } from "../server/server.js";
import { SidecarError } from "../core/errors.js";

export interface ServeFlags {
  rank?: string; worldSize?: string; localPeers?: string; shmSize?: string; natsUrl?: string; nodeName?: string; isLocal?: boolean; inspect?: boolean;
}

/** `sidecar serve`: runs one sidecar until SIGINT/SIGTERM, then stops cleanly (removing the slab file if it is the node's last). */
export async function serve(flags: ServeFlags): Promise<void> {
  const config = loadServerConfig(process.env, {
    SIDECAR_RANK: flags.rank,
    SIDECAR_WORLD_SIZE: flags.worldSize,
    SIDECAR_LOCAL_PEER_RANKS: flags.localPeers,
    SIDECAR_SHM_SIZE: flags.shmSize,
    SIDECAR_NATS_URL: flags.natsUrl,
    SIDECAR_NODE_NAME: flags.nodeName,
    SIDECAR_IS_LOCAL: flags.isLocal ? "true" : undefined,
    SIDECAR_INSPECT: flags.inspect ? "true" : undefined,
  });
  const server = await SidecarServer.start(config);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    server.log.info({ signal }, "stopping");
    server.stop().then(
      () => process.exit(0),
      (err) => {
        server.log.error({ err }, "unclean stop");
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  // Nothing that arrives over the wire may take the server down; a bug that escapes is logged, not fatal.
  process.on("uncaughtException", (err) => server.log.error({ err }, "uncaught exception"));
  process.on("unhandledRejection", (err) => server.log.error({ err }, "unhandled rejection"));
}

export function describeStartError(err: unknown): string {
  if (err instanceof SidecarError) return `sidecar: ${err.code}: ${err.message}`;
  return `sidecar: ${(err as Error).message ?? String(err)}`;
}
