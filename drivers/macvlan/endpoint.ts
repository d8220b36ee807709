// Endpoints: one macvlan link on the network's parent per endpoint. For cnmkit's own sandboxes it
// is born inside the sandbox (IFLA_NET_NS_FD, one request) with its name, MAC and MTU, then given
// its addresses and routes there; for the Docker engine it is left in the daemon's namespace for
// the engine to move. MAC: the one asked for, or Docker's 02:42 + the IPv4 address bytes.
// Limits: the host cannot reach its own macvlan children (the kernel passes no frames between a
// parent and its macvlans); there is no host-side device, so nothing is published.
import { randomBytes } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { InvalidArgumentError } from '../../src/errors.js';
import { ensureSysctl, runInNetns, validateIfname } from '../../src/netns/index.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../../src/core/model.js';
import type { EndpointCheck } from '../../src/contract/driver.js';
import {
  addAddress, addMacvlan, addRoute, deleteLink, findLink, linkIndex, listLinks, listRoutes, setLinkUp, type NetlinkHandle, type NetlinkHandlePool,
} from '../../src/netlink/index.js';
import type { MacvlanConfig } from './config.js';
import { LINK_GROUP } from './parent.js';

/** What the macvlan driver keeps per endpoint (stored as driverData). */
export interface MacvlanEndpointData {
  mac: string;
  /** Detached endpoints only: the link in the daemon's namespace, for the engine to move. */
  hostIfname?: string;
}

/** A detached endpoint's link in the daemon's namespace: `mv` + 12 hex digits of the endpoint id. */
export function detachedIfnameFor(endpointId: string): string {
  return `mv${endpointId.slice(0, 12)}`;
}

