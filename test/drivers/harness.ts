// The conformance suite's harness: a DriverContext bound to a throwaway namespace that stands for
// the daemon's (netlink handles, firewall, sysctls all there), which counts every call a driver
// makes through it and can make the Nth one throw; the records a controller would keep; and the
// kernel state of a namespace read with iproute2 and nft, to diff before/after.
// Limits: sysctls a driver writes inside a sandbox (runInNetns) do not go through the context, so
// they are neither counted nor failed.
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { isFresh, type Driver, type DriverContext, type Placement } from '../../src/contract/driver.js';
import { applyJoinInfo } from '../../src/controller/apply.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../../src/core/model.js';
import { withRollback } from '../../src/core/steps.js';
import { createFirewall, type FirewallBackend } from '../../src/firewall/index.js';
import { NetlinkHandlePool, type NetlinkHandle } from '../../src/netlink/index.js';
import { ensureSysctl, runInNetns, setSysctl } from '../../src/netns/index.js';
import { PortAllocator } from '../../src/portmap/allocator.js';
import { PortPublisher } from '../../src/portmap/publisher.js';
import type { TestNs } from '../helpers/netns.js';
import type { DriverFixture } from './fixture.js';

/** The error the context throws at the armed call. */
export class InjectedFailure extends Error {
  constructor(readonly call: string) {
    super(`injected failure at ${call}`);
    this.name = 'InjectedFailure';
  }
}

/** Counts calls through the context; throws once at call number `failAt` (1-based) when armed. */
export class Faults {
  calls: string[] = [];
  private failAt = 0;

  arm(n: number): void {
    this.calls = [];
    this.failAt = n;
  }

  disarm(): void {
    this.failAt = 0;
  }

  hit(what: string): void {
    this.calls.push(what);
    if (this.failAt !== 0 && this.calls.length === this.failAt) {
      this.failAt = 0;
      throw new InjectedFailure(`call ${this.calls.length} (${what})`);
    }
  }
}

const NETLINK_CALLS = new Set(['request', 'requestRaw', 'requestInBackground', 'dump']);

/** Every call that talks to the kernel goes through faults first. */
function faultyHandle(h: NetlinkHandle, faults: Faults, where: string): NetlinkHandle {
  return new Proxy(h, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      if (!NETLINK_CALLS.has(String(prop))) return value.bind(target);
      return (...args: unknown[]) => {
        faults.hit(`netlink ${String(prop)} ${String(args[0])} in ${where}`);
        return value.apply(target, args);
      };
    },
  });
}

/** Handles whose "host" (no path) is the throwaway namespace. */
class ThrowawayPool extends NetlinkHandlePool {
  private readonly wrapped = new Map<NetlinkHandle, NetlinkHandle>();
  constructor(private readonly hostPath: string, private readonly faults: Faults) {
    super();
  }

  override get(nsPath?: string): NetlinkHandle {
    const h = super.get(nsPath ?? this.hostPath);
    let w = this.wrapped.get(h);
    if (!w) {
      w = faultyHandle(h, this.faults, nsPath ?? 'host');
      this.wrapped.set(h, w);
    }
    return w;
  }

  override has(nsPath?: string): boolean {
    return super.has(nsPath ?? this.hostPath);
  }

  override release(nsPath?: string): boolean {
    return super.release(nsPath ?? this.hostPath);
  }
}

function faultyFirewall(fw: FirewallBackend, faults: Faults): FirewallBackend {
  return new Proxy(fw, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        faults.hit(`firewall ${String(prop)}`);
        return value.apply(target, args);
      };
    },
  });
}

export interface Bench {
  ctx: DriverContext;
  faults: Faults;
  firewall: FirewallBackend;
  close(): void;
}

