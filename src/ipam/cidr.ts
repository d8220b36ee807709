// Addresses and prefixes for IPAM: validated with node:net and ip-cidr, held as BigInt, written
// back in canonical text (dotted quad; RFC 5952 for IPv6). Refuses zone ids (fe80::1%eth0) and
// IPv4 embedded in IPv6 text (::ffff:1.2.3.4): neither names an address a pool can hand out.
import net from 'node:net';
import IPCIDR from 'ip-cidr';
import { InvalidArgumentError } from '../errors.js';

export type Family = 4 | 6;
export const BITS: Record<Family, number> = { 4: 32, 6: 128 };

export interface Address {
  family: Family;
  value: bigint;
}

export interface Prefix {
  family: Family;
  /** The first address (network address). */
  start: bigint;
  /** The last address (IPv4 broadcast address). */
  end: bigint;
  bits: number;
  /** Canonical text, e.g. 172.18.0.0/16 or fd12:3456:789a::/64. */
  text: string;
}

function familyOf(field: string, text: string): Family {
  const family = net.isIP(text);
  if (family === 0 || text.includes('%')) throw new InvalidArgumentError(field, `${JSON.stringify(text)} is not an IP address`);
  if (family === 6 && text.includes('.')) {
    throw new InvalidArgumentError(field, `${JSON.stringify(text)} embeds an IPv4 address in IPv6 notation; give a plain IPv4 or IPv6 address`);
  }
  return family as Family;
}

function v4Value(text: string): bigint {
  const [a = 0, b = 0, c = 0, d = 0] = text.split('.').map(Number);
  return BigInt((((a << 24) >>> 0) + (b << 16) + (c << 8) + d) >>> 0);
}

/** Parses a plain address (no prefix length). */
export function parseAddress(field: string, text: unknown): Address {
  if (typeof text !== 'string' || text === '') throw new InvalidArgumentError(field, 'an IP address is required');
  const family = familyOf(field, text);
  const value = family === 4 ? v4Value(text) : IPCIDR.formatIP<bigint>(IPCIDR.createAddress(text), { type: 'bigInteger' });
  return { family, value };
}

/** Splits "ADDR/LEN" into its parts, checking LEN is a whole number within the family's width. */
function splitCidr(field: string, text: string): { address: Address; bits: number } {
  const parts = text.split('/');
  const [addr = '', len = ''] = parts;
  if (parts.length !== 2 || !/^(0|[1-9][0-9]{0,2})$/.test(len)) {
    throw new InvalidArgumentError(field, `${JSON.stringify(text)} is not in CIDR notation (ADDRESS/PREFIX-LENGTH)`);
  }
  const address = parseAddress(field, addr);
  const bits = Number(len);
  if (bits > BITS[address.family]) throw new InvalidArgumentError(field, `prefix length /${bits} is longer than ${BITS[address.family]} bits`);
  return { address, bits };
}

/** Parses "ADDR" or "ADDR/LEN"; the length, when given, is returned for the caller to check. */
export function parseAddressOrCidr(field: string, text: unknown): Address & { bits?: number } {
  if (typeof text === 'string' && text.includes('/')) {
    const { address, bits } = splitCidr(field, text);
    return { ...address, bits };
  }
  return parseAddress(field, text);
}

/** Parses a network prefix; refuses one with host bits set, and says which prefix was meant. */
export function parsePrefix(field: string, text: unknown): Prefix {
  if (typeof text !== 'string' || text === '') throw new InvalidArgumentError(field, 'a CIDR is required');
  const { address, bits } = splitCidr(field, text);
  const range = new IPCIDR(text);
  const prefix = makePrefix(address.family, range.start<bigint>({ type: 'bigInteger' }), bits);
  if (prefix.start !== address.value) {
    throw new InvalidArgumentError(field, `${text} has host bits set: did you mean ${prefix.text}?`);
  }
  return prefix;
}

/** The network a host-reported destination covers: "ADDR/LEN" with host bits masked off, or "ADDR" alone. */
export function parseNetwork(field: string, text: string): Prefix {
  const { address, bits } = text.includes('/') ? splitCidr(field, text) : { address: parseAddress(field, text), bits: undefined };
  const width = BITS[address.family];
  const length = bits ?? width;
  const hostBits = BigInt(width - length);
  return makePrefix(address.family, (address.value >> hostBits) << hostBits, length);
}

export function makePrefix(family: Family, start: bigint, bits: number): Prefix {
  const end = start + (1n << BigInt(BITS[family] - bits)) - 1n;
  return { family, start, end, bits, text: `${formatAddress(family, start)}/${bits}` };
}

export function formatAddress(family: Family, value: bigint): string {
  if (family === 4) {
    const n = Number(value);
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn));
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLength).join(':')}`;
}

export function contains(prefix: Prefix, address: Address): boolean {
  return prefix.family === address.family && address.value >= prefix.start && address.value <= prefix.end;
}

export function overlaps(a: Prefix, b: Prefix): boolean {
  return a.family === b.family && a.start <= b.end && b.start <= a.end;
}

/** Whether inner lies wholly inside outer. */
export function covers(outer: Prefix, inner: Prefix): boolean {
  return outer.family === inner.family && inner.start >= outer.start && inner.end <= outer.end;
}
