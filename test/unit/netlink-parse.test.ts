// Reading what the kernel sends: error replies with their extended-ACK text, link messages to
// the typed union, notifications to typed events, and the drop counter in /proc/net/netlink.
import { describe, expect, it } from 'vitest';
import { AttrStream, ifla, rt } from 'netlink';
import { eventOf, netlinkDrops } from '../../src/netlink/events.js';
import { briefLink, echoedIndexes, indexAndMtu, linkMessageName, parseLink } from '../../src/netlink/link-parse.js';
import { body, u32 } from '../../src/netlink/encode.js';
import { parseErrorReply } from '../../src/netlink/reply.js';

function tlv(type: number, value: Buffer): Buffer {
  const len = 4 + value.length;
  const out = Buffer.alloc((len + 3) & ~3);
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  value.copy(out, 4);
  return out;
}

/** An NLMSG_ERROR payload as the kernel lays it out: s32 error, request header, payload, TLVs. */
function errorPayload(errno: number, request: Buffer, tlvs: Buffer[]): Buffer {
  const head = Buffer.alloc(4 + 16);
  head.writeInt32LE(-errno, 0);
  head.writeUInt32LE(16 + request.length, 4);
  head.writeUInt16LE(16, 8);
  return Buffer.concat([head, request, ...tlvs]);
}

function flat(data: unknown): Buffer {
  const s = new AttrStream();
  s.emit(data as Buffer);
  return Buffer.concat(s.bufs);
}

function linkBytes(msg: rt.LinkMessage): Buffer {
  const s = new AttrStream();
  rt.formatLinkMessage(msg, s);
  return Buffer.concat(s.bufs);
}

describe('error replies', () => {
  it('reads the errno and the extended ACK text after the echoed request', () => {
    const request = Buffer.alloc(40, 0xaa);
    const msg = tlv(1, Buffer.from('mtu less than device minimum\0'));
    const offs = tlv(2, Buffer.from([28, 0, 0, 0]));
    const reply = parseErrorReply(errorPayload(22, request, [msg, offs]), 0x200);
    expect(reply).toEqual({ errno: 22, code: 'EINVAL', extack: 'mtu less than device minimum', offset: 28 });
  });

  it('finds the TLVs right after the header when the request was capped', () => {
    const reply = parseErrorReply(errorPayload(17, Buffer.alloc(0), [tlv(1, Buffer.from('A VXLAN device with the specified VNI already exists\0'))]), 0x300);
    expect(reply.code).toBe('EEXIST');
    expect(reply.extack).toMatch(/VNI already exists/);
  });

  it('reads a plain ACK and an error without TLVs', () => {
    expect(parseErrorReply(errorPayload(0, Buffer.alloc(0), []), 0x100)).toEqual({ errno: 0, code: 'OK' });
    expect(parseErrorReply(errorPayload(19, Buffer.alloc(32), []), 0)).toEqual({ errno: 19, code: 'ENODEV' });
  });
});

