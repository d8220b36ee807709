// Forwarding database entries of bridges and VXLAN devices (family AF_BRIDGE): add, append,
// replace, delete, list. A VXLAN flooding entry is the all-zero MAC with a remote `dst`; each
// `append` adds one more remote VTEP. Limits: no VLAN-aware bridges (not in this kernel).
import { FlagsNew, rt } from 'netlink';
import { InvalidArgumentError, KernelError } from '../errors.js';
import { body, getU32, u16be, u32 } from './encode.js';
import type { NetlinkHandle } from './handle.js';
import { AF_BRIDGE } from './af.js';
import { formatIp, formatMac, parseIp, parseMac } from '../ip/index.js';
import { linkIndex } from './links.js';
import { flagNames } from './neigh.js';
import { validateEnum, validateLinkRef, validatePort, validateUint, validateVni, type LinkRef } from './validate.js';

export interface FdbSpec {
  /** The bridge port or VXLAN device the entry points at. */
  dev: LinkRef;
  /** `00:00:00:00:00:00` (with dst) is the VXLAN flooding entry. */
  mac: string;
  /** VXLAN: remote tunnel endpoint. */
  dst?: string;
  /** VXLAN: remote VNI, when it differs from the device's. */
  vni?: number;
  /** VXLAN: remote UDP port, when it differs from the device's. */
  port?: number;
  vlan?: number;
  /**
   * 'self' (default): the device's own table (a VXLAN device, or a bridge's own address);
   * 'master': the table of the bridge that dev is a port of.
   */
  target?: 'self' | 'master';
  /** Default 'permanent'. 'static' entries on a bridge are not aged but may move. */
  state?: 'permanent' | 'static';
}

export interface FdbEntry {
  /** ifindex of the port or device. */
  index: number;
  mac: string;
  dst?: string;
  vni?: number;
  port?: number;
  vlan?: number;
  /** ifindex of the bridge holding the entry (NDA_MASTER). */
  master?: number;
  /** NTF_SELF: in the device's own table (else in the bridge's, see master). */
  self: boolean;
  state: string[];
}

type Mode = 'add' | 'append' | 'replace';
const MODE_FLAGS: Record<Mode, number> = {
  add: FlagsNew.CREATE | FlagsNew.EXCL,
  append: FlagsNew.CREATE | FlagsNew.APPEND,
  replace: FlagsNew.CREATE | FlagsNew.REPLACE,
};

async function fdbBody(h: NetlinkHandle, spec: FdbSpec, withState: boolean): Promise<Uint8Array[]> {
  if (typeof spec !== 'object' || spec === null) throw new InvalidArgumentError('entry', 'an FDB entry is required');
  validateLinkRef(spec.dev, 'dev');
  const attrs: rt.NeighborAttrs = { lladdr: parseMac(spec.mac, 'mac') };
  if (spec.dst !== undefined) attrs.dst = parseIp(spec.dst, 'dst').bytes;
  if (spec.vni !== undefined) attrs.vni = u32(validateVni(spec.vni, 'vni'));
  if (spec.port !== undefined) attrs.port = u16be(validatePort(spec.port, 'port'));
  if (spec.vlan !== undefined) attrs.vlan = validateUint(spec.vlan, 'vlan', 1, 4094);
  const target = validateEnum(spec.target ?? 'self', 'target', ['self', 'master'] as const);
  const state = validateEnum(spec.state ?? 'permanent', 'state', ['permanent', 'static'] as const);
  const data: rt.Neighbor = { family: AF_BRIDGE, ifindex: await linkIndex(h, spec.dev, 'dev'), flags: target === 'self' ? { self: true } : { master: true } };
  if (withState) data.state = state === 'permanent' ? { noarp: true, permanent: true } : { noarp: true, reachable: true };
  return body(rt.formatNeighborMessage, { kind: 'neighbor', data, attrs });
}

function label(spec: FdbSpec): string {
  return `fdb ${spec.mac} dev ${spec.dev}${spec.dst ? ` dst ${spec.dst}` : ''}`;
}

async function write(h: NetlinkHandle, mode: Mode, spec: FdbSpec): Promise<void> {
  await h.request(`${label(spec)} (${mode})`, rt.MessageType.NEWNEIGH, await fdbBody(h, spec, true), MODE_FLAGS[mode]);
}

