// Global networks in the controller (cluster mode): a host keeps a local record of each global
// network it uses, with the cluster's id; a host that did not create one adopts it at its first
// connect, and a record whose cluster network is gone (or was made again under another id) is
// removed with its devices once no endpoint holds it: as soon as the watch of network records
// says so (followCluster), else at the next connect. Listings show the cluster's networks this host has no
// record of, and global networks carry what their driver describes (VNI, hosts with endpoints).
// A reference finds those networks too, by name, full id or unique id prefix (findNetwork); a
// record takes the cluster's labels and creation time, so every host shows the same; `network rm`
// of a global network removes it from the cluster, for every host, or is refused naming the hosts
// that have endpoints on it.
import type { ControllerDeps } from './types.js';
import type { Driver, GlobalNetworkView, GlobalScope } from '../contract/driver.js';
import type { NetworkRecord } from '../core/model.js';
import { ClusterUnavailableError, ConflictError, NotFoundError } from '../errors.js';
import { bestEffort } from '../core/steps.js';
import { shortId } from '../core/refs.js';

export type GlobalDriver = Driver & { global: GlobalScope };

/** Why the store did not answer, as a ClusterUnavailableError says it (the store and the transport's reason), else the error's message. */
function unavailableReason(err: unknown): string {
  return err instanceof ClusterUnavailableError ? err.reason : (err as Error).message;
}

function globalDrivers(deps: ControllerDeps): GlobalDriver[] {
  return deps.drivers.names().map((n) => deps.drivers.get(n)!).filter((d): d is GlobalDriver => d.global !== undefined);
}

export function recordOf(driver: string, view: GlobalNetworkView): NetworkRecord {
  return {
    id: view.id, name: view.name, driver, scope: 'global', internal: view.internal, enableIPv6: view.enableIPv6, options: view.options,
    labels: { ...view.labels }, config: view.config, ipv4: view.ipv4, ipv6: view.ipv6, state: 'ready', created: view.created,
  };
}

/**
 * The cluster's network named name (of any global driver), for a local network about to take the
 * name: Docker refuses a name that is taken, and a local network would hide the overlay on this
 * host. From the watched copy, read again from the store when the copy has none (it lags: an
 * overlay made a moment ago on another host); when the store does not answer, none is assumed (logged).
 */
export async function globalNamed(deps: ControllerDeps, name: string): Promise<{ driver: GlobalDriver; view: GlobalNetworkView } | undefined> {
  try {
    return await clusterNamed(deps, name, (g, n) => lookupChecked(g, n, (v) => v !== undefined));
  } catch (err) {
    deps.logger.warn({ err: (err as Error).message, network: name }, 'network create: the cluster store did not answer; its names are not checked');
    return undefined;
  }
}

/** A network found by reference: this host's record, or the cluster's network (of driver) that this host has no record of. */
export type FoundNetwork = { local: NetworkRecord } | { driver: GlobalDriver; view: GlobalNetworkView };

type ByName = (g: GlobalScope, name: string) => Promise<GlobalNetworkView | undefined>;

/** The cluster's network of that name, asked of each global driver (byName: from the watched copy by default). */
async function clusterNamed(deps: ControllerDeps, name: string, byName: ByName = (g, n) => g.lookup(n)): Promise<{ driver: GlobalDriver; view: GlobalNetworkView } | undefined> {
  for (const driver of globalDrivers(deps)) {
    const view = await byName(driver.global, name);
    if (view) return { driver, view };
  }
  return undefined;
}

/**
 * A network by reference among those `network ls` shows (this host's records, then the cluster's
 * networks it has no record of), in Docker's order: an exact name or id here, a name in the
 * cluster (byName: from the watched copy by default), then a full id or unique id prefix among
 * both; an ambiguous prefix is refused naming the candidates. Undefined: none. An id prefix costs
 * a read of the cluster's networks; when the store does not answer, a prefix that matches one
 * record here still finds it.
 */