describe('link messages', () => {
  it('types a vxlan with its kernel attributes, leaving unset ones out', () => {
    const data = flat(ifla.formatVxlan({ id: 42, local: Buffer.from([198, 18, 0, 1]), port: Buffer.from([0x12, 0xb5]), learning: 0, proxy: 1, link: 3 }));
    const link = parseLink({ kind: 'link', data: { index: 7, flags: { up: true } }, attrs: { ifname: 'vx0', mtu: 1450, linkinfo: flat(ifla.formatInfo({ kind: 'vxlan', data })) } });
    expect(link).toEqual({ kind: 'vxlan', name: 'vx0', index: 7, up: true, mtu: 1450, vni: 42, local: '198.18.0.1', port: 4789, learning: false, proxy: true, underlayIndex: 3 });
  });

  it('types veth, bridge, macvlan and others; zero stays distinct from unset', () => {
    const veth = parseLink({ kind: 'link', data: { index: 2 }, attrs: { ifname: 'v0', master: 5, group: 0, linkNetnsid: 0, link: Buffer.from([9, 0, 0, 0]), linkinfo: flat(ifla.formatInfo({ kind: 'veth' })) } });
    expect(veth).toEqual({ kind: 'veth', name: 'v0', index: 2, up: false, master: 5, group: 0, netnsId: 0, peerIndex: 9 });
    const mv = parseLink({ kind: 'link', data: { index: 4 }, attrs: { ifname: 'mv0', link: Buffer.from([3, 0, 0, 0]), linkinfo: flat(ifla.formatInfo({ kind: 'macvlan', data: flat(ifla.formatMacvlan({ mode: 4 })) })) } });
    expect(mv).toMatchObject({ kind: 'macvlan', mode: 'bridge', parentIndex: 3 });
    expect(parseLink({ kind: 'link', data: { index: 1 }, attrs: { ifname: 'lo', address: Buffer.alloc(6), operstate: 0 } })).toEqual({ kind: 'other', name: 'lo', index: 1, up: false, mac: '00:00:00:00:00:00', operstate: 'unknown' });
    expect(parseLink({ kind: 'link', data: { index: 9 }, attrs: { ifname: 'd', linkinfo: flat(ifla.formatInfo({ kind: 'dummy' })) } })).toMatchObject({ kind: 'other', type: 'dummy' });
  });
});

describe('notifications', () => {
  it('keeps NEWLINK and DELLINK apart', () => {
    const bytes = linkBytes({ kind: 'link', data: { index: 3 }, attrs: { ifname: 'br0', linkinfo: flat(ifla.formatInfo({ kind: 'bridge' })) } });
    expect(eventOf(rt.MessageType.NEWLINK, bytes)).toMatchObject({ type: 'new-link', link: { kind: 'bridge', name: 'br0' } });
    expect(eventOf(rt.MessageType.DELLINK, bytes)).toMatchObject({ type: 'del-link', link: { kind: 'bridge', name: 'br0', index: 3 } });
  });

  it('reads a link message\'s name without parsing it, and drops the links a filter (by name or index) leaves out', () => {
    const bytes = linkBytes({ kind: 'link', data: { index: 9 }, attrs: { mtu: 1450, ifname: 'ovvx4096', linkinfo: flat(ifla.formatInfo({ kind: 'bridge' })) } });
    expect(linkMessageName(bytes)).toBe('ovvx4096');
    expect(linkMessageName(linkBytes({ kind: 'link', data: { index: 9 }, attrs: { mtu: 1450 } }))).toBeUndefined();
    expect(eventOf(rt.MessageType.NEWLINK, bytes, (n) => n === 'ovvx4096')).toMatchObject({ type: 'new-link', link: { name: 'ovvx4096', index: 9 } });
    expect(eventOf(rt.MessageType.NEWLINK, bytes, (n) => n === 'other')).toBeUndefined();
    expect(eventOf(rt.MessageType.DELLINK, bytes, () => false)).toBeUndefined();
    // The filter is told the link's index too (a link followed by index whatever its name).
    expect(eventOf(rt.MessageType.NEWLINK, bytes, (_n, index) => index === 9)).toMatchObject({ type: 'new-link', link: { name: 'ovvx4096', index: 9 } });
    expect(eventOf(rt.MessageType.NEWLINK, bytes, (_n, index) => index === 8)).toBeUndefined();
  });

  it('brief events: a link\'s name, index, IFF_UP and MTU only (kind other), as a whole parse reads them', () => {
    const up = linkBytes({ kind: 'link', data: { index: 7, flags: { up: true }, change: { up: true } }, attrs: { mtu: 1450, ifname: 'ov0123456789', master: 5, linkinfo: flat(ifla.formatInfo({ kind: 'veth' })) } });
    expect(eventOf(rt.MessageType.NEWLINK, up, undefined, true)).toEqual({ type: 'new-link', link: { kind: 'other', name: 'ov0123456789', index: 7, up: true, mtu: 1450 } });
    const whole = eventOf(rt.MessageType.NEWLINK, up);
    expect(whole).toMatchObject({ type: 'new-link', link: { kind: 'veth', name: 'ov0123456789', index: 7, up: true, mtu: 1450 } });
    const down = linkBytes({ kind: 'link', data: { index: 8 }, attrs: { ifname: 'eth0' } });
    expect(briefLink(down)).toEqual({ kind: 'other', name: 'eth0', index: 8, up: false });
    expect(eventOf(rt.MessageType.DELLINK, down, (n) => n === 'eth0', true)).toEqual({ type: 'del-link', link: { kind: 'other', name: 'eth0', index: 8, up: false } });
    expect(eventOf(rt.MessageType.DELLINK, down, (n) => n !== 'eth0', true)).toBeUndefined();
    expect(briefLink(linkBytes({ kind: 'link', data: { index: 9 }, attrs: { mtu: 1500 } }))).toBeUndefined();
    expect(briefLink(Buffer.alloc(8))).toBeUndefined();
  });

  it("ignores a bridge's AF_BRIDGE port messages and other types", () => {
    const port = linkBytes({ kind: 'link', data: { family: 7, index: 4 }, attrs: { ifname: 'v0', master: 3 } });
    expect(eventOf(rt.MessageType.DELLINK, port)).toBeUndefined();
    expect(eventOf(rt.MessageType.NEWLINK, port, () => true, true)).toBeUndefined();
    expect(eventOf(rt.MessageType.NEWROUTE, Buffer.alloc(12))).toBeUndefined();
  });

  it('types address events', () => {
    const s = new AttrStream();
    rt.formatAddressMessage({ kind: 'address', data: { family: 2, prefixlen: 24, index: 5 }, attrs: { local: Buffer.from([10, 0, 0, 2]), address: Buffer.from([10, 0, 0, 2]) } }, s);
    expect(eventOf(rt.MessageType.DELADDR, Buffer.concat(s.bufs))).toMatchObject({ type: 'del-address', address: { cidr: '10.0.0.2/24', index: 5, family: 4 } });
  });

  it('reads the drop counter of one socket from /proc/net/netlink', () => {
    const text = [
      's                Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode',
      '000000003d6e1c2b 0   4026531    00000000 0        0        0     2        0        1234',
      '00000000aa6e1c2b 0   77         00000511 0        0        0     2        318      5678',
      '00000000bb6e1c2b 16  77         00000000 0        0        0     2        9        9999',
    ].join('\n');
    expect(netlinkDrops(text, 77)).toBe(318);
    expect(netlinkDrops(text, 4026531)).toBe(0);
    expect(netlinkDrops(text, 5)).toBeUndefined();
  });
});

