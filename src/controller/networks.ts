// Network subnets for the controller: a cnmkit network's from IPAM (given or default pools), the
// Docker engine's as its IPAM assigned them (reserved in cnmkit's IPAM, so that nothing else
// overlaps them), both through the same overlap check, or none for a network made without IPv4;
// and releasing a network's pools; the create request's address fields and name checked first.
// Callers serialise these through the controller's queue.
import type { CreateNetworkRequest, ControllerDeps } from './types.js';
import { definedOnly } from './endpoints.js';
import type { NetworkRecord, SubnetRecord } from '../core/model.js';
import { shortId } from '../core/refs.js';
import { clusterOnlyNetworks, globalNamed } from './global.js';
import { refuseOverlaps } from './ownership.js';
import type { Undo } from '../core/steps.js';
import type { Driver } from '../contract/driver.js';
import { ConflictError, InvalidArgumentError } from '../errors.js';

const ownerTag = (net: NetworkRecord): string => `network:${net.id}`;

/**
 * Records a new network ('creating') with its subnets, before its driver makes anything: the
 * engine's (assigned), IPAM's (a driver of local addresses; with its pools, in one transaction),
 * or none (a global network's come from the cluster). Its undo is registered.
 */
export async function recordNetwork(deps: ControllerDeps, net: NetworkRecord, req: CreateNetworkRequest, driver: Driver, undo: Undo): Promise<void> {
  if (!req.assigned && driver.usesIpam && !driver.global) return allocateSubnets(deps, net, req, undo);
  deps.store.networks.put(net);
  undo.push('store network', () => deps.store.networks.delete(net.id));
  if (req.assigned) recordAssigned(deps, net, req.assigned, undo);
}

/** The engine's subnets: checked against every network and reserved in IPAM with the record, in one transaction. */
function recordAssigned(deps: ControllerDeps, net: NetworkRecord, assigned: NonNullable<CreateNetworkRequest['assigned']>, undo: Undo): void {
  const { store, ipam } = deps;
  net.ipv4 = assigned.ipv4;
  net.ipv6 = assigned.ipv6;
  store.tx(() => {
    refuseOverlaps(net, store.networks.list());
    for (const s of [...net.ipv4, ...net.ipv6]) {
      ipam.reserveSubnet({ subnet: s.subnet, ...definedOnly({ gateway: s.gateway, auxAddresses: s.auxAddresses }), owner: ownerTag(net) });
    }
    store.networks.put(net);
  });
  undo.push('ipam reservations', () => releaseOwnedPools(deps, net));
}

/**
 * The address fields of a create request the driver cannot honour, refused by name rather than
 * ignored: any on a driver without addresses, IPv4's without IPv4, an aux-address on a global
 * network (the cluster's IPAM reserves none on request).
 */
export function refuseAddressFields(req: CreateNetworkRequest, driver: Driver): void {
  if (!driver.usesIpam && (req.subnet || req.gateway || req.ipRange || req.subnetV6))
    throw new InvalidArgumentError('subnet', `the ${driver.name} driver has no addresses`);
  if (req.enableIPv4 === false) refuseIPv4Fields(req, driver);
  if (driver.global && req.auxAddresses && Object.keys(req.auxAddresses).length > 0)
    throw new InvalidArgumentError('auxAddresses', `the ${driver.name} driver's networks take no aux-address: its addresses come from the cluster's IPAM, which reserves none on request`);
}

/**
 * A name taken here, or (for a local network) by a network in the cluster, is refused naming the
 * other network: a local network would hide the overlay of its name on this host. Not asked of the
 * cluster for the predefined networks, made at the daemon's start before it has registered (as
 * their overlap check is not, in allocateSubnets): a round trip to etcd on every first start.
 */
export async function refuseTakenName(deps: ControllerDeps, name: string, driver: Driver): Promise<void> {
  if (deps.store.networks.getByName(name)) throw new ConflictError(`network with name ${name} already exists`);
  const taken = driver.global || deps.predefined?.has(name) ? undefined : await globalNamed(deps, name);
  if (taken) throw new ConflictError(`network with name ${name} already exists: the ${taken.driver.name} network ${name} (${shortId(taken.view.id)}) in the cluster`);
}

/**
 * A network made without IPv4 (enableIPv4: false) has no IPv4 subnet, gateway or endpoint address;
 * the IPv4 fields of the request are refused by name rather than ignored. Not a global network:
 * its subnets are the cluster's.
 */
export function refuseIPv4Fields(req: CreateNetworkRequest, driver: Driver): void {
  if (driver.global) throw new InvalidArgumentError('enableIPv4', `a ${driver.name} network takes its subnets from the cluster; it cannot be made without IPv4`);
  const given = (['subnet', 'ipRange', 'gateway', 'auxAddresses'] as const).find((k) => req[k] !== undefined);
  if (given) throw new InvalidArgumentError(given, `a network without IPv4 (enableIPv4 false) takes no ${given}`);
}

/**
 * A cnmkit network's subnets from IPAM (given or default pools), then the same overlap check; the
 * network is recorded (as it is: 'creating') with its pools in one transaction, and its undo
 * registered (pools released before the record goes).
 */
async function allocateSubnets(deps: ControllerDeps, net: NetworkRecord, req: CreateNetworkRequest, undo: Undo): Promise<void> {
  const subnets: Array<{ v6: boolean; subnet?: string; ipRange?: string; gateway?: string; auxAddresses?: Record<string, string> }> = [];
  if (req.enableIPv4 !== false) subnets.push({ v6: false, subnet: req.subnet, ipRange: req.ipRange, gateway: req.gateway, auxAddresses: req.auxAddresses });
  if (net.enableIPv6) subnets.push({ v6: true, subnet: req.subnetV6, ipRange: undefined, gateway: req.gatewayV6, auxAddresses: undefined });
  const allocations: Array<{ v6: boolean; allocate: () => SubnetRecord }> = [];
  for (const spec of subnets) allocations.push({ v6: spec.v6, allocate: await deps.ipam.prepareSubnet({ ...definedOnly(spec), owner: ownerTag(net) }) });
  // In cluster mode, the global networks this host has no record of yet are not to be overlapped
  // either (none when the store does not answer). Not for the predefined networks, made at the
  // daemon's start before it has registered: that would be a round trip to etcd on every first
  // start (a wait until the store fails fast when it is unreachable); their subnets are published
  // in the host's record, which global pools avoid.
  const globals = deps.predefined?.has(net.name) ? [] : await clusterOnlyNetworks(deps);
  const { store } = deps;
  const records = store.tx(() => {
    const out = allocations.map(({ v6, allocate }) => ({ v6, rec: allocate() }));
    for (const { v6, rec } of out) (v6 ? net.ipv6 : net.ipv4).push(rec);
    refuseOverlaps(net, [...store.networks.list(), ...globals]);
    store.networks.put(net);
    return out;
  });
  undo.push('store network', () => store.networks.delete(net.id));
  for (const { rec } of records) undo.push('ipam pool', () => deps.ipam.releasePool(rec.poolId));
}

/**
 * Releases the network's pools, found by the subnets it records and by their owner. The engine's
 * cnmkit-ipam pools are not the network's: the engine releases them (ReleasePool).
 */
export function releaseOwnedPools(deps: ControllerDeps, net: NetworkRecord): void {
  const { ipam } = deps;
  const ids = new Set([...net.ipv4, ...net.ipv6].map((s) => s.poolId).filter((id) => id !== ''));
  for (const pool of ipam.poolsOf(ownerTag(net))) ids.add(pool.poolId);
  for (const id of ids) ipam.releasePool(id);
}
