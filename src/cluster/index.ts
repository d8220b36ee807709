// Cluster mode: the Cluster object (see types.ts for the interface drivers use) over one etcd
// client. Registration runs in the background: when etcd is unreachable the daemon still starts,
// local networks keep working, global calls fail fast, and registration retries until it works.
// An advertise address that no interface has is taken (the overlay driver warns at start). Loaded
// only with --cluster-store (the daemon imports this module lazily).
import type { Logger } from 'pino';
import { ClusterUnavailableError, ConflictError } from '../errors.js';
import { checkDefaultPool, DOCKER_GLOBAL_POOLS } from '../ipam/defaults.js';
import { StoreClient } from './client.js';
import { describer, hostRecord, listHosts, loadIdentity, putHostRecord, saveIdentity, type Identity } from './hosts.js';
import { EtcdIpam } from './ipam.js';
import { Keys } from './keys.js';
import { LeaseKeeper } from './lease.js';
import { NetworkCache } from './network-cache.js';
import { Networks } from './networks.js';
import { Outage, storeName } from './outage.js';
import { interfaceWith, type ClusterConfig } from './options.js';
import { confirmEndpoints, findLeftovers, type ConfirmDeps } from './confirm.js';
import { Owned } from './owned.js';
import { checkPeer, Peers } from './peers.js';
import { Publisher } from './publisher.js';
import { Reservations } from './reserve.js';
import { Spares } from './spares.js';
import { PeerWatches } from './ahead.js';
import type { Cluster, ClusterState, ClusterStatus, EndpointAddress, GlobalNetwork, GlobalNetworkSpec, HostInfo, Leftovers, LocalSubnet, NetworkFollower, NetworkRemoval, OwnEndpoint, Peer, PeerHandler, PeerSpec, PeerWatch, WatchOptions } from './types.js';

export interface StartClusterOptions {
  config: ClusterConfig;
  stateDir: string;
  logger: Logger;
  /** This host's local networks; published in its host record so global pools avoid them. */
  localSubnets: () => LocalSubnet[];
  failFastMs?: number;
  /** Networks whose peers this host will watch at once (its restore): their watches start while it registers. */
  prefetchPeers?: string[];
  /** How long a stock of spare addresses goes without a take before it is trimmed (tests; default 1 s). */
  spareIdleMs?: number;
  /** Defers a queued peer's publish until the connect that queued it has answered (AnswerGate.after). */
  afterAnswers?: (job: () => void) => void;
}

/** After the first registration: spare keys a previous run left are deleted (off the start's busy moments). */
const SWEEP_AFTER_MS = 3000;
/** A clean stop waits this long for queued publishes and the spares' deletion. */
const CLOSE_MS = 1500;

class EtcdCluster implements Cluster {
  readonly hostId: string;
  readonly vtep: string;
  readonly ipam: EtcdIpam;
  readonly client: StoreClient;
  private readonly keys: Keys;
  private readonly keeper: LeaseKeeper;
  private readonly owned = new Owned();
  private readonly networks: Networks;
  private readonly peers: Peers;
  private readonly confirmDeps: ConfirmDeps;
  private readonly reservations: Reservations;
  private readonly spares: Spares;
  private readonly publisher: Publisher;
  private swept = false;
  private closing = false;
  private readonly networkCache: NetworkCache;
  /** The peer watches, handed out and started ahead (ahead.ts). */
  private readonly peerWatches: PeerWatches;
  private readonly started = new Date().toISOString();
  private readonly identity: Identity;
  private state: ClusterState = 'connecting';
  private error: string | undefined;
  private readonly outage: Outage;
  private conflicts: string[] = [];
  private published: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  /** The lease whose registration finished (host record written, owned keys put back). */
  private registered: string | undefined;
  /** A new lease replaced one that etcd no longer has: this host's keys must be put back on it. */
  private republishDue = false;
  /** Whether the next lease may be the saved one: not after another live daemon's record was found on it. */
  private adoptSaved = true;

