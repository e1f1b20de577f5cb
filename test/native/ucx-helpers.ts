// Shared by the UCX scenario suite and its peer process.

/** Fills `u8` with a pattern that differs per seed and per 4-byte word. */
export function fillPattern(u8: Uint8Array, seed: number): Uint8Array {
  const words = u8.length >>> 2;
  const aligned = u8.byteOffset % 4 === 0;
  if (aligned) {
    const w = new Uint32Array(u8.buffer, u8.byteOffset, words);
    for (let i = 0; i < words; i++) w[i] = (Math.imul(i + 1, 2654435761) ^ seed) >>> 0;
  } else {
    for (let i = 0; i < words; i++) {
      const v = (Math.imul(i + 1, 2654435761) ^ seed) >>> 0;
      u8[4 * i] = v & 255;
      u8[4 * i + 1] = (v >>> 8) & 255;
      u8[4 * i + 2] = (v >>> 16) & 255;
      u8[4 * i + 3] = v >>> 24;
    }
  }
  for (let i = words * 4; i < u8.length; i++) u8[i] = (i * 31 + seed) & 255;
  return u8;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

export const toHex = (u8: Uint8Array): string => Buffer.from(u8.buffer, u8.byteOffset, u8.length).toString("hex");
export const fromHex = (hex: string): Uint8Array => new Uint8Array(Buffer.from(hex.trim(), "hex"));

export const TAG_TO_PEER = 0x100n;
export const TAG_FROM_PEER = 0x200n;
