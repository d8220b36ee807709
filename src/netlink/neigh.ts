// Permanent IPv4/IPv6 neighbour entries (ARP/ND): add, delete, list; and an interface's neighbour
// solicitation (its parameters in the ARP or ND table). Limits: only permanent entries are
// created; proxy entries and the bridge FDB (see fdb.ts) are out of scope here.
import { FlagsNew, rt } from 'netlink';
import { KernelError } from '../errors.js';
import { body, u32 } from './encode.js';
import type { NetlinkHandle } from './handle.js';
import { afOf, familyOfAf } from './af.js';
import { formatIp, formatMac, parseIp, parseMac, type Family } from '../ip/index.js';
import { linkIndex } from './links.js';
import { validateBoolean, validateLinkRef, type LinkRef } from './validate.js';

export interface NeighborSpec {
  dev: LinkRef;
  ip: string;
  mac: string;
}

export interface Neighbor {
  /** ifindex of the link. */
  index: number;
  family: Family;
  ip: string;
  mac?: string;
  /** NUD states as iproute2 names them: permanent, reachable, stale, noarp, … */
  state: string[];
}

/** Names of the set flags of a parsed flags object ({permanent: true, …} → ['permanent']). */
export function flagNames(flags: object | undefined): string[] {
  return Object.entries(flags ?? {})
    .filter(([k, v]) => v === true && k !== '__unknown')
    .map(([k]) => k);
}

async function neighBody(h: NetlinkHandle, spec: { dev: LinkRef; ip: string; mac?: string }, permanent: boolean): Promise<{ ip: string; msg: Uint8Array[] }> {
  validateLinkRef(spec.dev, 'dev');
  const ip = parseIp(spec.ip, 'ip');
  const mac = spec.mac === undefined ? undefined : parseMac(spec.mac, 'mac');
  const ifindex = await linkIndex(h, spec.dev, 'dev');
  const data: rt.Neighbor = { family: afOf(ip.family), ifindex };
  if (permanent) data.state = { permanent: true };
  const attrs: rt.NeighborAttrs = { dst: ip.bytes };
  if (mac) attrs.lladdr = mac;
  return { ip: ip.address, msg: body(rt.formatNeighborMessage, { kind: 'neighbor', data, attrs }) };
}

/**
 * Adds a permanent neighbour entry (fails with EEXIST if one exists, unless replace).
 * Equivalent to: `ip neigh add IP lladdr MAC dev DEV nud permanent` (`ip neigh replace` with replace)
 */
export async function addNeighbor(h: NetlinkHandle, spec: NeighborSpec, opts: { replace?: boolean } = {}): Promise<void> {
  parseMac(spec.mac, 'mac');
  const replace = validateBoolean(opts.replace, 'replace') ?? false;
  const { ip, msg } = await neighBody(h, spec, true);
  const flags = FlagsNew.CREATE | (replace ? FlagsNew.REPLACE : FlagsNew.EXCL);
  await h.request(`neigh add ${ip} lladdr ${spec.mac} dev ${spec.dev}`, rt.MessageType.NEWNEIGH, msg, flags);
}

/**
 * Deletes a neighbour entry; with ifExists, a missing entry is not an error. Resolves true
 * when something was deleted.
 * Equivalent to: `ip neigh del IP dev DEV`
 */
export async function deleteNeighbor(h: NetlinkHandle, spec: { dev: LinkRef; ip: string }, opts: { ifExists?: boolean } = {}): Promise<boolean> {
  const { ip, msg } = await neighBody(h, spec, false);
  try {
    await h.request(`neigh del ${ip} dev ${spec.dev}`, rt.MessageType.DELNEIGH, msg);
    return true;
  } catch (err) {
    if (opts.ifExists && err instanceof KernelError && err.errnoCode === 'ENOENT') return false;
    throw err;
  }
}

/** The typed Neighbor of a parsed message; undefined for non-IP families (the bridge FDB). */
export function parseNeighbor(msg: rt.NeighborMessage): Neighbor | undefined {
  const family = familyOfAf(msg.data.family);
  if (family === undefined || !msg.attrs.dst) return undefined;
  const out: Neighbor = { index: msg.data.ifindex ?? 0, family, ip: formatIp(msg.attrs.dst), state: flagNames(msg.data.state) };
  if (msg.attrs.lladdr && msg.attrs.lladdr.length > 0) out.mac = formatMac(msg.attrs.lladdr);
  return out;
}

/** Equivalent to: `ip [-4|-6] neigh show [dev DEV]` */
export async function listNeighbors(h: NetlinkHandle, filter: { dev?: LinkRef; family?: Family } = {}): Promise<Neighbor[]> {
  const index = filter.dev === undefined ? undefined : await linkIndex(h, filter.dev, 'dev');
  const family = filter.family === undefined ? 0 : afOf(filter.family);
  // With a device, the kernel sends only its entries (NDA_IFINDEX in a dump request).
  const attrs = index === undefined ? {} : { ifindex: u32(index) };
  const msgs = await h.dump('neigh show', rt.MessageType.GETNEIGH, body(rt.formatNeighborMessage, { kind: 'neighbor', data: { family }, attrs }));
  return msgs
    .flatMap((m) => (m.kind === 'neighbor' ? [parseNeighbor(m)] : []))
    .filter((n): n is Neighbor => n !== undefined && (index === undefined || n.index === index) && (family === 0 || afOf(n.family) === family));
}

/**
 * How often and how many times the interface asks for an address it has no neighbour entry for
 * (multicast solicitations): its parameters in the ARP table (IPv4) or the ND table (IPv6). One
 * request on the handle of the interface's namespace, where the sysctl files
 * (net.ipv4.neigh.DEV.retrans_time_ms, mcast_solicit) cost a namespace switch and grew slower
 * with the number of namespaces on the machine.
 * Equivalent to: `ip ntable change name arp_cache dev DEV retrans MS mcast_probes N` (ndisc_cache for IPv6)
 */
export async function setNeighSolicit(h: NetlinkHandle, index: number, family: Family, solicit: { intervalMs: number; probes: number }): Promise<void> {
  const parms: rt.NeighborTableParams = { ifindex: index, retransTime: BigInt(solicit.intervalMs), mcastProbes: solicit.probes };
  const msg = body(rt.formatNeighborTableMessage, { kind: 'neighborTable', data: { family: afOf(family) }, attrs: { name: family === 4 ? 'arp_cache' : 'ndisc_cache', parms } });
  await h.request(`ntable change dev ${index} retrans ${solicit.intervalMs} mcast_probes ${solicit.probes}`, rt.MessageType.SETNEIGHTBL, msg);
}