export async function findNetwork(deps: ControllerDeps, ref: string, byName: ByName = (g, name) => g.lookup(name)): Promise<FoundNetwork | undefined> {
  const { networks } = deps.store;
  const exact = networks.getByName(ref) ?? networks.get(ref);
  if (exact) return { local: exact };
  const hex = /^[0-9a-f]+$/.test(ref);
  const here = hex ? networks.findByIdPrefix(ref) : [];
  let there: { driver: GlobalDriver; view: GlobalNetworkView }[] = [];
  try {
    const named = await clusterNamed(deps, ref, byName);
    if (named) return named;
    if (hex) {
      for (const driver of globalDrivers(deps)) {
        const views = await driver.global.list();
        there.push(...views.filter((v) => v.id.startsWith(ref) && !networks.getByName(v.name)).map((view) => ({ driver, view })));
      }
    }
  } catch (err) {
    if (here.length !== 1) throw err;
    deps.logger.warn({ err: (err as Error).message, network: ref }, 'network found by id prefix here only: the cluster store did not answer');
    there = [];
  }
  if (here.length + there.length === 1) return here[0] ? { local: here[0] } : there[0]!;
  if (here.length + there.length === 0) return undefined;
  const candidates = [
    ...(here.length > 1 ? networks.list().filter((n) => n.id.startsWith(ref)) : here).map((n) => `${n.name} (${shortId(n.id)})`),
    ...there.map(({ view }) => `${view.name} (${shortId(view.id)}, in the cluster)`),
  ];
  throw new ConflictError(`network ${JSON.stringify(ref)} is ambiguous: more than one id starts with it: ${candidates.join(', ')}`, { field: 'network' });
}

/**
 * The cluster's network of that name as the watched copy has it when good(view) holds; else as the
 * store has it now. The copy lags etcd: a network made a moment ago (here or on another host) may
 * not be in it yet, and a disagreement is read again before anything is refused or dropped.
 */
async function lookupChecked(g: GlobalScope, name: string, good: (view: GlobalNetworkView | undefined) => boolean): Promise<GlobalNetworkView | undefined> {
  const cached = await g.lookup(name);
  return good(cached) ? cached : g.lookup(name, { fresh: true });
}

/**
 * The network to connect to: a local one as stored; a global one checked against the cluster
 * (adopted when this host has no record yet; not read again while this host has endpoints on it).
 * adopted: this call recorded it here (joinNetwork drops the record again when the connect fails).
 * Callers serialise through the controller's queue.
 */
export async function networkToJoin(deps: ControllerDeps, ref: string): Promise<{ net: NetworkRecord; adopted: boolean }> {
  const found = await findNetwork(deps, ref, (g, name) => lookupChecked(g, name, (v) => v !== undefined));
  if (!found) throw new NotFoundError('network', ref);
  const { store } = deps;
  if ('view' in found) {
    const adopted = recordOf(found.driver.name, found.view);
    store.networks.put(adopted);
    deps.logger.info({ network: adopted.name, id: adopted.id, driver: found.driver.name }, 'global network adopted from the cluster');
    return { net: adopted, adopted: true };
  }
  const { local } = found;
  // The Docker engine's record of a global network keeps the engine's id: it is never the cluster's.
  if (local.scope !== 'global' || local.dockerId !== undefined) return { net: local, adopted: false };
  // Endpoints here hold the record whatever the cluster says: no etcd read (the address claim that follows checks the pool).
  if (store.endpoints.anyWhere('network_id', local.id)) return { net: local, adopted: false };
  const driver = deps.drivers.get(local.driver);
  const view = driver?.global ? await lookupChecked(driver.global, local.name, (v) => v?.id === local.id) : undefined;
  if (view?.id === local.id) return { net: local, adopted: false };
  await bestEffort(`network ${local.name}`, [['driver', () => driver?.deleteNetwork(local, local.config)], ['store', () => store.networks.delete(local.id)]])
    .catch((err: unknown) => deps.logger.warn({ err, network: local.name }, 'the devices of a global network the cluster no longer has were not all removed'));
  deps.logger.info({ network: local.name, id: local.id }, 'dropped the record of a global network the cluster no longer has');
  if (!view) throw new NotFoundError('network', ref);
  const adopted = recordOf(local.driver, view);
  store.networks.put(adopted);
  return { net: adopted, adopted: true };
}

/**
 * connect on the network to join (networkToJoin). When it fails and the network was adopted for
 * it, the record goes again (unless an endpoint holds it), so that the host does not keep a network
 * it never had: its devices and its place in the cluster went with the driver's own undo. A host
 * that had the record before keeps it. A connect that found something gone (the network's pool, a
 * `network rm` on another host landing while it ran) says `network "REF" not found` when the
 * cluster no longer has the network, as a connect after the rm does.
 */
