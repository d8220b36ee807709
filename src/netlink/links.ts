// Link operations over a NetlinkHandle: create veth, bridge, vxlan, macvlan and vlan devices; change,
// move, query and delete links. Every input is checked before the kernel is asked anything.
// Limits: no VLAN filtering (not in this kernel), no bonds; one request per creation.
import fs from 'node:fs';
import { FlagsNew, ifla, rt, type StreamData } from 'netlink';
import { InvalidArgumentError, KernelError, NotFoundError } from '../errors.js';
import { validateIfname } from '../netns/index.js';
import { body, flatten, u16be, u32 } from './encode.js';
import type { NetlinkHandle, RawReply } from './handle.js';
import { parseIp, parseMac } from '../ip/index.js';
import { assignDefined, echoedIndexes, indexAndMtu, parseLink } from './link-parse.js';
import { MACVLAN_MODES, type Link, type LinkKind, type MacvlanMode } from './types.js';
import { ADDR_GEN_MODES, inet6AddrGenMode, type AddrGenMode } from './af.js';
import {
  validateBoolean, validateEnum, validateGroup, validateLinkRef, validateMtu, validateNetnsPath,
  validatePort, validateUint, validateVni, type LinkRef,
} from './validate.js';

/** Attributes any new link may be given. */
export interface LinkOptions {
  mtu?: number;
  mac?: string;
  /** Bring the link up in the same request. */
  up?: boolean;
  /** Bridge to attach the link to, by name or ifindex. */
  master?: LinkRef;
  group?: number;
}

export interface VethSpec extends LinkOptions {
  name: string;
  peer: {
    name: string;
    /** Namespace the peer is born in (path); the handle's own when omitted. */
    nsPath?: string;
    mtu?: number;
    mac?: string;
  };
}

export interface BridgeSpec extends LinkOptions {
  name: string;
  /** IGMP/MLD snooping (the kernel's default when unset: on). */
  mcastSnooping?: boolean;
}

export interface VxlanSpec extends LinkOptions {
  name: string;
  vni: number;
  /** Local tunnel endpoint (IPv4 or IPv6). */
  local?: string;
  /** UDP destination port (default 4789, the IANA port; the kernel's own default is 8472). */
  port?: number;
  /** MAC learning from received packets (default false: the FDB is programmed). */
  learning?: boolean;
  /** Answer ARP/ND from the neighbour table (default false). */
  proxy?: boolean;
  /** Underlay device, by name or ifindex. */
  underlay?: LinkRef;
  ttl?: number;
}

export interface MacvlanSpec extends LinkOptions {
  name: string;
  parent: LinkRef;
  /** Default 'bridge'. */
  mode?: MacvlanMode;
  /** Namespace the link is born in (path); the handle's own (the parent's) when omitted. */
  nsPath?: string;
}

export interface VlanSpec extends LinkOptions {
  name: string;
  parent: LinkRef;
  /** 802.1Q VLAN id, 1–4094. */
  id: number;
}

export interface LinkChanges {
  mtu?: number;
  mac?: string;
  name?: string;
  up?: boolean;
  /** A bridge by name or ifindex, or null to detach (`nomaster`). */
  master?: LinkRef | null;
  group?: number;
  /**
   * How the kernel makes the link's IPv6 link-local address: 'none' makes none (no DAD, router
   * solicitation or MLD report from the link; IPv6 stays on). Set before the link has a carrier.
   */
  addrGenMode?: AddrGenMode;
}

const RTEXT_FILTER_SKIP_STATS = 1 << 3;
const CREATE_EXCL = FlagsNew.CREATE | FlagsNew.EXCL;
/** Asks the kernel to send the created object back to the requester. */
const NLM_F_ECHO = 0x8;

interface CheckedOptions {
  mtu?: number;
  mac?: Buffer;
  up?: boolean;
  master?: LinkRef;
  group?: number;
}

function checkOptions(o: LinkOptions, prefix = ''): CheckedOptions {
  return {
    mtu: o.mtu === undefined ? undefined : validateMtu(o.mtu, `${prefix}mtu`),
    mac: o.mac === undefined ? undefined : parseMac(o.mac, `${prefix}mac`, { unicast: true }),
    up: validateBoolean(o.up, `${prefix}up`),
    master: o.master === undefined ? undefined : validateLinkRef(o.master, `${prefix}master`),
    group: o.group === undefined ? undefined : validateGroup(o.group, `${prefix}group`),
  };
}