  constructor(private readonly o: StartClusterOptions) {
    this.identity = loadIdentity(o.stateDir);
    this.hostId = this.identity.hostId;
    this.vtep = o.config.vtep;
    this.keys = new Keys(o.config.prefix);
    this.outage = new Outage(storeName(o.config.endpoints));
    this.client = new StoreClient(o.config, { failFastMs: o.failFastMs ?? 1500, onOutcome: (err, cause) => this.onOutcome(err, cause), log: (step, err) => o.logger.debug({ step, err: err.message }, 'cluster store call failed') });
    this.keeper = new LeaseKeeper(this.client, o.config.leaseTtl);
    const base = { client: this.client, keys: this.keys, hostId: this.hostId, owned: this.owned, lease: () => this.lease() };
    this.confirmDeps = { ...base, vtep: this.vtep };
    const defaults = (o.config.globalPools ?? DOCKER_GLOBAL_POOLS).map(checkDefaultPool);
    this.ipam = new EtcdIpam({ ...base, defaults });
    this.networks = new Networks({ ...base, ipam: this.ipam });
    this.spares = new Spares({ ...base, ipam: this.ipam, logger: o.logger.child({ part: 'cluster-spares' }), ...(o.spareIdleMs !== undefined ? { idleMs: o.spareIdleMs } : {}) });
    this.ipam.spares = this.spares;
    this.publisher = new Publisher({
      ...base, logger: o.logger.child({ part: 'cluster-publish' }), conflict: (what) => this.conflicts.push(what),
      settled: (claims) => claims.forEach((c) => this.spares.settled(c.poolId, c.ip)), discard: (spares) => this.spares.discard(spares),
      defer: (job) => this.afterAnswers(job),
    });
    this.reservations = new Reservations({ ipam: this.ipam, keys: this.keys, hostId: this.hostId, owned: this.owned, spares: this.spares, describeHost: describer(this.client, this.keys) });
    this.peers = new Peers({ ...base, vtep: this.vtep, reservations: this.reservations, logger: o.logger.child({ part: 'cluster-watch' }) });
    this.peerWatches = new PeerWatches({
      hostId: this.hostId, peers: this.peers, ipam: this.ipam, spares: this.spares, logger: o.logger,
      open: () => !this.isClosed(), connected: () => this.state === 'connected',
    });
    this.networkCache = new NetworkCache(this.client, this.keys, o.logger.child({ part: 'cluster-networks' }), (net) => this.peerWatches.appeared(net));
  }

  reportConflict(what: string): void {
    this.o.logger.error({ conflict: what }, 'cluster: something this host held is held by another owner now');
    this.conflicts.push(what);
  }

  vtepInterface(): string | undefined {
    return interfaceWith(this.vtep);
  }

  status(): ClusterStatus {
    const id = this.keeper.id;
    return {
      state: this.state, hostId: this.hostId, vtep: this.vtep, conflicts: [...this.conflicts], ...(this.error ? { error: this.error } : {}), ...this.outage.report(),
      ...(id ? { lease: { id, ttl: this.keeper.ttl, ...(this.keeper.lastKeepAlive ? { lastKeepAlive: new Date(this.keeper.lastKeepAlive).toISOString() } : {}) } } : {}),
    };
  }

  prefetchPeers(name: string): void {
    this.peerWatches.prefetch(name);
  }

  /** Registers (or keeps the lease alive), then schedules itself: every TTL/3, sooner with backoff while unregistered, at once when etcd answers after an outage (onOutcome). */
  async tick(): Promise<void> {
    if (this.isClosed()) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    try {
      if (this.keeper.id === undefined || this.registered !== this.keeper.id) await this.register();
      else if ((await this.keeper.keepAlive()).ok) await this.refreshLocalSubnets();
      else {
        this.o.logger.warn({ hostId: this.hostId }, 'cluster: etcd no longer has this host\'s lease; registering again and re-publishing its keys');
        await this.register();
      }
      this.failures = 0;
    } catch (err) {
      this.failures++;
      this.setState('unavailable', err instanceof ClusterUnavailableError ? undefined : (err as Error).message);
    }
    if (this.isClosed()) return;
    const interval = (this.keeper.ttl * 1000) / 3;
    const delay = this.registered === undefined || this.registered !== this.keeper.id ? Math.min(interval, 2000, 250 * 2 ** Math.min(this.failures, 4)) : interval;
    this.timer = setTimeout(() => void this.tick(), delay);
  }

