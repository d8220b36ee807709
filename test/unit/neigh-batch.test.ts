// The batched neighbour/FDB writes are encoded by hand: each must be the very message the
// `netlink` package's own encoder makes for the same entry (as the one-request-at-a-time path
// sends it), compared after parsing both with the package's parser.
import { describe, expect, it } from 'vitest';
import { rt } from 'netlink';
import { encodeNeighWrite, type NeighWrite } from '../../src/netlink/neigh-batch.js';
import { body } from '../../src/netlink/encode.js';
import { parseIp, parseMac } from '../../src/ip/index.js';

const parsed = (type: number, bytes: Uint8Array[] | Buffer) => rt.parseMessage(type, Buffer.concat(Array.isArray(bytes) ? bytes : [bytes]));
const ref = (data: rt.Neighbor, attrs: rt.NeighborAttrs) => body(rt.formatNeighborMessage, { kind: 'neighbor', data, attrs });
const mac = '02:43:00:00:01:0a';

describe('batched neighbour and FDB writes', () => {
  const cases: [string, NeighWrite, rt.MessageType, number, Uint8Array[]][] = [
    ['neigh replace (IPv4)', { kind: 'neigh', op: 'replace', dev: 7, ip: '198.19.8.10', mac }, rt.MessageType.NEWNEIGH, 0x500,
      ref({ family: 2, ifindex: 7, state: { permanent: true } }, { dst: parseIp('198.19.8.10', 'ip').bytes, lladdr: parseMac(mac, 'mac') })],
    ['neigh replace (IPv6)', { kind: 'neigh', op: 'replace', dev: 7, ip: 'fd00::a', mac }, rt.MessageType.NEWNEIGH, 0x500,
      ref({ family: 10, ifindex: 7, state: { permanent: true } }, { dst: parseIp('fd00::a', 'ip').bytes, lladdr: parseMac(mac, 'mac') })],
    ['neigh delete', { kind: 'neigh', op: 'delete', dev: 7, ip: '198.19.8.10' }, rt.MessageType.DELNEIGH, 0,
      ref({ family: 2, ifindex: 7 }, { dst: parseIp('198.19.8.10', 'ip').bytes })],
    ['fdb replace', { kind: 'fdb', op: 'replace', dev: 9, mac, dst: '198.19.255.2' }, rt.MessageType.NEWNEIGH, 0x500,
      ref({ family: 7, ifindex: 9, flags: { self: true }, state: { noarp: true, permanent: true } }, { lladdr: parseMac(mac, 'mac'), dst: parseIp('198.19.255.2', 'dst').bytes })],
    ['fdb append (flood)', { kind: 'fdb', op: 'append', dev: 9, mac: '00:00:00:00:00:00', dst: '198.19.255.2' }, rt.MessageType.NEWNEIGH, 0xc00,
      ref({ family: 7, ifindex: 9, flags: { self: true }, state: { noarp: true, permanent: true } }, { lladdr: parseMac('00:00:00:00:00:00', 'mac'), dst: parseIp('198.19.255.2', 'dst').bytes })],
    ['fdb delete', { kind: 'fdb', op: 'delete', dev: 9, mac, dst: '198.19.255.2' }, rt.MessageType.DELNEIGH, 0,
      ref({ family: 7, ifindex: 9, flags: { self: true } }, { lladdr: parseMac(mac, 'mac'), dst: parseIp('198.19.255.2', 'dst').bytes })],
  ];
  for (const [name, write, type, flags, expected] of cases) {
    it(`encodes ${name} as the netlink package does`, () => {
      const got = encodeNeighWrite(write);
      expect(got.type).toBe(type);
      expect(got.flags).toBe(flags);
      expect(got.body.length % 4).toBe(0);
      expect(parsed(got.type, got.body)).toEqual(parsed(type, expected));
    });
  }
  it('refuses a bad MAC or address before anything is sent', () => {
    expect(() => encodeNeighWrite({ kind: 'neigh', op: 'replace', dev: 7, ip: '198.19.8.300', mac })).toThrow(/ip/);
    expect(() => encodeNeighWrite({ kind: 'fdb', op: 'replace', dev: 7, mac: 'zz', dst: '198.19.255.2' })).toThrow(/mac/);
  });
});