export async function joinNetwork<T>(deps: ControllerDeps, ref: string, connect: (net: NetworkRecord) => Promise<T>): Promise<T> {
  const { net, adopted } = await networkToJoin(deps, ref);
  try {
    return await connect(net);
  } catch (err) {
    if (adopted && !deps.store.endpoints.anyWhere('network_id', net.id)) {
      deps.store.networks.delete(net.id);
      deps.logger.info({ network: net.name, id: net.id }, 'global network not adopted: the connect that adopted it failed');
    }
    throw await goneMeanwhile(deps, net, ref, err);
  }
}

/** err, or a NotFoundError of the network when err is a NotFoundError and the cluster (read afresh) no longer has net under its id. */
async function goneMeanwhile(deps: ControllerDeps, net: NetworkRecord, ref: string, err: unknown): Promise<unknown> {
  const global = deps.drivers.get(net.driver)?.global;
  if (!(err instanceof NotFoundError) || net.scope !== 'global' || net.dockerId !== undefined || !global) return err;
  const view = await global.lookup(net.name, { fresh: true }).then((v) => v ?? null, () => undefined);
  return view === null || (view !== undefined && view.id !== net.id) ? new NotFoundError('network', ref, { cause: err }) : err;
}

/**
 * Makes this host follow the cluster: a global network of cnmkit's (not the Docker engine's, which
 * the engine removes) whose record left the cluster store, or was made again under another id, is
 * removed here (its devices and record, by teardown) when no endpoint here holds it; one that does
 * is kept, with a warning. Each is read from the store again first (the watch may lag a create
 * made here); when the store does not answer it is kept, and the next connect drops it.
 * run: the controller's queue.
 */
export function followCluster(deps: ControllerDeps, run: (job: () => Promise<void>) => Promise<void>, teardown: (net: NetworkRecord) => Promise<void>): void {
  for (const driver of globalDrivers(deps)) {
    driver.global.follow((names) => {
      run(() => dropGone(deps, driver, names, teardown)).catch((err: unknown) => deps.logger.warn({ err }, 'following the cluster\'s networks failed'));
    });
  }
}

async function dropGone(deps: ControllerDeps, driver: GlobalDriver, names: string[] | 'all', teardown: (net: NetworkRecord) => Promise<void>): Promise<void> {
  const { store, logger } = deps;
  const held = store.networks.listWhere('driver', driver.name)
    .filter((n) => n.scope === 'global' && n.dockerId === undefined && n.state === 'ready' && (names === 'all' || names.includes(n.name)));
  for (const net of held) {
    let view: GlobalNetworkView | undefined;
    try {
      view = await driver.global.lookup(net.name, { fresh: true });
    } catch (err) {
      logger.warn({ err: (err as Error).message, network: net.name }, 'global network not checked against the cluster: the store did not answer');
      continue;
    }
    if (view?.id === net.id) continue;
    const eps = store.endpoints.listWhere('network_id', net.id);
    if (eps.length > 0) {
      logger.warn({ network: net.name, endpoints: eps.length }, 'global network removed from the cluster while this host has endpoints on it: they are kept until disconnected');
      continue;
    }
    await teardown(net);
    logger.info({ network: net.name, id: net.id }, 'global network removed here: the cluster no longer has it');
  }
}

/**
 * The cluster's global networks this host has no record of (not stored); unlisted says why some may be missing
 * (a driver's list failed: the cluster store did not answer), for the caller to tell its user.
 */
export async function clusterOnlyListing(deps: ControllerDeps): Promise<{ networks: NetworkRecord[]; unlisted?: string }> {
  const networks: NetworkRecord[] = [];
  let unlisted: string | undefined;
  for (const driver of globalDrivers(deps)) {
    let views: GlobalNetworkView[];
    try {
      views = await driver.global.list();
    } catch (err) {
      deps.logger.warn({ err: (err as Error).message }, 'global networks not listed: the cluster store did not answer');
      unlisted = `cluster store unavailable (${unavailableReason(err)}): ${driver.name} networks of other hosts are not listed, and global networks' VNI and hosts are not shown`;
      continue;
    }
    for (const v of views) if (!deps.store.networks.getByName(v.name)) networks.push(recordOf(driver.name, v));
  }
  return { networks, ...(unlisted ? { unlisted } : {}) };
}