  /** A method, not a field test: close() may run while tick() awaits (and waits itself before it sets 'closed'). */
  private isClosed(): boolean {
    return this.state === 'closed' || this.closing;
  }

  /** Takes a lease (adopted or new), writes the host record, puts back owned keys; resumable after a failure at any step. */
  private async register(): Promise<void> {
    let id = this.keeper.id;
    if (id === undefined) {
      const got = await this.keeper.acquire(this.adoptSaved ? this.identity.leaseId : undefined);
      id = got.id;
      if (!got.adopted) this.republishDue = true;
      if (id !== this.identity.leaseId || this.identity.vtep !== this.vtep) {
        Object.assign(this.identity, { leaseId: id, vtep: this.vtep });
        saveIdentity(this.o.stateDir, this.identity);
      }
    }
    const subnets = this.o.localSubnets();
    try {
      await putHostRecord(this.client, this.keys, hostRecord(this.hostId, this.vtep, subnets, this.started), id);
    } catch (err) {
      // Another live daemon's record: the next try takes a lease of its own (not keeping alive one it may share with it).
      if (err instanceof ConflictError) {
        this.keeper.forget();
        this.adoptSaved = false;
      }
      throw err;
    }
    this.published = JSON.stringify(subnets);
    if (this.republishDue) {
      this.spares.lost();
      const conflicts = await this.owned.republish(this.client, id, describer(this.client, this.keys));
      for (const c of conflicts) this.o.logger.error({ conflict: c }, 'cluster: a key this host owned was taken while its lease was gone');
      this.conflicts.push(...conflicts);
      this.republishDue = false;
    }
    this.registered = id;
    this.o.logger.info({ hostId: this.hostId, vtep: this.vtep, lease: id }, 'cluster: host registered');
    this.setState('connected');
    if (!this.swept) {
      this.swept = true;
      setTimeout(() => void this.sweep(), SWEEP_AFTER_MS).unref();
    }
  }

  private async sweep(): Promise<void> {
    if (!this.isClosed() && !(await this.spares.sweepLogged())) this.swept = false;
  }

  private setState(state: ClusterState, error?: string): void {
    if (this.state === 'closed') return;
    if (state === 'unavailable' && this.state !== 'unavailable') this.o.logger.warn({ error: error ?? this.outage.reason() }, 'cluster store unavailable: local networks keep working, global requests fail until it is back');
    if (state === 'connected' && this.state === 'unavailable') this.o.logger.info('cluster store available again');
    this.state = state;
    this.error = error;
  }

  private onOutcome(err: Error | undefined, cause?: string): void {
    this.outage.set(err ? (cause ?? 'no answer') : undefined);
    if (err) return this.setState('unavailable');
    if (this.state !== 'unavailable' || this.registered === undefined || this.registered !== this.keeper.id) return;
    this.setState('connected');
    if (this.timer) void this.tick(); // Not waiting for the timer: a thawing etcd revokes leases past their TTL, and the others keep this host's peers a grace only (overlay/linger.ts). No timer: a tick is under way.
  }

  lease(): string {
    const id = this.keeper.id;
    const why = this.error ?? this.outage.reason();
    if (id === undefined || id !== this.registered) throw new ClusterUnavailableError(`this host is not registered yet${why ? ` (${why})` : ''}`);
    return id;
  }

  async refreshLocalSubnets(): Promise<void> {
    const id = this.keeper.id;
    const subnets = this.o.localSubnets();
    if (id === undefined || JSON.stringify(subnets) === this.published) return;
    await putHostRecord(this.client, this.keys, hostRecord(this.hostId, this.vtep, subnets, this.started), id);
    this.published = JSON.stringify(subnets);
  }

  async hosts(): Promise<HostInfo[]> {
    const list = await listHosts(this.client, this.keys, this.hostId);
    return list.map((h) => (h.self ? { ...h, vtepInterface: this.vtepInterface() ?? null } : h));
  }

  async ensureNetwork(spec: GlobalNetworkSpec): Promise<GlobalNetwork> {
    this.lease(); // Not while unregistered: this host's local subnets, which a new pool avoids, are not on record.
    await this.refreshLocalSubnets();
    return this.networks.ensure(spec);
  }

