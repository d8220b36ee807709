// IP addresses, prefixes and MAC addresses: the strings of the API to and from the raw bytes
// that netlink carries. Limits: no IPv6 zone ids (fe80::1%eth0), MACs are 6-byte Ethernet only.
import net from 'node:net';
import { InvalidArgumentError } from '../errors.js';

export type Family = 4 | 6;

/** Address families as the kernel numbers them. */
export const AF_INET = 2;
export const AF_BRIDGE = 7;
export const AF_INET6 = 10;

export interface IpAddress {
  /** Canonical text (lower case, IPv6 compressed as in RFC 5952). */
  address: string;
  bytes: Buffer;
  family: Family;
}

export interface Cidr extends IpAddress {
  prefixLen: number;
  /** `address/prefixLen` in canonical text. */
  cidr: string;
}

export function afOf(family: Family): number {
  return family === 4 ? AF_INET : AF_INET6;
}

export function familyOfAf(af: number | undefined): Family | undefined {
  return af === AF_INET ? 4 : af === AF_INET6 ? 6 : undefined;
}

/** The eight 16-bit groups of an IPv6 text already checked by net.isIP. */
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

/** Parses an IPv4 or IPv6 address; throws InvalidArgumentError naming field. */
export function parseIp(value: unknown, field: string): IpAddress {
  if (typeof value !== 'string') throw new InvalidArgumentError(field, 'an IP address string is required');
  const family = net.isIP(value);
  if (family === 4) {
    const bytes = Buffer.from(value.split('.').map(Number));
    return { address: formatIp(bytes), bytes, family: 4 };
  }
  if (family === 6) {
    const bytes = Buffer.alloc(16);
    v6Groups(value).forEach((g, i) => bytes.writeUInt16BE(g, i * 2));
    return { address: formatIp(bytes), bytes, family: 6 };
  }
  throw new InvalidArgumentError(field, `${JSON.stringify(value)} is not an IPv4 or IPv6 address`);
}

/** Text of a 4- or 16-byte address, as iproute2 prints it. */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) throw new RangeError(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
  const b = Buffer.from(bytes);
  if (b.subarray(0, 10).every((x) => x === 0) && b.readUInt16BE(10) === 0xffff) return `::ffff:${Array.from(b.subarray(12)).join('.')}`;
  const groups = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/**
 * Parses `ADDRESS/PREFIX`. With network, host bits must be zero (a route destination); the
 * prefix may be left out only when allowHost is set (then it is /32 or /128).
 */
export function parseCidr(value: unknown, field: string, opts: { network?: boolean; allowHost?: boolean } = {}): Cidr {
  if (typeof value !== 'string') throw new InvalidArgumentError(field, 'a CIDR string such as "10.0.0.1/24" is required');
  const slash = value.indexOf('/');
  if (slash < 0 && !opts.allowHost) throw new InvalidArgumentError(field, `${JSON.stringify(value)} has no prefix length (expected ADDRESS/PREFIX)`);
  const ip = parseIp(slash < 0 ? value : value.slice(0, slash), field);
  const max = ip.family === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : value.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max)
    throw new InvalidArgumentError(field, `prefix length ${JSON.stringify(prefixText)} must be an integer from 0 to ${max}`);
  const prefixLen = Number(prefixText);
  if (opts.network && !hostBitsZero(ip.bytes, prefixLen))
    throw new InvalidArgumentError(field, `${JSON.stringify(value)} has host bits set (the network is ${formatIp(maskBytes(ip.bytes, prefixLen))}/${prefixLen})`);
  return { ...ip, prefixLen, cidr: `${ip.address}/${prefixLen}` };
}

function maskBytes(bytes: Buffer, prefixLen: number): Buffer {
  const out = Buffer.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, prefixLen - i * 8));
    out[i] = (out[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
  return out;
}

function hostBitsZero(bytes: Buffer, prefixLen: number): boolean {
  return maskBytes(bytes, prefixLen).equals(bytes);
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** Parses `aa:bb:cc:dd:ee:ff`. With unicast, refuses multicast and all-zero addresses. */
export function parseMac(value: unknown, field: string, opts: { unicast?: boolean } = {}): Buffer {
  if (typeof value !== 'string' || !MAC_RE.test(value))
    throw new InvalidArgumentError(field, `${JSON.stringify(value)} is not a MAC address (expected six hex pairs such as 02:42:ac:11:00:02)`);
  const bytes = Buffer.from(value.split(':').map((h) => parseInt(h, 16)));
  if (opts.unicast && ((bytes[0] ?? 0) & 1) === 1) throw new InvalidArgumentError(field, `${value} is a multicast address; a device needs a unicast one`);
  if (opts.unicast && bytes.every((b) => b === 0)) throw new InvalidArgumentError(field, 'the all-zero MAC address cannot be assigned to a device');
  return bytes;
}

/** Lower-case colon-separated hex of any hardware address. */
export function formatMac(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(':');
}