/** Equivalent to: `bridge fdb add MAC dev DEV [dst IP] [vni N] [port P] [vlan V] [self|master] [permanent|static]` */
export function addFdb(h: NetlinkHandle, spec: FdbSpec): Promise<void> {
  return write(h, 'add', spec);
}

/**
 * Adds one more remote to an entry (VXLAN: with the all-zero MAC, one more VTEP to flood to).
 * Equivalent to: `bridge fdb append MAC dev DEV dst IP [vni N] [port P] [self]`
 */
export function appendFdb(h: NetlinkHandle, spec: FdbSpec): Promise<void> {
  return write(h, 'append', spec);
}

/** Equivalent to: `bridge fdb replace MAC dev DEV [dst IP] [vni N] [port P] [vlan V] [self|master] [permanent|static]` */
export function replaceFdb(h: NetlinkHandle, spec: FdbSpec): Promise<void> {
  return write(h, 'replace', spec);
}

/**
 * Deletes an entry (VXLAN: with dst, only that remote). With ifExists, a missing entry is not
 * an error; resolves false then. The kernel answers success, and this resolves true, when a
 * VXLAN entry exists but without the named remote.
 * Equivalent to: `bridge fdb del MAC dev DEV [dst IP] [vni N] [vlan V] [self|master]`
 */
export async function deleteFdb(h: NetlinkHandle, spec: FdbSpec, opts: { ifExists?: boolean } = {}): Promise<boolean> {
  const msg = await fdbBody(h, spec, false);
  try {
    await h.request(`${label(spec)} (del)`, rt.MessageType.DELNEIGH, msg);
    return true;
  } catch (err) {
    if (opts.ifExists && err instanceof KernelError && err.errnoCode === 'ENOENT') return false;
    throw err;
  }
}

/** The typed FdbEntry of a parsed neighbour message of family AF_BRIDGE. */
export function parseFdbEntry(msg: rt.NeighborMessage): FdbEntry | undefined {
  if (msg.data.family !== AF_BRIDGE || !msg.attrs.lladdr) return undefined;
  const { attrs, data } = msg;
  const out: FdbEntry = {
    index: data.ifindex ?? 0,
    mac: formatMac(attrs.lladdr as Buffer),
    self: data.flags?.self === true,
    state: flagNames(data.state),
  };
  if (attrs.dst && (attrs.dst.length === 4 || attrs.dst.length === 16)) out.dst = formatIp(attrs.dst);
  if (attrs.vni && attrs.vni.length >= 4) out.vni = getU32(attrs.vni.subarray(0, 4));
  if (attrs.port && attrs.port.length >= 2) out.port = attrs.port.readUInt16BE(0);
  if (attrs.vlan !== undefined) out.vlan = attrs.vlan;
  if (attrs.master !== undefined) out.master = attrs.master;
  return out;
}

/** Equivalent to: `bridge fdb show [dev DEV] [br BR]` */
export async function listFdb(h: NetlinkHandle, filter: { dev?: LinkRef; bridge?: LinkRef } = {}): Promise<FdbEntry[]> {
  const dev = filter.dev === undefined ? undefined : await linkIndex(h, filter.dev, 'dev');
  const bridge = filter.bridge === undefined ? undefined : await linkIndex(h, filter.bridge, 'bridge');
  const req = body(rt.formatNeighborMessage, { kind: 'neighbor', data: { family: AF_BRIDGE, ...(dev !== undefined ? { ifindex: dev } : {}) }, attrs: {} });
  // With a device, the kernel sends only its entries: a request of an ifinfomsg's length (ndmsg and
  // 4 bytes) is read as one, whose ifi_index (ndm_ifindex's offset) names the port (`bridge fdb show dev`).
  const msgs = await h.dump('fdb show', rt.MessageType.GETNEIGH, dev === undefined ? req : [...req, new Uint8Array(4)]);
  return msgs
    .flatMap((m) => (m.kind === 'neighbor' ? [parseFdbEntry(m)] : []))
    .filter((e): e is FdbEntry => e !== undefined && (dev === undefined || e.index === dev) && (bridge === undefined || e.master === bridge || e.index === bridge));
}
