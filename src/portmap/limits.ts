// The userland proxy's limits: what the daemon's --proxy-* flags set, the defaults derived from the
// process's file descriptor limit (RLIMIT_NOFILE less a reserve for the rest of the daemon), the
// check of a publish against them, and the rate-limited log of limit hits. Linux (/proc) only.
import fs from 'node:fs';
import { CnmkitError, InvalidArgumentError } from '../errors.js';
import type { Logger } from './log.js';

/** File descriptors one proxied connection holds: the client's socket and the container's (a UDP flow holds one). */
export const FDS_PER_CONNECTION = 2;

/** What can be configured; unset values are derived from the fd limit. */
export interface ProxyLimitOptions {
  /** TCP connections and UDP flows at once, all ports together (--proxy-max-connections). */
  maxConnections?: number;
  /** TCP connections and UDP flows at once on one host port (--proxy-max-connections-per-port). */
  maxConnectionsPerPort?: number;
  /** A TCP connection with no byte either way for this long is closed; 0 = never (--proxy-idle-timeout). */
  idleTimeoutMs?: number;
  /** A UDP flow with no datagram either way for this long is closed (--proxy-udp-idle-timeout). */
  udpIdleTimeoutMs?: number;
  /** Host ports the proxy holds at once, each a listening socket (--proxy-max-ports). */
  maxPorts?: number;
  /** RLIMIT_NOFILE to derive from (default: this process's soft limit). */
  fdLimit?: number;
}

export type ProxyLimits = Required<ProxyLimitOptions> & {
  /** Descriptors kept for the rest of the daemon (API, netlink, store, firewall tools, relay pipes). */
  reserve: number;
};

/**
 * TCP idle timeout default: none, as docker-proxy. An idle connection costs two descriptors and no
 * thread, the caps bound how many there are, and keepalive (TCP_KEEPALIVE_MS) finds peers that
 * vanished; a timeout would cut connections that are idle on purpose (database pools, SSH, streams).
 */
export const DEFAULT_IDLE_TIMEOUT_MS = 0;
/** UDP flows have no end but silence. */
export const DEFAULT_UDP_IDLE_TIMEOUT_MS = 30_000;
/** Keepalive on both sockets of a proxied TCP connection: first probe after this much silence (Go's, so docker-proxy's). */
export const TCP_KEEPALIVE_MS = 15_000;

/** The daemon flag of each option, for messages. */
export const PROXY_FLAGS: Readonly<Record<string, string>> = {
  maxConnections: '--proxy-max-connections',
  maxConnectionsPerPort: '--proxy-max-connections-per-port',
  idleTimeoutMs: '--proxy-idle-timeout',
  udpIdleTimeoutMs: '--proxy-udp-idle-timeout',
  maxPorts: '--proxy-max-ports',
  fdLimit: 'RLIMIT_NOFILE',
};

/** The soft RLIMIT_NOFILE of this process (Node raises it to the hard limit at start). */
export function readFdLimit(file = '/proc/self/limits'): number {
  const line = fs.readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.replace('Max open files', '').trim().split(/\s+/)[0];
  return soft === undefined || soft === 'unlimited' ? 1 << 20 : Number(soft);
}

/** Descriptors this process has open now. */
export function countOpenFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/** A quarter of the limit, at least 256 and at most 4096, for the parts of the daemon that are not the proxy. */
export function fdReserve(fdLimit: number): number {
  return Math.min(4096, Math.max(256, Math.floor(fdLimit / 4)));
}

function integer(options: ProxyLimitOptions, key: keyof ProxyLimitOptions, min: number): number | undefined {
  const value = options[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min)
    throw new InvalidArgumentError(key, `${JSON.stringify(value)} is not an integer of at least ${min} (${PROXY_FLAGS[key]})`);
  return value;
}

/**
 * Fills in what options leave unset: half of the fd limit less the reserve for listening ports,
 * the rest for connections at two descriptors each, a port's share half of the total. Refuses
 * settings whose descriptors would not fit, naming the flag and the numbers.
 */
export function resolveProxyLimits(options: ProxyLimitOptions = {}): ProxyLimits {
  const fdLimit = integer(options, 'fdLimit', 1) ?? readFdLimit();
  const reserve = fdReserve(fdLimit);
  const budget = Math.max(0, fdLimit - reserve);
  const maxPorts = integer(options, 'maxPorts', 1) ?? Math.max(1, Math.floor(budget / 2));
  const maxConnections = integer(options, 'maxConnections', 1) ?? Math.max(1, Math.floor((budget - maxPorts) / FDS_PER_CONNECTION));
  const need = maxPorts + maxConnections * FDS_PER_CONNECTION;
  if (need > budget) {
    const allows = `the fd limit ${fdLimit} less ${reserve} kept for the daemon allows ${budget}`;
    const raise = 'or raise the limit (ulimit -n, LimitNOFILE=)';
    if (options.maxConnections === undefined)
      throw new InvalidArgumentError('maxPorts', `${maxPorts} ports leave no file descriptors for connections: ${allows}; lower it, ${raise}`);
    throw new InvalidArgumentError(
      'maxConnections',
      `${maxPorts} ports and ${maxConnections} connections need ${need} file descriptors, but ${allows} (${PROXY_FLAGS.maxPorts} ${maxPorts}, ${PROXY_FLAGS.maxConnections} ${maxConnections}): lower one, ${raise}`,
    );
  }
  return {
    fdLimit, reserve, maxPorts, maxConnections,
    maxConnectionsPerPort: integer(options, 'maxConnectionsPerPort', 1) ?? Math.max(1, Math.floor(maxConnections / 2)),
    idleTimeoutMs: integer(options, 'idleTimeoutMs', 0) ?? DEFAULT_IDLE_TIMEOUT_MS,
    udpIdleTimeoutMs: integer(options, 'udpIdleTimeoutMs', 1) ?? DEFAULT_UDP_IDLE_TIMEOUT_MS,
  };
}

