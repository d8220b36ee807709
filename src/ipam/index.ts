// IP address management over the store, with Docker's semantics: default pools in Docker's order
// (skipping what the host or another network uses), user subnets, ip-ranges, gateways, aux
// addresses, explicit addresses, IPv6 ULA pools. Every change is one store transaction, so it can
// join a caller's transaction; only a default-pool request awaits (the host's routes) first.
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import type { SubnetRecord } from '../cnm/model.js';
import type { AddressKind, AddressSpace, Store, StoredPool } from '../store/index.js';
import { allocate, checkAddressRequest, FIELD, release, type AddressRequest } from './addresses.js';
import { parseAddress, parseAddressOrCidr, parseNetwork, type Family } from './cidr.js';
import { checkDefaultPool, DOCKER_GLOBAL_POOLS, DOCKER_LOCAL_POOLS, type ParsedDefaultPool, type DefaultPool } from './defaults.js';
import { systemEnvironment, type IpamEnvironment } from './environment.js';
import { Mirror, type PoolState } from './mirror.js';
import { checkPoolRequest, reservePool, type CheckedPoolRequest, type PoolRequest } from './request.js';
import type { HostView } from './pools.js';

export type { AddressKind, AddressSpace } from '../store/index.js';
export type { AddressRequest } from './addresses.js';
export type { PoolRequest } from './request.js';
export type { IpamEnvironment } from './environment.js';
export type { DefaultPool } from './defaults.js';
export { DOCKER_GLOBAL_POOLS, DOCKER_LOCAL_POOLS, parseDefaultAddressPool } from './defaults.js';
export { parseProcRoute, parseResolvConf, systemEnvironment } from './environment.js';

export const LOCAL_ADDRESS_SPACE: AddressSpace = 'LocalDefault';
export const GLOBAL_ADDRESS_SPACE: AddressSpace = 'GlobalDefault';

/** The IpamDriver capabilities: pools and addresses persist, and a replayed request gets the same answer. */
export const CAPABILITIES = { RequiresMACAddress: false, RequiresRequestReplay: true } as const;

export interface IpamOptions {
  /** The host's routes and nameservers; defaults to /proc/net/route and /etc/resolv.conf. */
  environment?: IpamEnvironment;
  /** Replaces Docker's local default pools, like `--default-address-pool`. */
  defaultPools?: readonly DefaultPool[];
  /** Replaces the global (overlay) default pools, 10.0.0.0/8 in /24s. */
  globalPools?: readonly DefaultPool[];
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
  /** The network the gateway belongs to. */
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
  };
}

export class Ipam {
  private readonly mirror: Mirror;
  private readonly environment: IpamEnvironment;
  private readonly defaults: Record<AddressSpace, ParsedDefaultPool[]>;

  constructor(
    private readonly store: Store,
    options: IpamOptions = {},
  ) {
    this.mirror = new Mirror(store);
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
   * RequestPool: the given subnet (and ip-range), or the first free default pool. Asking again
   * for the same subnet and ip-range returns the same pool id; with no subnet, never a pool that
   * is allocated.
   */
  async requestPool(req: PoolRequest): Promise<PoolReply> {
    const checked = checkPoolRequest(req);
    const host = await this.hostView(checked);
    return this.store.tx(() => {
      const pool = reservePool(this.store, checked, { defaults: this.defaults[checked.addressSpace], host, exclusive: false });
      return { poolId: pool.id, pool: pool.subnet, data: pool.data };
    });
  }

  /** ReleasePool: frees the pool and every address allocated through it. Releasing twice succeeds. */
  releasePool(poolId: string): void {
    this.store.tx(() => {
      this.mirror.begin();
      if (this.store.ipam.deletePool(poolId)) this.mirror.clear();
    });
  }

  /** RequestAddress: the given address, or the next free one after the pool's cursor. Returns "addr/len". */
  requestAddress(poolId: string, req: AddressRequest): string {
    checkAddressRequest(req);
    return this.store.tx(() => allocate(this.store, this.poolState(poolId), req));
  }

  /** ReleaseAddress ("addr" or "addr/len"): releasing a free address, or one of a released pool, succeeds. */
  releaseAddress(poolId: string, address: string): void {
    this.store.tx(() => {
      this.mirror.begin();
      const state = this.mirror.pool(poolId);
      if (state) release(this.store, state, address);
      else parseAddressOrCidr('ip', address);
    });
  }

  /**
   * A new network's whole subnet in one transaction: the pool (refused if another network holds
   * the same subnet and ip-range), its aux addresses, then its gateway (given, or the first free
   * address). Any bad field leaves nothing allocated.
   */
  async allocateSubnet(spec: SubnetSpec): Promise<SubnetRecord> {
    const checked = checkPoolRequest({ addressSpace: spec.addressSpace ?? LOCAL_ADDRESS_SPACE, pool: spec.subnet, subPool: spec.ipRange, options: spec.options, v6: spec.v6 });
    const aux = checkSubnetSpec(spec, checked);
    const host = await this.hostView(checked);
    return this.store.tx(() => {
      const pool = reservePool(this.store, checked, { defaults: this.defaults[checked.addressSpace], host, exclusive: true });
      const state = this.poolState(pool.id);
      const auxAddresses: Record<string, string> = {};
      for (const [name, address] of aux) auxAddresses[name] = allocate(this.store, state, { address, kind: 'aux', owner: name });
      const gateway = allocate(this.store, state, { address: spec.gateway, kind: 'gateway', owner: spec.owner });
      return {
        poolId: pool.id,
        subnet: pool.subnet,
        ...(pool.ipRange === undefined ? {} : { ipRange: pool.ipRange }),
        gateway,
        ...(aux.length > 0 ? { auxAddresses } : {}),
      };
    });
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
