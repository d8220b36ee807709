// Endpoints: one veth pair created in one netlink request — host end on the bridge and up, the
// container end born inside the sandbox with its name, MTU and MAC (the applier configures it
// there: addresses, up, default route), or left in the host namespace for the Docker engine. The
// bridge's ifindex is remembered and the peer's comes back with the create, so a join asks
// nothing first. The host
// end, a bridge port, never has IPv6: its link-local routes (fe80::/64 on every port) made each
// new port slower than the one before.
// Limits: hairpin on the bridge port only when the userland proxy is off (as Docker).
import { randomBytes } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { InvalidArgumentError } from '../../src/errors.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../../src/core/model.js';
import type { EndpointCheck, HostSysctl, JoinInfo } from '../../src/contract/driver.js';
import type { DockerJoinData } from '../../src/contract/handback.js';
import {
  addVeth, deleteLink, findLink, linkIndex, setBridgePort, type NetlinkHandle, type NetlinkHandlePool,
} from '../../src/netlink/index.js';
import type { BridgeConfig } from './config.js';
import { LINK_GROUP } from './device.js';

/** What the bridge driver keeps per endpoint (stored as driverData; a detached one's notes the engine's Join). */
export interface BridgeEndpointData extends DockerJoinData {
  hostIfname: string;
  mac: string;
  /** Detached endpoints only: the container end, left in the host namespace for the engine to move. */
  containerIfname?: string;
}

/** Whether the endpoint's pair was made detached, in the daemon's namespace (as its data records), rather than born with one end in a sandbox. */
export function createdDetached(ep: EndpointRecord): boolean {
  return (ep.driverData as Partial<BridgeEndpointData> | undefined)?.containerIfname !== undefined;
}

/** The host end's name: `veth` + 7 hex digits of the endpoint id (≤ 15 characters). */
export function hostIfnameFor(endpointId: string): string {
  return `veth${endpointId.slice(0, 7)}`;
}

/** The endpoint's host end: as its driver data names it, else the name it gets by default. */
export function hostIfnameOf(ep: EndpointRecord): string {
  return (ep.driverData as Partial<BridgeEndpointData> | undefined)?.hostIfname ?? hostIfnameFor(ep.id);
}