/** How a publish of `ports` more ports stands against the limits, given what is held. */
export interface PortUsage {
  /** Ports held or being bound now. */
  held: number;
  /** Connections and flows live now. */
  connections: number;
}

/** Descriptors a publish leaves free beyond its own, for the firewall tools it runs next. */
const PUBLISH_HEADROOM = 64;

/**
 * Refuses a publish of `ports` host ports before anything is bound: over --proxy-max-ports
 * (bad request), or more descriptors than the process has free once every connection the limit
 * still allows is set aside — the rest of the daemon may have outgrown its reserve (unavailable).
 * Errors name the field `ports`.
 */
export function checkPortCapacity(limits: ProxyLimits, ports: number, usage: PortUsage, openFds: () => number = countOpenFds): void {
  if (ports <= 0) return;
  const what = `publishing ${ports} port${ports === 1 ? '' : 's'} through the userland proxy needs ${ports} file descriptor${ports === 1 ? '' : 's'}`;
  if (usage.held + ports > limits.maxPorts)
    throw new InvalidArgumentError(
      'ports',
      `${what}, but --proxy-max-ports allows ${limits.maxPorts} and ${usage.held} are published: publish fewer ports, raise --proxy-max-ports (fd limit ${limits.fdLimit}), or run the daemon with --userland-proxy false`,
    );
  const open = openFds();
  const keep = PUBLISH_HEADROOM + Math.max(0, limits.maxConnections - usage.connections) * FDS_PER_CONNECTION;
  const free = limits.fdLimit - open - keep;
  if (ports > free)
    throw new CnmkitError(
      'ERR_PROXY_NO_FILES',
      'unavailable',
      `ports: ${what}, but only ${Math.max(0, free)} are free (fd limit ${limits.fdLimit}, ${open} open, ${keep} kept for connections and the firewall)`,
      { field: 'ports' },
    );
}

/** Logs limit hits at warn level, one line per reason per interval, with the count since the last line. */
export class LimitLog {
  private readonly last = new Map<string, { at: number; total: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 30_000,
  ) {}

  /** A limit was hit `total` times so far (a running count); logs when the interval has passed. */
  hit(reason: string, total: number, detail: Record<string, unknown>): void {
    const now = Date.now();
    const prev = this.last.get(reason);
    if (prev && now - prev.at < this.intervalMs) return;
    this.last.set(reason, { at: now, total });
    const since = total - (prev?.total ?? 0);
    this.logger.warn({ reason, hits: total, sinceLastLog: since, ...detail }, `proxy: ${reason} limit reached, refusing new connections`);
  }
}

/** "30s", "1.5m", "2h", "500ms" or "0" → milliseconds (what Docker's daemon flags accept). */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (text.trim() === '0') return 0;
  if (!m) throw new InvalidArgumentError(flag, `expected a duration such as 30s, 5m, 1h or 0, got ${JSON.stringify(text)}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * unit);
}

/** The daemon's --proxy-* flags, as given; a bad value throws InvalidArgumentError naming the flag. */
export function proxyFlagOptions(flags: Readonly<Record<string, unknown>>): ProxyLimitOptions {
  const out: ProxyLimitOptions = {};
  const count = (flag: string, key: 'maxConnections' | 'maxConnectionsPerPort' | 'maxPorts'): void => {
    const text = flags[flag.slice(2)];
    if (text === undefined) return;
    if (typeof text !== 'string' || !/^\d+$/.test(text) || Number(text) < 1) throw new InvalidArgumentError(flag, `expected a whole number, at least 1, got ${JSON.stringify(text)}`);
    out[key] = Number(text);
  };
  const duration = (flag: string, key: 'idleTimeoutMs' | 'udpIdleTimeoutMs'): void => {
    const text = flags[flag.slice(2)];
    if (text !== undefined) out[key] = parseDuration(String(text), flag);
  };
  count('--proxy-max-connections', 'maxConnections');
  count('--proxy-max-connections-per-port', 'maxConnectionsPerPort');
  count('--proxy-max-ports', 'maxPorts');
  duration('--proxy-idle-timeout', 'idleTimeoutMs');
  duration('--proxy-udp-idle-timeout', 'udpIdleTimeoutMs');
  if (out.udpIdleTimeoutMs === 0)
    throw new InvalidArgumentError('--proxy-udp-idle-timeout', `expected a duration above 0 (a UDP flow ends only by silence), got ${JSON.stringify(flags['proxy-udp-idle-timeout'])}`);
  return out;
}
