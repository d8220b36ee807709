// RequestPool: checking the request (fields named as the user typed them: subnet, ip-range) and
// reserving the pool in the store for its owner. The same subnet and ip-range asked again by the
// same owner give the same pool id (Docker's request replay); a pool of another owner, or a
// subnet overlapping one (sub-pools of one subnet only within one owner), is refused, naming
// the holder.
import { ConflictError, InvalidArgumentError } from '../errors.js';
import type { AddressSpace, Store, StoredPool } from '../store/index.js';
import { covers, overlaps, parsePrefix, type Family, type Prefix } from '../ip/index.js';
import { candidates, randomUlaPrefix, type ParsedDefaultPool } from './defaults.js';
import type { Namer } from './names.js';
import { Occupancy, pickPool, skipReason, type HostView } from './pools.js';

export interface PoolRequest {
  addressSpace: string;
  /** The subnet (`--subnet`); absent or '' for a default pool. */
  pool?: string;
  /** The ip-range (`--ip-range`) inside the subnet. */
  subPool?: string;
  options?: Record<string, string> | null;
  /** Whether an IPv6 pool is wanted; when absent, the subnet's family (IPv4 without one). */
  v6?: boolean;
}

export interface CheckedPoolRequest {
  addressSpace: AddressSpace;
  family: Family;
  subnet?: Prefix;
  range?: Prefix;
  options: Record<string, string>;
}

const SPACES: readonly AddressSpace[] = ['LocalDefault', 'GlobalDefault'];
const ULA_ATTEMPTS = 16;

function checkOptions(options: unknown): Record<string, string> {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options) || !Object.values(options).every((v) => typeof v === 'string')) {
    throw new InvalidArgumentError('options', 'must be an object of string values');
  }
  return { ...(options as Record<string, string>) };
}

export function checkPoolRequest(req: PoolRequest): CheckedPoolRequest {
  const addressSpace = req.addressSpace as AddressSpace;
  if (!SPACES.includes(addressSpace)) throw new InvalidArgumentError('address-space', `must be ${SPACES.join(' or ')}, not ${JSON.stringify(req.addressSpace)}`);
  if (req.v6 !== undefined && typeof req.v6 !== 'boolean') throw new InvalidArgumentError('v6', 'must be true or false');
  const options = checkOptions(req.options);
  const hasPool = req.pool !== undefined && req.pool !== '';
  const hasSubPool = req.subPool !== undefined && req.subPool !== '';
  if (!hasPool) {
    if (hasSubPool) throw new InvalidArgumentError('ip-range', 'needs an explicit --subnet to lie in');
    return { addressSpace, family: req.v6 ? 6 : 4, options };
  }
  const subnet = parsePrefix('subnet', req.pool);
  if (req.v6 !== undefined && subnet.family !== (req.v6 ? 6 : 4)) {
    throw new InvalidArgumentError('subnet', `${subnet.text} is an IPv${subnet.family} subnet, but an IPv${req.v6 ? 6 : 4} pool was requested`);
  }
  if (!hasSubPool) return { addressSpace, family: subnet.family, subnet, options };
  const range = parsePrefix('ip-range', req.subPool);
  if (!covers(subnet, range)) throw new InvalidArgumentError('ip-range', `${range.text} is not inside the subnet ${subnet.text}`);
  return { addressSpace, family: subnet.family, subnet, range, options };
}

export function poolIdOf(addressSpace: AddressSpace, subnet: Prefix, range?: Prefix): string {
  return `${addressSpace}/${subnet.text}${range ? `/${range.text}` : ''}`;
}

function occupancy(store: Store, addressSpace: AddressSpace, family: Family): Occupancy {
  const pools = store.ipam.listPools(addressSpace).filter((p) => p.family === family);
  return new Occupancy(pools.map((p) => ({ prefix: parsePrefix('subnet', p.subnet), pool: p })));
}

function randomUla(taken: Occupancy, host: HostView | undefined): Prefix {
  for (let i = 0; i < ULA_ATTEMPTS; i++) {
    const candidate = randomUlaPrefix();
    if (skipReason(candidate, taken, host) === undefined) return candidate;
  }
  throw new ConflictError(`could not find a free IPv6 unique local /64 in ${ULA_ATTEMPTS} random attempts`, { field: 'subnet' });
}

function chooseDefault(store: Store, req: CheckedPoolRequest, opts: ReserveOptions): Prefix {
  const taken = occupancy(store, req.addressSpace, req.family);
  const specs = opts.defaults.filter((s) => s.base.family === req.family);
  if (req.family === 6 && specs.length === 0) return randomUla(taken, opts.host);
  return pickPool(candidates(specs, req.family), taken, opts.host, `IPv${req.family} address pool in ${req.addressSpace}`, opts.names);
}

/** Subnets never overlap across owners; one owner may hold sub-pools (ip-ranges) of one subnet. */
function refuseOverlap(store: Store, addressSpace: AddressSpace, subnet: Prefix, owner: string, names: Namer): void {
  for (const pool of store.ipam.listPools(addressSpace)) {
    if (pool.family !== subnet.family || (pool.subnet === subnet.text && pool.owner === owner)) continue;
    if (overlaps(parsePrefix('subnet', pool.subnet), subnet)) {
      throw new ConflictError(`subnet: ${subnet.text} overlaps ${pool.subnet}, in use by ${names.pool(pool)}`, { field: 'subnet' });
    }
  }
}

export interface ReserveOptions {
  defaults: readonly ParsedDefaultPool[];
  host: HostView | undefined;
  /** Refuse a pool that already exists instead of returning it (a new network, not a replay). */
  exclusive: boolean;
  /** Who will hold the pool (an owner tag); only the same owner gets an existing pool back. */
  owner: string;
  names: Namer;
}

/** Returns the pool asked for, reserving it in the store if it is new. Run inside a transaction. */
export function reservePool(store: Store, req: CheckedPoolRequest, opts: ReserveOptions): StoredPool {
  const subnet = req.subnet ?? chooseDefault(store, req, opts);
  const id = poolIdOf(req.addressSpace, subnet, req.range);
  const existing = store.ipam.getPool(id);
  if (existing && (opts.exclusive || existing.owner !== opts.owner)) {
    const what = `${subnet.text}${req.range ? ` with ip-range ${req.range.text}` : ''}`;
    throw new ConflictError(`subnet: ${what} is already in use by ${opts.names.pool(existing)}`, { field: 'subnet' });
  }
  if (existing) return existing;
  if (req.subnet) refuseOverlap(store, req.addressSpace, subnet, opts.owner, opts.names);
  const pool: StoredPool = {
    id,
    addressSpace: req.addressSpace,
    subnet: subnet.text,
    ...(req.range ? { ipRange: req.range.text } : {}),
    family: subnet.family,
    options: req.options,
    data: {},
    cursor: 0n,
    created: new Date().toISOString(),
    owner: opts.owner,
  };
  store.ipam.insertPool(pool);
  return pool;
}
