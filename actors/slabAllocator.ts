/**
 * The slot allocator behind one slab pool (send or receive). Memory is a set
 * of regions (a TP group pools the regions of all its members); each region is
 * cut into slots of one size, and an allocation is a contiguous run of slots
 * inside one region, found first-fit over a sorted list of free runs. Only the
 * slab actor calls this.
 */

export interface Region {
  /** Byte offset of the region in the node's slab file. */
  start: number;
  bytes: number;
}

export interface Allocation {
  /** Byte offset in the slab file. */
  offset: number;
  /** Bytes reserved (a whole number of slots). */
  bytes: number;
}

interface Run { region: number; first: number; count: number }

/** Slot size for a row of `rowBytes`: a whole number of rows, 64-byte aligned, at least 4 KiB. */
export function slotBytesForRow(rowBytes: number): number {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  let slot = (rowBytes / gcd(rowBytes, 64)) * 64;
  if (slot < 4096) slot *= Math.ceil(4096 / slot);
  return slot;
}

export class SlabAllocator {
  readonly slotBytes: number;
  private readonly regions: { start: number; slots: number }[] = [];
  private free: Run[] = [];
  private usedSlots = 0;

  constructor(slotBytes: number, regions: readonly Region[] = []) {
    if (!Number.isSafeInteger(slotBytes) || slotBytes <= 0) throw new RangeError(`slot size must be a positive integer, got ${slotBytes}`);
    this.slotBytes = slotBytes;
    for (const r of regions) this.addRegion(r);
  }

  /** Adds memory. Regions that touch an existing one are merged, so runs can span them. */
  addRegion(region: Region): void {
    const slots = Math.floor(region.bytes / this.slotBytes);
    if (slots === 0) return;
    for (let i = 0; i < this.regions.length; i++) {
      const r = this.regions[i]!;
      if (r.start + r.slots * this.slotBytes === region.start) {
        this.release(i, r.slots, slots);
        r.slots += slots;
        return;
      }
    }
    this.regions.push({ start: region.start, slots });
    this.release(this.regions.length - 1, 0, slots);
  }

  /** Every byte the pool can hand out. */
  get totalBytes(): number {
    return this.regions.reduce((n, r) => n + r.slots, 0) * this.slotBytes;
  }

  get usedBytes(): number {
    return this.usedSlots * this.slotBytes;
  }

  /** The largest single allocation possible when everything is free. */
  get largestPossible(): number {
    return this.regions.reduce((m, r) => Math.max(m, r.slots), 0) * this.slotBytes;
  }

  slotsFor(bytes: number): number {
    return Math.max(1, Math.ceil(bytes / this.slotBytes));
  }

  /** True when `bytes` could be allocated once enough memory is free. */
  canEverFit(bytes: number): boolean {
    return this.slotsFor(bytes) * this.slotBytes <= this.largestPossible;
  }

  /** First-fit allocation; null when no free run is long enough right now. */
  allocate(bytes: number): Allocation | null {
    const need = this.slotsFor(bytes);
    for (let i = 0; i < this.free.length; i++) {
      const run = this.free[i]!;
      if (run.count < need) continue;
      const offset = this.regions[run.region]!.start + run.first * this.slotBytes;
      if (run.count === need) this.free.splice(i, 1);
      else {
        run.first += need;
        run.count -= need;
      }
      this.usedSlots += need;
      return { offset, bytes: need * this.slotBytes };
    }
    return null;
  }

  /** Returns an allocation. Throws RangeError on an offset it never handed out. */
  freeAllocation(a: Allocation): void {
    const count = a.bytes / this.slotBytes;
    const region = this.regions.findIndex((r) => a.offset >= r.start && a.offset < r.start + r.slots * this.slotBytes);
    if (region < 0 || !Number.isInteger(count)) throw new RangeError(`free of ${a.bytes} bytes at ${a.offset}: not an allocation of this slab`);
    const first = (a.offset - this.regions[region]!.start) / this.slotBytes;
    this.release(region, first, count);
    this.usedSlots -= count;
  }

  // Inserts a free run keeping `free` sorted by (region, first), merging neighbours.
  private release(region: number, first: number, count: number): void {
    let i = 0;
    while (i < this.free.length && (this.free[i]!.region < region || (this.free[i]!.region === region && this.free[i]!.first < first))) i++;
    const prev = this.free[i - 1];
    const next = this.free[i];
    if (next && next.region === region && next.first < first + count) throw new RangeError(`double free of slots ${first}..${first + count - 1}`);
    if (prev && prev.region === region && prev.first + prev.count > first) throw new RangeError(`double free of slots ${first}..${first + count - 1}`);
    if (prev && prev.region === region && prev.first + prev.count === first) {
      prev.count += count;
      if (next && next.region === region && prev.first + prev.count === next.first) {
        prev.count += next.count;
        this.free.splice(i, 1);
      }
    } else if (next && next.region === region && first + count === next.first) {
      next.first = first;
      next.count += count;
    } else {
      this.free.splice(i, 0, { region, first, count });
    }
  }
}