/** A context acting in `host` (the daemon's namespace as far as the driver knows), firewall initialised. */
export async function bench(host: TestNs): Promise<Bench> {
  const faults = new Faults();
  const logger = pino({ level: 'silent' });
  const firewall = await createFirewall({ backend: 'nftables', netnsPath: host.path, logger });
  await firewall.init();
  const netlink = new ThrowawayPool(host.path, faults);
  const fw = faultyFirewall(firewall, faults);
  const ctx: DriverContext = {
    logger,
    netlink,
    firewall: fw,
    ports: new PortPublisher(new PortAllocator({ ephemeralRange: { start: 49152, end: 49215 } }), undefined, fw),
    sysctl: {
      ensure: (key, value) => {
        faults.hit(`sysctl ${key}`);
        return runInNetns(host.path, () => ensureSysctl(key, value));
      },
      set: (key, value) => {
        faults.hit(`sysctl ${key}`);
        return runInNetns(host.path, () => setSysctl(key, value));
      },
    },
  };
  return { ctx, faults, firewall, close: () => netlink.closeAll() };
}

const newId = (): string => randomBytes(32).toString('hex');
const now = (): string => new Date().toISOString();

/** The records a controller would keep for one network, one sandbox and its endpoint there. */
export function records(fixture: DriverFixture, sandbox: TestNs | undefined, tag = 'c'): { net: NetworkRecord; sb: SandboxRecord; ep: EndpointRecord } {
  const net: NetworkRecord = {
    id: newId(), name: `conf-${fixture.name}-${tag}`, driver: fixture.name, scope: 'local', internal: fixture.network.input.internal,
    enableIPv6: fixture.network.input.enableIPv6, options: fixture.network.input.options, labels: {}, config: {},
    ipv4: fixture.network.ipv4 ?? [], ipv6: fixture.network.ipv6 ?? [], state: 'ready', created: now(),
  };
  const sb: SandboxRecord = sandbox
    ? { id: newId(), name: sandbox.name, kind: 'path', netnsPath: sandbox.path, labels: {}, state: 'ready', created: now() }
    : { id: newId(), name: 'host', kind: 'host', netnsPath: '', labels: {}, state: 'ready', created: now() };
  const ep: EndpointRecord = {
    id: newId(), networkId: net.id, sandboxId: sb.id, name: `${sb.name}-${net.name}`, ports: [], driverData: {}, state: 'ready', created: now(),
    ...(fixture.endpoint.ipv4 ? { ipv4: fixture.endpoint.ipv4 } : {}), ...(fixture.endpoint.ipv6 ? { ipv6: fixture.endpoint.ipv6 } : {}),
  };
  return { net, sb, ep };
}

/**
 * As the controller creates a network: parse, plan, (a global driver: made or joined in the
 * cluster, whose record gives id, subnets and config), create; the record gets the config.
 */
export async function createNetwork(d: Driver, fixture: DriverFixture, net: NetworkRecord): Promise<void> {
  let config = d.parse({ name: net.name, ...fixture.network.input });
  if (d.plan) config = await d.plan(net, config, { networks: [] });
  if (d.global) {
    const ask = { ...(fixture.network.ipv4?.[0] ? { subnet: fixture.network.ipv4[0].subnet } : {}), ...(fixture.network.ipv6?.[0] ? { subnetV6: fixture.network.ipv6[0].subnet } : {}) };
    const view = await d.global.ensure({ name: net.name, labels: net.labels, ...fixture.network.input }, config, ask);
    Object.assign(net, { id: view.id, scope: 'global', ipv4: view.ipv4, ipv6: view.ipv6 });
    config = view.config;
  }
  net.config = config;
  net.config = (await d.createNetwork(net, config)) ?? config;
}

/**
 * As the controller connects a sandbox: create the endpoint, join it (the interface born in the
 * sandbox where the driver can), apply its JoinInfo; a failure undoes what was done (leave, deleteEndpoint).
 */
