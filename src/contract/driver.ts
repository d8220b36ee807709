// The Driver seam: a small interface every network driver implements, and the one context
// object through which a driver reaches everything else (no globals). Optional capabilities
// (port publishing) exist only on drivers that have them.
import type { Logger } from 'pino';
import { InvalidArgumentError } from '../errors.js';
import type { NetlinkHandlePool } from '../netlink/index.js';
import type { FirewallBackend } from '../firewall/index.js';
import type { PortPublisher } from '../portmap/publisher.js';
import type { PortSpec } from '../portmap/index.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord, SubnetRecord } from '../core/model.js';
import type { Cluster } from '../cluster/types.js';
import type { EndpointCreated, JoinOutcome, Placement } from './join.js';

export { isFresh, type EndpointCreated, type JoinInfo, type JoinOutcome, type Placement, type StaticRoute } from './join.js';

/**
 * What the controller hands every driver: injected so unit tests can pass typed fakes. The
 * daemon's own namespace is "the host"; netlink handles for other namespaces come from the pool.
 */
export interface DriverContext {
  logger: Logger;
  netlink: NetlinkHandlePool;
  firewall: FirewallBackend;
  ports: PortPublisher;
  /** Kernel switches of the daemon's own namespace (net.* under /proc/sys, keys in slash form). */
  sysctl: HostSysctl;
  /** Cluster mode only (--cluster-store): global networks, VNIs, IPAM and peers in etcd. */
  cluster?: Cluster;
}

/** Kernel switches of one namespace: the daemon's (src/netns ensureSysctl), or a test's. */
export interface HostSysctl {
  /** Sets KEY to value unless it has it already; true when it was written. A key the kernel lacks is never written. */
  ensure(key: string, value: string): boolean;
  /** Writes KEY without reading it (a link just made: its state is known); false when the kernel lacks it. */
  set(key: string, value: string): boolean;
}

/**
 * One difference between the store and the kernel, found by check: the object by name (`network
 * web`, `endpoint web-1 of sandbox s1`), what differs (`device`, `address`, `route`, …), what the
 * store says should be there and what the kernel has.
 */
export interface CheckItem {
  object: string;
  what: string;
  expected: string;
  found: string;
}

/**
 * Something check could not compare, and why (an overlay's peer entries while the cluster store is
 * away): not a difference, an unknown; `cnmkit check` exits 3 on it when nothing differs.
 */
export interface UncheckedItem {
  object: string;
  what: string;
  reason: string;
}

/** An endpoint as check sees it: with its sandbox when it is joined to one whose namespace exists. */
export interface CheckedEndpoint {
  ep: EndpointRecord;
  sb?: SandboxRecord;
}

/** The generic network options a driver's parse step sees, besides `-o key=value`. */
export interface NetworkParseInput {
  name: string;
  options: Record<string, string>;
  internal: boolean;
  enableIPv6: boolean;
}

