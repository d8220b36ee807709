// IP prefixes (CIDRs) over ./address.ts: parsed strictly (host bits refused, with the prefix that
// was meant), masked from host-reported text, compared (contains, overlaps, covers).
import { InvalidArgumentError } from '../errors.js';
import { BITS, formatAddress, parseAddress, type Address, type Family, type ParseOptions } from './address.js';

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

/** Splits "ADDR/LEN" into its parts, checking LEN is a whole number within the family's width. */
export function splitCidr(field: string, text: string, opts: ParseOptions = {}): { address: Address; bits: number } {
  const parts = text.split('/');
  const [addr = '', len = ''] = parts;
  if (parts.length !== 2 || !/^(0|[1-9][0-9]{0,2})$/.test(len)) {
    throw new InvalidArgumentError(field, `${JSON.stringify(text)} is not in CIDR notation (ADDRESS/PREFIX-LENGTH)`);
  }
  const address = parseAddress(field, addr, opts);
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

/** The prefix of length bits that holds value. */
export function maskedPrefix(family: Family, value: bigint, bits: number): Prefix {
  const hostBits = BigInt(BITS[family] - bits);
  return makePrefix(family, (value >> hostBits) << hostBits, bits);
}

/** Parses a network prefix; refuses one with host bits set, and says which prefix was meant. */
export function parsePrefix(field: string, text: unknown, opts: ParseOptions = {}): Prefix {
  if (typeof text !== 'string' || text === '') throw new InvalidArgumentError(field, 'a CIDR is required');
  const { address, bits } = splitCidr(field, text, opts);
  const prefix = maskedPrefix(address.family, address.value, bits);
  if (prefix.start !== address.value) {
    throw new InvalidArgumentError(field, `${text} has host bits set: did you mean ${prefix.text}?`);
  }
  return prefix;
}

/** The network a host-reported destination covers: "ADDR/LEN" with host bits masked off, or "ADDR" alone. */
export function parseNetwork(field: string, text: string): Prefix {
  const { address, bits } = text.includes('/') ? splitCidr(field, text) : { address: parseAddress(field, text), bits: undefined };
  return maskedPrefix(address.family, address.value, bits ?? BITS[address.family]);
}

export function makePrefix(family: Family, start: bigint, bits: number): Prefix {
  const end = start + (1n << BigInt(BITS[family] - bits)) - 1n;
  return { family, start, end, bits, text: `${formatAddress(family, start)}/${bits}` };
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