export function connect(d: Driver, ctx: DriverContext, net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<void> {
  const placement: Placement = { kind: 'sandbox', sandbox: sb, peers: [] };
  return withRollback(async (undo) => {
    const created = await d.createEndpoint(net, net.config, ep, placement);
    if (created.driverData !== undefined) ep.driverData = created.driverData;
    if (!ep.macAddress && created.macAddress) ep.macAddress = created.macAddress;
    undo.push('driver endpoint', () => d.deleteEndpoint(net, net.config, ep));
    const joined = await d.join(net, net.config, ep, placement);
    undo.push('driver join', () => d.leave(net, net.config, ep, sb));
    if (joined.macAddress) ep.macAddress = joined.macAddress;
    if (joined.driverData !== undefined) ep.driverData = joined.driverData;
    if (joined.info) ep.ifname = await applyJoinInfo(ctx.netlink, sb, joined.info, { fresh: isFresh(placement) });
    for (const info of joined.extra ?? []) await applyJoinInfo(ctx.netlink, sb, info, { fresh: false });
  });
}

export async function disconnect(d: Driver, net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<void> {
  await d.leave(net, net.config, ep, sb);
  await d.deleteEndpoint(net, net.config, ep);
}

interface IpLink { ifname: string; flags: string[]; master?: string; address?: string; linkinfo?: { info_kind?: string } }
interface IpAddr { ifname: string; addr_info: { local: string; prefixlen: number }[] }
interface IpRoute { dst: string; gateway?: string; dev?: string; table?: string; type?: string; protocol?: string }

/** Links, addresses and routes of ns (and its nft ruleset), one line each, sorted: what a diff compares. */
export async function kernelState(ns: TestNs, withFirewall: boolean): Promise<string[]> {
  const [links, addrs, routes4, routes6, rules] = await Promise.all([
    ns.ipJson<IpLink[]>(['-d', 'link', 'show']),
    ns.ipJson<IpAddr[]>(['addr', 'show']),
    ns.ipJson<IpRoute[]>(['-4', 'route', 'show', 'table', 'all']),
    ns.ipJson<IpRoute[]>(['-6', 'route', 'show', 'table', 'all']),
    withFirewall ? ns.sh(['nft', 'list', 'ruleset']) : Promise.resolve(''),
  ]);
  const routes = [...routes4, ...routes6];
  // IPv6 link-local addresses and their routes are the kernel's own (made from a random MAC when a
  // link comes up, and kept by a bridge after its ports go): not compared.
  const linkLocal = (a: string): boolean => a.toLowerCase().startsWith('fe80:');
  const out = [
    ...links.map((l) => `link ${l.ifname} ${l.linkinfo?.info_kind ?? '-'} master=${l.master ?? '-'} ${l.flags.includes('UP') ? 'up' : 'down'}`),
    ...addrs.flatMap((a) => a.addr_info.filter((i) => !linkLocal(i.local)).map((i) => `addr ${a.ifname} ${i.local}/${i.prefixlen}`)),
    ...routes.filter((r) => !linkLocal(r.dst)).map((r) => `route ${r.type ?? 'unicast'} ${r.dst}${r.gateway ? ` via ${r.gateway}` : ''} dev ${r.dev ?? '-'} table ${r.table ?? 'main'}`),
  ];
  out.push(...rules.split('\n').map((l) => l.trim()).filter((l) => l !== '').map((l) => `nft ${l}`));
  return out.sort();
}

/** One rule of cnmkit's nft table tagged with owner, deleted by its handle (as an admin's `nft delete rule` would). */
export async function deleteOneRule(ns: TestNs, owner: string): Promise<boolean> {
  const listing = JSON.parse(await ns.sh(['nft', '-j', '-a', 'list', 'table', 'inet', 'cnmkit'])) as { nftables: { rule?: { chain: string; handle: number; comment?: string } }[] };
  const rule = listing.nftables.map((e) => e.rule).find((r) => r?.comment === `cnmkit:${owner}`);
  if (!rule) return false;
  await ns.sh(['nft', 'delete', 'rule', 'inet', 'cnmkit', rule.chain, 'handle', String(rule.handle)]);
  return true;
}