export interface Driver<Config = unknown> {
  readonly name: string;
  readonly scope: 'local' | 'global';
  /** False for drivers whose networks have no addresses (null, host). */
  readonly usesIpam: boolean;
  /** Served to the Docker engine as a remote network driver under this plugin name (its socket's name). */
  readonly docker?: DockerPlugin;
  /** Validates options into the driver's typed config; no side effects. */
  parse(input: NetworkParseInput): Config;
  /**
   * Optional, no side effects: completes the config with what creation will do (names, devices
   * that exist already and so stay when the network goes), so that the intent stored before any
   * kernel change says it: a crash mid-create then never deletes what cnmkit did not make.
   * Refuses a config that would share a device with another network. createNetwork gets the result.
   */
  plan?(net: NetworkRecord, config: Config, context: PlanContext): Promise<Config>;
  /** May return the config completed with what creation decided. */
  createNetwork(net: NetworkRecord, config: Config): Promise<Config | void>;
  /** At start-up, after the store is clean: deletes kernel objects of this driver that no record owns. */
  sweep?(networks: NetworkRecord[], endpoints: EndpointRecord[]): Promise<string[]>;
  /** At start-up, for a ready network: recreates what is missing in the kernel. */
  restore?(net: NetworkRecord, config: Config): Promise<void>;
  /**
   * At start-up, once every network of this driver was restored (before the next driver's): what
   * may wait until then (an overlay's own endpoints published again after every overlay network's
   * remote peers are programmed). Bounded in time.
   */
  restored?(): Promise<void>;
  /** Idempotent: deleting what is already gone succeeds. */
  deleteNetwork(net: NetworkRecord, config: Config): Promise<void>;
  /**
   * Makes the endpoint's kernel objects that exist before a join: with a detached placement, the
   * whole interface, left in the daemon's namespace for the engine to move; with a sandbox
   * placement a driver may make them at join instead (born in the sandbox). Returns what the
   * driver must keep to find them again (stored as driverData) and the MAC it chose.
   */
  createEndpoint(net: NetworkRecord, config: Config, ep: EndpointRecord, placement: Placement): Promise<EndpointCreated>;
  /** Idempotent. */
  deleteEndpoint(net: NetworkRecord, config: Config, ep: EndpointRecord): Promise<void>;
  /**
   * Describes the interface for the sandbox (JoinInfo); it applies nothing inside the sandbox
   * (the controller's applier or the Docker engine does). With a sandbox placement it may make
   * the interface born there, with its final name, and say so (src.where 'sandbox').
   */
  join(net: NetworkRecord, config: Config, ep: EndpointRecord, placement: Placement): Promise<JoinOutcome>;
  /**
   * Optional: the endpoint's sandbox is being removed, and its namespace may go before leave is
   * called, taking the endpoint's interfaces along. A driver that watches them for vanishing (a
   * namespace deleted by hand) stops now: their going is the removal's, which leave completes.
   */
  leaving?(net: NetworkRecord, config: Config, ep: EndpointRecord): void;
  /** Idempotent. sb: the sandbox it joined (absent for a detached endpoint). */
  leave(net: NetworkRecord, config: Config, ep: EndpointRecord, sb: SandboxRecord | undefined, hint?: LeaveHint): Promise<void>;
  /**
   * Optional, for detached endpoints: the ids of those whose kernel object is gone (the Docker
   * engine forgot them: the kernel destroyed the pair with the container's namespace).
   */
  goneEndpoints?(net: NetworkRecord, config: Config, eps: EndpointRecord[]): Promise<string[]>;
  /**
   * Optional, at start-up only, for detached endpoints: the ids of those the Docker engine handed
   * back while the daemon was away (./handback.ts), for the controller to remove (their ports, their
   * interface through deleteEndpoint, the engine's address, the record). A global driver drops its
   * own at restore instead (its peers and cluster addresses are its own).
   */
  handedBack?(net: NetworkRecord, config: Config, eps: EndpointRecord[]): Promise<string[]>;
  /** Optional: the endpoint's host-side interface, for inspection (Docker's EndpointOperInfo). */
  hostInterface?(net: NetworkRecord, config: Config, ep: EndpointRecord): string | undefined;
  /**
   * Optional, at start-up, for a ready endpoint joined to a sandbox whose namespace exists: checks
   * that its interfaces are there; when they vanished, removes what is left of them (the
   * controller then joins the endpoint again).
   */
  checkEndpoint?(net: NetworkRecord, config: Config, ep: EndpointRecord, sb: SandboxRecord): Promise<EndpointCheck>;
  /**
   * Reads the live kernel state of a ready network and of its endpoints and reports every
   * difference from the store; changes nothing. Empty: all there. What it could not compare goes
   * to unchecked, with why (not to the differences).
   */
  check(net: NetworkRecord, config: Config, endpoints: CheckedEndpoint[], unchecked?: UncheckedItem[]): Promise<CheckItem[]>;
  /**
   * Optional (`cnmkit check --fix`): makes the kernel hold again what check found differing (items:
   * its findings) where the driver knows how, and leaves the rest. The controller checks again
   * afterwards: what still differs then was not repaired. Throws only when nothing could be tried.
   */
  repair?(net: NetworkRecord, config: Config, endpoints: CheckedEndpoint[], items: CheckItem[]): Promise<void>;
  /** Optional: publishes ports of a joined endpoint; returns them resolved (host ports chosen). */
  publish?(net: NetworkRecord, config: Config, ep: EndpointRecord, ports: PortSpec[]): Promise<PortSpec[]>;
  /** Idempotent. */
  unpublish?(net: NetworkRecord, config: Config, ep: EndpointRecord): Promise<void>;
  /** Global-scope drivers only (overlay): the network's record and addresses live in the cluster store. */
  readonly global?: GlobalScope<Config>;
}

/** What a host's local record of a global network takes from the cluster's record. */
export interface GlobalNetworkView {
  /** The same on every host. */
  id: string;
  name: string;
  internal: boolean;
  enableIPv6: boolean;
  options: Record<string, string>;
  /** The labels given when the network was made in the cluster: the same on every host. */
  labels: Record<string, string>;
  /** When it was made in the cluster. */
  created: string;
  config: unknown;
  ipv4: SubnetRecord[];
  ipv6: SubnetRecord[];
}

/** The subnets a create asked for (the CLI's --subnet, --ip-range, --gateway, --subnet-v6, --gateway-v6). */
export interface SubnetAsk {
  subnet?: string;
  ipRange?: string;
  gateway?: string;
  subnetV6?: string;
  gatewayV6?: string;
}

/**
 * The capability of a global-scope driver: networks are made (or joined by name, with the same
 * settings) in the cluster, and their addresses come from the cluster's IPAM, never from this
 * host's. The controller keeps a local record of each such network this host uses, with the
 * cluster's id, adopted on the first connect on a host that did not create it.
 */