/** The same, the networks alone (a list that may be incomplete is logged only). */
export async function clusterOnlyNetworks(deps: ControllerDeps): Promise<NetworkRecord[]> {
  return (await clusterOnlyListing(deps)).networks;
}

/**
 * A network by reference (name, id or unique id prefix): stored here, or the cluster's (not stored),
 * read from the store now, not the watched copy: that lags, and would answer "not found" for a
 * network made a moment ago on another host, or show one this host has just removed from the cluster.
 */
export async function networkOrGlobal(deps: ControllerDeps, ref: string): Promise<NetworkRecord> {
  const found = await findNetwork(deps, ref, (g, name) => g.lookup(name, { fresh: true }));
  if (!found) throw new NotFoundError('network', ref);
  return 'local' in found ? found.local : recordOf(found.driver.name, found.view);
}

/**
 * `network rm` of a global network, from the cluster: removed there (every host then drops its
 * record) when no host has endpoints on it, else refused naming them. Only the network of that id:
 * one made again under the same name is not this host's to remove (then nothing happens there).
 */
export async function removeFromCluster(deps: ControllerDeps, driver: GlobalDriver, net: { id: string; name: string }): Promise<void> {
  if (await driver.global.remove(net.name, net.id)) deps.logger.info({ network: net.name, id: net.id }, 'global network removed from the cluster');
}

/** `network rm`'s lookup: the cluster read now, not the watched copy, so that what is removed is the network of the id found. */
export function networkToRemove(deps: ControllerDeps, ref: string): Promise<FoundNetwork | undefined> {
  return findNetwork(deps, ref, (g, name) => g.lookup(name, { fresh: true }));
}

/**
 * Before this host's record of a global network of cnmkit's is removed: the network goes from the
 * cluster, for every host; refused, with nothing changed here, while another host has endpoints on
 * it. The Docker engine's record is only this host's (the engine removes it here; the cluster's
 * network goes with the last one), and a local network has nothing in the cluster.
 */
export async function removeFromClusterFirst(deps: ControllerDeps, net: NetworkRecord): Promise<void> {
  const driver = deps.drivers.get(net.driver);
  if (net.scope === 'global' && net.dockerId === undefined && driver?.global) await removeFromCluster(deps, driver as GlobalDriver, net);
}

/** `network prune`: the reason to skip a global network whose removal was refused (another host uses it); any other failure is thrown. */
export function usedElsewhere(net: NetworkRecord, err: unknown): string {
  if (net.scope === 'global' && err instanceof ConflictError) return err.message;
  throw err;
}

/** What the driver of a global network warns of on this host (read here, no store call); none for local networks. */
export function globalWarnings(deps: ControllerDeps, net: NetworkRecord): string[] {
  return net.scope === 'global' ? (deps.drivers.get(net.driver)?.global?.warnings?.(net) ?? []) : [];
}

/**
 * What the driver of a global network describes (VNI, hosts); undefined for local networks or when
 * the store does not answer (then said to warn, for the caller's user). With conflicts (also while
 * the store does not answer): this host's endpoints in conflict in the cluster, by id, with why.
 */
export async function describeGlobal(deps: ControllerDeps, net: NetworkRecord, warn?: (message: string) => void): Promise<Record<string, unknown> | undefined> {
  const driver = deps.drivers.get(net.driver);
  if (net.scope !== 'global' || !driver?.global) return undefined;
  for (const w of globalWarnings(deps, net)) warn?.(w);
  const found = driver.global.conflicts?.(net);
  const conflicts = found && found.size > 0 ? { conflicts: Object.fromEntries(found) } : undefined;
  try {
    return { ...(await driver.global.describe(net)), ...conflicts };
  } catch (err) {
    deps.logger.warn({ err: (err as Error).message, network: net.name }, 'global network not described: the cluster store did not answer');
    warn?.(`cluster store unavailable (${unavailableReason(err)}): the VNI and hosts of network ${net.name} are not shown`);
    return conflicts;
  }
}
