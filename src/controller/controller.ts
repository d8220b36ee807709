// The CNM controller: creates and deletes networks, sandboxes and endpoints through the drivers.
// Every operation records its intent in the store before touching the kernel, rolls back every
// completed step on failure, and runs one at a time (a serial queue) so the store and the
// kernel never see two half-done operations interleave. Each object belongs to the front end
// that created it (./ownership.ts): removal asks who is asking.
import { CnmkitError, ConflictError, InvalidArgumentError, NotFoundError } from '../errors.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../core/model.js';
import type { JoinInfo } from '../contract/join.js';
import { newId, resolveRef, shortId, validateObjectName } from '../core/refs.js';
import { bestEffort, SerialQueue, withRollback } from '../core/steps.js';
import type { ControllerDeps, CreateNetworkRequest, CreateSandboxRequest, ConnectRequest, PruneResult } from './types.js';
import { checkAskedAddresses, createDetachedEndpoint, createJoinedEndpoint, driverOf, endpointsWhere, type EndpointFilter, joinDetached, now, replacePorts, teardownEndpoint, type DetachedRequest } from './endpoints.js';
import { checkJoinedEndpoints, releaseOrphanAddresses, restoreKernelState } from './reconcile.js';
import { inSandbox, teardownSandbox } from './sandboxes.js';
import { parsePublish, type PortSpec } from '../portmap/index.js';
import { checkDockerNetwork, checkEndpointRemoval, checkJoinable, checkNetworkRemoval, type Origin } from './ownership.js';
import { recordNetwork, refuseAddressFields, refuseTakenName, releaseOwnedPools } from './networks.js';
import { describeEndpoint } from './owner-names.js';
import { checkNetworks, type NetworkCheck } from './check.js';
import { joinWithGateway, leaveWithGateway, needsGateway } from './gateway.js';
import { mark, traced } from '../core/trace.js';
import { AnswerGate } from '../core/answers.js';
import { clusterOnlyListing, describeGlobal, followCluster, globalWarnings, joinNetwork, networkOrGlobal, networkToRemove, removeFromCluster, removeFromClusterFirst, usedElsewhere } from './global.js';

export type { Origin } from './ownership.js';
export type { ConnectRequest, ControllerDeps, CreateNetworkRequest, CreateSandboxRequest, PruneResult } from './types.js';

export class Controller {
  private readonly queue = new SerialQueue();
  private readonly answers: AnswerGate;
  constructor(private readonly deps: ControllerDeps) {
    this.answers = deps.answers ?? new AnswerGate();
    followCluster(deps, (job) => this.queue.run(job), (net) => this.teardownNetwork(net));
  }

  // ---- lookups -------------------------------------------------------------------------

  listNetworks(): NetworkRecord[] {
    return this.deps.store.networks.list();
  }

  network(ref: string): NetworkRecord {
    return resolveRef('network', ref, this.deps.store.networks);
  }

  /** The stored networks, then the cluster's global networks this host has no record of; warnings: why that list may be incomplete. */
  listNetworksWithGlobal = async (): Promise<{ networks: NetworkRecord[]; warnings: string[] }> => {
    const { networks, unlisted } = await clusterOnlyListing(this.deps);
    return { networks: [...this.listNetworks(), ...networks], warnings: unlisted ? [unlisted] : [] };
  };
  /** A stored network, or a global one of the cluster (not stored). */
  networkOrGlobal = (ref: string): Promise<NetworkRecord> => networkOrGlobal(this.deps, ref);
  /** A global network's driver's description (VNI, hosts with endpoints); undefined for others. */
  describeGlobal = (net: NetworkRecord, warn?: (message: string) => void): Promise<Record<string, unknown> | undefined> => describeGlobal(this.deps, net, warn);
  globalWarnings = (net: NetworkRecord): string[] => globalWarnings(this.deps, net);

  listSandboxes = (): SandboxRecord[] => this.deps.store.sandboxes.list();

  sandbox(ref: string): SandboxRecord {
    return resolveRef('sandbox', ref, this.deps.store.sandboxes);
  }

  endpointsOf(filter: EndpointFilter): EndpointRecord[] {
    return endpointsWhere(this.deps.store, filter);
  }

  // ---- networks ------------------------------------------------------------------------

