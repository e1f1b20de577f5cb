import { NatsChannel } from "../control/channel.js";
import { Kind } from "../control/subjects.js";
import { DEFAULT_NATS_URL } from "../server/config.js";

/**
 * `sidecar health <rank>`: prints ALL_GOOD, MEMORY_PRESSURE or OFFLINE and
 * exits 0 only for ALL_GOOD; OFFLINE comes with a one-line reason when the
 * sidecar cannot be reached. `--json` prints the whole health object.
 */
export async function health(rankArg: string, flags: { json?: boolean; natsUrl?: string; timeout?: string }): Promise<number> {
  const rank = Number(rankArg);
  if (!Number.isSafeInteger(rank) || rank < 0) {
    process.stderr.write(`sidecar health: rank must be a non-negative integer, got ${JSON.stringify(rankArg)}\n`);
    return 2;
  }
  const url = flags.natsUrl ?? process.env.SIDECAR_NATS_URL ?? DEFAULT_NATS_URL;
  const timeoutMs = Number(flags.timeout ?? 3000);
  const offline = (reason: string) => {
    if (flags.json) process.stdout.write(JSON.stringify({ status: "OFFLINE", rank, reason }) + "\n");
    else process.stdout.write(`OFFLINE: ${reason}\n`);
    return 1;
  };
  let channel: NatsChannel;
  try {
    channel = await NatsChannel.connect(url, { name: "sidecar-health", timeoutMs });
  } catch (err) {
    return offline((err as Error).message);
  }
  try {
    const h = await channel.request<{ status: string }>(rank, Kind.health, {}, { timeoutMs });
    process.stdout.write(flags.json ? JSON.stringify(h, null, 2) + "\n" : `${h.status}\n`);
    return h.status === "ALL_GOOD" ? 0 : 1;
  } catch (err) {
    return offline((err as Error).message);
  } finally {
    await channel.close();
  }
}
