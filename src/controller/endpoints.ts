// Endpoint work of the controller: create and join one (addresses and record in one transaction,
// then the driver), create a detached one (the Docker engine's flow), publish its ports, and tear
// it down best-effort. Callers serialise these through the controller's queue.
import { AddressRacedError, InvalidArgumentError } from '../errors.js';
import type { PortSpec } from '../portmap/index.js';
import type { ControllerDeps } from './types.js';
import type { Store } from '../store/index.js';
import { isFresh, type Driver, type EndpointCreated, type LeaveHint, type Placement } from '../contract/driver.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../core/model.js';
import type { JoinInfo } from '../contract/join.js';
import { newId } from '../core/refs.js';
import { formatMac, parseAddressOrCidr, parseMac } from '../ip/index.js';
import { mark } from '../core/trace.js';
import { bestEffort, withRollback, type Undo } from '../core/steps.js';

export const now = (): string => new Date().toISOString();

/** The object without its undefined fields (for records whose optional fields must be absent). */
export function definedOnly<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

export function driverOf(deps: ControllerDeps, name: string, field = 'driver'): Driver {
  const d = deps.drivers.get(name);
  if (!d) throw new InvalidArgumentError(field, `unknown driver ${JSON.stringify(name)} (have: ${deps.drivers.names().join(', ')})`);
  return d;
}

/**
 * An endpoint's name: SANDBOX-NETWORK, unique in the network as sandbox names are; one longer than
 * 64 characters keeps its start and ends with 12 hex digits of the endpoint's id instead.
 */
export function endpointName(sb: SandboxRecord, net: NetworkRecord, id: string): string {
  const full = `${sb.name}-${net.name}`;
  return full.length <= 64 ? full : `${full.slice(0, 51)}-${id.slice(0, 12)}`;
}

export interface JoinRequest {
  ip?: string;
  ipv6?: string;
  mac?: string;
  ifname?: string;
}

/**
 * The addresses a connect asks for, checked before anything is made: each needs a subnet of its
 * family on the network (refused by name rather than ignored), and --ipv6 must be an IPv6 address.
 */
export function checkAskedAddresses(net: NetworkRecord, req: JoinRequest): void {
  if (req.ip && net.ipv4.length === 0) throw new InvalidArgumentError('ip', `network ${net.name} has no IPv4 subnet`);
  if (req.ipv6 === undefined) return;
  if (net.ipv6.length === 0) throw new InvalidArgumentError('ipv6', `network ${net.name} has no IPv6 subnet (it was created without --ipv6)`);
  if (parseAddressOrCidr('ipv6', req.ipv6).family !== 6) throw new InvalidArgumentError('ipv6', `expected an IPv6 address, got ${JSON.stringify(req.ipv6)}`);
}

/** Connects made again at most when another host took a chosen address first (AddressRacedError). */
const RACE_ATTEMPTS = 8;

/**
 * A new endpoint of net joined to sb, with its ports published; rolled back whole on failure (and
 * made again when another host took the address chosen for it meanwhile).
 * peers: the endpoints sb has joined already. ready false: left 'creating' on record, for the caller
 * to make ready once the rest of its connect is done (a crash before that: the start-up reconcile removes it).
 */
export async function createJoinedEndpoint(
  deps: ControllerDeps, net: NetworkRecord, sb: SandboxRecord, req: JoinRequest, ports: PortSpec[], peers: EndpointRecord[], o: { ready?: boolean } = {},
): Promise<EndpointRecord> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await createJoinedOnce(deps, net, sb, req, ports, peers, o.ready ?? true);
    } catch (err) {
      if (!(err instanceof AddressRacedError) || attempt >= RACE_ATTEMPTS) throw err;
      deps.logger.debug({ network: net.name, sandbox: sb.name, err: err.message }, 'connect: the address was taken by another host; choosing again');
    }
  }
}

