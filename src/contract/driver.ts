// The Driver seam: a small interface every network driver implements, and the one context
// object through which a driver reaches everything else (no globals). Optional capabilities
// (port publishing) exist only on drivers that have them.
import type { Logger } from 'pino';
import { InvalidArgumentError } from '../errors.js';
import type { NetlinkHandlePool } from '../netlink/index.js';
import type { FirewallBackend } from '../firewall/index.js';
import type { PortPublisher } from '../portmap/publisher.js';
import type { PortSpec } from '../portmap/index.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../core/model.js';
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
  /** Kernel switches of the daemon's own namespace (net.* under /proc/sys, keys in slash form). */
  sysctl: HostSysctl;
  /** Cluster mode only (--cluster-store): global networks, VNIs, IPAM and peers in etcd. */
  cluster?: Cluster;
}

/** Kernel switches of one namespace: the daemon's (src/netns ensureSysctl), or a test's. */
export interface HostSysctl {
  /** Sets KEY to value unless it has it already; true when it was written. A key the kernel lacks is never written. */
  ensure(key: string, value: string): boolean;
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
  /**
   * Reads the live kernel state of a ready network and of its endpoints and reports every
   * difference from the store; changes nothing. Empty: all there.
   */
  check(net: NetworkRecord, config: Config, endpoints: CheckedEndpoint[]): Promise<CheckItem[]>;
  /** Optional: publishes ports of a joined endpoint; returns them resolved (host ports chosen). */
  publish?(net: NetworkRecord, config: Config, ep: EndpointRecord, ports: PortSpec[]): Promise<PortSpec[]>;
  /** Idempotent. */
  unpublish?(net: NetworkRecord, config: Config, ep: EndpointRecord): Promise<void>;
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