describe('echoed link messages', () => {
  it('reads the ifindex and IFLA_LINK of a raw RTM_NEWLINK payload, and nothing else', () => {
    const raw = (attrs: ifla.LinkAttrs): Buffer => Buffer.concat(body(rt.formatLinkMessage, { kind: 'link', data: { index: 7, flags: { up: true } }, attrs }));
    expect(echoedIndexes(raw({ ifname: 'veth0', mtu: 1500, link: u32(3) }))).toEqual({ index: 7, link: 3 });
    expect(echoedIndexes(raw({ ifname: 'br0' }))).toEqual({ index: 7 });
    expect(echoedIndexes(Buffer.alloc(8))).toEqual({});
  });

  it('reads the ifindex and MTU of a raw RTM_NEWLINK payload', () => {
    const raw = (attrs: ifla.LinkAttrs): Buffer => Buffer.concat(body(rt.formatLinkMessage, { kind: 'link', data: { index: 9 }, attrs }));
    expect(indexAndMtu(raw({ ifname: 'eth0', link: u32(3), mtu: 1450 }))).toEqual({ index: 9, mtu: 1450 });
    expect(indexAndMtu(raw({ ifname: 'eth0' }))).toEqual({ index: 9 });
    expect(indexAndMtu(Buffer.alloc(8))).toBeUndefined();
  });
});
