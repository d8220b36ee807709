// IP addresses, the one module for them: text ⇄ BigInt ⇄ bytes, canonical text (dotted quad;
// RFC 5952 for IPv6, IPv4-mapped addresses in their mixed form). Errors name the field.
// Limits: no zone ids (fe80::1%eth0); IPv4 embedded in IPv6 text is refused unless asked for.
import net from 'node:net';
import { InvalidArgumentError } from '../errors.js';

export type Family = 4 | 6;
export const BITS: Record<Family, number> = { 4: 32, 6: 128 };

export interface Address {
  family: Family;
  value: bigint;
}

export interface ParseOptions {
  /** Accept IPv6 text that ends in a dotted quad (::ffff:1.2.3.4); default: refused. */
  embeddedV4?: boolean;
}

/** The eight 16-bit groups of an IPv6 text already checked by net.isIP (a dotted tail included). */
function v6Groups(text: string): number[] {
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    const [a = 0, b = 0, c = 0, d = 0] = text.slice(lastColon + 1).split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [left, right] = text.split('::') as [string, string | undefined];
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const l = parse(left);
  if (right === undefined) return l;
  const r = parse(right);
  return [...l, ...new Array<number>(8 - l.length - r.length).fill(0), ...r];
}

/** The family of a text address, checked: not an address, a zone id, or (unless allowed) an embedded IPv4 are refused. */
export function familyOfText(field: string, text: string, opts: ParseOptions = {}): Family {
  const family = net.isIP(text);
  if (family === 0 || text.includes('%')) throw new InvalidArgumentError(field, `${JSON.stringify(text)} is not an IP address`);
  if (family === 6 && !opts.embeddedV4 && text.includes('.')) {
    throw new InvalidArgumentError(field, `${JSON.stringify(text)} embeds an IPv4 address in IPv6 notation; give a plain IPv4 or IPv6 address`);
  }
  return family as Family;
}

/** Parses a plain address (no prefix length). */
export function parseAddress(field: string, text: unknown, opts: ParseOptions = {}): Address {
  if (typeof text !== 'string' || text === '') throw new InvalidArgumentError(field, 'an IP address is required');
  const family = familyOfText(field, text, opts);
  if (family === 4) {
    const [a = 0, b = 0, c = 0, d = 0] = text.split('.').map(Number);
    return { family, value: BigInt((((a << 24) >>> 0) + (b << 16) + (c << 8) + d) >>> 0) };
  }
  return { family, value: v6Groups(text).reduce((acc, g) => (acc << 16n) | BigInt(g), 0n) };
}

/** The address's bytes in network order (4 or 16). */
export function addressBytes(a: Address): Buffer {
  const out = Buffer.alloc(a.family === 4 ? 4 : 16);
  let v = a.value;
  for (let i = out.length - 1; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

/** The address in 4 or 16 bytes. */
export function addressFromBytes(bytes: Uint8Array): Address {
  if (bytes.length !== 4 && bytes.length !== 16) throw new RangeError(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
  let value = 0n;
  for (const b of bytes) value = (value << 8n) | BigInt(b);
  return { family: bytes.length === 4 ? 4 : 6, value };
}

/** Canonical text: dotted quad, or RFC 5952 (lower case, longest zero run compressed, ::ffff:a.b.c.d). */
export function formatAddress(family: Family, value: bigint): string {
  if (family === 4) {
    const n = Number(value);
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  if (value >> 32n === 0xffffn) return `::ffff:${formatAddress(4, value & 0xffffffffn)}`;
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

/** Canonical text of a text address (e.g. FD00:0::1 → fd00::1). */
export function canonicalAddress(field: string, text: unknown, opts: ParseOptions = {}): string {
  const a = parseAddress(field, text, opts);
  return formatAddress(a.family, a.value);
}

/** Whether a is an IPv4-mapped IPv6 address (::ffff:a.b.c.d, in any spelling). */
export function isV4Mapped(a: Address): boolean {
  return a.family === 6 && a.value >> 32n === 0xffffn;
}

/** True for 0.0.0.0 and ::, the wildcard addresses of one family. */
export function isUnspecified(text: string): boolean {
  return text === '0.0.0.0' || text === '::';
}

export function isLoopback(text: string): boolean {
  return text === '::1' || text.startsWith('127.');
}

/** 4 or 6 for a text already known to be an address (anything else counts as 6). */
export function familyOf(text: string): Family {
  return net.isIPv4(text) ? 4 : 6;
}
