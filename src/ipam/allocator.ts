// The in-memory mirror of one subnet's allocated addresses: a sparse bitmap of offsets from the
// subnet's first address, in chunks of 65 536 bits made on first use, so an IPv6 /64 costs only
// what is allocated. It never decides alone: the store holds the truth and this is rebuilt from it.

const CHUNK_SHIFT = 16n;
const CHUNK_MASK = 0xffffn;

export class AddressSet {
  private readonly chunks = new Map<bigint, Uint32Array>();
  private readonly counts = new Map<bigint, number>();

  has(offset: bigint): boolean {
    const words = this.chunks.get(offset >> CHUNK_SHIFT);
    if (!words) return false;
    const bit = Number(offset & CHUNK_MASK);
    return ((words[bit >>> 5]! >>> (bit & 31)) & 1) === 1;
  }

  add(offset: bigint): void {
    const key = offset >> CHUNK_SHIFT;
    let words = this.chunks.get(key);
    if (!words) {
      words = new Uint32Array(2048);
      this.chunks.set(key, words);
    }
    const bit = Number(offset & CHUNK_MASK);
    const mask = 1 << (bit & 31);
    if ((words[bit >>> 5]! & mask) !== 0) return;
    words[bit >>> 5]! |= mask;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  delete(offset: bigint): void {
    const key = offset >> CHUNK_SHIFT;
    const words = this.chunks.get(key);
    if (!words) return;
    const bit = Number(offset & CHUNK_MASK);
    const mask = 1 << (bit & 31);
    if ((words[bit >>> 5]! & mask) === 0) return;
    words[bit >>> 5]! &= ~mask;
    const left = (this.counts.get(key) ?? 1) - 1;
    if (left === 0) {
      this.chunks.delete(key);
      this.counts.delete(key);
    } else {
      this.counts.set(key, left);
    }
  }

  /**
   * The first free offset at or after `from` up to `hi`, else the first from `lo` (Docker's
   * wrapping cursor). Undefined when [lo, hi] is full.
   */
  nextFree(lo: bigint, hi: bigint, from: bigint): bigint | undefined {
    const start = from < lo || from > hi ? lo : from;
    return this.firstFree(start, hi) ?? (start > lo ? this.firstFree(lo, start - 1n) : undefined);
  }

  private firstFree(lo: bigint, hi: bigint): bigint | undefined {
    let pos = lo;
    while (pos <= hi) {
      const key = pos >> CHUNK_SHIFT;
      const words = this.chunks.get(key);
      if (!words) return pos;
      const chunkEnd = ((key + 1n) << CHUNK_SHIFT) - 1n;
      const stop = hi < chunkEnd ? hi : chunkEnd;
      const bit = firstClearBit(words, Number(pos & CHUNK_MASK), Number(stop & CHUNK_MASK));
      if (bit >= 0) return (key << CHUNK_SHIFT) + BigInt(bit);
      pos = stop + 1n;
    }
    return undefined;
  }
}

/** The first clear bit in [from, to] of a chunk, or -1; skips whole words that are full. */
function firstClearBit(words: Uint32Array, from: number, to: number): number {
  let b = from;
  while (b <= to) {
    const free = (~words[b >>> 5]! & (0xffffffff << (b & 31))) >>> 0;
    if (free !== 0) {
      const bit = (b & ~31) + 31 - Math.clz32(free & -free);
      return bit <= to ? bit : -1;
    }
    b = (b & ~31) + 32;
  }
  return -1;
}
