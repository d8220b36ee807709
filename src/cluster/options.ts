// The daemon's cluster flags parsed into a ClusterConfig before anything is touched:
// --cluster-store, --cluster-store-opt, --advertise-addr, --cluster-lease-ttl and
// --default-global-address-pool. Errors name the flag. Loads no etcd code.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { ConflictError, InvalidArgumentError } from '../errors.js';
import { parseDefaultAddressPool, type DefaultPool } from '../ipam/defaults.js';

export interface ClusterFlags {
  store?: string;
  storeOpts?: string[];
  advertise?: string;
  leaseTtl?: string;
  globalPools?: string[];
}

export interface ClusterConfig {
  /** etcd's JSON gateway: http://HOST:PORT, https://HOST:PORT or unix:///PATH. */
  endpoints: string[];
  tls?: { cacert: string; cert?: string; key?: string };
  /** Key prefix, e.g. /cnmkit; keys live under PREFIX/v1/. */
  prefix: string;
  /** The VTEP address (IPv4), and the interface it came from when one was named. */
  vtep: string;
  advertiseInterface?: string;
  leaseTtl: number;
  globalPools?: DefaultPool[];
}

export const DEFAULT_PREFIX = '/cnmkit';
export const DEFAULT_LEASE_TTL = 15;
/** etcd refuses shorter leases (its minimum is about 1.5 election timeouts). */
const MIN_LEASE_TTL = 2;
const MAX_LEASE_TTL = 3600;

type Interfaces = NodeJS.Dict<os.NetworkInterfaceInfo[]>;

function fail(flag: string, reason: string): never {
  throw new InvalidArgumentError(flag, reason);
}

