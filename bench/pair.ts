import { Sidecar } from "../client/sidecar.js";
import type { SidecarClient, TensorHint } from "../client/api.js";
import { startCluster, type LocalCluster } from "../cluster/localCluster.js";

/** Two sidecars, rank 0 (a sender) and rank 1 (a receiver), each with its client; closed together. */
export interface SidecarPair {
  cluster: LocalCluster;
  a: SidecarClient;
  b: SidecarClient;
  close(): Promise<void>;
}

/** Starts a private cluster of ranks 0 and 1 on `nodes` (the same name twice: one node). */
export async function openPair(nodes: [string, string], shmSize: number, hint: TensorHint, options?: Parameters<typeof startCluster>[1]): Promise<SidecarPair> {
  const cluster = await startCluster([{ rank: 0, node: nodes[0], shmSize }, { rank: 1, node: nodes[1], shmSize }], options);
  const clients: SidecarClient[] = [];
  const close = async () => {
    for (const c of clients) await c.shutdown();
    await cluster.stop();
  };
  try {
    clients.push(await Sidecar.connect({ rank: 0, sendTensor: hint, natsUrl: cluster.url }));
    clients.push(await Sidecar.connect({ rank: 1, recvTensor: hint, natsUrl: cluster.url }));
  } catch (err) {
    await close();
    throw err;
  }
  return { cluster, a: clients[0]!, b: clients[1]!, close };
}