  createNetwork(req: CreateNetworkRequest): Promise<NetworkRecord> {
    const create = this.prepareNetwork(req);
    return this.queue.run(create);
  }

  /** Checks a create request (no side effects); the returned function creates it (run it in the queue). */
  private prepareNetwork(req: CreateNetworkRequest): () => Promise<NetworkRecord> {
    const name = validateObjectName(req.name, 'name');
    const driver = driverOf(this.deps, req.driver ?? this.deps.defaultDriver ?? 'null');
    const internal = req.internal ?? false;
    const enableIPv6 = req.enableIPv6 ?? false;
    const options = req.options ?? {};
    const config = driver.parse({ name, options, internal, enableIPv6 });
    refuseAddressFields(req, driver);
    return () =>
      withRollback(async (undo) => {
        const store = this.deps.store;
        await refuseTakenName(this.deps, name, driver);
        const net: NetworkRecord = {
          id: req.id ?? newId(), name, driver: driver.name, scope: driver.scope, internal, enableIPv6, options,
          labels: req.labels ?? {}, config, ipv4: [], ipv6: [], state: 'creating', created: now(),
          ...(req.dockerId ? { dockerId: req.dockerId } : {}),
        };
        if (driver.plan) {
          const others = store.networks.listWhere('driver', driver.name).filter((n) => n.id !== net.id);
          net.config = await driver.plan(net, config, { networks: others });
        }
        if (driver.global) {
          // The cluster's record gives the id (the same on every host), the subnets and the config.
          const view = await driver.global.ensure({ name, options, internal, enableIPv6, labels: net.labels }, net.config, req, req.dockerId);
          if (store.networks.get(view.id)) throw new ConflictError(`network ${name} is already here (id ${shortId(view.id)})`);
          // The cluster's options, labels and creation time too: every host shows the same.
          Object.assign(net, { id: req.dockerId ?? view.id, config: view.config, ipv4: view.ipv4, ipv6: view.ipv6, options: view.options, labels: view.labels, created: view.created });
          undo.push('global network', () => driver.deleteNetwork(net, net.config));
        }
        await recordNetwork(this.deps, net, req, driver, undo);
        net.config = (await driver.createNetwork(net, net.config)) ?? net.config;
        undo.push('driver network', () => driver.deleteNetwork(net, net.config));
        net.state = 'ready';
        store.networks.put(net);
        this.deps.logger.info({ network: net.name, id: net.id, driver: driver.name }, 'network created');
        return net;
      });
  }

  /** Removes a network; only its owner may (origin: who asks, the API by default). */
  deleteNetwork(ref: string, origin: Origin = 'api'): Promise<void> {
    return this.queue.run(async () => {
      const store = this.deps.store;
      const found = await networkToRemove(this.deps, ref);
      if (!found) throw new NotFoundError('network', ref); // in neither: not found, as on a plain daemon
      if ('view' in found) return removeFromCluster(this.deps, found.driver, found.view); // only in the cluster: removed there, or refused
      const net = found.local;
      if (this.deps.predefined?.has(net.name))
        throw new CnmkitError('ERR_PREDEFINED', 'forbidden', `${net.name} is a pre-defined network and cannot be removed`);
      checkNetworkRemoval(net, origin);
      const eps = this.endpointsOf({ networkId: net.id });
      if (eps.length > 0) throw new ConflictError(`network ${net.name} has active endpoints: ${eps.map((e) => describeEndpoint(store, e)).join(', ')}`);
      await removeFromClusterFirst(this.deps, net); // a global network: refused, nothing changed, while another host uses it
      store.networks.put({ ...net, state: 'deleting' });
      await this.teardownNetwork(net);
      this.deps.logger.info({ network: net.name, id: net.id }, 'network removed');
    });
  }

  /** Removes a network's kernel objects, addresses and record; used by delete and reconcile. */
  private async teardownNetwork(net: NetworkRecord): Promise<void> {
    const driver = this.deps.drivers.get(net.driver);
    await bestEffort(`network ${net.name}`, [
      ['driver', () => driver?.deleteNetwork(net, net.config)],
      ['ipam', () => (driver?.global ? undefined : releaseOwnedPools(this.deps, net))],
      ['store', () => this.deps.store.networks.delete(net.id)],
    ]);
  }

