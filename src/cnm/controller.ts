// The CNM controller: creates and deletes networks, sandboxes and endpoints through the drivers.
// Every operation records its intent in the store before touching the kernel, rolls back every
// completed step on failure, and runs one at a time (a serial queue) so the store and the
// kernel never see two half-done operations interleave.
import type { Logger } from 'pino';
import { CnmkitError, ConflictError, InvalidArgumentError, NotFoundError } from '../errors.js';
import type { Store } from '../store/index.js';
import type { Ipam } from '../ipam/index.js';
import type { Driver, DriverRegistry } from './driver.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord, SubnetRecord } from './model.js';
import { newId, resolveRef, validateObjectName } from './refs.js';
import { bestEffort, SerialQueue, withRollback } from './steps.js';
import type { SandboxKernel } from './sandbox-kernel.js';
import { parsePublish, type PortSpec } from '../portmap/index.js';

export interface CreateNetworkRequest {
  name: string;
  driver?: string;
  subnet?: string;
  ipRange?: string;
  gateway?: string;
  auxAddresses?: Record<string, string>;
  subnetV6?: string;
  gatewayV6?: string;
  enableIPv6?: boolean;
  internal?: boolean;
  options?: Record<string, string>;
  labels?: Record<string, string>;
  /** The id to use (Docker's NetworkID); a new one when absent. */
  id?: string;
  dockerId?: string;
  /** Subnets assigned elsewhere (the Docker engine's IPAM): used as given, never allocated or released here. */
  assigned?: { ipv4: SubnetRecord[]; ipv6: SubnetRecord[] };
}

export interface CreateSandboxRequest {
  name?: string;
  /** An existing namespace: a path or a pid. */
  netns?: string;
  /** The host's own namespace. */
  host?: boolean;
  labels?: Record<string, string>;
}

export interface ConnectRequest {
  ip?: string;
  ipv6?: string;
  /** `-p` specs, [HOST_IP:][HOST_PORT[-END]:]PORT[-END][/PROTO]. */
  ports?: string[];
}

export interface ControllerDeps {
  store: Store;
  ipam: Ipam;
  drivers: DriverRegistry;
  kernel: SandboxKernel;
  logger: Logger;
  defaultDriver?: string;
  /** Networks that exist by default (none, host, bridge): never removed. */
  predefined?: Set<string>;
}

const now = (): string => new Date().toISOString();

/** The object without its undefined fields (exactOptionalPropertyTypes-friendly spreading). */
function definedOnly<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

export class Controller {
  private readonly queue = new SerialQueue();
  constructor(private readonly deps: ControllerDeps) {}

  // ---- lookups -------------------------------------------------------------------------

  listNetworks(): NetworkRecord[] {
    return this.deps.store.networks.list();
  }

  network(ref: string): NetworkRecord {
    return resolveRef('network', ref, this.deps.store.networks.list());
  }

  listSandboxes(): SandboxRecord[] {
    return this.deps.store.sandboxes.list();
  }

  sandbox(ref: string): SandboxRecord {
    return resolveRef('sandbox', ref, this.deps.store.sandboxes.list());
  }

  endpointsOf(filter: { networkId?: string; sandboxId?: string }): EndpointRecord[] {
    return this.deps.store.endpoints
      .list()
      .filter((e) => (filter.networkId === undefined || e.networkId === filter.networkId) && (filter.sandboxId === undefined || e.sandboxId === filter.sandboxId));
  }

  private driverOf(name: string, field = 'driver'): Driver {
    const d = this.deps.drivers.get(name);
    if (!d) throw new InvalidArgumentError(field, `unknown driver ${JSON.stringify(name)} (have: ${this.deps.drivers.names().join(', ')})`);
    return d;
  }

  // ---- networks ------------------------------------------------------------------------