function flagsFor(up: boolean | undefined): rt.Link {
  if (up === undefined) return {};
  return { flags: up ? { up: true } : {}, change: { up: true } };
}

function refMsg(ref: LinkRef): { data: rt.Link; attrs: ifla.LinkAttrs } {
  return typeof ref === 'number' ? { data: { index: ref }, attrs: {} } : { data: {}, attrs: { ifname: ref } };
}

function nsFd(nsPath: string, field: string): number {
  validateNetnsPath(nsPath, field);
  try {
    return fs.openSync(nsPath, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError('network namespace', nsPath, { cause: err });
    throw err;
  }
}

/**
 * Creates a link; resolves with the new link's ifindex and IFLA_LINK (a veth's peer) as the
 * kernel echoes them (kernels ≥ 6.3; empty before).
 */
async function newLink(h: NetlinkHandle, op: string, o: CheckedOptions, attrs: ifla.LinkAttrs): Promise<{ index?: number; link?: number }> {
  const master = o.master === undefined ? undefined : await linkIndex(h, o.master, 'master');
  const all: ifla.LinkAttrs = { ...attrs, mtu: o.mtu, address: o.mac, master, group: o.group };
  for (const k of Object.keys(all) as (keyof ifla.LinkAttrs)[]) if (all[k] === undefined) delete all[k];
  const replies = await h.requestRaw(op, rt.MessageType.NEWLINK, body(rt.formatLinkMessage, { kind: 'link', data: flagsFor(o.up), attrs: all }), CREATE_EXCL | NLM_F_ECHO);
  const echo = replies.find((r) => r.type === rt.MessageType.NEWLINK);
  return echo ? echoedIndexes(echo.data) : {};
}

function linkInfo(kind: string, data?: StreamData): Buffer {
  return flatten(ifla.formatInfo({ kind, data: data === undefined ? undefined : flatten(data) }));
}

/**
 * Creates a veth pair in one atomic request; the peer may be born directly in another
 * namespace with its name, MTU and MAC. If the kernel refuses, neither end exists. The peer
 * cannot be brought up in the same request (the kernel answers ENOTCONN): set it up through a
 * handle in its namespace. Resolves with the ifindex of both ends when the kernel echoes the new
 * link (6.3 and later), so that the peer can be configured without looking it up.
 * Equivalent to: `ip link add NAME [mtu M] [address MAC] [master BR] [up] type veth peer name PEER netns NS [mtu M] [address MAC]`
 */
export async function addVeth(h: NetlinkHandle, spec: VethSpec): Promise<{ index?: number; peerIndex?: number }> {
  const name = validateIfname(spec.name, 'name');
  const o = checkOptions(spec);
  if (typeof spec.peer !== 'object' || spec.peer === null) throw new InvalidArgumentError('peer', 'the peer of a veth (at least its name) is required');
  const peerName = validateIfname(spec.peer.name, 'peer.name');
  const p = checkOptions({ mtu: spec.peer.mtu, mac: spec.peer.mac }, 'peer.');
  const fd = spec.peer.nsPath === undefined ? undefined : nsFd(spec.peer.nsPath, 'peer.nsPath');
  try {
    const peerAttrs: ifla.LinkAttrs = { ifname: peerName };
    if (p.mtu !== undefined) peerAttrs.mtu = p.mtu;
    if (p.mac !== undefined) peerAttrs.address = p.mac;
    if (fd !== undefined) peerAttrs.netNsFd = fd;
    const peer = Buffer.concat([rt.formatLink({}), flatten(ifla.formatLinkAttrs(peerAttrs))]);
    const echo = await newLink(h, `link add ${name} type veth peer ${peerName}`, o, { ifname: name, linkinfo: linkInfo('veth', ifla.formatVethInfo({ peer })) });
    return assignDefined({}, { index: echo.index, peerIndex: echo.link });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Resolves with the new bridge's ifindex when the kernel echoes it (6.3 and later).
 * Equivalent to: `ip link add NAME [mtu M] [address MAC] [up] type bridge [mcast_snooping 0|1]`
 */
export async function addBridge(h: NetlinkHandle, spec: BridgeSpec): Promise<{ index?: number }> {
  const name = validateIfname(spec.name, 'name');
  const snooping = validateBoolean(spec.mcastSnooping, 'mcastSnooping');
  const data = snooping === undefined ? undefined : ifla.formatBridge({ mcastSnooping: Buffer.from([snooping ? 1 : 0]) });
  const echo = await newLink(h, `link add ${name} type bridge`, checkOptions(spec), { ifname: name, linkinfo: linkInfo('bridge', data) });
  return assignDefined({}, { index: echo.index });
}

/**
 * Resolves with the new device's ifindex when the kernel echoes it (6.3 and later).
 * Equivalent to: `ip link add NAME type vxlan id VNI [local IP] dstport PORT [dev UNDERLAY] nolearning [proxy] [ttl T]`
 */
export async function addVxlan(h: NetlinkHandle, spec: VxlanSpec): Promise<{ index?: number }> {
  const name = validateIfname(spec.name, 'name');
  const o = checkOptions(spec);
  const vni = validateVni(spec.vni, 'vni');
  const local = spec.local === undefined ? undefined : parseIp(spec.local, 'local');
  const port = validatePort(spec.port ?? 4789, 'port');
  const learning = validateBoolean(spec.learning, 'learning') ?? false;
  const proxy = validateBoolean(spec.proxy, 'proxy') ?? false;
  const ttl = spec.ttl === undefined ? undefined : validateUint(spec.ttl, 'ttl', 1, 255);
  const underlayRef = spec.underlay === undefined ? undefined : validateLinkRef(spec.underlay, 'underlay');
  const underlay = underlayRef === undefined ? undefined : await linkIndex(h, underlayRef, 'underlay');
  const data: ifla.Vxlan = { id: vni, port: u16be(port), learning: learning ? 1 : 0, proxy: proxy ? 1 : 0 };
  if (local) data[local.family === 4 ? 'local' : 'local6'] = local.bytes;
  if (ttl !== undefined) data.ttl = ttl;
  if (underlay !== undefined) data.link = underlay;
  const echo = await newLink(h, `link add ${name} type vxlan id ${vni}`, o, { ifname: name, linkinfo: linkInfo('vxlan', ifla.formatVxlan(data)) });
  return assignDefined({}, { index: echo.index });
}

const MACVLAN_BITS: Record<MacvlanMode, number> = { private: 1, vepa: 2, bridge: 4, passthru: 8, source: 16 };

/**
 * Creates a macvlan on PARENT, born in the namespace at nsPath when given (one request). Resolves
 * with the new link's ifindex when the kernel echoes it (not for a link born in another namespace).
 * Equivalent to: `ip link add NAME link PARENT [netns NS] [mtu M] [address MAC] [up] type macvlan mode MODE`
 */
export async function addMacvlan(h: NetlinkHandle, spec: MacvlanSpec): Promise<{ index?: number }> {
  const name = validateIfname(spec.name, 'name');
  const o = checkOptions(spec);
  const mode = validateEnum(spec.mode ?? 'bridge', 'mode', MACVLAN_MODES);
  const parent = await linkIndex(h, validateLinkRef(spec.parent, 'parent'), 'parent');
  const linkinfo = linkInfo('macvlan', ifla.formatMacvlan({ mode: MACVLAN_BITS[mode] }));
  const fd = spec.nsPath === undefined ? undefined : nsFd(spec.nsPath, 'nsPath');
  try {
    const attrs: ifla.LinkAttrs = { ifname: name, link: u32(parent), linkinfo };
    if (fd !== undefined) attrs.netNsFd = fd;
    const echo = await newLink(h, `link add ${name} link ${parent} type macvlan mode ${mode}`, o, attrs);
    return fd === undefined ? assignDefined({}, { index: echo.index }) : {};
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Creates an 802.1Q sub-interface of PARENT. A kernel without 802.1Q support (module 8021q)
 * answers EOPNOTSUPP (errnoCode ENOTSUP, "Unknown device type"), passed on as the KernelError it is.
 * Equivalent to: `ip link add NAME link PARENT [mtu M] [up] type vlan id ID`
 */
export async function addVlan(h: NetlinkHandle, spec: VlanSpec): Promise<void> {
  const name = validateIfname(spec.name, 'name');
  const o = checkOptions(spec);
  const id = validateUint(spec.id, 'id', 1, 4094);
  const parent = await linkIndex(h, validateLinkRef(spec.parent, 'parent'), 'parent');
  const linkinfo = linkInfo('vlan', ifla.formatVlan({ id }));
  await newLink(h, `link add ${name} link ${parent} type vlan id ${id}`, o, { ifname: name, link: u32(parent), linkinfo });
}

/** Equivalent to: `ip link set DEV [mtu M] [address MAC] [name N] [master BR | nomaster] [group G] [addrgenmode MODE] [up | down]` */
export async function setLink(h: NetlinkHandle, ref: LinkRef, changes: LinkChanges): Promise<void> {
  validateLinkRef(ref, 'link');
  const o = checkOptions({ ...changes, master: changes.master ?? undefined });
  const newName = changes.name === undefined ? undefined : validateIfname(changes.name, 'name');
  const index = newName !== undefined && typeof ref === 'string' ? await linkIndex(h, ref, 'link') : ref;
  const msg = refMsg(index);
  const attrs: ifla.LinkAttrs = { ...msg.attrs };
  if (newName !== undefined) attrs.ifname = newName;
  if (o.mtu !== undefined) attrs.mtu = o.mtu;
  if (o.mac !== undefined) attrs.address = o.mac;
  if (o.group !== undefined) attrs.group = o.group;
  if (changes.master === null) attrs.master = 0;
  else if (o.master !== undefined) attrs.master = await linkIndex(h, o.master, 'master');
  if (changes.addrGenMode !== undefined) attrs.afSpec = inet6AddrGenMode(validateEnum(changes.addrGenMode, 'addrGenMode', ADDR_GEN_MODES));
  const data = { ...msg.data, ...flagsFor(o.up) };
  await h.request(`link set ${ref}`, rt.MessageType.SETLINK, body(rt.formatLinkMessage, { kind: 'link', data, attrs }));
}

/** Equivalent to: `ip link set DEV up` */
export function setLinkUp(h: NetlinkHandle, ref: LinkRef): Promise<void> {
  return setLink(h, ref, { up: true });
}

/** Equivalent to: `ip link set DEV down` */
export function setLinkDown(h: NetlinkHandle, ref: LinkRef): Promise<void> {
  return setLink(h, ref, { up: false });
}

/** Equivalent to: `ip link set DEV master BR` or, with null, `ip link set DEV nomaster` */
export function setMaster(h: NetlinkHandle, ref: LinkRef, master: LinkRef | null): Promise<void> {
  return setLink(h, ref, { master });
}

/**
 * Moves a link into the namespace at nsPath, renaming it there when newName is given.
 * Equivalent to: `ip link set DEV netns NS [name NEWNAME]`
 */
export async function moveLink(h: NetlinkHandle, ref: LinkRef, nsPath: string, newName?: string): Promise<void> {
  validateLinkRef(ref, 'link');
  const name = newName === undefined ? undefined : validateIfname(newName, 'name');
  validateNetnsPath(nsPath, 'nsPath');
  const index = name !== undefined && typeof ref === 'string' ? await linkIndex(h, ref, 'link') : ref;
  const fd = nsFd(nsPath, 'nsPath');
  try {
    const msg = refMsg(index);
    const attrs: ifla.LinkAttrs = { ...msg.attrs, netNsFd: fd };
    if (name !== undefined) attrs.ifname = name;
    await h.request(`link set ${ref} netns ${nsPath}`, rt.MessageType.SETLINK, body(rt.formatLinkMessage, { kind: 'link', data: msg.data, attrs }));
  } finally {
    fs.closeSync(fd);
  }
}

/** The kernel's answer to `ip link show DEV` as it came (no stats), or undefined when there is no such link. */
async function showLinkRaw(h: NetlinkHandle, ref: LinkRef): Promise<RawReply | undefined> {
  validateLinkRef(ref, 'link');
  const msg = refMsg(ref);
  const attrs = { ...msg.attrs, extMask: u32(RTEXT_FILTER_SKIP_STATS) };
  try {
    const replies = await h.requestRaw(`link show ${ref}`, rt.MessageType.GETLINK, body(rt.formatLinkMessage, { kind: 'link', data: msg.data, attrs }));
    return replies.find((r) => r.type === rt.MessageType.NEWLINK);
  } catch (err) {
    if (err instanceof KernelError && err.errnoCode === 'ENODEV') return undefined;
    throw err;
  }
}

/** Equivalent to: `ip link show DEV`; undefined when there is no such link. */
export async function findLink(h: NetlinkHandle, ref: LinkRef): Promise<Link | undefined> {
  const reply = await showLinkRaw(h, ref);
  const msg = reply && rt.parseMessage(reply.type, reply.data);
  return msg?.kind === 'link' ? parseLink(msg) : undefined;
}

/**
 * The ifindex and MTU of a link, or undefined when there is none: its message is not parsed
 * further (a whole link's attributes cost several times the request).
 * Equivalent to: `ip link show DEV` (two of its fields)
 */
export async function peekLink(h: NetlinkHandle, ref: LinkRef): Promise<{ index: number; mtu?: number } | undefined> {
  const reply = await showLinkRaw(h, ref);
  return reply ? indexAndMtu(reply.data) : undefined;
}

/** Equivalent to: `ip link show DEV`; throws NotFoundError when there is no such link. */
export async function getLink(h: NetlinkHandle, ref: LinkRef): Promise<Link> {
  const link = await findLink(h, ref);
  if (!link) throw new NotFoundError('link', String(ref));
  return link;
}

/** The ifindex of ref (a name is looked up; an index is taken as given). */
export async function linkIndex(h: NetlinkHandle, ref: LinkRef, field = 'link'): Promise<number> {
  validateLinkRef(ref, field);
  if (typeof ref === 'number') return ref;
  const link = await peekLink(h, ref);
  if (!link) throw new NotFoundError('link', ref, { field });
  return link.index;
}

/**
 * Equivalent to: `ip [-target-nsid ID] link show [type KIND] [master BR]`. With nsid: the links of
 * the namespace the handle's namespace calls nsid (their indexes are that namespace's).
 */
export async function listLinks(h: NetlinkHandle, filter: { kind?: LinkKind; master?: number; nsid?: number } = {}): Promise<Link[]> {
  if (filter.nsid !== undefined) validateUint(filter.nsid, 'nsid', 0, 0x7fffffff);
  const attrs = { extMask: u32(RTEXT_FILTER_SKIP_STATS), ...(filter.nsid !== undefined ? { targetNetnsid: filter.nsid } : {}) };
  const msgs = await h.dump('link show', rt.MessageType.GETLINK, body(rt.formatLinkMessage, { kind: 'link', data: {}, attrs }));
  return msgs
    .flatMap((m) => (m.kind === 'link' ? [parseLink(m)] : []))
    .filter((l) => (filter.kind === undefined || l.kind === filter.kind) && (filter.master === undefined || l.master === filter.master));
}

/**
 * Deletes a link (a veth takes its peer with it). With ifExists, a missing link is not an
 * error. Resolves true when something was deleted. Runs in the background (the kernel takes
 * tens of milliseconds to unregister a device; the JS thread serves others meanwhile).
 * Equivalent to: `ip link del DEV`
 */
export async function deleteLink(h: NetlinkHandle, ref: LinkRef, opts: { ifExists?: boolean } = {}): Promise<boolean> {
  validateLinkRef(ref, 'link');
  const msg = refMsg(ref);
  try {
    await h.requestInBackground(`link del ${ref}`, rt.MessageType.DELLINK, body(rt.formatLinkMessage, { kind: 'link', ...msg }));
    return true;
  } catch (err) {
    if (opts.ifExists && err instanceof KernelError && err.errnoCode === 'ENODEV') return false;
    throw err;
  }
}

/**
 * Deletes every link of a group in one request (the kernel batches the unregistering).
 * Resolves false when the group had no link. Group 0 (every device's default) is refused.
 * Equivalent to: `ip link del group G`
 */
export async function deleteLinksByGroup(h: NetlinkHandle, group: number): Promise<boolean> {
  validateUint(group, 'group', 1, 0xffffffff);
  try {
    await h.requestInBackground(`link del group ${group}`, rt.MessageType.DELLINK, body(rt.formatLinkMessage, { kind: 'link', data: {}, attrs: { group } }));
    return true;
  } catch (err) {
    if (err instanceof KernelError && err.errnoCode === 'ENODEV') return false;
    throw err;
  }
}
