// The in-memory mirror of the IPAM tables that makes allocation O(1) in the common case: per pool
// its parsed subnet, allocatable bounds and cursor, per subnet its allocated set. Loaded lazily
// from the store, dropped whenever a transaction rolls back or another connection has committed
// (PRAGMA data_version), so it never disagrees with what the store has committed.
import type { Store, StoredPool } from '../store/index.js';
import { AddressSet } from './allocator.js';
import { parseAddress, parsePrefix, type Prefix } from '../ip/index.js';

export interface PoolState {
  pool: StoredPool;
  subnet: Prefix;
  range?: Prefix;
  /** Offsets (from the subnet's first address) of the first and last dynamically allocatable address. */
  lo: bigint;
  hi: bigint;
  /** Whether the first and last addresses of the subnet are reserved (network, broadcast). */
  reserveFirst: boolean;
  reserveLast: boolean;
  /** Next offset to try; kept equal to the stored cursor. */
  cursor: bigint;
  /** The subnet's allocated offsets, shared by every pool of the subnet. */
  used: AddressSet;
}

/** Docker reserves the IPv4 network and broadcast addresses and the IPv6 subnet-router anycast (::0); not on /31, /32, /127, /128. */
function reservations(subnet: Prefix): { reserveFirst: boolean; reserveLast: boolean } {
  return subnet.family === 4 ? { reserveFirst: subnet.bits <= 30, reserveLast: subnet.bits <= 30 } : { reserveFirst: subnet.bits <= 126, reserveLast: false };
}

export function subnetKey(pool: { addressSpace: string; subnet: string }): string {
  return `${pool.addressSpace}/${pool.subnet}`;
}

export class Mirror {
  private readonly pools = new Map<string, PoolState>();
  private readonly subnets = new Map<string, AddressSet>();
  private seenVersion = -1;

  constructor(private readonly store: Store) {}

  /** Call first in every IPAM transaction: it drops what another process may have changed. */
  begin(): void {
    const version = this.store.dataVersion();
    if (version !== this.seenVersion) {
      this.clear();
      this.seenVersion = version;
    }
    this.store.onRollback(() => this.clear());
  }

  clear(): void {
    this.pools.clear();
    this.subnets.clear();
  }

  pool(poolId: string): PoolState | undefined {
    const cached = this.pools.get(poolId);
    if (cached) return cached;
    const pool = this.store.ipam.getPool(poolId);
    if (!pool) return undefined;
    const state = this.build(pool);
    this.pools.set(poolId, state);
    return state;
  }

  private build(pool: StoredPool): PoolState {
    const subnet = parsePrefix('subnet', pool.subnet);
    const range = pool.ipRange === undefined ? undefined : parsePrefix('ip-range', pool.ipRange);
    const { reserveFirst, reserveLast } = reservations(subnet);
    const first = (range?.start ?? subnet.start) - subnet.start;
    const last = (range?.end ?? subnet.end) - subnet.start;
    const top = subnet.end - subnet.start - (reserveLast ? 1n : 0n);
    const lo = reserveFirst && first === 0n ? 1n : first;
    const hi = last > top ? top : last;
    return { pool, subnet, ...(range ? { range } : {}), lo, hi, reserveFirst, reserveLast, cursor: pool.cursor, used: this.used(pool, subnet) };
  }

  private used(pool: StoredPool, subnet: Prefix): AddressSet {
    const key = subnetKey(pool);
    let set = this.subnets.get(key);
    if (!set) {
      set = new AddressSet();
      for (const a of this.store.ipam.addressesOfSubnet(pool.addressSpace, pool.subnet)) set.add(parseAddress('address', a.address).value - subnet.start);
      this.subnets.set(key, set);
    }
    return set;
  }
}
