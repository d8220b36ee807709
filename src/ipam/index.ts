// IP address management over the store, with Docker's semantics: default pools in Docker's order
// (skipping what the host or another network uses), user subnets, ip-ranges, gateways, aux
// addresses, explicit addresses, IPv6 ULA pools. Every change is one store transaction, so it can
// join a caller's transaction; only a default-pool request awaits (the host's routes) first.
// Every pool has an owner: a network (its own subnet, or one another IPAM assigned it) or the
// Docker IPAM plugin; a claimant (the plugin) may touch only its own pools and addresses.
import { InvalidArgumentError, NotFoundError, NotOwnerError } from '../errors.js';
import type { SubnetRecord } from '../core/model.js';
import type { AddressKind, AddressSpace, Store, StoredPool } from '../store/index.js';
import { allocate, checkAddressRequest, FIELD, release, type AddressRequest } from './addresses.js';
import { parseAddress, parseAddressOrCidr, parseNetwork, type Family } from '../ip/index.js';
import { checkDefaultPool, DOCKER_GLOBAL_POOLS, DOCKER_LOCAL_POOLS, type ParsedDefaultPool, type DefaultPool } from './defaults.js';
import { systemEnvironment, type IpamEnvironment } from './environment.js';
import { Mirror, type PoolState } from './mirror.js';
import { Namer, type Claimant, type DescribeOwner } from './names.js';
import { checkPoolRequest, reservePool, type CheckedPoolRequest, type PoolRequest } from './request.js';
import type { HostView } from './pools.js';

export type { AddressKind, AddressSpace } from '../store/index.js';
export type { AddressRequest } from './addresses.js';
export type { PoolRequest } from './request.js';
export type { IpamEnvironment } from './environment.js';
export type { DefaultPool } from './defaults.js';
export { DOCKER_GLOBAL_POOLS, DOCKER_LOCAL_POOLS, parseDefaultAddressPool } from './defaults.js';
export { parseProcRoute, parseResolvConf, systemEnvironment } from './environment.js';
export type { Claimant, DescribeOwner, OwnerContext } from './names.js';

export const LOCAL_ADDRESS_SPACE: AddressSpace = 'LocalDefault';
export const GLOBAL_ADDRESS_SPACE: AddressSpace = 'GlobalDefault';

/** The IpamDriver capabilities: pools and addresses persist, and a replayed request gets the same answer. */
export const CAPABILITIES = { RequiresMACAddress: false, RequiresRequestReplay: true } as const;

/** The owner of the pools that requestPool (the Docker IPAM plugin's RequestPool) reserves. */
export const DOCKER_POOL_OWNER = 'docker:pool';

/** What the Docker engine may touch in cnmkit's IPAM (through the plugin): the pools and addresses it was given. */
export const DOCKER_ENGINE: Claimant = { name: 'the Docker engine', poolOwner: DOCKER_POOL_OWNER, ownsAddress: (owner) => owner.startsWith('docker:') };

export interface IpamOptions {
  /** The host's routes and nameservers; defaults to /proc/net/route and /etc/resolv.conf. */
  environment?: IpamEnvironment;
  /** Replaces Docker's local default pools, like `--default-address-pool`. */
  defaultPools?: readonly DefaultPool[];
  /** Replaces the global (overlay) default pools, 10.0.0.0/8 in /24s. */
  globalPools?: readonly DefaultPool[];
  /** Names the holders of pools and addresses in messages (the controller knows the objects). */
  describeOwner?: DescribeOwner;
}

export interface PoolReply {
  poolId: string;
  /** The subnet, in canonical CIDR form. */
  pool: string;
  data: Record<string, string>;
}

export interface PoolInfo extends PoolReply {
  addressSpace: AddressSpace;
  subPool?: string;
  family: Family;
  options: Record<string, string>;
  /** The owner tag of the pool: "network:ID", or DOCKER_POOL_OWNER. */
  owner: string;
}

export interface AllocatedAddress {
  /** With the subnet's prefix length, e.g. 172.18.0.2/16. */
  address: string;
  kind: AddressKind;
  owner: string;
}

/** A network's subnet as the CLI and controller give it (`--subnet`, `--ip-range`, `--gateway`, `--aux-address`). */
export interface SubnetSpec {
  addressSpace?: AddressSpace;
  subnet?: string;
  ipRange?: string;
  gateway?: string;
  /** Named addresses to keep out of allocation, e.g. { router: '172.30.0.254' }. */
  auxAddresses?: Record<string, string>;
  v6?: boolean;
  options?: Record<string, string>;
  /** The network the pool and its gateway belong to: "network:ID". */
  owner: string;
}

/** A subnet that another IPAM assigned to a network (the Docker engine's own): recorded as it is. */
export interface AssignedSubnet {
  subnet: string;
  /** CIDRs with the subnet's prefix length, as the engine gives them; the gateway may be absent. */
  gateway?: string;
  auxAddresses?: Record<string, string>;
  /** The network: "network:ID". */
  owner: string;
}

