// What drivers' check steps share: reading one device, its addresses and routes through a netlink
// handle and saying each difference from what the store expects as a CheckItem. Reads only.
// Limits: addresses and routes are compared as the kernel prints them (canonical CIDR text).
import { listAddresses, listRoutes, findLink, type Link, type NetlinkHandle } from '../netlink/index.js';
import type { FirewallBackend, FirewallNetwork } from '../firewall/index.js';
import { parseNetwork } from '../ip/index.js';
import type { EndpointRecord, SandboxRecord } from '../core/model.js';
import type { CheckItem } from './driver.js';

export function item(object: string, what: string, expected: string, found: string): CheckItem {
  return { object, what, expected, found };
}

/** `endpoint NAME of sandbox SB`, or `endpoint NAME` for one no sandbox of ours joins. */
export function endpointObject(ep: EndpointRecord, sb: SandboxRecord | undefined): string {
  return sb ? `endpoint ${ep.name} of sandbox ${sb.name}` : `endpoint ${ep.name}`;
}

export interface DeviceWant {
  kind: Link['kind'];
  /** The master it must be a port of, by name and ifindex (unknown when the master is missing: any master then passes). */
  master?: { index?: number; name: string };
  mac?: string;
  mtu?: number;
}

function describeLink(link: Link): string {
  return link.kind === 'other' ? `a ${link.type ?? 'device'}` : `a ${link.kind}`;
}

/**
 * The device `name` must exist, be of `want.kind`, be up, and have the master, MAC and MTU asked.
 * Returns it (undefined when missing or of another kind: nothing more can be read of it).
 */
export async function checkDevice(
  h: NetlinkHandle, name: string, want: DeviceWant, object: string, items: CheckItem[], where = 'host namespace',
): Promise<Link | undefined> {
  const link = await findLink(h, name);
  if (!link) {
    items.push(item(object, 'device', `${want.kind} ${name} in the ${where}`, 'missing'));
    return undefined;
  }
  if (link.kind !== want.kind) {
    items.push(item(object, 'device', `${want.kind} ${name}`, `${name} is ${describeLink(link)}`));
    return undefined;
  }
  if (!link.up) items.push(item(object, 'state', `${name} up`, `${name} down`));
  const master = want.master;
  if (master && (master.index === undefined ? link.master === undefined : link.master !== master.index))
    items.push(item(object, 'master', `${name} a port of ${master.name}`, link.master === undefined ? `${name} has no master` : `${name} has master ifindex ${link.master}`));
  if (want.mac && link.mac?.toLowerCase() !== want.mac.toLowerCase()) items.push(item(object, 'mac', `${name} ${want.mac}`, `${name} ${link.mac ?? 'no MAC'}`));
  if (want.mtu !== undefined && link.mtu !== want.mtu) items.push(item(object, 'mtu', `${name} mtu ${want.mtu}`, `${name} mtu ${link.mtu ?? '?'}`));
  return link;
}

/** Every CIDR of `want` must be an address of the link. */
export async function checkAddresses(h: NetlinkHandle, link: Link, want: string[], object: string, items: CheckItem[]): Promise<void> {
  if (want.length === 0) return;
  const have = (await listAddresses(h, { dev: link.index })).map((a) => a.cidr.toLowerCase());
  for (const cidr of want) {
    if (!have.includes(cidr.toLowerCase())) items.push(item(object, 'address', `${cidr} on ${link.name}`, have.length > 0 ? `${link.name} has ${have.join(', ')}` : `${link.name} has no address`));
  }
}

/** The connected route of each address (`SUBNET dev LINK`, as the kernel adds it) must be there. */
export async function checkConnectedRoutes(h: NetlinkHandle, link: Link, cidrs: string[], object: string, items: CheckItem[]): Promise<void> {
  if (cidrs.length === 0) return;
  const routes = (await listRoutes(h, { table: 'all' })).filter((r) => r.dev === link.index && r.dst !== 'default' && r.gateway === undefined);
  for (const cidr of cidrs) {
    const subnet = parseNetwork('address', cidr).text;
    if (!routes.some((r) => r.dst.toLowerCase() === subnet)) items.push(item(object, 'route', `${subnet} dev ${link.name}`, 'missing'));
  }
}

/**
 * A sandbox whose interface `link` should carry its default route via `gateway`: there must be a
 * default route of that family in the sandbox (via that gateway, or another network's).
 */
export async function checkDefaultRoute(h: NetlinkHandle, link: Link, gateway: string, object: string, items: CheckItem[]): Promise<void> {
  const family = gateway.includes(':') ? 6 : 4;
  const defaults = (await listRoutes(h, { family })).filter((r) => r.dst === 'default');
  if (defaults.length === 0) items.push(item(object, 'route', `default via ${gateway} dev ${link.name}`, `no IPv${family} default route`));
}

/** The network's firewall rules by owner tag: as many as the backend renders for it. */
export async function checkFirewallRules(fw: FirewallBackend, net: FirewallNetwork, object: string, items: CheckItem[]): Promise<void> {
  const { expected, found } = await fw.countNetworkRules(net);
  if (expected !== found) items.push(item(object, 'firewall rules', `${expected} ${fw.name} rules tagged cnmkit:${net.id}`, `${found}`));
}

/**
 * A veth endpoint's interface in its sandbox (the veth drivers' shared part): present, up, with the
 * MAC and MTU asked, paired with the host-side bridge port when that port was found, its addresses
 * and their connected routes. Returns it for what a driver checks on top (a default route).
 */
export async function checkVethInSandbox(
  h: NetlinkHandle, ep: EndpointRecord & { ifname: string }, sb: SandboxRecord, port: Link | undefined, want: { mac?: string; mtu?: number }, items: CheckItem[],
): Promise<Link | undefined> {
  const object = endpointObject(ep, sb);
  const inside = await checkDevice(h, ep.ifname, { kind: 'veth', ...want }, object, items, `sandbox ${sb.name}`);
  if (!inside) return undefined;
  if (port?.kind === 'veth' && inside.kind === 'veth' && inside.peerIndex !== port.index)
    items.push(item(object, 'peer', `${ep.ifname} the peer of bridge port ${port.name}`, `${ep.ifname} is paired with ifindex ${inside.peerIndex ?? '?'}`));
  const cidrs = [ep.ipv4, ep.ipv6].filter((c): c is string => !!c);
  await checkAddresses(h, inside, cidrs, object, items);
  await checkConnectedRoutes(h, inside, cidrs, object, items);
  return inside;
}