  /**
   * Removes every network with no endpoint, except the predefined ones and the Docker engine's
   * (the engine still lists them: it removes them itself); a global network goes from the whole
   * cluster, and one that another host has endpoints on is skipped. Says what it removed and skipped.
   */
  async pruneNetworks(): Promise<PruneResult> {
    const result: PruneResult = { removed: [], skipped: [] };
    for (const net of this.listNetworks()) {
      if (this.deps.predefined?.has(net.name) || this.endpointsOf({ networkId: net.id }).length > 0) continue;
      if (net.dockerId !== undefined) {
        result.skipped.push({ name: net.name, reason: `belongs to the Docker engine (remove it with docker network rm ${shortId(net.dockerId)})` });
        continue;
      }
      const refused = await this.deleteNetwork(net.id).then(() => undefined, (err: unknown) => usedElsewhere(net, err));
      if (refused) result.skipped.push({ name: net.name, reason: refused });
      else result.removed.push(net.name);
    }
    return result;
  }

  // ---- sandboxes -----------------------------------------------------------------------

  createSandbox(req: CreateSandboxRequest): Promise<SandboxRecord> {
    const name = validateObjectName(req.name ?? `sb-${newId().slice(0, 12)}`, 'name');
    if (req.host && req.netns) throw new InvalidArgumentError('netns', 'a host sandbox cannot also name a namespace');
    return this.queue.run(() =>
      withRollback(async (undo) => {
        const store = this.deps.store;
        if (store.sandboxes.getByName(name)) throw new ConflictError(`sandbox with name ${name} already exists`);
        const kind = req.host ? 'host' : req.netns ? 'path' : 'named';
        const sb: SandboxRecord = {
          id: newId(), name, kind, netnsPath: '', labels: req.labels ?? {}, state: 'creating', created: now(),
        };
        if (kind === 'path') sb.netnsPath = this.deps.kernel.resolveExisting(req.netns!);
        if (kind === 'named') sb.netnsPath = this.deps.kernel.namedPath(name);
        store.sandboxes.put(sb);
        undo.push('store sandbox', () => store.sandboxes.delete(sb.id));
        if (kind === 'named') {
          await this.deps.kernel.createNamed(name);
          undo.push('namespace', () => this.deps.kernel.deleteNamed(name));
        }
        sb.state = 'ready';
        store.sandboxes.put(sb);
        this.deps.logger.info({ sandbox: sb.name, id: sb.id, kind }, 'sandbox created');
        return sb;
      }),
    );
  }

  deleteSandbox(ref: string): Promise<void> {
    return this.queue.run(async () => {
      let sb: SandboxRecord;
      try {
        sb = this.sandbox(ref);
      } catch (err) {
        if (err instanceof NotFoundError) return;
        throw err;
      }
      this.deps.store.sandboxes.put({ ...sb, state: 'deleting' });
      await this.teardownSandbox(sb);
      this.deps.logger.info({ sandbox: sb.name, id: sb.id }, 'sandbox removed');
    });
  }

  private teardownSandbox(sb: SandboxRecord): Promise<void> {
    return teardownSandbox(this.deps, sb, this.endpointsOf({ sandboxId: sb.id }));
  }

  // ---- endpoints: connect / disconnect ---------------------------------------------------

  connect(netRef: string, sbRef: string, req: ConnectRequest = {}): Promise<EndpointRecord> {
    return this.answers.during(() => traced(() => this.queue.run(() => {
      mark('queued');
      return joinNetwork(this.deps, netRef, async (net) => {
        mark('network');
        const sb = this.sandbox(sbRef);
        checkJoinable(net);
        const joined = this.endpointsOf({ sandboxId: sb.id });
        if (joined.some((e) => e.networkId === net.id)) throw new ConflictError(`sandbox ${sb.name} is already connected to network ${net.name}`);
        const ports = (req.ports ?? []).map((p, i) => parsePublish(p, `ports[${i}]`));
        const driver = driverOf(this.deps, net.driver);
        const gateway = needsGateway(driver, net);
        if (ports.length > 0 && net.internal) throw new InvalidArgumentError('ports', `network ${net.name} is internal: it cannot publish ports`);
        if (ports.length > 0 && !driver.publish && !gateway) throw new InvalidArgumentError('ports', `the ${net.driver} driver of network ${net.name} cannot publish ports`);
        checkAskedAddresses(net, req);
        if (!gateway) return inSandbox(this.deps, sb, () => createJoinedEndpoint(this.deps, net, sb, req, ports, joined));
        return inSandbox(this.deps, sb, () => joinWithGateway(this.deps, (r) => this.prepareNetwork(r)(), { net, sb, req, ports, joined }));
      });
    }), (stages) => this.deps.logger.info({ network: netRef, sandbox: sbRef, connectStages: stages }, 'connect stages')));
  }