function info(pool: StoredPool): PoolInfo {
  return {
    poolId: pool.id,
    pool: pool.subnet,
    data: pool.data,
    addressSpace: pool.addressSpace,
    ...(pool.ipRange === undefined ? {} : { subPool: pool.ipRange }),
    family: pool.family,
    options: pool.options,
    owner: pool.owner,
  };
}

export class Ipam {
  private readonly mirror: Mirror;
  private readonly environment: IpamEnvironment;
  private readonly defaults: Record<AddressSpace, ParsedDefaultPool[]>;
  private readonly names: Namer;

  constructor(
    private readonly store: Store,
    options: IpamOptions = {},
  ) {
    this.mirror = new Mirror(store);
    this.names = new Namer(options.describeOwner);
    this.environment = options.environment ?? systemEnvironment();
    this.defaults = {
      LocalDefault: (options.defaultPools ?? DOCKER_LOCAL_POOLS).map(checkDefaultPool),
      GlobalDefault: (options.globalPools ?? DOCKER_GLOBAL_POOLS).map(checkDefaultPool),
    };
  }

  defaultAddressSpaces(): { local: AddressSpace; global: AddressSpace } {
    return { local: LOCAL_ADDRESS_SPACE, global: GLOBAL_ADDRESS_SPACE };
  }

  /**
   * RequestPool, for the Docker IPAM plugin (the pool's owner is DOCKER_POOL_OWNER): the given
   * subnet (and ip-range), or the first free default pool. Asking again for the same subnet and
   * ip-range returns the same pool id; with no subnet, never a pool that is allocated; a subnet
   * of a network is refused, naming it.
   */
  async requestPool(req: PoolRequest): Promise<PoolReply> {
    const checked = checkPoolRequest(req);
    const host = await this.hostView(checked);
    return this.store.tx(() => {
      const pool = reservePool(this.store, checked, this.reserveOptions(checked, host, false, DOCKER_POOL_OWNER));
      return { poolId: pool.id, pool: pool.subnet, data: pool.data };
    });
  }

  /**
   * ReleasePool: frees the pool and every address allocated through it. Releasing twice succeeds.
   * A claimant may release only its own pools: another's is refused (NotOwnerError) and kept.
   */
  releasePool(poolId: string, claimant?: Claimant): void {
    this.store.tx(() => {
      this.mirror.begin();
      const pool = this.store.ipam.getPool(poolId);
      if (pool && claimant) this.checkClaim(pool, claimant, 'release it');
      if (this.store.ipam.deletePool(poolId)) this.mirror.clear();
    });
  }

  /**
   * RequestAddress: the given address, or the next free one after the pool's cursor. Returns
   * "addr/len". A claimant may allocate only in its own pools.
   */
  requestAddress(poolId: string, req: AddressRequest, claimant?: Claimant): string {
    checkAddressRequest(req);
    return this.store.tx(() => {
      const state = this.poolState(poolId);
      if (claimant) this.checkClaim(state.pool, claimant, 'allocate in it');
      return allocate(this.store, state, req, this.names);
    });
  }

  /**
   * ReleaseAddress ("addr" or "addr/len"): releasing a free address, or one of a released pool,
   * succeeds. A claimant may release only addresses it holds: another holder's is refused
   * (NotOwnerError naming the holder) and stays allocated.
   */
  releaseAddress(poolId: string, address: string, claimant?: Claimant): void {
    this.store.tx(() => {
      this.mirror.begin();
      const state = this.mirror.pool(poolId);
      if (state) release(this.store, state, address, this.names, claimant);
      else parseAddressOrCidr('ip', address);
    });
  }

  /**
   * A new network's whole subnet in one transaction: the pool (refused if another network holds
   * the same subnet and ip-range), its aux addresses, then its gateway (given, or the first free
   * address). Any bad field leaves nothing allocated.
   */
  async allocateSubnet(spec: SubnetSpec): Promise<SubnetRecord> {
    return (await this.prepareSubnet(spec))();
  }

  /**
   * allocateSubnet in two halves: the request checked and the host looked at now; the returned
   * function allocates, synchronously, in its own transaction or as part of the caller's (a
   * network recorded with its pools in one).
   */
  async prepareSubnet(spec: SubnetSpec): Promise<() => SubnetRecord> {
    const checked = checkPoolRequest({ addressSpace: spec.addressSpace ?? LOCAL_ADDRESS_SPACE, pool: spec.subnet, subPool: spec.ipRange, options: spec.options, v6: spec.v6 });
    const aux = checkSubnetSpec(spec, checked);
    const host = await this.hostView(checked);
    return () => this.store.tx(() => {
      const pool = reservePool(this.store, checked, this.reserveOptions(checked, host, true, spec.owner));
      const state = this.poolState(pool.id);
      const auxAddresses: Record<string, string> = {};
      for (const [name, address] of aux) auxAddresses[name] = allocate(this.store, state, { address, kind: 'aux', owner: name }, this.names);
      const gateway = allocate(this.store, state, { address: spec.gateway, kind: 'gateway', owner: spec.owner }, this.names);
      return {
        poolId: pool.id,
        subnet: pool.subnet,
        ...(pool.ipRange === undefined ? {} : { ipRange: pool.ipRange }),
        gateway,
        ...(aux.length > 0 ? { auxAddresses } : {}),
      };
    });
  }