  createNetwork(req: CreateNetworkRequest): Promise<NetworkRecord> {
    const name = validateObjectName(req.name, 'name');
    const driver = this.driverOf(req.driver ?? this.deps.defaultDriver ?? 'null');
    const internal = req.internal ?? false;
    const enableIPv6 = req.enableIPv6 ?? false;
    const options = req.options ?? {};
    const config = driver.parse({ name, options, internal, enableIPv6 });
    if (!driver.usesIpam && (req.subnet || req.gateway || req.ipRange || req.subnetV6))
      throw new InvalidArgumentError('subnet', `the ${driver.name} driver has no addresses`);
    return this.queue.run(() =>
      withRollback(async (undo) => {
        const store = this.deps.store;
        if (store.networks.getByName(name)) throw new ConflictError(`network with name ${name} already exists`);
        const net: NetworkRecord = {
          id: req.id ?? newId(), name, driver: driver.name, scope: driver.scope, internal, enableIPv6, options,
          labels: req.labels ?? {}, config, ipv4: [], ipv6: [], state: 'creating', created: now(),
          ...(req.dockerId ? { dockerId: req.dockerId } : {}),
        };
        store.networks.put(net);
        undo.push('store network', () => store.networks.delete(net.id));
        if (req.assigned) {
          net.ipv4 = req.assigned.ipv4;
          net.ipv6 = req.assigned.ipv6;
          store.networks.put(net);
        } else if (driver.usesIpam) {
          const owner = `network:${net.id}`;
          const subnets = [{ v6: false, subnet: req.subnet, ipRange: req.ipRange, gateway: req.gateway, auxAddresses: req.auxAddresses }];
          if (enableIPv6) subnets.push({ v6: true, subnet: req.subnetV6, ipRange: undefined, gateway: req.gatewayV6, auxAddresses: undefined });
          for (const spec of subnets) {
            const rec = await this.deps.ipam.allocateSubnet({ ...definedOnly(spec), owner });
            undo.push('ipam pool', () => this.deps.ipam.releasePool(rec.poolId));
            (spec.v6 ? net.ipv6 : net.ipv4).push(rec);
          }
          store.networks.put(net);
        }
        net.config = (await driver.createNetwork(net, config)) ?? config;
        undo.push('driver network', () => driver.deleteNetwork(net, net.config));
        net.state = 'ready';
        store.networks.put(net);
        this.deps.logger.info({ network: net.name, id: net.id, driver: driver.name }, 'network created');
        return net;
      }),
    );
  }

  deleteNetwork(ref: string): Promise<void> {
    return this.queue.run(async () => {
      const store = this.deps.store;
      let net: NetworkRecord;
      try {
        net = this.network(ref);
      } catch (err) {
        if (err instanceof NotFoundError) return;
        throw err;
      }
      if (this.deps.predefined?.has(net.name))
        throw new CnmkitError('ERR_PREDEFINED', 'forbidden', `${net.name} is a pre-defined network and cannot be removed`);
      const eps = this.endpointsOf({ networkId: net.id });
      if (eps.length > 0) throw new ConflictError(`network ${net.name} has active endpoints (${eps.map((e) => e.name).join(', ')})`);
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
      ['ipam', () => this.releaseOwnedPools(net)],
      ['store', () => this.deps.store.networks.delete(net.id)],
    ]);
  }

  /** Releases the network's pools, found by the subnets it records and by its gateways' owner. */
  private releaseOwnedPools(net: NetworkRecord): void {
    const ipam = this.deps.ipam;
    const owner = `network:${net.id}`;
    const ids = new Set([...net.ipv4, ...net.ipv6].map((s) => s.poolId).filter((id) => id !== ''));
    for (const pool of ipam.listPools()) {
      if (ipam.listAddresses(pool.poolId).some((a) => a.kind === 'gateway' && a.owner === owner)) ids.add(pool.poolId);
    }
    for (const id of ids) ipam.releasePool(id);
  }

  /** Pools whose gateway belongs to no stored network, and endpoint addresses of no stored endpoint. */
  private releaseOrphanAddresses(): string[] {
    const { ipam, store } = this.deps;
    const done: string[] = [];
    for (const pool of ipam.listPools()) {
      for (const a of ipam.listAddresses(pool.poolId)) {
        const [kind, id] = a.owner.split(':');
        if (kind === 'network' && a.kind === 'gateway' && id && !store.networks.get(id)) {
          ipam.releasePool(pool.poolId);
          done.push(`pool ${pool.pool}: released (its network is gone)`);
          break;
        }
        if (kind === 'endpoint' && id && !store.endpoints.get(id)) {
          ipam.releaseAddress(pool.poolId, a.address);
          done.push(`address ${a.address}: released (its endpoint is gone)`);
        }
      }
    }
    return done;
  }

