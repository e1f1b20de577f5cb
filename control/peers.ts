import type { ControlChannel } from "./channel.js";
import { Kind } from "./subjects.js";

/** What a sidecar tells its peers on first contact. */
export interface PeerInfo {
  rank: number;
  node: string;
  /** UCX worker address, when the sidecar has a data plane. */
  ucxAddress?: Uint8Array;
}

/**
 * Rendezvous: learns peers lazily. The first message to a rank is preceded
 * by a `peer.hello` exchange (both sides learn each other); the answer is
 * cached until {@link PeerDirectory.forget} (a peer that failed or restarted).
 * No fixed ports and no full mesh at start-up.
 */
export class PeerDirectory {
  private readonly known = new Map<number, PeerInfo>();
  private readonly pending = new Map<number, Promise<PeerInfo>>();

  constructor(private readonly channel: ControlChannel, private readonly self: () => PeerInfo) {}

  async info(rank: number): Promise<PeerInfo> {
    const hit = this.known.get(rank);
    if (hit) return hit;
    let p = this.pending.get(rank);
    if (!p) {
      p = this.channel
        .request<PeerInfo>(rank, Kind.hello, strip(this.self()), { timeoutMs: 5000 })
        .then((info) => {
          this.known.set(rank, info);
          return info;
        })
        .finally(() => this.pending.delete(rank));
      this.pending.set(rank, p);
    }
    return p;
  }

  /** Records what a peer said in its own hello; a changed address replaces the old one. */
  learn(info: PeerInfo): PeerInfo | undefined {
    const before = this.known.get(info.rank);
    this.known.set(info.rank, info);
    return before;
  }

  forget(rank: number): void {
    this.known.delete(rank);
  }
}

function strip(info: PeerInfo): PeerInfo {
  return info.ucxAddress ? info : { rank: info.rank, node: info.node };
}