  /**
   * Records a subnet another IPAM assigned to a network (the engine's own IPAM), with its gateway
   * and aux addresses, so that no other network or default pool overlaps it. A pool of the Docker
   * IPAM plugin with this very subnet is the engine's pool of this network (cnmkit-ipam): it stays
   * as it is, the plugin's. The new pool is the owner's (poolsOf). Synchronous: one transaction,
   * which may be the caller's.
   */
  reserveSubnet(spec: AssignedSubnet): void {
    const checked = checkPoolRequest({ addressSpace: LOCAL_ADDRESS_SPACE, pool: spec.subnet });
    const aux = checkSubnetSpec(spec, checked);
    return this.store.tx(() => {
      const plugin = this.store.ipam.listPools(LOCAL_ADDRESS_SPACE).find((p) => p.owner === DOCKER_POOL_OWNER && p.subnet === checked.subnet?.text);
      if (plugin) return;
      const pool = reservePool(this.store, checked, this.reserveOptions(checked, undefined, true, spec.owner));
      const state = this.poolState(pool.id);
      for (const [name, address] of aux) allocate(this.store, state, { address, kind: 'aux', owner: name }, this.names);
      if (spec.gateway) allocate(this.store, state, { address: spec.gateway, kind: 'gateway', owner: spec.owner }, this.names);
    });
  }

  /** The pools an owner holds (a network's: "network:ID"). */
  poolsOf(owner: string): PoolInfo[] {
    return this.store.ipam.listPoolsOf(owner).map(info);
  }

  getPool(poolId: string): PoolInfo | undefined {
    const pool = this.store.ipam.getPool(poolId);
    return pool && info(pool);
  }

  listPools(addressSpace?: AddressSpace): PoolInfo[] {
    return this.store.ipam.listPools(addressSpace).map(info);
  }

  /** The addresses allocated through the pool, with their kind and owner. */
  listAddresses(poolId: string): AllocatedAddress[] {
    const pool = this.store.ipam.getPool(poolId);
    if (!pool) throw new NotFoundError('pool', poolId);
    const bits = pool.subnet.split('/')[1];
    return this.store.ipam.addressesOfPool(poolId).map((a) => ({ address: `${a.address}/${bits}`, kind: a.kind, owner: a.owner }));
  }

  private reserveOptions(req: CheckedPoolRequest, host: HostView | undefined, exclusive: boolean, owner: string) {
    return { defaults: this.defaults[req.addressSpace], host, exclusive, owner, names: this.names };
  }

  /** Refuses a claimant a pool that is not its own, naming the pool's holder. */
  private checkClaim(pool: StoredPool, claimant: Claimant, what: string): void {
    if (pool.owner === claimant.poolOwner) return;
    throw new NotOwnerError(`pool ${pool.id} belongs to ${this.names.pool(pool)}, not to ${claimant.name}, which may not ${what}`, { field: 'PoolID' });
  }

  private poolState(poolId: string): PoolState {
    this.mirror.begin();
    const state = this.mirror.pool(poolId);
    if (!state) throw new NotFoundError('pool', poolId);
    return state;
  }

  /** The host's routes and nameservers, needed only to pick a local default pool. */
  private async hostView(req: CheckedPoolRequest): Promise<HostView | undefined> {
    if (req.subnet || req.addressSpace !== LOCAL_ADDRESS_SPACE) return undefined;
    const routes = (await this.environment.linkRoutes()).flatMap((r) => parseOr(() => parseNetwork('route', r)));
    const nameservers = this.environment.nameservers().flatMap((n) => parseOr(() => parseAddress('nameserver', n)));
    return { routes, nameservers };
  }
}

/** Parses what the host reported; an entry that is not an address (e.g. "default") is left out. */
function parseOr<T>(parse: () => T): T[] {
  try {
    return [parse()];
  } catch (err) {
    if (err instanceof InvalidArgumentError) return [];
    throw err;
  }
}

function checkSubnetSpec(spec: SubnetSpec, checked: CheckedPoolRequest): [string, string][] {
  if (typeof spec.owner !== 'string' || spec.owner === '') throw new InvalidArgumentError('owner', 'must be a non-empty string');
  const aux = Object.entries(spec.auxAddresses ?? {});
  if (!checked.subnet && spec.gateway !== undefined && spec.gateway !== '') throw new InvalidArgumentError(FIELD.gateway, 'needs an explicit --subnet');
  if (!checked.subnet && aux.length > 0) throw new InvalidArgumentError(FIELD.aux, 'needs an explicit --subnet');
  for (const [name, address] of aux) {
    if (name === '') throw new InvalidArgumentError(FIELD.aux, `${String(address)} needs a name (NAME=ADDRESS)`);
    if (typeof address !== 'string') throw new InvalidArgumentError(FIELD.aux, `${name}: the address must be a string`);
  }
  return aux;
}
