// How many spare addresses a host keeps in a global pool (spares.ts): sized to its connects of
// the last second, within a share of the pool's free addresses, so that a few hosts never hold a
// pool between them. Pure functions of counts; no I/O.

/** The least stock of a host that connects (and of an idle one, outside a tight pool). */
export const MIN_STOCK = 4;
const MAX_STOCK = 64;
/** A host holds at most this fraction of the pool's free addresses (1/16): three hosts hold under a fifth. */
const FREE_SHARE = 16;

/**
 * How many spares a host keeps in a pool: twice its connects of the last second, 4…64, but at
 * most 1/16 of the free addresses it sees. In a tight pool (fewer than 64 free) that share is
 * 0…3: a host that connects keeps it (its connects still answer from stock), one that does not
 * keeps none; with fewer than 16 free every connect claims its address in etcd as it comes.
 */
export function wantedStock(recentTakes: number, free: number): number {
  const share = Math.floor(free / FREE_SHARE);
  if (recentTakes === 0) return idleLimit(free) === 0 ? 0 : MIN_STOCK;
  return Math.max(0, Math.min(Math.max(2 * recentTakes, MIN_STOCK), MAX_STOCK, share));
}

/** The most spares an idle host keeps: its 1/16 share of the free addresses, none in a tight pool (under 64 free). */
export function idleLimit(free: number): number {
  const share = Math.floor(free / FREE_SHARE);
  return share < MIN_STOCK ? 0 : share;
}
