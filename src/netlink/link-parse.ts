// Parsed RTM_NEWLINK/DELLINK messages of the `netlink` package to the typed Link union, and raw
// payloads read in one pass over their attributes (name, index, MTU, IFLA_LINK) for hot paths. Pure.
// Limits: kind-specific attributes are read for veth, bridge, vxlan and macvlan only.
import { getU32, ifla, type rt } from 'netlink';
import { formatIp, formatMac } from '../ip/index.js';
import {
  MACVLAN_MODES, type Link, type LinkCommon, type MacvlanLink, type MacvlanMode, type OperState, type OtherLink,
  type VethLink, type VxlanLink,
} from './types.js';

const OPERSTATES: OperState[] = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'];

/** Copies the entries of extra whose value is not undefined onto target. */
export function assignDefined<T extends object>(target: T, extra: Partial<T>): T {
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) (target as Record<string, unknown>)[k] = v;
  return target;
}

function u32(buf: Buffer | undefined): number | undefined {
  return buf !== undefined && buf.length >= 4 ? getU32(buf.subarray(0, 4)) : undefined;
}

const IFINFOMSG_LEN = 16;
const IFLA_MTU = 4;
const IFLA_LINK = 5;

/**
 * Calls visit(type, at, end) for each attribute of a raw RTM_NEWLINK/DELLINK payload (after its
 * ifinfomsg), at and end bounding its value, in order, until visit returns true or a malformed
 * attribute ends the walk. One pass, nothing else parsed.
 */
function walkAttrs(data: Buffer, visit: (type: number, at: number, end: number) => boolean | void): void {
  for (let off = IFINFOMSG_LEN; off + 4 <= data.length; ) {
    const len = data.readUInt16LE(off);
    if (len < 4 || off + len > data.length) return;
    if (visit(data.readUInt16LE(off + 2) & 0x3fff, off + 4, off + len) === true) return;
    off += (len + 3) & ~3;
  }
}

/** A string attribute's value, up to its NUL. */
function attrString(data: Buffer, at: number, end: number): string {
  const nul = data.indexOf(0, at);
  return data.toString('latin1', at, nul < 0 || nul > end ? end : nul);
}

/** The u32 attributes of the given types in a raw RTM_NEWLINK payload (after its ifinfomsg), by type. */
function rawU32Attrs(data: Buffer, types: number[]): Map<number, number> {
  const out = new Map<number, number>();
  walkAttrs(data, (type, at, end) => {
    if (types.includes(type) && end - at >= 4) out.set(type, data.readUInt32LE(at));
  });
  return out;
}

/**
 * The ifindex and IFLA_LINK (a veth's peer, a vxlan's underlay) of a raw RTM_NEWLINK payload,
 * read without parsing the rest (an echoed link message carries every attribute and its stats).
 */
export function echoedIndexes(data: Buffer): { index?: number; link?: number } {
  if (data.length < IFINFOMSG_LEN) return {};
  return assignDefined<{ index?: number; link?: number }>({ index: data.readInt32LE(4) }, { link: rawU32Attrs(data, [IFLA_LINK]).get(IFLA_LINK) });
}

const IFLA_IFNAME = 3;
const IFF_UP = 1;

/** The IFLA_IFNAME of a link message's payload (ifinfomsg, then attributes), read without parsing the rest. */
export function linkMessageName(data: Buffer): string | undefined {
  let name: string | undefined;
  walkAttrs(data, (type, at, end) => {
    if (type !== IFLA_IFNAME) return false;
    name = attrString(data, at, end);
    return true;
  });
  return name;
}

/**
 * A raw RTM_NEWLINK/DELLINK payload as a brief Link: its name, ifindex, IFF_UP and MTU, read in one
 * pass over its attributes (a whole message, its stats included, costs ~10-30 times as much);
 * kind 'other' without a type (its link info is not read). undefined when it has no name.
 */
export function briefLink(data: Buffer): OtherLink | undefined {
  if (data.length < IFINFOMSG_LEN) return undefined;
  let name: string | undefined;
  let mtu: number | undefined;
  walkAttrs(data, (type, at, end) => {
    if (type === IFLA_IFNAME) name = attrString(data, at, end);
    else if (type === IFLA_MTU && end - at >= 4) mtu = data.readUInt32LE(at);
  });
  if (name === undefined) return undefined;
  return assignDefined<OtherLink>({ kind: 'other', name, index: data.readInt32LE(4), up: (data.readUInt32LE(8) & IFF_UP) !== 0 }, { mtu });
}

/** The ifindex and MTU of a raw RTM_NEWLINK payload (a GETLINK answer), read without parsing the rest. */
export function indexAndMtu(data: Buffer): { index: number; mtu?: number } | undefined {
  if (data.length < IFINFOMSG_LEN) return undefined;
  return assignDefined<{ index: number; mtu?: number }>({ index: data.readInt32LE(4) }, { mtu: rawU32Attrs(data, [IFLA_MTU]).get(IFLA_MTU) });
}

function macvlanMode(mode: number | undefined): MacvlanMode | undefined {
  if (mode === undefined) return undefined;
  const bit = Math.log2(mode);
  return Number.isInteger(bit) ? MACVLAN_MODES[bit] : undefined;
}

function common(msg: rt.LinkMessage): LinkCommon {
  const { data, attrs } = msg;
  const base: LinkCommon = { name: attrs.ifname ?? '', index: data.index ?? 0, up: data.flags?.up === true };
  return assignDefined(base, {
    mtu: attrs.mtu,
    mac: attrs.address && attrs.address.length > 0 ? formatMac(attrs.address) : undefined,
    operstate: attrs.operstate === undefined ? undefined : OPERSTATES[attrs.operstate],
    master: attrs.master,
    group: attrs.group,
    netnsId: attrs.linkNetnsid,
    minMtu: attrs.minMtu,
    maxMtu: attrs.maxMtu,
  });
}

function vxlanFields(data: Buffer | undefined): Partial<VxlanLink> {
  if (!data) return {};
  const v = ifla.parseVxlan(data);
  const local = v.local ?? v.local6;
  return {
    vni: v.id,
    local: local && (local.length === 4 || local.length === 16) ? formatIp(local) : undefined,
    port: v.port && v.port.length >= 2 ? v.port.readUInt16BE(0) : undefined,
    learning: v.learning === undefined ? undefined : v.learning !== 0,
    proxy: v.proxy === undefined ? undefined : v.proxy !== 0,
    underlayIndex: v.link === 0 ? undefined : v.link,
  };
}

/** The typed Link of a parsed link message. */
export function parseLink(msg: rt.LinkMessage): Link {
  const base = common(msg);
  const info = msg.attrs.linkinfo ? ifla.parseInfo(msg.attrs.linkinfo) : undefined;
  const linkIndex = u32(msg.attrs.link);
  switch (info?.kind) {
    case 'veth':
      return assignDefined<VethLink>({ kind: 'veth', ...base }, { peerIndex: linkIndex });
    case 'bridge':
      return { kind: 'bridge', ...base };
    case 'vxlan':
      return assignDefined<VxlanLink>({ kind: 'vxlan', ...base }, vxlanFields(info.data));
    case 'macvlan':
      return assignDefined<MacvlanLink>(
        { kind: 'macvlan', ...base },
        { mode: macvlanMode(info.data ? ifla.parseMacvlan(info.data).mode : undefined), parentIndex: linkIndex },
      );
    default:
      return assignDefined<OtherLink>({ kind: 'other', ...base }, { type: info?.kind });
  }
}