function createJoinedOnce(
  deps: ControllerDeps, net: NetworkRecord, sb: SandboxRecord, req: JoinRequest, ports: PortSpec[], peers: EndpointRecord[], ready: boolean,
): Promise<EndpointRecord> {
  const driver = driverOf(deps, net.driver);
  const { store, ipam } = deps;
  return withRollback(async (undo) => {
    const id = newId();
    const ep: EndpointRecord = {
      id, networkId: net.id, sandboxId: sb.id, name: endpointName(sb, net, id), ports: [],
      driverData: {}, state: 'creating', created: now(),
      ...(req.mac !== undefined ? { macAddress: formatMac(parseMac(req.mac, 'mac', { unicast: true })) } : {}),
    };
    const s4 = net.ipv4[0];
    const s6 = net.ipv6[0];
    const claim = driver.global ? await preparedAddresses(driver, net, ep, req, undo) : undefined;
    mark('addresses+prepare');
    // The addresses and the record in one transaction: a crash leaves both or neither.
    if (!driver.global) store.tx(() => {
      if (s4) ep.ipv4 = ipam.requestAddress(s4.poolId, { address: req.ip ?? '', kind: 'endpoint', owner: `endpoint:${id}` });
      if (s6) ep.ipv6 = ipam.requestAddress(s6.poolId, { address: req.ipv6 ?? '', kind: 'endpoint', owner: `endpoint:${id}` });
      store.endpoints.put(ep);
    });
    if (driver.global) {
      store.endpoints.put(ep);
      undo.push('record', () => store.endpoints.delete(ep.id));
    } else undo.push('addresses and record', () =>
      store.tx(() => {
        if (s4 && ep.ipv4) ipam.releaseAddress(s4.poolId, ep.ipv4);
        if (s6 && ep.ipv6) ipam.releaseAddress(s6.poolId, ep.ipv6);
        store.endpoints.delete(ep.id);
      }),
    );
    const placement: Placement = { kind: 'sandbox', sandbox: sb, peers, ...(req.ifname ? { ifname: req.ifname } : {}), ...(claim ? { claim } : {}) };
    const created = await driver.createEndpoint(net, net.config, ep, placement);
    // Kernel objects the driver made now must be on record before the join (a bridge makes none yet).
    if (created.driverData !== undefined) {
      recordCreated(ep, created);
      store.endpoints.put(ep);
    }
    undo.push('driver endpoint', () => driver.deleteEndpoint(net, net.config, ep));
    mark('createEndpoint');
    await joinAndApply(deps, driver, net, ep, placement, undo);
    if (ports.length > 0 && driver.publish) {
      undo.push('ports', () => driver.unpublish?.(net, net.config, ep));
      await publishRecorded(deps, driver, net, ep, ports);
    }
    if (ready) {
      ep.state = 'ready';
      store.endpoints.put(ep);
    }
    deps.logger.debug({ network: net.name, sandbox: sb.name, endpoint: ep.id, ipv4: ep.ipv4 }, 'endpoint joined');
    return ep;
  });
}

/**
 * A global network's endpoint addresses from the cluster's IPAM: reserved when the scope reserves
 * (the join claims them: returns its claim), else claimed now. Released again on rollback.
 */
async function globalAddresses(driver: Driver, net: NetworkRecord, ep: EndpointRecord, req: JoinRequest, undo: Undo): Promise<{ owner: string } | undefined> {
  const g = driver.global!;
  const owner = `endpoint:${ep.id}`;
  const reserve = g.reserveAddress && g.forgetAddress ? { reserve: g.reserveAddress.bind(g), forget: g.forgetAddress.bind(g) } : undefined;
  for (const family of [4, 6] as const) {
    if (!(family === 4 ? net.ipv4[0] : net.ipv6[0])) continue;
    const asked = family === 4 ? req.ip : req.ipv6;
    const a = reserve ? await reserve.reserve(net, family, asked) : await g.requestAddress(net, family, asked, owner);
    mark(`address v${family}`);
    if (family === 4) ep.ipv4 = a;
    else ep.ipv6 = a;
    // A reserved address is claimed only by a join that succeeds: its release is pushed then (joinAndApply).
    if (reserve) undo.push(`reserved IPv${family} address`, () => reserve.forget(net, family, a));
    else undo.push(`global IPv${family} address`, () => g.releaseAddress(net, family, a, owner));
  }
  return reserve ? { owner } : undefined;
}

/**
 * globalAddresses, while the driver starts bringing the network up on this host when this is its
 * first endpoint here (GlobalScope.prepare). Returns with the addresses: the bring-up goes on while
 * the endpoint is made and its join sends the cluster's transaction (the join waits for it, and
 * fails with it). When the addresses fail, the bring-up is undone once it has ended.
 */
