import { NatsChannel } from "../control/channel.js";
import { inspectSubject } from "../control/subjects.js";
import { DEFAULT_NATS_URL } from "../server/config.js";

/**
 * `sidecar watch [rank]`: prints every transfer state change published by
 * sidecars started with SIDECAR_INSPECT=true (the xstate inspection stream),
 * one line each, until interrupted.
 */
export async function watch(rankArg: string | undefined, flags: { natsUrl?: string; json?: boolean }): Promise<void> {
  const url = flags.natsUrl ?? process.env.SIDECAR_NATS_URL ?? DEFAULT_NATS_URL;
  const channel = await NatsChannel.connect(url, { name: "sidecar-watch" });
  const subject = inspectSubject(rankArg === undefined ? "*" : Number(rankArg));
  channel.watch(subject, (m, subj) => {
    const e = m as { actor: string; state: unknown; status: string; event: string; at: number };
    if (flags.json) process.stdout.write(JSON.stringify({ subject: subj, ...e }) + "\n");
    else process.stdout.write(`${new Date(e.at).toISOString()} ${subj.split(".")[2]} ${e.actor.padEnd(18)} ${JSON.stringify(e.state).padEnd(20)} ${e.status} (${e.event})\n`);
  });
  process.stderr.write(`watching ${subject} on ${url} (sidecars need SIDECAR_INSPECT=true); Ctrl-C to stop\n`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await channel.close();
}
