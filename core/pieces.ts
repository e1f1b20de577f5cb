/**
 * How a tensor chunk is cut into pieces: first into its TP shards (the byte
 * ranges the workers of a group copy with concurrentCopy; one shard
 * without), then each shard into near-equal pieces of at most `pieceBytes`
 * (0: one piece per shard). The client copies piece by piece, the sender
 * sends each piece as soon as it is staged, and the receiver posts one
 * receive per piece: all three compute the same ranges from the same three
 * numbers, so none of them travels as a list.
 */

export interface ByteRange {
  start: number;
  end: number;
}

/** A piece of a chunk, and the TP shard (the worker) it belongs to. */
export interface Piece extends ByteRange {
  shard: number;
}

/** Most pieces a chunk travels in (8 bits of the UCX tag). */
export const MAX_PIECES = 256;

/** The byte range TP shard `shard` of `shards` copies (the last may be shorter or empty). */
export function shardRange(length: number, shards: number, shard: number): ByteRange {
  const per = Math.ceil(length / shards);
  const start = Math.min(length, shard * per);
  return { start, end: Math.min(length, start + per) };
}

/**
 * The pieces of a chunk, in order; every byte is in exactly one piece. When
 * `pieceBytes` would make more than {@link MAX_PIECES} pieces, pieces grow.
 */
export function chunkPieces(length: number, shards: number, pieceBytes: number): Piece[] {
  const n = Math.max(1, Math.floor(shards));
  const perShard = Math.floor(MAX_PIECES / n) || 1;
  const out: Piece[] = [];
  for (let s = 0; s < n; s++) {
    const { start, end } = shardRange(length, n, s);
    const bytes = end - start;
    const count = pieceBytes > 0 ? Math.min(perShard, Math.max(1, Math.ceil(bytes / pieceBytes))) : 1;
    const size = Math.ceil(bytes / count);
    for (let i = 0; i < count; i++) out.push({ start: Math.min(end, start + i * size), end: Math.min(end, start + (i + 1) * size), shard: s });
  }
  return out;
}