/** Docker's container MAC: 02:42 followed by the IPv4 address bytes; random (locally administered) when there is none. */
export function macFor(ipv4Cidr: string | undefined): string {
  const ip = ipv4Cidr?.split('/')[0];
  const bytes = ip && isIPv4(ip) ? [0x02, 0x42, ...ip.split('.').map(Number)] : [0x02, ...randomBytes(5)];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

function linkSpec(config: MacvlanConfig, name: string, mac: string) {
  return { name, parent: config.parentName!, mode: config.mode, mac, group: LINK_GROUP, ...(config.mtu !== undefined ? { mtu: config.mtu } : {}) };
}

async function nextIfname(sbh: NetlinkHandle, prefix: string): Promise<string> {
  const taken = new Set((await listLinks(sbh)).map((l) => l.name));
  for (let i = 0; ; i++) if (!taken.has(`${prefix}${i}`)) return `${prefix}${i}`;
}

/** IPv6 on the interface only on an IPv6 network (cnmkit's sandboxes have it off by default, as Docker's). */
function setIPv6(sb: SandboxRecord, ifname: string, on: boolean): void {
  if (sb.kind === 'named' && !on) return;
  runInNetns(sb.netnsPath, () => ensureSysctl(`net/ipv6/conf/${ifname}/disable_ipv6`, on ? '0' : '1'));
}

async function hasDefaultRoute(sbh: NetlinkHandle, family: 4 | 6): Promise<boolean> {
  return (await listRoutes(sbh, { family })).some((r) => r.dst === 'default');
}

/**
 * Addresses, up, and (unless internal) default routes via the gateways the sandbox has none of yet
 * (a fresh sandbox of cnmkit's own has none: nothing is read back first).
 */
async function configureInside(
  sbh: NetlinkHandle, sb: SandboxRecord, link: { ifname: string; index: number }, net: NetworkRecord, config: MacvlanConfig, ep: EndpointRecord, fresh: boolean,
): Promise<void> {
  const { ifname, index } = link;
  setIPv6(sb, ifname, net.ipv6.length > 0);
  if (ep.ipv4) await addAddress(sbh, index, ep.ipv4);
  if (ep.ipv6) await addAddress(sbh, index, ep.ipv6, { nodad: true });
  await setLinkUp(sbh, index);
  if (config.internal) return;
  const gw4 = net.ipv4[0]?.gateway?.split('/')[0];
  if (gw4 && ep.ipv4 && (fresh || !(await hasDefaultRoute(sbh, 4)))) await addRoute(sbh, { dst: 'default', gateway: gw4, dev: index });
  const gw6 = net.ipv6[0]?.gateway?.split('/')[0];
  if (gw6 && ep.ipv6 && (fresh || !(await hasDefaultRoute(sbh, 6)))) await addRoute(sbh, { dst: 'default', gateway: gw6, dev: index, family: 6 });
}

/** Equivalent to: `ip link add ethN link PARENT netns SB address MAC [mtu M] type macvlan mode MODE` + inside setup. */
export async function joinSandbox(
  pool: NetlinkHandlePool, net: NetworkRecord, config: MacvlanConfig, ep: EndpointRecord, sb: SandboxRecord, opts: { fresh: boolean; ifname?: string },
): Promise<{ ifname: string; data: MacvlanEndpointData }> {
  if (sb.kind === 'host') throw new InvalidArgumentError('sandbox', `sandbox ${sb.name} is the host namespace: it cannot join macvlan network ${net.name}`);
  const sbh = pool.get(sb.netnsPath);
  const ifname = opts.ifname !== undefined ? validateIfname(opts.ifname, 'ifname') : opts.fresh ? 'eth0' : await nextIfname(sbh, 'eth');
  const data: MacvlanEndpointData = { mac: ep.macAddress ?? macFor(ep.ipv4) };
  await addMacvlan(pool.get(), { ...linkSpec(config, ifname, data.mac), nsPath: sb.netnsPath });
  try {
    await configureInside(sbh, sb, { ifname, index: await linkIndex(sbh, ifname) }, net, config, ep, opts.fresh);
  } catch (err) {
    await deleteLink(sbh, ifname, { ifExists: true });
    throw err;
  }
  return { ifname, data };
}

/** Deletes the endpoint's macvlan inside the sandbox, if that name is still a macvlan there. Idempotent. */
export async function leaveSandbox(pool: NetlinkHandlePool, ep: EndpointRecord, sb: SandboxRecord): Promise<void> {
  if (!ep.ifname || sb.kind === 'host') return;
  const sbh = pool.get(sb.netnsPath);
  const link = await findLink(sbh, ep.ifname);
  if (link?.kind === 'macvlan') await deleteLink(sbh, ep.ifname, { ifExists: true });
}

/**
 * A detached endpoint (the Docker engine's flow): the macvlan in the daemon's namespace with its
 * MAC, down, for the engine to move into the container. Equivalent to:
 * `ip link add mvID link PARENT address MAC type macvlan mode MODE`
 */
export async function createDetached(pool: NetlinkHandlePool, config: MacvlanConfig, ep: EndpointRecord): Promise<MacvlanEndpointData> {
  const data: MacvlanEndpointData = { mac: ep.macAddress ?? macFor(ep.ipv4), hostIfname: detachedIfnameFor(ep.id) };
  await addMacvlan(pool.get(), linkSpec(config, data.hostIfname!, data.mac));
  return data;
}

/** Deletes a detached endpoint's link where the engine left it (back in the daemon's namespace), if there. Idempotent. */
export async function deleteDetached(pool: NetlinkHandlePool, ep: EndpointRecord): Promise<void> {
  const name = (ep.driverData as Partial<MacvlanEndpointData> | undefined)?.hostIfname ?? detachedIfnameFor(ep.id);
  const link = await findLink(pool.get(), name);
  if (link?.kind === 'macvlan') await deleteLink(pool.get(), name, { ifExists: true });
}

/**
 * After a restart: the endpoint's interface must still be a macvlan in the sandbox. Vanished: made
 * again with the same name, MAC and addresses. The name taken by another device: lost.
 */
export async function checkJoined(pool: NetlinkHandlePool, net: NetworkRecord, config: MacvlanConfig, ep: EndpointRecord, sb: SandboxRecord): Promise<EndpointCheck> {
  if (sb.kind === 'host' || !ep.ifname) return { state: 'ok' };
  const inside = await findLink(pool.get(sb.netnsPath), ep.ifname);
  if (inside?.kind === 'macvlan') return { state: 'ok' };
  if (inside) return { state: 'lost', reason: `${ep.ifname} in sandbox ${sb.name} is another device now` };
  const { data } = await joinSandbox(pool, net, config, ep, sb, { fresh: false, ifname: ep.ifname });
  const addresses = [ep.ipv4, ep.ipv6].filter(Boolean).join(', ') || 'no address';
  return { state: 'repaired', detail: `interface ${ep.ifname} had vanished from sandbox ${sb.name}: made again on ${config.parentName} with ${addresses} and MAC ${data.mac}` };
}
