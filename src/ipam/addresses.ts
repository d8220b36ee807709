// Allocating and releasing single addresses of a pool, inside the caller's store transaction:
// explicit requests are checked against the subnet and its reserved addresses and refused when
// someone else holds them; dynamic ones take the first free address after the pool's cursor.
// Conflicts name the holder through the injected names (sandbox "web" on network "mynet").
import { ConflictError, InvalidArgumentError, NotOwnerError } from '../errors.js';
import type { AddressKind, Store } from '../store/index.js';
import { contains, formatAddress, parseAddressOrCidr, type Address } from '../ip/index.js';
import type { PoolState } from './mirror.js';
import type { Claimant, Namer } from './names.js';

export interface AddressRequest {
  /** The address wanted ("a.b.c.d" or "a.b.c.d/len"); absent or '' (as Docker sends it) for the next free one. */
  address?: string;
  kind: AddressKind;
  /** Who holds it: an endpoint id, the network id for a gateway, the name of an aux address. */
  owner: string;
}

const KINDS: readonly AddressKind[] = ['gateway', 'aux', 'endpoint'];

/** The user-facing option each kind of address comes from, for error messages. */
export const FIELD: Record<AddressKind, string> = { gateway: 'gateway', aux: 'aux-address', endpoint: 'ip' };

export function checkAddressRequest(req: AddressRequest): void {
  if (!KINDS.includes(req.kind)) throw new InvalidArgumentError('kind', `must be one of ${KINDS.join(', ')}, not ${JSON.stringify(req.kind)}`);
  if (typeof req.owner !== 'string' || req.owner === '') throw new InvalidArgumentError('owner', 'must be a non-empty string');
  if (req.address !== undefined && typeof req.address !== 'string') throw new InvalidArgumentError(FIELD[req.kind], 'must be a string');
}

/** Parses an address given for this pool and checks it lies in the subnet and is not reserved. */
export function addressInPool(state: PoolState, field: string, text: string): Address {
  const address = parseAddressOrCidr(field, text);
  const { subnet } = state;
  if (address.bits !== undefined && address.bits !== subnet.bits) {
    throw new InvalidArgumentError(field, `${text} has prefix length /${address.bits}, but the subnet ${subnet.text} is /${subnet.bits}`);
  }
  const plain = formatAddress(address.family, address.value);
  if (!contains(subnet, address)) throw new InvalidArgumentError(field, `${plain} is not inside the subnet ${subnet.text}`);
  if (state.reserveFirst && address.value === subnet.start) {
    throw new InvalidArgumentError(field, `${plain} is the ${subnet.family === 4 ? 'network' : 'subnet-router anycast'} address of ${subnet.text}`);
  }
  if (state.reserveLast && address.value === subnet.end) throw new InvalidArgumentError(field, `${plain} is the broadcast address of ${subnet.text}`);
  return address;
}

function record(store: Store, state: PoolState, offset: bigint, req: AddressRequest): string {
  const { pool, subnet } = state;
  const address = formatAddress(subnet.family, subnet.start + offset);
  store.ipam.insertAddress({ addressSpace: pool.addressSpace, subnet: pool.subnet, address, poolId: pool.id, kind: req.kind, owner: req.owner });
  state.used.add(offset);
  return `${address}/${subnet.bits}`;
}

function explicit(store: Store, state: PoolState, req: AddressRequest & { address: string }, names: Namer): string {
  const field = FIELD[req.kind];
  const offset = addressInPool(state, field, req.address).value - state.subnet.start;
  if (state.used.has(offset)) {
    const address = formatAddress(state.subnet.family, state.subnet.start + offset);
    const holder = store.ipam.getAddress(state.pool.addressSpace, state.pool.subnet, address);
    if (holder && holder.kind === req.kind && holder.owner === req.owner) return `${address}/${state.subnet.bits}`;
    const by = holder ? names.address(holder, store.ipam.getPool(holder.poolId)) : `another holder in ${names.pool(state.pool)}`;
    throw new ConflictError(`${field}: ${address} is already allocated to ${by}`, { field });
  }
  return record(store, state, offset, req);
}

function dynamic(store: Store, state: PoolState, req: AddressRequest, names: Namer): string {
  const offset = state.used.nextFree(state.lo, state.hi, state.cursor);
  if (offset === undefined) {
    const first = formatAddress(state.subnet.family, state.subnet.start + state.lo);
    const last = formatAddress(state.subnet.family, state.subnet.start + state.hi);
    const where = `${state.subnet.text} (${names.pool(state.pool)})`;
    throw new ConflictError(`no available IPv${state.subnet.family} address in ${where}: every address of ${first}–${last} is allocated`, {
      field: FIELD[req.kind],
    });
  }
  const cidr = record(store, state, offset, req);
  state.cursor = offset + 1n > state.hi ? state.lo : offset + 1n;
  store.ipam.setCursor(state.pool.id, state.cursor);
  return cidr;
}

/** Allocates one address; run inside a store transaction after Mirror.begin. Returns "addr/len". */
export function allocate(store: Store, state: PoolState, req: AddressRequest, names: Namer): string {
  return req.address === undefined || req.address === '' ? dynamic(store, state, req, names) : explicit(store, state, { ...req, address: req.address }, names);
}

/**
 * Frees one address of the pool's subnet; freeing a free address does nothing. With a claimant,
 * an address someone else holds is refused (NotOwnerError naming the holder) and stays allocated.
 */
export function release(store: Store, state: PoolState, text: string, names: Namer, claimant?: Claimant): void {
  const offset = addressInPool(state, 'ip', text).value - state.subnet.start;
  const address = formatAddress(state.subnet.family, state.subnet.start + offset);
  const { addressSpace, subnet } = state.pool;
  if (claimant) {
    const holder = store.ipam.getAddress(addressSpace, subnet, address);
    if (holder && !claimant.ownsAddress(holder.owner)) {
      const by = names.address(holder, store.ipam.getPool(holder.poolId));
      throw new NotOwnerError(`ip: ${address} is held by ${by}, not by ${claimant.name}: it stays allocated`, { field: 'ip' });
    }
  }
  if (store.ipam.deleteAddress(addressSpace, subnet, address)) state.used.delete(offset);
}
