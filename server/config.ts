import { hostname } from "node:os";
import { ConfigError } from "../core/errors.js";

/** Everything a sidecar server is started with. */
export interface ServerConfig {
  rank: number;
  worldSize: number;
  /** Ranks on this node (sorted), this one included; they share the node's slab file. */
  localPeerRanks: number[];
  /** Bytes of slab per sidecar (send and receive pools together). */
  shmSize: number;
  /** Share of shmSize that is the send pool (the rest receives from other nodes). */
  sendFraction: number;
  natsUrl: string;
  nodeName: string;
  isLocal: boolean;
  /** Folder of the slab file. */
  shmDir: string;
  /** Pre-fault the slab's pages when mapping it. */
  populate: boolean;
  memoryWaitMs: number;
  stagingMs: number;
  /** Longest an inter-node chunk may take to cross the data plane and be acknowledged. */
  transferMs: number;
  /** Largest piece of a chunk streamed to other nodes (0: no streaming). */
  pieceBytes: number;
  readyTtlMs: number;
  /** Waiters for memory at which health turns MEMORY_PRESSURE. */
  pressureThreshold: number;
  /** Publish transfer state changes on sidecar.v1.<rank>.inspect. */
  inspect: boolean;
}

export const DEFAULT_NATS_URL = "nats://127.0.0.1:4222";
export const DEFAULT_SHM_SIZE = 256 * 1024 * 1024;
export const DEFAULT_PIECE_BYTES = 8 * 1024 * 1024;

type Source = Record<string, string | undefined>;

function int(src: Source, key: string, fallback?: number, min = 0): number {
  const raw = src[key];
  if (raw === undefined || raw === "") {
    if (fallback === undefined) throw new ConfigError(`${key} is required`);
    return fallback;
  }
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) throw new ConfigError(`${key} must be an integer ≥ ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

function bool(src: Source, key: string, fallback: boolean): boolean {
  const raw = src[key];
  if (raw === undefined || raw === "") return fallback;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(`${key} must be true or false, got ${JSON.stringify(raw)}`);
}

/** Parses a byte count: an integer, optionally with a K/M/G (binary) suffix. */
export function parseBytes(raw: string, key: string): number {
  const m = /^(\d+)\s*([kmg]i?b?)?$/i.exec(raw.trim());
  if (!m) throw new ConfigError(`${key} must be a byte count like 268435456 or 256M, got ${JSON.stringify(raw)}`);
  const unit = (m[2] ?? "").toLowerCase()[0];
  const mult = unit === "k" ? 1024 : unit === "m" ? 1024 ** 2 : unit === "g" ? 1024 ** 3 : 1;
  return Number(m[1]) * mult;
}

/**
 * Reads the server configuration from environment-style variables
 * (`SIDECAR_*`); `overrides` (command-line flags) win over them.
 * @throws ConfigError
 */
export function loadServerConfig(env: Source = process.env, overrides: Source = {}): ServerConfig {
  const src: Source = { ...env };
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) src[k] = v;
  const rank = int(src, "SIDECAR_RANK");
  const isLocal = bool(src, "SIDECAR_IS_LOCAL", false);
  const worldSize = int(src, "SIDECAR_WORLD_SIZE", rank + 1, 1);
  if (rank >= worldSize) throw new ConfigError(`SIDECAR_RANK ${rank} is not below SIDECAR_WORLD_SIZE ${worldSize}`);
  let localPeerRanks: number[];
  const peers = src.SIDECAR_LOCAL_PEER_RANKS;
  if (peers !== undefined && peers.trim() !== "") {
    localPeerRanks = peers.split(",").map((p) => {
      const n = Number(p.trim());
      if (!Number.isSafeInteger(n) || n < 0 || n >= worldSize) throw new ConfigError(`SIDECAR_LOCAL_PEER_RANKS has ${JSON.stringify(p)}, not a rank below ${worldSize}`);
      return n;
    });
  } else {
    localPeerRanks = isLocal ? Array.from({ length: worldSize }, (_, i) => i) : [rank];
  }
  localPeerRanks = [...new Set(localPeerRanks)].sort((a, b) => a - b);
  if (!localPeerRanks.includes(rank)) throw new ConfigError(`SIDECAR_LOCAL_PEER_RANKS (${localPeerRanks.join(",")}) must include this sidecar's rank ${rank}`);
  const shmSize = src.SIDECAR_SHM_SIZE ? parseBytes(src.SIDECAR_SHM_SIZE, "SIDECAR_SHM_SIZE") : DEFAULT_SHM_SIZE;
  if (shmSize < 64 * 1024) throw new ConfigError(`SIDECAR_SHM_SIZE must be at least 64 KiB, got ${shmSize}`);
  const sendFraction = src.SIDECAR_SEND_FRACTION ? Number(src.SIDECAR_SEND_FRACTION) : 0.5;
  if (!(sendFraction > 0 && sendFraction < 1)) throw new ConfigError(`SIDECAR_SEND_FRACTION must be between 0 and 1, got ${src.SIDECAR_SEND_FRACTION}`);
  const nodeName = src.SIDECAR_NODE_NAME || (isLocal ? "local" : hostname());
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(nodeName)) throw new ConfigError(`SIDECAR_NODE_NAME must be letters, digits, '.', '_' or '-', got ${JSON.stringify(nodeName)}`);
  return {
    rank,
    worldSize,
    localPeerRanks,
    shmSize,
    sendFraction,
    natsUrl: src.SIDECAR_NATS_URL || DEFAULT_NATS_URL,
    nodeName,
    isLocal,
    shmDir: src.SIDECAR_SHM_DIR || "/dev/shm",
    populate: bool(src, "SIDECAR_SHM_POPULATE", true),
    memoryWaitMs: int(src, "SIDECAR_MEMORY_WAIT_MS", 10 * 60_000, 1),
    stagingMs: int(src, "SIDECAR_STAGING_TIMEOUT_MS", 60_000, 1),
    transferMs: int(src, "SIDECAR_TRANSFER_TIMEOUT_MS", 60_000, 1),
    pieceBytes: src.SIDECAR_PIECE_BYTES ? parseBytes(src.SIDECAR_PIECE_BYTES, "SIDECAR_PIECE_BYTES") : DEFAULT_PIECE_BYTES,
    readyTtlMs: int(src, "SIDECAR_READY_TTL_MS", 0),
    pressureThreshold: int(src, "SIDECAR_PRESSURE_THRESHOLD", 1, 1),
    inspect: bool(src, "SIDECAR_INSPECT", false),
  };
}