async function preparedAddresses(driver: Driver, net: NetworkRecord, ep: EndpointRecord, req: JoinRequest, undo: Undo): Promise<{ owner: string } | undefined> {
  const g = driver.global!;
  const addresses = globalAddresses(driver, net, ep, req, undo);
  const prepared = g.prepare?.(net);
  if (prepared) {
    const settled = prepared.catch(() => undefined);
    undo.push('network brought up here', () => settled.then(() => g.unprepare?.(net)));
  }
  return addresses;
}

export interface EndpointFilter {
  networkId?: string;
  sandboxId?: string;
}

/** The stored endpoints of a sandbox and/or a network (all without a filter). */
export function endpointsWhere(store: Store, filter: EndpointFilter): EndpointRecord[] {
  const eps = store.endpoints;
  if (filter.sandboxId !== undefined) {
    return eps.listWhere('sandbox_id', filter.sandboxId).filter((e) => filter.networkId === undefined || e.networkId === filter.networkId);
  }
  return filter.networkId !== undefined ? eps.listWhere('network_id', filter.networkId) : eps.list();
}

/** The driver's data and the MAC it chose (an endpoint's own MAC, asked for, stays). */
function recordCreated(ep: EndpointRecord, created: EndpointCreated): void {
  if (created.driverData !== undefined) ep.driverData = created.driverData;
  if (!ep.macAddress && created.macAddress) ep.macAddress = created.macAddress;
}

/** The driver's join, then its JoinInfo applied in the sandbox; the leave is pushed on undo. */
async function joinAndApply(deps: ControllerDeps, driver: Driver, net: NetworkRecord, ep: EndpointRecord, placement: Placement & { kind: 'sandbox' }, undo: Undo): Promise<void> {
  const joined = await driver.join(net, net.config, ep, placement);
  mark('join');
  const claim = placement.claim;
  const g = driver.global;
  if (claim && g) {
    // The join claimed the reserved addresses: released after the leave, as at teardown.
    undo.push('claimed addresses', async () => {
      if (ep.ipv4) await g.releaseAddress(net, 4, ep.ipv4, claim.owner);
      if (ep.ipv6) await g.releaseAddress(net, 6, ep.ipv6, claim.owner);
    });
  }
  undo.push('driver join', () => driver.leave(net, net.config, ep, placement.sandbox));
  if (joined.macAddress) ep.macAddress = joined.macAddress;
  if (joined.driverData !== undefined) ep.driverData = joined.driverData;
  if (joined.info) ep.ifname = await deps.kernel.apply(placement.sandbox, joined.info, { fresh: isFresh(placement) });
  for (const info of joined.extra ?? []) await deps.kernel.apply(placement.sandbox, info, { fresh: false });
  mark('apply');
}

/**
 * Joins a ready endpoint whose interfaces vanished again, with its name, MAC and addresses (the
 * driver removed what was left of them). Rolled back (left) on failure.
 */
