// Addresses in the forms netlink carries: text with its bytes (4 or 16, network order) and a
// prefix length, and MAC addresses. Built on ./address.ts; IPv4 embedded in IPv6 text is accepted
// here (the kernel reports IPv4-mapped addresses). Limits: MACs are 6-byte Ethernet only.
import { InvalidArgumentError } from '../errors.js';
import { addressBytes, addressFromBytes, BITS, formatAddress, parseAddress, type Family } from './address.js';
import { maskedPrefix } from './prefix.js';

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

/** Parses an IPv4 or IPv6 address; throws InvalidArgumentError naming field. */
export function parseIp(value: unknown, field: string): IpAddress {
  if (typeof value !== 'string') throw new InvalidArgumentError(field, 'an IP address string is required');
  const a = parseAddress(field, value, { embeddedV4: true });
  return { address: formatAddress(a.family, a.value), bytes: addressBytes(a), family: a.family };
}

/** Text of a 4- or 16-byte address, as iproute2 prints it. */
export function formatIp(bytes: Uint8Array): string {
  const a = addressFromBytes(bytes);
  return formatAddress(a.family, a.value);
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
  const max = BITS[ip.family];
  const prefixText = slash < 0 ? String(max) : value.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max)
    throw new InvalidArgumentError(field, `prefix length ${JSON.stringify(prefixText)} must be an integer from 0 to ${max}`);
  const prefixLen = Number(prefixText);
  if (opts.network) {
    const net = maskedPrefix(ip.family, addressFromBytes(ip.bytes).value, prefixLen);
    if (net.text !== `${ip.address}/${prefixLen}`) throw new InvalidArgumentError(field, `${JSON.stringify(value)} has host bits set (the network is ${net.text})`);
  }
  return { ...ip, prefixLen, cidr: `${ip.address}/${prefixLen}` };
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