  async getNetwork(name: string, opts: { cached?: boolean } = {}): Promise<GlobalNetwork | undefined> {
    const cached = opts.cached ? this.networkCache.get(name) : undefined;
    if (cached !== undefined) return cached ?? undefined;
    return this.networks.get(name);
  }

  listNetworks(): Promise<GlobalNetwork[]> {
    return this.networks.list();
  }

  followNetworks(follower: NetworkFollower): void {
    this.networkCache.follow(follower);
  }

  leaveNetwork(name: string): Promise<{ deleted: boolean }> {
    return this.networks.leave(name);
  }

  removeNetwork(name: string, id?: string): Promise<NetworkRemoval> {
    return this.networks.remove(name, id);
  }

  publishPeer(network: string, peer: PeerSpec): Promise<Peer> {
    return this.peers.publish(network, peer);
  }

  reserveAddress(poolId: string, address?: string): Promise<string> {
    // A spare needs no round trip; while etcd is known away a connect claims in etcd (failing fast, or succeeding once it is back).
    return this.reservations.reserve(poolId, address, this.state === 'connected');
  }

  holdSpares(poolIds: string[]): void {
    for (const id of poolIds) this.spares.hold(id);
  }

  afterAnswers(job: () => void): void {
    (this.o.afterAnswers ?? setImmediate)(job);
  }

  async dropSpares(poolIds: string[]): Promise<void> {
    await Promise.all(poolIds.map((id) => this.spares.drop(id)));
  }

  forgetAddress(poolId: string, address: string): void {
    this.reservations.forget(poolId, address);
  }

  async joinEndpoint(network: string, spec: PeerSpec, addresses: EndpointAddress[]): Promise<Peer> {
    const claims = addresses.map((a) => this.reservations.claim(a.poolId, a.address, a.owner));
    // A given MAC is claimed in the join's transaction, whose answer the connect waits for (its refusal is the connect's).
    if (claims.length === 0 || claims.some((c) => c.spare === undefined) || spec.macGiven) return this.peers.join(network, spec, claims);
    // Every address is a spare of this host: the peer is published after the connect answers.
    const peer = checkPeer(network, spec, this.hostId, this.vtep);
    this.lease();
    this.reservations.published(claims);
    this.publisher.enqueue(peer, claims);
    return peer;
  }

  async removePeer(network: string, endpointId: string): Promise<void> {
    await this.publisher.settle(endpointId);
    return this.peers.remove(network, endpointId);
  }

  confirmEndpoints(network: string, pools: string[], endpoints: OwnEndpoint[], known: Set<string>): Promise<{ confirmed: Set<string>; stale: Leftovers }> {
    return confirmEndpoints(this.confirmDeps, network, pools, endpoints, known);
  }
  leftovers(network: string, pools: string[], known: Set<string>): Promise<Leftovers> {
    return findLeftovers(this.confirmDeps, network, pools, known);
  }

  peersOf(network: string): Promise<Peer[]> {
    return this.peers.list(network);
  }

  watchPeers(network: string, handler: PeerHandler, options: WatchOptions = {}): PeerWatch {
    return this.peerWatches.watch(network, handler, options);
  }

  localNetworks(): string[] {
    return this.owned.peerNetworks();
  }

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.timer);
    // Queued publishes land, and the stock goes (a restart's sweep deletes what a stop could not).
    const stop = Promise.all([this.publisher.flush(CLOSE_MS), this.spares.dropAll().catch(() => undefined)]);
    await Promise.race([stop, new Promise((r) => setTimeout(r, CLOSE_MS).unref())]);
    this.publisher.close();
    this.state = 'closed';
    await Promise.all([this.peerWatches.close(), this.networkCache.close()]);
    this.keeper.forget();
    this.client.close();
  }
}

/** Starts cluster mode: tries to register once (within the fail-fast budget), then keeps trying in the background. */
export async function startCluster(o: StartClusterOptions): Promise<Cluster> {
  const cluster = new EtcdCluster(o);
  for (const name of o.prefetchPeers ?? []) cluster.prefetchPeers(name);
  await cluster.tick();
  return cluster;
}
