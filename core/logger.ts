import { pino, type Logger } from "pino";

export type { Logger };

/** The runtime's logger: JSON lines on stderr, level from SIDECAR_LOG_LEVEL (default "info"). */
export function createLogger(name: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({ name, level: process.env.SIDECAR_LOG_LEVEL ?? "info", base: { pid: process.pid, ...bindings } }, pino.destination(2));
}
