// Conversions between the API's strings and netlink's bytes, and the input checks that run
// before any kernel call: each bad value names its field and the reason.
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { formatIp, formatMac, parseCidr, parseIp, parseMac } from '../../src/ip/index.js';
import { validateLinkRef, validateMtu, validateNetnsPath, validateVni } from '../../src/netlink/validate.js';

describe('IP addresses', () => {
  it.each([
    ['10.0.0.1', '0a000001'],
    ['198.18.0.255', 'c61200ff'],
    ['fd00::1', 'fd000000000000000000000000000001'],
    ['::', '00000000000000000000000000000000'],
    ['2001:db8:0:0:1:0:0:1', '20010db8000000000001000000000001'],
    ['::ffff:1.2.3.4', '00000000000000000000ffff01020304'],
    ['fe80::1:2', 'fe800000000000000000000000010002'],
  ])('%s is %s on the wire', (text, hex) => {
    expect(parseIp(text, 'ip').bytes.toString('hex')).toBe(hex);
  });

  it.each([
    ['20010db8000000000001000000000001', '2001:db8::1:0:0:1'],
    ['20010db8000000010000000000000001', '2001:db8:0:1::1'],
    ['fd000000000000000000000000000001', 'fd00::1'],
    ['00000000000000000000000000000000', '::'],
    ['00010002000300040005000600070008', '1:2:3:4:5:6:7:8'],
    ['00010000000300040005000600070008', '1:0:3:4:5:6:7:8'],
    ['00000000000000000000ffff0a000001', '::ffff:10.0.0.1'],
  ])('%s prints as iproute2 prints it: %s', (hex, text) => {
    expect(formatIp(Buffer.from(hex, 'hex'))).toBe(text);
  });

  it('canonicalises what it parses', () => {
    expect(parseIp('FD00:0:0::0001', 'ip').address).toBe('fd00::1');
  });

  it.each(['10.0.0', '10.0.0.256', 'fd00:::1', 'eth0', '', '1.2.3.4/24'])('refuses %j naming the field', (bad) => {
    expect(() => parseIp(bad, 'gateway')).toThrow(InvalidArgumentError);
    expect(() => parseIp(bad, 'gateway')).toThrow(/^gateway: /);
  });
});

describe('prefixes', () => {
  it('parses address/prefix', () => {
    expect(parseCidr('10.1.2.3/24', 'address')).toMatchObject({ address: '10.1.2.3', prefixLen: 24, family: 4, cidr: '10.1.2.3/24' });
    expect(parseCidr('fd00::2/64', 'address')).toMatchObject({ prefixLen: 64, family: 6 });
  });

  it('refuses a missing or out-of-range prefix and, for networks, host bits', () => {
    expect(() => parseCidr('10.0.0.1', 'address')).toThrow(/address: .*no prefix length/);
    expect(() => parseCidr('10.0.0.1/33', 'address')).toThrow(/from 0 to 32/);
    expect(() => parseCidr('fd00::/129', 'dst')).toThrow(/from 0 to 128/);
    expect(() => parseCidr('10.0.0.1/24', 'dst', { network: true })).toThrow(/dst: .*host bits set \(the network is 10\.0\.0\.0\/24\)/);
    expect(parseCidr('10.0.0.0/24', 'dst', { network: true }).cidr).toBe('10.0.0.0/24');
    expect(parseCidr('10.0.0.1', 'dst', { allowHost: true }).prefixLen).toBe(32);
  });
});

describe('MAC addresses', () => {
  it('round-trips', () => {
    expect(formatMac(parseMac('02:AB:cd:00:00:01', 'mac'))).toBe('02:ab:cd:00:00:01');
  });

  it('refuses malformed, multicast and all-zero device addresses', () => {
    expect(() => parseMac('02:ab:cd:00:00', 'mac')).toThrow(/mac: .*not a MAC address/);
    expect(() => parseMac('02-ab-cd-00-00-01', 'peer.mac')).toThrow(/^peer\.mac: /);
    expect(() => parseMac('01:00:5e:00:00:01', 'mac', { unicast: true })).toThrow(/multicast/);
    expect(() => parseMac('00:00:00:00:00:00', 'mac', { unicast: true })).toThrow(/all-zero/);
    expect(parseMac('00:00:00:00:00:00', 'mac').equals(Buffer.alloc(6))).toBe(true);
  });
});

describe('numbers and references', () => {
  it('bounds the MTU', () => {
    expect(validateMtu(1500)).toBe(1500);
    expect(() => validateMtu(67)).toThrow(/mtu: 67 must be an integer from 68 to 65535/);
    expect(() => validateMtu(65536, 'peer.mtu')).toThrow(/^peer\.mtu: /);
    expect(() => validateMtu(1500.5)).toThrow(InvalidArgumentError);
    expect(() => validateMtu('1500')).toThrow(InvalidArgumentError);
  });

  it('bounds the VNI to 24 bits', () => {
    expect(validateVni(0xffffff)).toBe(0xffffff);
    expect(() => validateVni(0x1000000)).toThrow(/vni: /);
  });

  it('takes a link by valid name or positive index', () => {
    expect(validateLinkRef('eth0', 'dev')).toBe('eth0');
    expect(validateLinkRef(3, 'dev')).toBe(3);
    expect(() => validateLinkRef('a-name-longer-than-15', 'dev')).toThrow(/dev: .*longer than 15/);
    expect(() => validateLinkRef('sl/ash', 'dev')).toThrow(/may hold only/);
    expect(() => validateLinkRef(0, 'dev')).toThrow(/dev: /);
  });

  it('wants namespace paths absolute', () => {
    expect(() => validateNetnsPath('ns1', 'peer.nsPath')).toThrow(/peer\.nsPath: .*absolute path/);
    expect(validateNetnsPath('/run/netns/x', 'nsPath')).toBe('/run/netns/x');
  });
});