  endpoint(id: string): EndpointRecord {
    const ep = this.deps.store.endpoints.get(id);
    if (!ep) throw new NotFoundError('endpoint', id);
    return ep;
  }

  /** A network the Docker engine created, by its exact Docker id: the plugin sees no other. */
  dockerNetwork(id: string): NetworkRecord {
    const net = this.deps.store.networks.get(id);
    if (!net || net.dockerId !== id) throw new NotFoundError('network', id);
    return net;
  }

  /** An endpoint the Docker engine created, by its exact Docker id: the plugin sees no other. */
  dockerEndpoint(id: string): EndpointRecord {
    const ep = this.deps.store.endpoints.get(id);
    if (!ep || ep.dockerId !== id) throw new NotFoundError('endpoint', id);
    return ep;
  }

  /**
   * An endpoint that no sandbox of ours joins (the Docker engine's flow): addresses decided by
   * the caller, kernel objects made by the driver's createEndpoint, moved into place by others.
   */
  createDetachedEndpoint(netRef: string, req: DetachedRequest): Promise<EndpointRecord> {
    return this.queue.run(() => {
      const net = this.network(netRef);
      checkDockerNetwork(net);
      if (this.deps.store.endpoints.get(req.id)) throw new ConflictError(`endpoint ${req.id} already exists`);
      return createDetachedEndpoint(this.deps, net, req);
    });
  }

  /** What a detached endpoint's driver says its interface should look like in the engine's sandbox (Docker's Join). */
  dockerJoin(id: string): Promise<JoinInfo | undefined> {
    return this.queue.run(async () => {
      const ep = this.dockerEndpoint(id);
      return joinDetached(this.deps, this.network(ep.networkId), ep);
    });
  }

  /** The endpoint's host-side interface, when its driver has one (Docker's EndpointOperInfo). */
  hostInterface(ep: EndpointRecord): string | undefined {
    const net = this.deps.store.networks.get(ep.networkId);
    return net ? this.deps.drivers.get(net.driver)?.hostInterface?.(net, net.config, ep) : undefined;
  }

  /**
   * Removes the Docker engine's detached endpoints on networks of driver whose kernel object the
   * driver says is gone (the engine forgot them). The endpoints are listed before the driver looks,
   * so one created in between is never taken for dead. Returns how many.
   */
  async pruneGoneDockerEndpoints(driver: string): Promise<number> {
    const d = this.deps.drivers.get(driver);
    if (!d?.goneEndpoints) return 0;
    let pruned = 0;
    for (const net of this.deps.store.networks.listWhere('driver', driver)) {
      const eps = this.endpointsOf({ networkId: net.id }).filter((e) => e.dockerId !== undefined && e.sandboxId === undefined && e.state === 'ready');
      if (eps.length === 0) continue;
      for (const id of await d.goneEndpoints(net, net.config, eps)) {
        await this.deleteEndpoint(id, 'docker').then(() => pruned++, () => undefined);
      }
    }
    return pruned;
  }

  /**
   * Deletes an endpoint, joined or detached; idempotent (an unknown id is a NotFoundError to the
   * caller). Only its owner may (origin: who asks, the API by default).
   */
  deleteEndpoint(id: string, origin: Origin = 'api'): Promise<void> {
    return this.queue.run(async () => {
      const ep = this.endpoint(id);
      checkEndpointRemoval(ep, this.deps.store.networks.get(ep.networkId), origin);
      const sb = ep.sandboxId ? this.deps.store.sandboxes.get(ep.sandboxId) : undefined;
      await (sb ? leaveWithGateway(this.deps, sb, [ep]) : teardownEndpoint(this.deps, ep, sb));
    });
  }