  /** Removes every network with no endpoint, except the predefined ones; returns their names. */
  async pruneNetworks(): Promise<string[]> {
    const removed: string[] = [];
    for (const net of this.listNetworks()) {
      if (this.deps.predefined?.has(net.name) || this.endpointsOf({ networkId: net.id }).length > 0) continue;
      await this.deleteNetwork(net.id);
      removed.push(net.name);
    }
    return removed;
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

  private async teardownSandbox(sb: SandboxRecord): Promise<void> {
    const eps = this.endpointsOf({ sandboxId: sb.id });
    await bestEffort(`sandbox ${sb.name}`, [
      ...eps.map((ep): [string, () => Promise<void>] => [`endpoint ${ep.name}`, () => this.teardownEndpoint(ep, sb)]),
      ['namespace', () => (sb.kind === 'named' ? this.deps.kernel.deleteNamed(sb.name) : undefined)],
      ['store', () => this.deps.store.sandboxes.delete(sb.id)],
    ]);
  }

  // ---- endpoints: connect / disconnect ---------------------------------------------------

  connect(netRef: string, sbRef: string, req: ConnectRequest = {}): Promise<EndpointRecord> {
    return this.queue.run(async () => {
      const net = this.network(netRef);
      const sb = this.sandbox(sbRef);
      if (this.endpointsOf({ networkId: net.id, sandboxId: sb.id }).length > 0)
        throw new ConflictError(`sandbox ${sb.name} is already connected to network ${net.name}`);
      const ports = (req.ports ?? []).map((p, i) => parsePublish(p, `ports[${i}]`));
      if (ports.length > 0 && !this.driverOf(net.driver).publish)
        throw new InvalidArgumentError('ports', `the ${net.driver} driver of network ${net.name} cannot publish ports`);
      if (req.ip && net.ipv4.length === 0) throw new InvalidArgumentError('ip', `network ${net.name} has no IPv4 subnet`);
      return this.createEndpointIn(net, sb, req, ports);
    });
  }

  private createEndpointIn(net: NetworkRecord, sb: SandboxRecord, req: ConnectRequest, ports: PortSpec[]): Promise<EndpointRecord> {
    const driver = this.driverOf(net.driver);
    const store = this.deps.store;
    const ipam = this.deps.ipam;
    return withRollback(async (undo) => {
      const id = newId();
      const ep: EndpointRecord = {
        id, networkId: net.id, sandboxId: sb.id, name: `${sb.name}-${net.name}`.slice(0, 64), ports: [],
        driverData: {}, state: 'creating', created: now(),
      };
      const s4 = net.ipv4[0];
      const s6 = net.ipv6[0];
      // The addresses and the record in one transaction: a crash leaves both or neither.
      store.tx(() => {
        if (s4) ep.ipv4 = ipam.requestAddress(s4.poolId, { address: req.ip ?? '', kind: 'endpoint', owner: `endpoint:${id}` });
        if (s6) ep.ipv6 = ipam.requestAddress(s6.poolId, { address: req.ipv6 ?? '', kind: 'endpoint', owner: `endpoint:${id}` });
        store.endpoints.put(ep);
      });
      undo.push('addresses and record', () =>
        store.tx(() => {
          if (s4 && ep.ipv4) ipam.releaseAddress(s4.poolId, ep.ipv4);
          if (s6 && ep.ipv6) ipam.releaseAddress(s6.poolId, ep.ipv6);
          store.endpoints.delete(ep.id);
        }),
      );
      ep.driverData = await driver.createEndpoint(net, net.config, ep);
      store.endpoints.put(ep);
      undo.push('driver endpoint', () => driver.deleteEndpoint(net, net.config, ep));
      const joined = await driver.join(net, net.config, ep, sb);
      undo.push('driver join', () => driver.leave(net, net.config, ep, sb));
      if (joined.ifname) ep.ifname = joined.ifname;
      if (joined.macAddress) ep.macAddress = joined.macAddress;
      if (joined.driverData !== undefined) ep.driverData = joined.driverData;
      if (ports.length > 0 && driver.publish) {
        store.endpoints.put(ep);
        undo.push('ports', () => driver.unpublish?.(net, net.config, ep));
        ep.ports = await driver.publish(net, net.config, ep, ports);
      }
      ep.state = 'ready';
      store.endpoints.put(ep);
      this.deps.logger.info({ network: net.name, sandbox: sb.name, endpoint: ep.id, ipv4: ep.ipv4 }, 'endpoint joined');
      return ep;
    });
  }

  endpoint(id: string): EndpointRecord {
    const ep = this.deps.store.endpoints.get(id);
    if (!ep) throw new NotFoundError('endpoint', id);
    return ep;
  }

  /**
   * An endpoint that no sandbox of ours joins (the Docker engine's flow): addresses decided by
   * the caller, kernel objects made by the driver's createEndpoint, moved into place by others.
   */
  createDetachedEndpoint(netRef: string, req: { id: string; dockerId?: string; ipv4?: string; ipv6?: string; macAddress?: string }): Promise<EndpointRecord> {
    return this.queue.run(() => {
      const net = this.network(netRef);
      const driver = this.driverOf(net.driver);
      const store = this.deps.store;
      if (store.endpoints.get(req.id)) throw new ConflictError(`endpoint ${req.id} already exists`);
      return withRollback(async (undo) => {
        const ep: EndpointRecord = {
          id: req.id, networkId: net.id, name: `ep-${req.id.slice(0, 12)}`, ports: [], driverData: {}, state: 'creating', created: now(),
          ...definedOnly({ dockerId: req.dockerId, ipv4: req.ipv4, ipv6: req.ipv6, macAddress: req.macAddress }),
        };
        store.endpoints.put(ep);
        undo.push('store endpoint', () => store.endpoints.delete(ep.id));
        ep.driverData = await driver.createEndpoint(net, net.config, ep);
        const data = ep.driverData as { mac?: string } | undefined;
        if (!ep.macAddress && data?.mac) ep.macAddress = data.mac;
        ep.state = 'ready';
        store.endpoints.put(ep);
        return ep;
      });
    });
  }

  /** Deletes an endpoint, joined or detached; idempotent (an unknown id is a NotFoundError to the caller). */
  deleteEndpoint(id: string): Promise<void> {
    return this.queue.run(async () => {
      const ep = this.endpoint(id);
      const sb = ep.sandboxId ? this.deps.store.sandboxes.get(ep.sandboxId) : undefined;
      await this.teardownEndpoint(ep, sb);
    });
  }

  /** Publishes ports of an endpoint, replacing what it published before. */
  publishPorts(id: string, ports: PortSpec[]): Promise<PortSpec[]> {
    return this.queue.run(async () => {
      const ep = this.endpoint(id);
      const net = this.network(ep.networkId);
      const driver = this.driverOf(net.driver);
      if (!driver.publish) throw new InvalidArgumentError('ports', `the ${net.driver} driver of network ${net.name} cannot publish ports`);
      await driver.unpublish?.(net, net.config, ep);
      ep.ports = [];
      this.deps.store.endpoints.put(ep);
      if (ports.length === 0) return [];
      ep.ports = await driver.publish(net, net.config, ep, ports);
      this.deps.store.endpoints.put(ep);
      return ep.ports as PortSpec[];
    });
  }

  disconnect(netRef: string, sbRef: string): Promise<void> {
    return this.queue.run(async () => {
      const net = this.network(netRef);
      const sb = this.sandbox(sbRef);
      const eps = this.endpointsOf({ networkId: net.id, sandboxId: sb.id });
      if (eps.length === 0) throw new NotFoundError('endpoint', `${net.name}/${sb.name}`);
      for (const ep of eps) await this.teardownEndpoint(ep, sb);
    });
  }

  /** Leave, delete the endpoint, release its addresses and its record: idempotent, best-effort. */
  private async teardownEndpoint(ep: EndpointRecord, sb: SandboxRecord | undefined): Promise<void> {
    const store = this.deps.store;
    const net = store.networks.get(ep.networkId);
    const driver = net ? this.deps.drivers.get(net.driver) : undefined;
    store.endpoints.put({ ...ep, state: 'deleting' });
    await bestEffort(`endpoint ${ep.name}`, [
      ['unpublish', () => (net && driver?.unpublish ? driver.unpublish(net, net.config, ep) : undefined)],
      ['leave', () => (net && driver && sb ? driver.leave(net, net.config, ep, sb) : undefined)],
      ['driver', () => (net && driver ? driver.deleteEndpoint(net, net.config, ep) : undefined)],
      ['ipv4', () => (net?.ipv4[0]?.poolId && ep.ipv4 ? this.deps.ipam.releaseAddress(net.ipv4[0].poolId, ep.ipv4) : undefined)],
      ['ipv6', () => (net?.ipv6[0]?.poolId && ep.ipv6 ? this.deps.ipam.releaseAddress(net.ipv6[0].poolId, ep.ipv6) : undefined)],
      ['store', () => store.endpoints.delete(ep.id)],
    ]);
  }

  /** Publishes again the ports of every ready endpoint (the proxy and the leases live in the daemon). */
  private async republish(done: string[]): Promise<void> {
    for (const ep of this.deps.store.endpoints.list()) {
      const net = this.deps.store.networks.get(ep.networkId);
      const driver = net && this.deps.drivers.get(net.driver);
      const ports = ep.ports as PortSpec[];
      if (!net || !driver?.publish || ep.state !== 'ready' || ports.length === 0) continue;
      try {
        await driver.publish(net, net.config, ep, ports);
      } catch (err) {
        done.push(`endpoint ${ep.name}: ports not published again: ${(err as Error).message}`);
      }
    }
  }

  /** Every id that may own firewall rules: networks (their rules) and endpoints (their ports). */
  firewallOwners(): Set<string> {
    const { store } = this.deps;
    return new Set([...store.networks.list().map((n) => n.id), ...store.endpoints.list().map((e) => e.id)]);
  }

  // ---- reconcile -----------------------------------------------------------------------

  /**
   * Start-up reconcile: finishes or undoes what a crash interrupted ('creating' and 'deleting'
   * records), drops sandboxes whose namespace is gone, releases addresses nothing owns, and lets
   * every driver recreate what is missing for ready networks. Returns what it did, for the log.
   */
  reconcile(): Promise<string[]> {
    return this.queue.run(async () => {
      const done: string[] = [];
      const store = this.deps.store;
      for (const ep of store.endpoints.list()) {
        const sb = ep.sandboxId ? store.sandboxes.get(ep.sandboxId) : undefined;
        const gone = sb && sb.kind !== 'host' && !this.deps.kernel.exists(sb.netnsPath);
        const detached = ep.sandboxId === undefined;
        if (ep.state !== 'ready' || (!detached && (!sb || sb.state !== 'ready' || gone))) {
          await this.teardownEndpoint(ep, sb).catch((err) => this.deps.logger.warn({ err }, 'reconcile endpoint'));
          done.push(`endpoint ${ep.name}: removed (${ep.state !== 'ready' ? `interrupted while ${ep.state}` : 'sandbox gone'})`);
        }
      }
      for (const sb of store.sandboxes.list()) {
        const gone = sb.kind !== 'host' && !this.deps.kernel.exists(sb.netnsPath);
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
      done.push(...this.releaseOrphanAddresses());
      await this.restoreKernelState(done);
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
      await this.restoreKernelState(done);
      return done;
    });
  }

  private async restoreKernelState(done: string[]): Promise<void> {
    for (const net of this.deps.store.networks.list()) {
      const driver = this.deps.drivers.get(net.driver);
      if (driver?.restore) await driver.restore(net, net.config);
    }
    await this.republish(done);
  }
}