export interface GlobalScope<Config = unknown> {
  /** dockerNetwork: the Docker engine's network id when this host's engine makes it (its CreateNetwork). */
  ensure(input: NetworkParseInput & { labels: Record<string, string> }, config: Config, ask: SubnetAsk, dockerNetwork?: string): Promise<GlobalNetworkView>;
  /** The cluster's network of that name; undefined when it has none. fresh: read the store, not a watched copy. */
  lookup(name: string, opts?: { fresh?: boolean }): Promise<GlobalNetworkView | undefined>;
  /** Calls follower with the names of networks whose cluster record went or changed ('all': any may have). */
  follow(follower: (names: string[] | 'all') => void): void;
  list(): Promise<GlobalNetworkView[]>;
  /** Returns "addr/len"; address: the one asked for (without length), else the next free one. */
  requestAddress(net: NetworkRecord, family: 4 | 6, address: string | undefined, owner: string): Promise<string>;
  /**
   * Optional: an address for a new endpoint of cnmkit's own, chosen but not claimed (no round trip
   * once this host knows the pool); the join claims it (Placement's claim). Then a join may fail
   * with AddressRacedError: another host took the address meanwhile, and the caller starts again.
   */
  reserveAddress?(net: NetworkRecord, family: 4 | 6, address: string | undefined): Promise<string>;
  /** Drops a reservation whose endpoint was not made; idempotent. */
  forgetAddress?(net: NetworkRecord, family: 4 | 6, address: string): void;
  /**
   * Optional: starts bringing the network up on this host for its first endpoint here while the
   * controller chooses the endpoint's addresses and makes it (the store's round trip and the
   * kernel's work side by side); the join waits for it and fails with it. Undefined when it is up
   * already. unprepare takes it down again when no endpoint holds it.
   */
  prepare?(net: NetworkRecord): Promise<void> | undefined;
  unprepare?(net: NetworkRecord): Promise<void>;
  /** Never fails because the store does not answer: the release is retried until it does. */
  releaseAddress(net: NetworkRecord, family: 4 | 6, address: string, owner: string): Promise<void>;
  /** What inspect shows beyond the record (VNI, the hosts that have endpoints). */
  describe(net: NetworkRecord): Promise<Record<string, unknown>>;
  /**
   * Optional, read here (no store call): this host's endpoints of the network that are not in the
   * cluster because another host holds what they hold (an address or MAC taken while this host was
   * away past its lease), by endpoint id, with why. Inspect shows them in conflict.
   */
  conflicts?(net: NetworkRecord): Map<string, string>;
  /**
   * Optional, read here (no store call): what the user is warned of about the network on this host
   * (a set MTU above what the underlay carries), said with create, inspect and ls.
   */
  warnings?(net: NetworkRecord): string[];
  /**
   * Deletes the cluster's network of that name and id unless a host has endpoints on it (then
   * refused, naming those hosts). Whether it deleted it (false: the cluster has no such network).
   */
  remove(name: string, id: string): Promise<boolean>;
}

/** How a driver is served to the Docker engine. */
export interface DockerPlugin {
  /** The plugin (and socket) name, e.g. cnmkit-bridge. */
  pluginName: string;
  /**
   * The scope the engine is told (GetCapabilities), default local: without swarm or a cluster
   * store the engine fails global-scope networks, so even a global driver (overlay) is served as
   * local, with cnmkit's own control plane (see the overlay notes).
   */
  scope?: 'local' | 'global';
}

/**
 * What checkEndpoint found: all there; missing (what vanished: the controller joins it again with the
 * same name, MAC and addresses); or lost for good (why: the controller removes it).
 */
export type EndpointCheck = { state: 'ok' } | { state: 'missing'; detail: string } | { state: 'lost'; reason: string };

export interface PlanContext {
  /** The other networks of this driver, as stored. */
  networks: NetworkRecord[];
}

export interface LeaveHint {
  /**
   * The kernel has confirmed that nothing holds the sandbox's namespace any more: it is being
   * destroyed, and the links inside it (veth peers included) go with it, so they need no deleting
   * one by one. Never set on a guess: a namespace a process or another mount holds lives on.
   */
  namespaceGone?: boolean;
}

export type DriverFactory = (ctx: DriverContext) => Driver;

/** Drivers by name; the controller looks drivers up here and nowhere else. */
export class DriverRegistry {
  private readonly drivers = new Map<string, Driver>();

  register(driver: Driver): void {
    if (this.drivers.has(driver.name)) throw new Error(`driver ${driver.name} registered twice`);
    this.drivers.set(driver.name, driver);
  }

  get(name: string): Driver | undefined {
    return this.drivers.get(name);
  }

  names(): string[] {
    return [...this.drivers.keys()].sort();
  }

  /** The drivers, by name. */
  list(): Driver[] {
    return this.names().map((n) => this.drivers.get(n)!);
  }
}

/** The parse step of drivers that take no options and have no addresses (null, host). */
export function parseNoOptions(driver: string, input: NetworkParseInput): Record<string, never> {
  const keys = Object.keys(input.options);
  if (keys.length > 0) throw new InvalidArgumentError(`options.${keys[0]}`, `the ${driver} driver takes no options`);
  if (input.enableIPv6) throw new InvalidArgumentError('ipv6', `the ${driver} driver has no addresses of its own`);
  return {};
}
