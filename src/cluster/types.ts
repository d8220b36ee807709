// The control plane's interface, as drivers and front ends see it: types only (no etcd code), so
// the contract layer can name it without loading etcd. Implemented by src/cluster/index.ts.
//
// What a driver gets (DriverContext.cluster, present only in cluster mode):
//   - identity:  hostId (stable across restarts), vtep (the advertise IPv4), vtepInterface(), status()
//   - hosts:     hosts() — registered hosts with liveness and lease expiry
//   - networks:  ensureNetwork(spec) — one network per name across the cluster, with its VNI and
//                subnets (create-if-absent; different options are refused, naming them);
//                getNetwork, listNetworks, leaveNetwork (the last host out deletes it),
//                removeNetwork (any host, when no host has endpoints on it and no live host's
//                Docker engine has a network mapped to it)
//   - ipam:      pools and addresses of global networks, allocated in etcd with transactions
//   - endpoints: reserveAddress, then joinEndpoint (its addresses and its peer in one transaction,
//                or, for spares of this host's stock, queued to land after the connect answers);
//                holdSpares / dropSpares while the host serves endpoints on a network
//   - peers:     publishPeer / removePeer (on this host's lease), peersOf, watchPeers (list, then
//                watch from the list's revision; re-list and diff on compaction or a lost stream)
// Every call that needs etcd fails within ~1.5 s with ClusterUnavailableError ('unavailable')
// when etcd does not answer; nothing queues or retries behind the caller's back, except the
// publish of a connect that took spares (retried until it lands).

export type ClusterState = 'connecting' | 'connected' | 'unavailable' | 'closed';

export interface ClusterStatus {
  state: ClusterState;
  hostId: string;
  vtep: string;
  /** The lease this host's keys sit on; absent until the first registration. */
  lease?: { id: string; ttl: number; lastKeepAlive?: string };
  /** The cluster store as --cluster-store names it (etcd://HOST:PORT[,…] or unix:///PATH). */
  store: string;
  /** While the store does not answer: since when (the first call that found it away), and for how many seconds now. */
  unavailableSince?: string;
  unavailableFor?: number;
  /**
   * While the store does not answer: that, naming the store, since when and why (the transport's
   * reason, never a key), and what still works; else the last registration problem.
   */
  error?: string;
  /** While the store does not answer: the outage alone, as error begins (check says it so); not served by the API. */
  outage?: string;
  /** Keys this host owned that another host took while its lease was gone (see KEYS.md). */
  conflicts: string[];
}

/** What the management API answers for this host's cluster state: status(), and the interface that holds the VTEP address now (null: none; overlays cannot be made or joined here). */
export interface ClusterStatusReport extends ClusterStatus {
  vtepInterface: string | null;
}

/** A local network of a host, published in its host record so global pools avoid it. */
export interface LocalSubnet {
  network: string;
  subnet: string;
}

export interface HostInfo {
  id: string;
  hostname: string;
  vtep: string;
  pid: number;
  /** The daemon process's start time (clock ticks after boot, /proc/PID/stat): with pid, tells it from a later process that took its pid. Absent in older records. */
  pidStart?: string;
  started: string;
  version: string;
  localSubnets: LocalSubnet[];
  leaseId: string;
  /** 'alive' while keep-alives arrive; 'expiring' when two have been missed (the host may be gone). */
  state: 'alive' | 'expiring';
  /** Seconds until the lease expires unless kept alive, as etcd reports it. */
  ttl: number;
  grantedTtl: number;
  self: boolean;
  /** This host's own entry only: the interface that holds its VTEP address now, null when none does. */
  vtepInterface?: string | null;
}

export interface SubnetRequest {
  /** CIDR; absent: the first free default global pool. */
  subnet?: string;
  ipRange?: string;
  /** Absent: the first address of the subnet (or of the ip-range). */
  gateway?: string;
}

export interface GlobalNetworkSpec {
  name: string;
  /** The driver that owns it, e.g. 'overlay'. */
  driver: string;
  /** Given VNI (e.g. from com.docker.network.driver.overlay.vxlanid_list); else the first free from 4096. */
  vni?: number;
  internal: boolean;
  enableIPv6: boolean;
  /** Driver options, compared as given: a create with different ones is refused. */
  options: Record<string, string>;
  /** The network's labels, the same on every host; compared when given: a create with other ones is refused. */
  labels?: Record<string, string>;
  ipv4: SubnetRequest[];
  ipv6: SubnetRequest[];
  /**
   * The Docker engine's network id when this host's engine makes the network (its CreateNetwork):
   * kept in this host's member key, so that a `network rm` from another host names it instead of
   * removing the network under the engine.
   */
  dockerNetwork?: string;
}

/** The value of `members/<network>/<hostid>`: since when the host has the network, and its engine's network when the Docker engine made it there. */
export interface MemberValue {
  since: string;
  dockerNetwork?: string;
}

