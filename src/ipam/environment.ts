// What IPAM must know of the host to pick a default pool: its link-scope routes and its
// nameservers. The system default reads /etc/resolv.conf and /proc/net/route (IPv4 main table
// only, routes without a gateway standing for scope link); the daemon plugs in its netlink dump.
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';

export interface IpamEnvironment {
  /** Destinations (CIDRs) of the host's routes of scope link. */
  linkRoutes(): Promise<string[]> | string[];
  /** The addresses of the nameservers the host resolves with. */
  nameservers(): string[];
}

export interface SystemFiles {
  resolvConf: string;
  procRoute: string;
}

const RTF_UP = 0x1;
const RTF_GATEWAY = 0x2;
const RTF_REJECT = 0x200;

/** The `nameserver` addresses of a resolv.conf, in order; comments and other lines are skipped. */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const [keyword, address] = line.trim().split(/\s+/);
    if (keyword !== 'nameserver' || address === undefined) continue;
    const bare = address.split('%')[0] ?? '';
    if (net.isIP(bare) !== 0) out.push(bare);
  }
  return out;
}

function hexToIPv4(hex: string): number[] {
  const bytes = [...Buffer.from(hex, 'hex')];
  return os.endianness() === 'LE' ? bytes.reverse() : bytes;
}

function maskLength(bytes: number[]): number | undefined {
  const bits = bytes.map((b) => b.toString(2).padStart(8, '0')).join('');
  const ones = bits.includes('0') ? bits.indexOf('0') : 32;
  return bits.slice(ones).includes('1') ? undefined : ones;
}

/** Directly connected IPv4 routes (no gateway, up, not a reject route, not default) of /proc/net/route. */
export function parseProcRoute(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n').slice(1)) {
    const [, dest = '', gateway = '', flagsHex = '', , , , maskHex = ''] = line.trim().split(/\s+/);
    if (![dest, gateway, maskHex].every((h) => /^[0-9A-Fa-f]{8}$/.test(h)) || !/^[0-9A-Fa-f]+$/.test(flagsHex)) continue;
    const flags = parseInt(flagsHex, 16);
    if ((flags & RTF_UP) === 0 || (flags & (RTF_GATEWAY | RTF_REJECT)) !== 0 || parseInt(gateway, 16) !== 0) continue;
    const bits = maskLength(hexToIPv4(maskHex));
    if (bits === undefined || bits === 0) continue;
    out.push(`${hexToIPv4(dest).join('.')}/${bits}`);
  }
  return out;
}

function readOptional(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

/** The host as seen from the current network namespace, read from its files at each request. */
export function systemEnvironment(files: SystemFiles = { resolvConf: '/etc/resolv.conf', procRoute: '/proc/net/route' }): IpamEnvironment {
  return {
    linkRoutes: () => parseProcRoute(readOptional(files.procRoute)),
    nameservers: () => parseResolvConf(readOptional(files.resolvConf)),
  };
}
