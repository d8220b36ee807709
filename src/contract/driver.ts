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

/**
 * What the controller hands every driver: injected so unit tests can pass typed fakes. The
 * daemon's own namespace is "the host"; netlink handles for other namespaces come from the pool.
 */
export interface DriverContext {
  logger: Logger;
  netlink: NetlinkHandlePool;
  firewall: FirewallBackend;
  ports: PortPublisher;
  /** Cluster mode only (--cluster-store): global networks, VNIs, IPAM and peers in etcd. */
  cluster?: Cluster;
}

/** The generic network options a driver's parse step sees, besides `-o key=value`. */
export interface NetworkParseInput {
  name: string;
  options: Record<string, string>;
  internal: boolean;
  enableIPv6: boolean;
}

/** What join tells the caller about the interface it put into the sandbox. */
export interface JoinResult {
  ifname?: string;
  gateway?: string;
  gatewayIPv6?: string;
  macAddress?: string;
  /** Replaces the endpoint's driverData when given. */
  driverData?: unknown;
}

export interface Driver<Config = unknown> {
  readonly name: string;
  readonly scope: 'local' | 'global';
  /** False for drivers whose networks have no addresses (null, host). */
  readonly usesIpam: boolean;
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
  /** Idempotent: deleting what is already gone succeeds. */
  deleteNetwork(net: NetworkRecord, config: Config): Promise<void>;
  /** Returns what the driver must keep to find its kernel objects again (stored as driverData). */
  createEndpoint(net: NetworkRecord, config: Config, ep: EndpointRecord): Promise<unknown>;
  /** Idempotent. */
  deleteEndpoint(net: NetworkRecord, config: Config, ep: EndpointRecord): Promise<void>;
  join(net: NetworkRecord, config: Config, ep: EndpointRecord, sb: SandboxRecord, context?: JoinContext): Promise<JoinResult>;
  /** Idempotent. */
  leave(net: NetworkRecord, config: Config, ep: EndpointRecord, sb: SandboxRecord, hint?: LeaveHint): Promise<void>;
  /**
   * Optional, at start-up, for a ready endpoint joined to a sandbox whose namespace exists: checks
   * that its interfaces are there, and makes them again as they were (name, MAC, addresses) when
   * they vanished and it can.
   */
  checkEndpoint?(net: NetworkRecord, config: Config, ep: EndpointRecord, sb: SandboxRecord): Promise<EndpointCheck>;
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
  ensure(input: NetworkParseInput, config: Config, ask: SubnetAsk): Promise<GlobalNetworkView>;
  /** The cluster's network of that name; undefined when it has none. */
  lookup(name: string): Promise<GlobalNetworkView | undefined>;
  list(): Promise<GlobalNetworkView[]>;
  /** Returns "addr/len"; address: the one asked for (without length), else the next free one. */
  requestAddress(net: NetworkRecord, family: 4 | 6, address: string | undefined, owner: string): Promise<string>;
  /** Never fails because the store does not answer: the release is retried until it does. */
  releaseAddress(net: NetworkRecord, family: 4 | 6, address: string, owner: string): Promise<void>;
  /** What inspect shows beyond the record (VNI, the hosts that have endpoints). */
  describe(net: NetworkRecord): Promise<Record<string, unknown>>;
}

/** What checkEndpoint found: all there, made again (detail for the log), or lost for good (why). */
export type EndpointCheck = { state: 'ok' } | { state: 'repaired'; detail: string } | { state: 'lost'; reason: string };

export interface PlanContext {
  /** The other networks of this driver, as stored. */
  networks: NetworkRecord[];
}

export interface JoinContext {
  /** The sandbox's other endpoints, as stored (none: the endpoint is the sandbox's first). */
  peers: EndpointRecord[];
  /** The interface name asked for inside the sandbox (validated); default: the driver's own choice. */
  ifname?: string;
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
}

/** The parse step of drivers that take no options and have no addresses (null, host). */
export function parseNoOptions(driver: string, input: NetworkParseInput): Record<string, never> {
  const keys = Object.keys(input.options);
  if (keys.length > 0) throw new InvalidArgumentError(`options.${keys[0]}`, `the ${driver} driver takes no options`);
  if (input.enableIPv6) throw new InvalidArgumentError('ipv6', `the ${driver} driver has no addresses of its own`);
  return {};
}