/** What a cluster-wide `network rm` did: deleted, or kept by the hosts with endpoints and by live hosts' Docker engines' networks. */
export interface NetworkRemoval {
  deleted: boolean;
  holders: string[];
  engines: { host: string; dockerNetwork: string }[];
}

export interface GlobalSubnet {
  /** The pool id: the subnet in canonical CIDR form. */
  poolId: string;
  subnet: string;
  ipRange?: string;
  /** With the prefix length, e.g. 198.19.0.1/24. */
  gateway: string;
}

export interface GlobalNetwork {
  name: string;
  /** 64 hex digits, the same on every host. */
  id: string;
  driver: string;
  vni: number;
  internal: boolean;
  enableIPv6: boolean;
  options: Record<string, string>;
  /** Absent in records made before labels were kept in the cluster: none. */
  labels?: Record<string, string>;
  ipv4: GlobalSubnet[];
  ipv6: GlobalSubnet[];
  createdBy: string;
  created: string;
}

export interface PoolRequest {
  subnet?: string;
  ipRange?: string;
  v6?: boolean;
  /** The global network the pool belongs to; a second request by the same owner gets the same pool. */
  owner: string;
}

export interface AddressRequest {
  /** A given address (without or with the pool's prefix length); absent: the next free one. */
  address?: string;
  /** 'endpoint' addresses sit on this host's lease; 'gateway' and 'aux' belong to the network. */
  kind: 'endpoint' | 'gateway' | 'aux';
  owner: string;
}

export interface GlobalPool {
  poolId: string;
  subnet: string;
  ipRange?: string;
  family: 4 | 6;
  owner: string;
  /** The pool's gateway with the prefix length (held by the pool's owner). */
  gateway?: string;
}

/** The owner of the addresses the Docker engine of a host takes from global pools (cnmkit-ipam). */
export const dockerAddressOwner = (hostId: string): string => `docker:${hostId}`;

export interface GlobalAddress {
  /** With the pool's prefix length. */
  address: string;
  /** spare: held by a host for its next endpoints, no endpoint yet (not counted as one). */
  kind: AddressRequest['kind'] | 'spare';
  owner: string;
  host: string;
}

export interface GlobalIpam {
  requestPool(req: PoolRequest): Promise<GlobalPool>;
  /** Frees the pool and every address in it; only its owner may. Releasing twice succeeds. */
  releasePool(poolId: string, owner: string): Promise<void>;
  /** Returns "addr/len". The same owner asking for the same address again gets it (replay). */
  requestAddress(poolId: string, req: AddressRequest): Promise<string>;
  /** Releasing a free address succeeds; one held by another owner is refused. */
  releaseAddress(poolId: string, address: string, owner: string): Promise<void>;
  listPools(): Promise<GlobalPool[]>;
  listAddresses(poolId: string): Promise<GlobalAddress[]>;
}

export interface PeerSpec {
  endpointId: string;
  /** IPv4 with or without prefix length. */
  ip: string;
  ipv6?: string;
  mac: string;
  /**
   * The MAC was given (--mac, the engine's), not derived from the IPv4 address: it is claimed in
   * the cluster for this endpoint (macs/NETWORK/MAC, macs.ts), so that no other endpoint of the
   * network publishes it, even at the same moment on another host.
   */
  macGiven?: boolean;
  /** Defaults to this host's VTEP. */
  vtep?: string;
}

/** An address a join claims: reserved with reserveAddress ("addr/len"), for its owner (endpoint:<id>). */
export interface EndpointAddress {
  poolId: string;
  address: string;
  owner: string;
}

/** This host's peers on a network (endpoint ids), and endpoint addresses it holds there, that no endpoint of this host has. */
export interface Leftovers {
  peers: string[];
  addresses: EndpointAddress[];
}

/** One endpoint of this host: its peer, and its addresses with their owner. */
export interface OwnEndpoint {
  peer: PeerSpec;
  addresses: EndpointAddress[];
}

export interface Peer extends Required<Omit<PeerSpec, 'ipv6' | 'macGiven'>> {
  ipv6?: string;
  network: string;
  host: string;
}

export type PeerChange =
  | { kind: 'added'; peer: Peer }
  | { kind: 'updated'; peer: Peer; previous: Peer }
  /** leaseEnded: the record went with its host's lease (expired, or revoked by etcd), not deleted by its host. */
  | { kind: 'removed'; peer: Peer; leaseEnded?: true };

/** One delivery: the changes of one watch response, or of a resync (full re-list, diffed). */
export interface PeerBatch {
  network: string;
  resync: boolean;
  revision: number;
  changes: PeerChange[];
  /** Every peer of the network after the changes, by `host/endpointId`, this host's included. */
  peers: ReadonlyMap<string, Peer>;
}

/** Called one batch at a time, in order; the next waits for the returned promise. */
export type PeerHandler = (batch: PeerBatch) => void | Promise<void>;

export interface WatchStats {
  /** Range requests made (each initial list and each resync counts, failed ones too). */
  lists: number;
  resyncs: number;
  events: number;
  revision: number;
  state: 'listing' | 'watching' | 'backoff' | 'closed';
}

