// Many permanent neighbour entries and VXLAN FDB entries written at once (an overlay host that
// programs thousands of peers: a restart, a backlog), sent by NetlinkHandle.batch in a few
// datagrams instead of one request each. The messages are encoded here (an ndmsg, NDA_DST and
// NDA_LLADDR: what `ip neigh replace … nud permanent` and `bridge fdb replace … self permanent`
// send): the `netlink` package's generic encoder costs ~40 µs a message before the JIT warms up,
// which was most of a restart's 0.1 s for 1000 peers. Limits: a batch reports the first failure
// of a datagram only; callers that must know each outcome send one request at a time.
import { rt } from 'netlink';
import { parseIp, parseMac } from '../ip/index.js';
import { AF_BRIDGE, afOf } from './af.js';
import type { BatchRequest } from './handle.js';

const NUD_NOARP = 0x40;
const NUD_PERMANENT = 0x80;
const NTF_SELF = 0x02;
const NDA_DST = 1;
const NDA_LLADDR = 2;
const NLM_F_REPLACE = 0x100;
const NLM_F_CREATE = 0x400;
const NLM_F_APPEND = 0x800;

/** One write: a permanent IP → MAC entry, or a VXLAN device's own (self) MAC → VTEP entry; dev is an ifindex. */
export type NeighWrite =
  | { kind: 'neigh'; op: 'replace'; dev: number; ip: string; mac: string }
  | { kind: 'neigh'; op: 'delete'; dev: number; ip: string }
  | { kind: 'fdb'; op: 'replace' | 'append' | 'delete'; dev: number; mac: string; dst?: string };

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const MAC = /^([0-9a-fA-F]{2}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})$/;

/** An address's bytes: IPv4 read straight from its text (thousands per restart), others through parseIp. */
function ipBytes(text: string, field: string): { family: 4 | 6; bytes: Uint8Array } {
  const m = V4.exec(text);
  if (m) return { family: 4, bytes: Uint8Array.of(Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])) };
  const ip = parseIp(text, field);
  return { family: ip.family, bytes: ip.bytes };
}

function macBytes(text: string, field: string): Uint8Array {
  const m = MAC.exec(text);
  if (!m) return parseMac(text, field);
  return Uint8Array.of(...m.slice(1, 7).map((h) => parseInt(h, 16)));
}

/** Writes an attribute at off (its length, type and value, padded to 4 bytes); returns the offset after it. */
function putAttr(out: Buffer, off: number, type: number, value: Uint8Array): number {
  out.writeUInt16LE(4 + value.length, off);
  out.writeUInt16LE(type, off + 2);
  out.set(value, off + 4);
  return off + ((4 + value.length + 3) & ~3);
}

const attrSize = (value: Uint8Array | undefined): number => (value ? (4 + value.length + 3) & ~3 : 0);

/** The request of one write: message type, flags and body (ndmsg + attributes). */
export function encodeNeighWrite(w: NeighWrite): BatchRequest {
  const del = w.op === 'delete';
  let family = 0;
  let state = 0;
  let ntf = 0;
  let dst: Uint8Array | undefined;
  let lladdr: Uint8Array | undefined;
  if (w.kind === 'fdb') {
    family = AF_BRIDGE;
    state = del ? 0 : NUD_NOARP | NUD_PERMANENT;
    ntf = NTF_SELF;
    lladdr = macBytes(w.mac, 'mac');
    if (w.dst) dst = ipBytes(w.dst, 'dst').bytes;
  } else {
    const ip = ipBytes(w.ip, 'ip');
    family = afOf(ip.family);
    state = del ? 0 : NUD_PERMANENT;
    dst = ip.bytes;
    if (w.op === 'replace') lladdr = macBytes(w.mac, 'mac');
  }
  // ndmsg (family, pad, ifindex, state, flags, type), then the attributes in the order ip(8) sends them.
  const body = Buffer.alloc(12 + attrSize(lladdr) + attrSize(dst));
  body.writeUInt8(family, 0);
  body.writeInt32LE(w.dev, 4);
  body.writeUInt16LE(state, 8);
  body.writeUInt8(ntf, 10);
  let off = 12;
  if (w.kind === 'fdb') {
    off = putAttr(body, off, NDA_LLADDR, lladdr!);
    if (dst) putAttr(body, off, NDA_DST, dst);
  } else {
    off = putAttr(body, off, NDA_DST, dst!);
    if (lladdr) putAttr(body, off, NDA_LLADDR, lladdr);
  }
  const flags = del ? 0 : NLM_F_CREATE | (w.op === 'append' ? NLM_F_APPEND : NLM_F_REPLACE);
  return { type: del ? rt.MessageType.DELNEIGH : rt.MessageType.NEWNEIGH, flags, body };
}
