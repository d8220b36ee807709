// How IPAM names the holders of pools and addresses in its messages. It keeps only owner tags
// ("network:ID", "endpoint:ID", "docker:…"); the layer that knows the objects injects a
// DescribeOwner that puts a tag into words (network "mynet", sandbox "web" on network "mynet").
// Without one, or for a tag it does not know, a message shows the tag or the pool's id.
import type { StoredAddress, StoredPool } from '../store/index.js';

/** Where a tag was found: the subnet of the pool and, for an address, the address. */
export interface OwnerContext {
  subnet: string;
  address?: string;
}

/** A readable name for an owner tag, or undefined when the tag means nothing to the resolver. */
export type DescribeOwner = (tag: string, where: OwnerContext) => string | undefined;

/**
 * A front end that may touch only what it allocated itself (the Docker IPAM plugin): pools held
 * by its pool owner, and addresses whose owner tag it accepts.
 */
export interface Claimant {
  /** Who it is, for messages: "the Docker engine". */
  name: string;
  poolOwner: string;
  ownsAddress(owner: string): boolean;
}

export class Namer {
  private readonly cache = new Map<string, string>();

  /** cached: remember pool names (for one operation that may name the same pool many times). */
  constructor(private readonly describe: DescribeOwner | undefined, private readonly cached = false) {}

  /** A namer for one operation: each pool is resolved once. */
  once(): Namer {
    return new Namer(this.describe, true);
  }

  /** The holder of a pool: network "mynet", or "pool ID" when nobody can say. */
  pool(pool: StoredPool): string {
    const known = this.cached ? this.cache.get(pool.id) : undefined;
    if (known !== undefined) return known;
    const name = this.describe?.(pool.owner, { subnet: pool.subnet }) ?? `pool ${pool.id}`;
    if (this.cached) this.cache.set(pool.id, name);
    return name;
  }

  /** The holder of an allocated address; pool is the pool the address was allocated through. */
  address(holder: StoredAddress, pool: StoredPool | undefined): string {
    const where = { subnet: holder.subnet, address: holder.address };
    if (holder.kind === 'gateway') return `the gateway of ${this.describe?.(holder.owner, where) ?? holder.owner}`;
    if (holder.kind === 'aux') return `the auxiliary address ${JSON.stringify(holder.owner)}${pool ? ` of ${this.pool(pool)}` : ''}`;
    return this.describe?.(holder.owner, where) ?? `endpoint ${holder.owner}`;
  }
}
