// The daemon's options and their checks, apart from the daemon's code: the CLI validates its flags
// with these before the daemon's modules are loaded.
import path from 'node:path';
import type { Logger } from 'pino';
import type { ClusterConfig } from '../cluster/options.js';
import { InvalidArgumentError } from '../errors.js';
import { maskedPrefix, splitCidr } from '../ip/index.js';
import type { DefaultPool } from '../ipam/index.js';
import { validateIfname } from '../netns/names.js';
import { parseMetricsAddr, type MetricsAddr } from '../api/metrics-addr.js';
import type { ProxyLimitOptions } from '../portmap/limits.js';

export interface DaemonOptions {
  socket: string;
  stateDir: string;
  runDir: string;
  pluginDir: string;
  netnsDir: string;
  logLevel: string;
  defaultAddressPools?: DefaultPool[];
  /** Device of the default `bridge` network. */
  bridgeName: string;
  /** Gateway CIDR of the default bridge (`--bip 172.17.0.1/16`); default: the first free pool. */
  bip?: string;
  firewallBackend: 'auto' | 'iptables' | 'nftables' | 'none';
  userlandProxy: boolean;
  /** `HOST:PORT` to serve GET /metrics on over TCP too (off when absent). */
  metricsAddr?: string;
  /** Cluster mode (--cluster-store …): global networks, IPAM and peers in etcd. */
  cluster?: ClusterConfig;
  /** Serve the Docker plugin sockets (default true); a lab's simulated host has no Docker engine. */
  dockerPlugins?: boolean;
  /** The userland proxy's connection, port and idle limits (--proxy-* flags); unset = derived from the fd limit. */
  proxyLimits?: ProxyLimitOptions;
  /** A logger to use instead of a new one (tests). */
  logger?: Logger;
}

/** `--bip 172.17.0.1/16` → subnet 172.17.0.0/16 with gateway 172.17.0.1. */
export function parseBip(bip: string): { subnet: string; gateway: string } {
  const refuse = (): never => {
    throw new InvalidArgumentError('--bip', `expected an IPv4 gateway address with a prefix length up to /30, e.g. 172.17.0.1/16, got ${JSON.stringify(bip)}`);
  };
  let cidr: ReturnType<typeof splitCidr>;
  try {
    cidr = splitCidr('--bip', bip);
  } catch {
    return refuse();
  }
  if (cidr.address.family !== 4 || cidr.bits > 30) refuse();
  return { subnet: maskedPrefix(4, cidr.address.value, cidr.bits).text, gateway: bip.split('/')[0]! };
}

/** What the checks parsed, for the parts of the start that use it. */
export interface CheckedOptions {
  metricsAddr?: MetricsAddr;
}

/**
 * Checks every option that could otherwise fail half-way through a start (after the sweep of
 * devices nothing owns): errors name the flag. No side effects.
 */
export function validateDaemonOptions(opts: DaemonOptions): CheckedOptions {
  const paths = { '--socket': opts.socket, '--state-dir': opts.stateDir, '--run-dir': opts.runDir, '--plugin-dir': opts.pluginDir, '--netns-dir': opts.netnsDir };
  for (const [flag, value] of Object.entries(paths)) {
    if (typeof value !== 'string' || value === '' || value.includes('\0')) throw new InvalidArgumentError(flag, `expected a path, got ${JSON.stringify(value)}`);
  }
  if (!path.isAbsolute(opts.netnsDir)) throw new InvalidArgumentError('--netns-dir', `expected an absolute path, got ${JSON.stringify(opts.netnsDir)}`);
  validateIfname(opts.bridgeName, '--bridge-name');
  if (opts.bip !== undefined) parseBip(opts.bip);
  return opts.metricsAddr === undefined ? {} : { metricsAddr: parseMetricsAddr(opts.metricsAddr) };
}