  /** Publishes ports of an endpoint, replacing what it published before. */
  publishPorts(id: string, ports: PortSpec[]): Promise<PortSpec[]> {
    return this.queue.run(async () => {
      const ep = this.endpoint(id);
      return replacePorts(this.deps, this.network(ep.networkId), ep, ports);
    });
  }

  disconnect(netRef: string, sbRef: string): Promise<void> {
    return this.queue.run(async () => {
      const net = this.network(netRef);
      const sb = this.sandbox(sbRef);
      const eps = this.endpointsOf({ networkId: net.id, sandboxId: sb.id });
      if (eps.length === 0) throw new NotFoundError('endpoint', `${net.name}/${sb.name}`);
      await inSandbox(this.deps, sb, async () => {
        await leaveWithGateway(this.deps, sb, eps);
      });
    });
  }

  /** Every id that may own firewall rules: networks (their rules) and endpoints (their ports). */
  firewallOwners(): Set<string> {
    const { store } = this.deps;
    return new Set([...store.networks.list().map((n) => n.id), ...store.endpoints.list().map((e) => e.id)]);
  }

  /** Compares the kernel with the store for one network (ref, found as network inspect does: a global one too) or all; changes nothing unless fix (then the drivers repair what differs). */
  check(ref?: string, fix = false): Promise<NetworkCheck[]> {
    return this.queue.run(async () => checkNetworks(this.deps, ref === undefined ? this.listNetworks() : [await networkOrGlobal(this.deps, ref)], fix));
  }

  // ---- reconcile -----------------------------------------------------------------------

  /**
   * Start-up reconcile: finishes or undoes what a crash interrupted ('creating' and 'deleting'
   * records), drops sandboxes whose namespace is gone, releases addresses nothing owns, lets
   * every driver recreate what is missing for ready networks, and makes joined endpoints whose
   * interfaces vanished again (or removes them). Returns what it did, for the log.
   */
  reconcile(): Promise<string[]> {
    return this.queue.run(async () => {
      const done: string[] = [];
      const store = this.deps.store;
      // Each namespace looked at once (an endpoint's, then its sandbox's).
      const seen = new Map<string, boolean>();
      const exists = (nsPath: string): boolean => seen.get(nsPath) ?? seen.set(nsPath, this.deps.kernel.exists(nsPath)).get(nsPath)!;
      for (const ep of store.endpoints.list()) {
        const sb = ep.sandboxId ? store.sandboxes.get(ep.sandboxId) : undefined;
        const gone = sb && sb.kind !== 'host' && !exists(sb.netnsPath);
        const detached = ep.sandboxId === undefined;
        if (ep.state !== 'ready' || (!detached && (!sb || sb.state !== 'ready' || gone))) {
          await teardownEndpoint(this.deps, ep, sb).catch((err) => this.deps.logger.warn({ err }, 'reconcile endpoint'));
          done.push(`endpoint ${ep.name}: removed (${ep.state !== 'ready' ? `interrupted while ${ep.state}` : 'sandbox gone'})`);
        }
      }
      for (const sb of store.sandboxes.list()) {
        const gone = sb.kind !== 'host' && !exists(sb.netnsPath);
        if (sb.state !== 'ready' || gone) {
          await this.teardownSandbox(sb).catch((err) => this.deps.logger.warn({ err }, 'reconcile sandbox'));
          done.push(`sandbox ${sb.name}: removed (${sb.state !== 'ready' ? `interrupted while ${sb.state}` : 'namespace gone'})`);
        }
      }
      for (const net of store.networks.list()) {
        if (net.state === 'ready') continue;
        await this.teardownNetwork(net).catch((err) => this.deps.logger.warn({ err }, 'reconcile network'));
        done.push(`network ${net.name}: removed (interrupted while ${net.state})`);
      }
      done.push(...releaseOrphanAddresses(this.deps));
      await restoreKernelState(this.deps, done, true);
      await checkJoinedEndpoints(this.deps, done);
      return done;
    });
  }

  /**
   * Re-applies what the store says to the kernel: each network's driver restores its devices and
   * rules, and published ports are published again. Used at start and by `firewall reload`.
   */
  reapply(): Promise<string[]> {
    return this.queue.run(async () => {
      const done: string[] = [];
      await restoreKernelState(this.deps, done);
      return done;
    });
  }
}