/** Docker's container MAC: 02:42 followed by the IPv4 address bytes; random when there is none. */
export function macFor(ipv4Cidr: string | undefined): string {
  const ip = ipv4Cidr?.split('/')[0];
  const bytes = ip && isIPv4(ip) ? [0x02, 0x42, ...ip.split('.').map(Number)] : [0x02, ...randomBytes(5)];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/**
 * Bridge ifindexes by name. A bridge deleted and made again behind cnmkit's back gets a new index
 * (the kernel does not reuse them soon): a create that fails on a remembered index is tried once
 * more with the index looked up again.
 */
export class BridgeIndexes {
  private readonly known = new Map<string, number>();

  async create<T>(h: NetlinkHandle, bridge: string, make: (master: number) => Promise<T>): Promise<T> {
    const remembered = this.known.get(bridge);
    const master = remembered ?? (await linkIndex(h, bridge, 'bridge'));
    this.known.set(bridge, master);
    try {
      return await make(master);
    } catch (err) {
      this.known.delete(bridge);
      if (remembered === undefined) throw err;
      const current = await linkIndex(h, bridge, 'bridge');
      if (current === remembered) throw err;
      this.known.set(bridge, current);
      return make(current);
    }
  }

  forget(bridge: string): void {
    this.known.delete(bridge);
  }
}

/**
 * Turns IPv6 off on a bridge port just made in the daemon's namespace (through the context), before
 * its carrier comes up (until then the kernel has configured no IPv6 on it): written, not read first.
 * Equivalent to: `sysctl -w net.ipv6.conf.PORT.disable_ipv6=1`
 */
function noIPv6OnPort(sysctl: HostSysctl, ifname: string): void {
  sysctl.set(`net/ipv6/conf/${ifname}/disable_ipv6`, '1');
}

/**
 * The veth pair of a join, the container end born inside the sandbox with its final name, MTU
 * and MAC; the applier configures it there. Returns the end's name and index inside.
 * Equivalent to: `ip link add vethX master BR mtu M up type veth peer name ethN netns SB address MAC mtu M`
 */
export async function createInSandbox(
  pool: NetlinkHandlePool, bridges: BridgeIndexes, bridge: string, net: NetworkRecord, config: BridgeConfig, ep: EndpointRecord, sb: SandboxRecord,
  opts: { hairpin: boolean; ifname: string; sysctl: HostSysctl },
): Promise<{ index?: number; data: BridgeEndpointData }> {
  if (sb.kind === 'host') throw new InvalidArgumentError('sandbox', `sandbox ${sb.name} is the host namespace: it cannot join bridge network ${net.name}`);
  const host = pool.get();
  const data: BridgeEndpointData = { hostIfname: hostIfnameFor(ep.id), mac: ep.macAddress ?? macFor(ep.ipv4) };
  const mtu = config.mtu;
  const created = await bridges.create(host, bridge, (master) => addVeth(host, {
    name: data.hostIfname, master, up: true, group: LINK_GROUP, ...(mtu ? { mtu } : {}),
    peer: { name: opts.ifname, nsPath: sb.netnsPath, mac: data.mac, ...(mtu ? { mtu } : {}) },
  }));
  try {
    noIPv6OnPort(opts.sysctl, data.hostIfname);
    if (opts.hairpin) await setBridgePort(host, created.index ?? data.hostIfname, { hairpin: true });
  } catch (err) {
    await deleteLink(host, data.hostIfname, { ifExists: true });
    throw err;
  }
  return { ...(created.peerIndex !== undefined ? { index: created.peerIndex } : {}), data };
}

/**
 * A detached endpoint (the Docker engine's flow): both ends in the host namespace, the host end
 * on the bridge and up, the container end with its MAC, left down for the engine to move.
 * Equivalent to: `ip link add vethX master BR up type veth peer name cX address MAC`
 */
export async function createDetached(
  pool: NetlinkHandlePool, bridges: BridgeIndexes, bridge: string, config: BridgeConfig, ep: EndpointRecord, opts: { hairpin: boolean; sysctl: HostSysctl },
): Promise<BridgeEndpointData> {
  const host = pool.get();
  const data: BridgeEndpointData = { hostIfname: hostIfnameFor(ep.id), containerIfname: `c${ep.id.slice(0, 10)}`, mac: ep.macAddress ?? macFor(ep.ipv4) };
  const mtu = config.mtu;
  const created = await bridges.create(host, bridge, (master) => addVeth(host, {
    name: data.hostIfname, master, up: true, group: LINK_GROUP, ...(mtu ? { mtu } : {}),
    peer: { name: data.containerIfname!, mac: data.mac, ...(mtu ? { mtu } : {}) },
  }));
  try {
    noIPv6OnPort(opts.sysctl, data.hostIfname);
    if (opts.hairpin) await setBridgePort(host, created.index ?? data.hostIfname, { hairpin: true });
  } catch (err) {
    await deleteLink(host, data.hostIfname, { ifExists: true });
    throw err;
  }
  return data;
}

/**
 * After a restart: the endpoint's bridge port and its interface in the sandbox must still be one
 * veth pair. Vanished (deleted from inside the sandbox, say): missing, the port removed, for the
 * controller to join again with the same name, MAC and addresses. The name taken by another
 * device inside: lost (the caller removes the endpoint).
 */
export async function checkJoined(pool: NetlinkHandlePool, ep: EndpointRecord, sb: SandboxRecord): Promise<EndpointCheck> {
  if (sb.kind === 'host' || !ep.ifname) return { state: 'ok' };
  const hostIfname = hostIfnameOf(ep);
  const port = await findLink(pool.get(), hostIfname);
  const inside = await findLink(pool.get(sb.netnsPath), ep.ifname);
  if (port?.kind === 'veth' && inside?.kind === 'veth' && port.peerIndex === inside.index && inside.peerIndex === port.index) return { state: 'ok' };
  // A port whose peer is not the endpoint's interface: the pair goes, to be made again.
  if (port) await deleteLink(pool.get(), hostIfname, { ifExists: true });
  if (inside) return { state: 'lost', reason: `${ep.ifname} in sandbox ${sb.name} is another device now` };
  return { state: 'missing', detail: `interface ${ep.ifname} had vanished from sandbox ${sb.name}` };
}

/** Equivalent to: `ip link del vethX` (its peer in the sandbox goes with it). Idempotent. */
export async function leaveSandbox(pool: NetlinkHandlePool, ep: EndpointRecord): Promise<void> {
  await deleteLink(pool.get(), hostIfnameOf(ep), { ifExists: true });
}

/**
 * What a bridge endpoint looks like from the sandbox: its addresses, the bridge's gateways for the
 * default routes (none on an internal network, which also needs no other way out; no IPv4 one in
 * cnmkit's sandboxes when the bridge has no IPv4 address, inhibit_ipv4 — the Docker engine still
 * gets it, as from Docker's own bridge, else it would add a gateway bridge), IPv6 on only on an
 * IPv6 network (as Docker: no link-local address, no DAD or MLD flooded to every port).
 */
export function bridgeJoinInfo(net: NetworkRecord, config: BridgeConfig, ep: EndpointRecord, src: JoinInfo['src']): JoinInfo {
  const gw4 = net.ipv4[0]?.gateway?.split('/')[0];
  const gw6 = net.ipv6[0]?.gateway?.split('/')[0];
  const v4Gateway = gw4 && !config.internal && (src.where === 'host' || (ep.ipv4 && !config.inhibitIPv4));
  return {
    src, ...(src.where === 'host' ? { dstPrefix: config.ifacePrefix } : { dstName: src.name }),
    ...(ep.ipv4 ? { ipv4: ep.ipv4 } : {}), ...(ep.ipv6 ? { ipv6: ep.ipv6 } : {}),
    ...(v4Gateway ? { gateway: gw4 } : {}),
    ...(gw6 && ep.ipv6 && !config.internal ? { gatewayV6: gw6 } : {}),
    routes: [], noGateway: config.internal, ipv6Enabled: net.ipv6.length > 0,
  };
}
