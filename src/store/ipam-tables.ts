// Typed access to the IPAM tables: pools (a subnet, an optional ip-range, and the allocation
// cursor) and allocated addresses with their kind and owner. Holds no allocation logic.
import type Database from 'better-sqlite3';

export type AddressSpace = 'LocalDefault' | 'GlobalDefault';
export type AddressKind = 'gateway' | 'aux' | 'endpoint';

export interface StoredPool {
  id: string;
  addressSpace: AddressSpace;
  /** Canonical CIDR. */
  subnet: string;
  /** Canonical CIDR inside the subnet, when the pool was requested with a sub-pool. */
  ipRange?: string;
  family: 4 | 6;
  options: Record<string, string>;
  data: Record<string, string>;
  /** The next address to try, as an offset from the subnet's first address. */
  cursor: bigint;
  created: string;
  /** Who holds the pool, as an owner tag: "network:ID", or "docker:pool" for the Docker IPAM plugin. */
  owner: string;
}

export interface StoredAddress {
  addressSpace: AddressSpace;
  subnet: string;
  /** Canonical address, without a prefix length. */
  address: string;
  poolId: string;
  kind: AddressKind;
  owner: string;
}

interface PoolRow {
  id: string;
  address_space: AddressSpace;
  subnet: string;
  ip_range: string | null;
  family: 4 | 6;
  options: string;
  data: string;
  cursor: string;
  created: string;
  owner: string;
}

interface AddressRow {
  address_space: AddressSpace;
  subnet: string;
  address: string;
  pool_id: string;
  kind: AddressKind;
  owner: string;
}

function toPool(r: PoolRow): StoredPool {
  return {
    id: r.id,
    addressSpace: r.address_space,
    subnet: r.subnet,
    ...(r.ip_range === null ? {} : { ipRange: r.ip_range }),
    family: r.family,
    options: JSON.parse(r.options) as Record<string, string>,
    data: JSON.parse(r.data) as Record<string, string>,
    cursor: BigInt(r.cursor),
    created: r.created,
    owner: r.owner,
  };
}

function toAddress(r: AddressRow): StoredAddress {
  return { addressSpace: r.address_space, subnet: r.subnet, address: r.address, poolId: r.pool_id, kind: r.kind, owner: r.owner };
}

export class IpamTables {
  private readonly pool: Database.Statement;
  private readonly pools: Database.Statement;
  private readonly poolsIn: Database.Statement;
  private readonly poolsOf: Database.Statement;
  private readonly addPool: Database.Statement;
  private readonly removePool: Database.Statement;
  private readonly cursorOf: Database.Statement;
  private readonly address: Database.Statement;
  private readonly ofSubnet: Database.Statement;
  private readonly ofPool: Database.Statement;
  private readonly addAddress: Database.Statement;
  private readonly removeAddress: Database.Statement;

  constructor(db: Database.Database) {
    this.pool = db.prepare('SELECT * FROM ipam_pools WHERE id = ?');
    this.pools = db.prepare('SELECT * FROM ipam_pools ORDER BY created, id');
    this.poolsIn = db.prepare('SELECT * FROM ipam_pools WHERE address_space = ? ORDER BY created, id');
    this.poolsOf = db.prepare('SELECT * FROM ipam_pools WHERE owner = ? ORDER BY created, id');
    this.addPool = db.prepare(`INSERT INTO ipam_pools (id, address_space, subnet, ip_range, family, options, data, cursor, created, owner)
      VALUES (@id, @address_space, @subnet, @ip_range, @family, @options, @data, @cursor, @created, @owner)`);
    this.removePool = db.prepare('DELETE FROM ipam_pools WHERE id = ?');
    this.cursorOf = db.prepare('UPDATE ipam_pools SET cursor = ? WHERE id = ?');
    this.address = db.prepare('SELECT * FROM ipam_addresses WHERE address_space = ? AND subnet = ? AND address = ?');
    this.ofSubnet = db.prepare('SELECT * FROM ipam_addresses WHERE address_space = ? AND subnet = ?');
    this.ofPool = db.prepare(`SELECT a.* FROM ipam_pools AS p JOIN ipam_addresses AS a ON a.address_space = p.address_space AND a.subnet = p.subnet
      WHERE p.id = ? AND a.pool_id = p.id ORDER BY a.kind, a.address`);
    this.addAddress = db.prepare(`INSERT INTO ipam_addresses (address_space, subnet, address, pool_id, kind, owner)
      VALUES (@address_space, @subnet, @address, @pool_id, @kind, @owner)`);
    this.removeAddress = db.prepare('DELETE FROM ipam_addresses WHERE address_space = ? AND subnet = ? AND address = ?');
  }

  getPool(id: string): StoredPool | undefined {
    const row = this.pool.get(id) as PoolRow | undefined;
    return row && toPool(row);
  }

  listPools(addressSpace?: AddressSpace): StoredPool[] {
    const rows = (addressSpace ? this.poolsIn.all(addressSpace) : this.pools.all()) as PoolRow[];
    return rows.map(toPool);
  }

  /** The pools held by one owner tag. */
  listPoolsOf(owner: string): StoredPool[] {
    return (this.poolsOf.all(owner) as PoolRow[]).map(toPool);
  }

  insertPool(p: StoredPool): void {
    this.addPool.run({
      id: p.id,
      address_space: p.addressSpace,
      subnet: p.subnet,
      ip_range: p.ipRange ?? null,
      family: p.family,
      options: JSON.stringify(p.options),
      data: JSON.stringify(p.data),
      cursor: p.cursor.toString(),
      created: p.created,
      owner: p.owner,
    });
  }

  /** Deletes the pool and the addresses allocated through it; false when it was not there. */
  deletePool(id: string): boolean {
    return this.removePool.run(id).changes > 0;
  }

  setCursor(id: string, cursor: bigint): void {
    this.cursorOf.run(cursor.toString(), id);
  }

  getAddress(addressSpace: AddressSpace, subnet: string, address: string): StoredAddress | undefined {
    const row = this.address.get(addressSpace, subnet, address) as AddressRow | undefined;
    return row && toAddress(row);
  }

  addressesOfSubnet(addressSpace: AddressSpace, subnet: string): StoredAddress[] {
    return (this.ofSubnet.all(addressSpace, subnet) as AddressRow[]).map(toAddress);
  }

  addressesOfPool(poolId: string): StoredAddress[] {
    return (this.ofPool.all(poolId) as AddressRow[]).map(toAddress);
  }

  insertAddress(a: StoredAddress): void {
    this.addAddress.run({ address_space: a.addressSpace, subnet: a.subnet, address: a.address, pool_id: a.poolId, kind: a.kind, owner: a.owner });
  }

  /** Frees the address; false when it was not allocated. */
  deleteAddress(addressSpace: AddressSpace, subnet: string, address: string): boolean {
    return this.removeAddress.run(addressSpace, subnet, address).changes > 0;
  }
}