/** `etcd://HOST:PORT[,HOST:PORT…]` (or `unix:///PATH` for a local socket) → the endpoints of etcd's JSON gateway. */
export function parseStoreUrl(text: string, secure: boolean): string[] {
  const flag = '--cluster-store';
  if (text.startsWith('unix://')) {
    const file = text.slice('unix://'.length);
    if (!file.startsWith('/') || file.includes(',')) fail(flag, `expected unix:///ABSOLUTE/PATH, got ${JSON.stringify(text)}`);
    if (secure) fail(flag, 'TLS options need etcd://HOST:PORT, not a unix socket');
    return [`unix://${file}`];
  }
  if (!text.startsWith('etcd://')) fail(flag, `expected etcd://HOST:PORT[,HOST:PORT…], got ${JSON.stringify(text)}`);
  const list = text.slice('etcd://'.length).split(',').map((h) => h.trim().replace(/^etcd:\/\//, ''));
  return list.map((hostPort) => {
    const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/.exec(hostPort);
    const port = m ? Number(m[2]) : 0;
    if (!m || port < 1 || port > 65535) fail(flag, `expected HOST:PORT, got ${JSON.stringify(hostPort)} in ${JSON.stringify(text)}`);
    const host = m[1]!;
    if (host.startsWith('[') && net.isIPv6(host.slice(1, -1)) === false) fail(flag, `${host} is not an IPv6 address`);
    return `${secure ? 'https' : 'http'}://${host}:${port}`;
  });
}

/**
 * The interface (up, as os.networkInterfaces() lists them) that holds the IPv4 address, if any.
 * Read anew at each call: an address added after the daemon started is found.
 */
export function interfaceWith(address: string, interfaces?: Interfaces): string | undefined {
  for (const [name, addrs] of Object.entries(interfaces ?? os.networkInterfaces())) {
    if (addrs?.some((a) => a.family === 'IPv4' && a.address === address)) return name;
  }
  return undefined;
}

/**
 * `--advertise-addr IP|IFACE` → an IPv4 address (an interface gives its first IPv4). The host's
 * interfaces (default: os.networkInterfaces()) are read only for an interface name: an address
 * that no interface has is taken (a lab adds its hosts' addresses after their daemons start).
 * An interface that is missing, down or without an IPv4 address gives `saved` (the address an
 * earlier run of this host registered, as after a reboot whose network comes up later) when there
 * is one; else it is refused (ConflictError: the host's state, not the flag, is wrong).
 */
export function resolveAdvertise(text: string, interfaces?: Interfaces, saved?: string): { vtep: string; iface?: string } {
  const flag = '--advertise-addr';
  const unreachable = (ip: string): boolean => ip === '0.0.0.0' || ip.startsWith('127.');
  if (net.isIPv4(text)) {
    if (unreachable(text)) fail(flag, `${text} cannot be reached from other hosts; give this host's underlay address`);
    return { vtep: text };
  }
  // An interface name (a lab gives eth0) is not put to net.isIPv6, whose first call compiles a
  // regular expression (~12 ms of the daemon's start): an IPv6 address has a colon.
  if (text.includes(':') && net.isIPv6(text)) fail(flag, `${text}: the VTEP must be an IPv4 address (or an interface with one)`);
  if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(text)) fail(flag, `${JSON.stringify(text)} is neither an IPv4 address nor an interface name`);
  const v4 = (interfaces ?? os.networkInterfaces())[text]?.find((a) => a.family === 'IPv4');
  if (!v4) {
    if (saved !== undefined) return { vtep: saved, iface: text };
    throw new ConflictError(`${flag}: interface ${text} is missing, down or has no IPv4 address in this network namespace, and no earlier run of this host saved one (give the address itself: it is taken even before an interface has it)`, { field: 'advertise-addr' });
  }
  if (unreachable(v4.address)) fail(flag, `interface ${text} has ${v4.address}, which cannot be reached from other hosts; give this host's underlay interface or address`);
  return { vtep: v4.address, iface: text };
}

function parseStoreOpts(list: string[]): { tls?: ClusterConfig['tls']; prefix: string } {
  const flag = '--cluster-store-opt';
  const opts = new Map<string, string>();
  for (const item of list) {
    const eq = item.indexOf('=');
    const key = eq > 0 ? item.slice(0, eq) : '';
    if (!['cacert', 'cert', 'key', 'prefix'].includes(key)) fail(flag, `expected cacert=FILE, cert=FILE, key=FILE or prefix=/PATH, got ${JSON.stringify(item)}`);
    if (opts.has(key)) fail(`${flag} ${key}`, 'is given twice');
    opts.set(key, item.slice(eq + 1));
  }
  for (const key of ['cacert', 'cert', 'key']) {
    const file = opts.get(key);
    if (file === undefined) continue;
    try {
      fs.accessSync(file, fs.constants.R_OK);
    } catch (err) {
      fail(`${flag} ${key}`, `cannot read ${file} (${(err as NodeJS.ErrnoException).code})`);
    }
  }
  const [cacert, cert, key] = [opts.get('cacert'), opts.get('cert'), opts.get('key')];
  if ((cert === undefined) !== (key === undefined)) fail(`${flag} ${cert === undefined ? 'cert' : 'key'}`, 'cert= and key= go together');
  if (cert !== undefined && cacert === undefined) fail(`${flag} cacert`, 'a client certificate needs cacert= (the CA that signed the etcd server)');
  const prefix = opts.get('prefix') ?? DEFAULT_PREFIX;
  if (!/^(\/[A-Za-z0-9._-]+)+$/.test(prefix)) fail(`${flag} prefix`, `expected /NAME[/NAME…] (letters, digits, . _ -), got ${JSON.stringify(prefix)}`);
  return { prefix, ...(cacert !== undefined ? { tls: { cacert, ...(cert !== undefined ? { cert, key: key! } : {}) } } : {}) };
}

function parseLeaseTtl(text: string | undefined): number {
  if (text === undefined) return DEFAULT_LEASE_TTL;
  const m = /^([0-9]{1,5})s?$/.exec(text);
  const ttl = m ? Number(m[1]) : NaN;
  if (!(ttl >= MIN_LEASE_TTL && ttl <= MAX_LEASE_TTL)) fail('--cluster-lease-ttl', `expected whole seconds from ${MIN_LEASE_TTL} to ${MAX_LEASE_TTL}, got ${JSON.stringify(text)}`);
  return ttl;
}

/** Validates every cluster flag; undefined when cluster mode is off (no --cluster-store). savedVtep: see resolveAdvertise. */
export function parseClusterFlags(flags: ClusterFlags, interfaces?: Interfaces, savedVtep?: string): ClusterConfig | undefined {
  if (flags.store === undefined) {
    const stray = ([['advertise', '--advertise-addr'], ['storeOpts', '--cluster-store-opt'], ['leaseTtl', '--cluster-lease-ttl'], ['globalPools', '--default-global-address-pool']] as const)
      .find(([k]) => flags[k] !== undefined);
    if (stray) fail(stray[1], 'needs --cluster-store');
    return undefined;
  }
  const { tls, prefix } = parseStoreOpts(flags.storeOpts ?? []);
  const endpoints = parseStoreUrl(flags.store, tls !== undefined);
  if (flags.advertise === undefined) fail('--advertise-addr', 'is required with --cluster-store (an IPv4 address or an interface name)');
  const { vtep, iface } = resolveAdvertise(flags.advertise, interfaces, savedVtep);
  const leaseTtl = parseLeaseTtl(flags.leaseTtl);
  let globalPools: DefaultPool[] | undefined;
  try {
    globalPools = flags.globalPools?.map((p) => parseDefaultAddressPool(p));
  } catch (err) {
    fail('--default-global-address-pool', (err as Error).message);
  }
  return { endpoints, prefix, vtep, leaseTtl, ...(tls ? { tls } : {}), ...(iface ? { advertiseInterface: iface } : {}), ...(globalPools ? { globalPools } : {}) };
}
