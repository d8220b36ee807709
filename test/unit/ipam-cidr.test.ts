import { describe, expect, it } from 'vitest';
import { formatAddress, parseAddress, parsePrefix } from '../../src/ip/index.js';
import { AddressSet } from '../../src/ipam/allocator.js';

describe('IPAM address text', () => {
  it.each([
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['fd12:3456:789a::', 'fd12:3456:789a::'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:DB8::AB', '2001:db8::ab'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
  ])('writes %s as %s (RFC 5952)', (text, canonical) => {
    expect(formatAddress(6, parseAddress('ip', text).value)).toBe(canonical);
  });

  it('round-trips IPv4 at the edges', () => {
    for (const text of ['0.0.0.0', '255.255.255.255', '10.0.0.1', '192.168.254.3']) expect(formatAddress(4, parseAddress('ip', text).value)).toBe(text);
  });

  it('refuses leading zeros and malformed prefix lengths', () => {
    expect(() => parseAddress('ip', '10.0.0.01')).toThrow(/^ip: "10\.0\.0\.01" is not an IP address/);
    expect(() => parsePrefix('subnet', '10.0.0.0/08')).toThrow(/not in CIDR notation/);
    expect(() => parsePrefix('subnet', '10.0.0.0/16/2')).toThrow(/not in CIDR notation/);
    expect(parsePrefix('subnet', 'FD00::/8').text).toBe('fd00::/8');
  });
});

describe('AddressSet', () => {
  it('finds the first free offset from the cursor and wraps to the start of the range', () => {
    const set = new AddressSet();
    for (const o of [1n, 2n, 3n, 5n]) set.add(o);
    expect(set.nextFree(1n, 6n, 1n)).toBe(4n);
    expect(set.nextFree(1n, 6n, 5n)).toBe(6n);
    set.add(6n);
    expect(set.nextFree(1n, 6n, 5n)).toBe(4n);
    set.add(4n);
    expect(set.nextFree(1n, 6n, 3n)).toBeUndefined();
    set.delete(2n);
    expect(set.nextFree(1n, 6n, 3n)).toBe(2n);
    expect(set.nextFree(1n, 6n, 99n)).toBe(2n);
  });

  it('crosses chunk and word boundaries and handles offsets beyond 2^64', () => {
    const set = new AddressSet();
    for (let o = 0n; o < 65_600n; o++) set.add(o);
    expect(set.nextFree(0n, 1n << 20n, 0n)).toBe(65_600n);
    set.delete(65_535n);
    set.delete(31n);
    expect(set.nextFree(32n, 1n << 20n, 32n)).toBe(65_535n);
    expect(set.nextFree(0n, 30n, 0n)).toBeUndefined();
    const far = 1n << 70n;
    set.add(far);
    expect(set.has(far)).toBe(true);
    expect(set.nextFree(far, far + 1n, far)).toBe(far + 1n);
    set.delete(far);
    expect(set.has(far)).toBe(false);
  });
});
