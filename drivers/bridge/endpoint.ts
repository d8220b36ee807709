// Endpoints: one veth pair created in one netlink request — host end on the bridge and up, the
// container end born inside the sandbox with its name, MTU and MAC — then, through a handle in
// the sandbox, the link up, its addresses and the default route via the gateway.
// Limits: hairpin on the bridge port is set with the `bridge` tool (the netlink layer has no
// bridge-port attributes yet), and only when the userland proxy is off.
import { randomBytes } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { spawnSync } from 'node:child_process';
import { InvalidArgumentError } from '../../src/errors.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../../src/cnm/model.js';
import {
  addAddress, addRoute, addVeth, deleteLink, listLinks, listRoutes, setLinkUp, type NetlinkHandle, type NetlinkHandlePool,
} from '../../src/netlink/index.js';
import type { BridgeConfig } from './config.js';
import { LINK_GROUP } from './device.js';

/** What the bridge driver keeps per endpoint (stored as driverData). */
export interface BridgeEndpointData {
  hostIfname: string;
  mac: string;
  /** Detached endpoints only: the container end, left in the host namespace for the engine to move. */
  containerIfname?: string;
}

/** The host end's name: `veth` + 7 hex digits of the endpoint id (≤ 15 characters). */
export function hostIfnameFor(endpointId: string): string {
  return `veth${endpointId.slice(0, 7)}`;
}

/** Docker's container MAC: 02:42 followed by the IPv4 address bytes; random when there is none. */
export function macFor(ipv4Cidr: string | undefined): string {
  const ip = ipv4Cidr?.split('/')[0];
  const bytes = ip && isIPv4(ip) ? [0x02, 0x42, ...ip.split('.').map(Number)] : [0x02, ...randomBytes(5)];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

async function nextIfname(sb: NetlinkHandle, prefix: string): Promise<string> {
  const taken = new Set((await listLinks(sb)).map((l) => l.name));
  for (let i = 0; ; i++) if (!taken.has(`${prefix}${i}`)) return `${prefix}${i}`;
}

async function hasDefaultRoute(sb: NetlinkHandle, family: 4 | 6): Promise<boolean> {
  return (await listRoutes(sb, { family })).some((r) => r.dst === 'default');
}

/**
 * Configures the container end inside the sandbox: up, addresses, default routes. In a fresh
 * sandbox of cnmkit's own (only lo, no routes) nothing needs reading back first.
 */
async function configureInside(sbh: NetlinkHandle, ifname: string, net: NetworkRecord, ep: EndpointRecord, config: BridgeConfig, fresh: boolean): Promise<void> {
  await setLinkUp(sbh, ifname);
  if (ep.ipv4) await addAddress(sbh, ifname, ep.ipv4);
  if (ep.ipv6) await addAddress(sbh, ifname, ep.ipv6, { nodad: true });
  if (config.internal) return;
  const noDefault = async (family: 4 | 6): Promise<boolean> => fresh || !(await hasDefaultRoute(sbh, family));
  const gw4 = net.ipv4[0]?.gateway?.split('/')[0];
  if (gw4 && ep.ipv4 && !config.inhibitIPv4 && (await noDefault(4))) await addRoute(sbh, { dst: 'default', gateway: gw4, dev: ifname });
  const gw6 = net.ipv6[0]?.gateway?.split('/')[0];
  if (gw6 && ep.ipv6 && (await noDefault(6))) await addRoute(sbh, { dst: 'default', gateway: gw6, dev: ifname, family: 6 });
}

/** Equivalent to: `ip link add vethX master BR mtu M up type veth peer name ethN netns SB address MAC mtu M` + inside setup. */
export async function joinSandbox(
  pool: NetlinkHandlePool, bridge: string, net: NetworkRecord, config: BridgeConfig, ep: EndpointRecord, sb: SandboxRecord,
  opts: { hairpin: boolean; peers?: EndpointRecord[] },
): Promise<{ ifname: string; data: BridgeEndpointData }> {
  if (sb.kind === 'host') throw new InvalidArgumentError('sandbox', `sandbox ${sb.name} is the host namespace: it cannot join bridge network ${net.name}`);
  const host = pool.get();
  const sbh = pool.get(sb.netnsPath);
  const fresh = sb.kind === 'named' && opts.peers?.length === 0;
  const ifname = fresh ? `${config.ifacePrefix}0` : await nextIfname(sbh, config.ifacePrefix);
  const data: BridgeEndpointData = { hostIfname: hostIfnameFor(ep.id), mac: ep.macAddress ?? macFor(ep.ipv4) };
  const mtu = config.mtu;
  await addVeth(host, {
    name: data.hostIfname, master: bridge, up: true, group: LINK_GROUP, ...(mtu ? { mtu } : {}),
    peer: { name: ifname, nsPath: sb.netnsPath, mac: data.mac, ...(mtu ? { mtu } : {}) },
  });
  try {
    await configureInside(sbh, ifname, net, ep, config, fresh);
    if (opts.hairpin) setHairpin(data.hostIfname);
  } catch (err) {
    await deleteLink(host, data.hostIfname, { ifExists: true });
    throw err;
  }
  return { ifname, data };
}

/**
 * A detached endpoint (the Docker engine's flow): both ends in the host namespace, the host end
 * on the bridge and up, the container end with its MAC, left down for the engine to move.
 * Equivalent to: `ip link add vethX master BR up type veth peer name cX address MAC`
 */
export async function createDetached(pool: NetlinkHandlePool, bridge: string, config: BridgeConfig, ep: EndpointRecord, opts: { hairpin: boolean }): Promise<BridgeEndpointData> {
  const host = pool.get();
  const data: BridgeEndpointData = { hostIfname: hostIfnameFor(ep.id), containerIfname: `c${ep.id.slice(0, 10)}`, mac: ep.macAddress ?? macFor(ep.ipv4) };
  const mtu = config.mtu;
  await addVeth(host, {
    name: data.hostIfname, master: bridge, up: true, group: LINK_GROUP, ...(mtu ? { mtu } : {}),
    peer: { name: data.containerIfname!, mac: data.mac, ...(mtu ? { mtu } : {}) },
  });
  try {
    if (opts.hairpin) setHairpin(data.hostIfname);
  } catch (err) {
    await deleteLink(host, data.hostIfname, { ifExists: true });
    throw err;
  }
  return data;
}

/** Equivalent to: `ip link del vethX` (its peer in the sandbox goes with it). Idempotent. */
export async function leaveSandbox(pool: NetlinkHandlePool, ep: EndpointRecord): Promise<void> {
  const data = ep.driverData as Partial<BridgeEndpointData> | undefined;
  await deleteLink(pool.get(), data?.hostIfname ?? hostIfnameFor(ep.id), { ifExists: true });
}

/** Equivalent to: `bridge link set dev vethX hairpin on`. */
function setHairpin(ifname: string): void {
  const r = spawnSync('bridge', ['link', 'set', 'dev', ifname, 'hairpin', 'on'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bridge link set dev ${ifname} hairpin on: ${r.stderr.trim() || r.error?.message}`);
}
