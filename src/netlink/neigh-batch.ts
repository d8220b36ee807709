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

function attr(type: number, value: Uint8Array): Buffer {
  const len = 4 + value.length;
  const out = Buffer.alloc((len + 3) & ~3);
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  out.set(value, 4);
  return out;
}

/** The request of one write: message type, flags and body (ndmsg + attributes). */
export function encodeNeighWrite(w: NeighWrite): BatchRequest {
  const del = w.op === 'delete';
  const ndm = Buffer.alloc(12);
  const attrs: Buffer[] = [];
  if (w.kind === 'fdb') {
    ndm.writeUInt8(AF_BRIDGE, 0);
    if (!del) ndm.writeUInt16LE(NUD_NOARP | NUD_PERMANENT, 8);
    ndm.writeUInt8(NTF_SELF, 10);
    attrs.push(attr(NDA_LLADDR, parseMac(w.mac, 'mac')));
    if (w.dst) attrs.push(attr(NDA_DST, parseIp(w.dst, 'dst').bytes));
  } else {
    const ip = parseIp(w.ip, 'ip');
    ndm.writeUInt8(afOf(ip.family), 0);
    if (!del) ndm.writeUInt16LE(NUD_PERMANENT, 8);
    attrs.push(attr(NDA_DST, ip.bytes));
    if (w.op === 'replace') attrs.push(attr(NDA_LLADDR, parseMac(w.mac, 'mac')));
  }
  ndm.writeInt32LE(w.dev, 4);
  const flags = del ? 0 : NLM_F_CREATE | (w.op === 'append' ? NLM_F_APPEND : NLM_F_REPLACE);
  return { type: del ? rt.MessageType.DELNEIGH : rt.MessageType.NEWNEIGH, flags, body: Buffer.concat([ndm, ...attrs]) };
}