export interface WatchOptions {
  /** Fault injection for tests: runs after each list, before the watch that resumes from it. */
  afterList?: (revision: number) => Promise<void>;
}

/** Told the names of global networks whose record left the store or changed; 'all': any may have. */
export type NetworkFollower = (names: string[] | 'all') => void;

export interface PeerWatch {
  stats(): WatchStats;
  close(): Promise<void>;
}

export interface Cluster {
  readonly hostId: string;
  readonly vtep: string;
  readonly ipam: GlobalIpam;
  /** The interface (up) that holds the VTEP address now, read at each call (a few hundred µs: not in status()); undefined when none does. */
  vtepInterface(): string | undefined;
  status(): ClusterStatus;
  /** Adds a conflict to status() (and the log): something this host held that another owner holds now. */
  reportConflict(what: string): void;
  hosts(): Promise<HostInfo[]>;
  ensureNetwork(spec: GlobalNetworkSpec): Promise<GlobalNetwork>;
  /**
   * The cluster's network of that name. cached: from the watch of every network record while it
   * is live (no round trip, but it may lag etcd by an event), else read.
   */
  getNetwork(name: string, opts?: { cached?: boolean }): Promise<GlobalNetwork | undefined>;
  listNetworks(): Promise<GlobalNetwork[]>;
  /**
   * Calls follower, from the watch of every network record, with the names whose record was
   * deleted or replaced ('all' after the first list: records may have gone while this host was away).
   */
  followNetworks(follower: NetworkFollower): void;
  /** Drops this host from the network; deletes it (VNI, pools, addresses) when no host and no peer is left. */
  leaveNetwork(name: string): Promise<{ deleted: boolean }>;
  /**
   * Deletes the network from the cluster (every host's membership too) unless a host has endpoints
   * on it or a live host's engine a network mapped to it: then those. id: only the network of that
   * id (another of the same name is left as it is: not deleted, no holders).
   */
  removeNetwork(name: string, id?: string): Promise<NetworkRemoval>;
  publishPeer(network: string, peer: PeerSpec): Promise<Peer>;
  /**
   * An address for a new endpoint of this host, chosen and held here but not claimed (no round
   * trip once this host has read the pool): the given one, else the next free one. joinEndpoint
   * claims it; forgetAddress drops it when that does not happen.
   */
  reserveAddress(poolId: string, address?: string): Promise<string>;
  forgetAddress(poolId: string, address: string): void;
  /**
   * A new endpoint of this host: claims its reserved addresses and publishes its peer in one
   * transaction, all on this host's lease; a failure leaves none of the keys. When every address
   * is a spare of this host (already claimed), returns at once: the peer and the addresses'
   * endpoint values land from a queue, coalesced, retried until etcd takes them. Throws
   * AddressRacedError when another host claimed a chosen address meanwhile (reserve again),
   * ConflictError when a given one is held.
   */
  joinEndpoint(network: string, peer: PeerSpec, addresses: EndpointAddress[]): Promise<Peer>;
  /** After a queued publish of the endpoint settled (one still queued is dropped: nothing of it was written). */
  removePeer(network: string, endpointId: string): Promise<void>;
  /**
   * A restart's check of this host's endpoints on a network (pools: the network's), in one read:
   * the ids of those whose peer and addresses etcd holds exactly, on this host's lease (nothing to
   * publish again), and this host's peers and endpoint addresses there that neither they nor the
   * endpoints of ids in known have, and that this daemon did not write (stale: to remove).
   */
  confirmEndpoints(network: string, pools: string[], endpoints: OwnEndpoint[], known: Set<string>): Promise<{ confirmed: Set<string>; stale: Leftovers }>;
  /** The same leftovers, read only (check): known holds the ids of every endpoint this host has on the network. */
  leftovers(network: string, pools: string[], known: Set<string>): Promise<Leftovers>;
  /** The host serves endpoints on these pools: it keeps a stock of spare addresses there (claimed in the background). */
  holdSpares(poolIds: string[]): void;
  /** Runs job once the connects under way have answered (the daemon's AnswerGate); without a gate, on the next turn of the event loop. */
  afterAnswers(job: () => void): void;
  /** It no longer does: its spares there are deleted. */
  dropSpares(poolIds: string[]): Promise<void>;
  peersOf(network: string): Promise<Peer[]>;
  /**
   * Starts watching the network's peers now, for a watch of it about to start here (a first join):
   * that watch takes it over, with the peers known by then, instead of listing; closed after a few
   * seconds otherwise.
   */
  prefetchPeers(network: string): void;
  watchPeers(network: string, handler: PeerHandler, options?: WatchOptions): PeerWatch;
  /** Networks this host has published peers on (its endpoints), from memory. */
  localNetworks(): string[];
  /** Re-reads this host's local subnets and republishes its host record if they changed. */
  refreshLocalSubnets(): Promise<void>;
  /** Stops keep-alives without revoking: a restart within the TTL adopts the same lease. */
  close(): Promise<void>;
}