export function rejoinEndpoint(deps: ControllerDeps, net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<void> {
  const driver = driverOf(deps, net.driver);
  const peers = deps.store.endpoints.listWhere('sandbox_id', sb.id).filter((e) => e.id !== ep.id);
  return withRollback(async (undo) => {
    await joinAndApply(deps, driver, net, ep, { kind: 'sandbox', sandbox: sb, peers, ...(ep.ifname ? { ifname: ep.ifname } : {}) }, undo);
    deps.store.endpoints.put(ep);
  });
}

export interface DetachedRequest {
  id: string;
  dockerId?: string;
  ipv4?: string;
  ipv6?: string;
  macAddress?: string;
}

/** An endpoint no sandbox of ours joins: addresses decided by the caller, kernel objects by the driver. */
export function createDetachedEndpoint(deps: ControllerDeps, net: NetworkRecord, req: DetachedRequest): Promise<EndpointRecord> {
  const driver = driverOf(deps, net.driver);
  const { store } = deps;
  return withRollback(async (undo) => {
    const ep: EndpointRecord = {
      id: req.id, networkId: net.id, name: `ep-${req.id.slice(0, 12)}`, ports: [], driverData: {}, state: 'creating', created: now(),
      ...definedOnly({ dockerId: req.dockerId, ipv4: req.ipv4, ipv6: req.ipv6, macAddress: req.macAddress }),
    };
    store.endpoints.put(ep);
    undo.push('store endpoint', () => store.endpoints.delete(ep.id));
    recordCreated(ep, await driver.createEndpoint(net, net.config, ep, { kind: 'detached' }));
    ep.state = 'ready';
    store.endpoints.put(ep);
    return ep;
  });
}

/**
 * The Docker engine's Join of a detached endpoint: what its driver says the interface should look
 * like, and the driver's data kept as it now stands (a driver may note the join, to know after a
 * restart whether the engine had taken the interface).
 */
export async function joinDetached(deps: ControllerDeps, net: NetworkRecord, ep: EndpointRecord): Promise<JoinInfo | undefined> {
  const joined = await driverOf(deps, net.driver).join(net, net.config, ep, { kind: 'detached' });
  if (joined.driverData !== undefined) deps.store.endpoints.put({ ...ep, driverData: joined.driverData });
  return joined.info;
}

/** Replaces what the endpoint publishes with ports (none = unpublish). */
export async function replacePorts(deps: ControllerDeps, net: NetworkRecord, ep: EndpointRecord, ports: PortSpec[]): Promise<PortSpec[]> {
  const driver = driverOf(deps, net.driver);
  if (!driver.publish) throw new InvalidArgumentError('ports', `the ${net.driver} driver of network ${net.name} cannot publish ports`);
  if (ep.ports.length > 0) await driver.unpublish?.(net, net.config, ep);
  ep.ports = [];
  deps.store.endpoints.put(ep);
  if (ports.length === 0) return [];
  await publishRecorded(deps, driver, net, ep, ports);
  return ep.ports as PortSpec[];
}

/**
 * Publishes with the intent on disk first: ep.ports holds the requested ports before the kernel
 * changes and the resolved ones after, so an empty list always means nothing is published (a
 * crash in between leaves ports that reconcile publishes again or teardown removes).
 */
async function publishRecorded(deps: ControllerDeps, driver: Driver, net: NetworkRecord, ep: EndpointRecord, ports: PortSpec[]): Promise<void> {
  ep.ports = ports;
  deps.store.endpoints.put(ep);
  try {
    ep.ports = await driver.publish!(net, net.config, ep, ports);
  } catch (err) {
    ep.ports = [];
    deps.store.endpoints.put(ep);
    throw err;
  }
  deps.store.endpoints.put(ep);
}

/** Tells the endpoint's driver that its sandbox is being removed (Driver.leaving), before its namespace goes. */
export function announceLeaving(deps: ControllerDeps, ep: EndpointRecord): void {
  const net = deps.store.networks.get(ep.networkId);
  if (net) deps.drivers.get(net.driver)?.leaving?.(net, net.config, ep);
}

/**
 * Unpublish, leave, delete, then release the addresses and the record: idempotent, best-effort.
 * When a step fails, the addresses and the record stay (state 'deleting', for a retry or the
 * next reconcile): an address is never free while its interface, or a port published to it,
 * may still exist.
 */
export async function teardownEndpoint(deps: ControllerDeps, ep: EndpointRecord, sb: SandboxRecord | undefined, hint: LeaveHint = {}): Promise<void> {
  const { store, ipam } = deps;
  const net = store.networks.get(ep.networkId);
  const driver = net ? deps.drivers.get(net.driver) : undefined;
  store.endpoints.put({ ...ep, state: 'deleting' });
  await bestEffort(`endpoint ${ep.name}`, [
    ['unpublish', () => (net && driver?.unpublish ? driver.unpublish(net, net.config, ep) : undefined)],
    ['interfaces', async () => {
      if (net && driver && sb) await driver.leave(net, net.config, ep, sb, hint);
      if (net && driver) await driver.deleteEndpoint(net, net.config, ep);
    }],
  ]);
  if (net && driver?.global) {
    // The Docker engine's addresses are its IPAM's (cnmkit-ipam): it releases them itself.
    const owner = `endpoint:${ep.id}`;
    if (ep.ipv4 && ep.dockerId === undefined) await driver.global.releaseAddress(net, 4, ep.ipv4, owner);
    if (ep.ipv6 && ep.dockerId === undefined) await driver.global.releaseAddress(net, 6, ep.ipv6, owner);
    store.endpoints.delete(ep.id);
    return;
  }
  store.tx(() => {
    if (net?.ipv4[0]?.poolId && ep.ipv4) ipam.releaseAddress(net.ipv4[0].poolId, ep.ipv4);
    if (net?.ipv6[0]?.poolId && ep.ipv6) ipam.releaseAddress(net.ipv6[0].poolId, ep.ipv6);
    store.endpoints.delete(ep.id);
  });
}
