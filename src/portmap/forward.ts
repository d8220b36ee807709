// What the userland proxy's TCP and UDP forwarders share: what they forward (a host port range),
// the proxy's budget and limits, the socket address a host IP is listened on (unset = dual-stack
// `::`, else 0.0.0.0), and binding a large range in chunks so that the JS thread is never held long.
import net from 'node:net';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { LimitReason, ProxyBudget } from '../netns/native.js';
import type { ProxyLimits } from './limits.js';
import type { Logger } from './log.js';

export interface ForwardOptions {
  logger: Logger;
  noDelay: boolean;
  limits: ProxyLimits;
  budget: ProxyBudget;
  /** A limit refused connections on hostPort (told at most once a second per reason). */
  onLimit(reason: LimitReason, proto: 'tcp' | 'udp', hostPort: number): void;
  /** What the stream fallback carried and cut (the budget counts what native code does). */
  stream: { toContainer: number; fromContainer: number; idleTimeouts: number };
}

/** A host port range forwarded to a container port range of the same size. */
export interface RangeTarget {
  /** Unset = every address of both families. */
  hostIP?: string;
  hostPort: number;
  hostPortEnd: number;
  containerIP: string;
  containerPort: number;
}

/** A bound host port that forwards; close() releases the port and ends its live traffic. */
export interface Forwarder {
  close(): Promise<void>;
}

export interface ListenAddress {
  address: string;
  family: 4 | 6;
  /** Set on `::` when the spec asked for IPv6 only (hostIP "::"). */
  ipv6Only: boolean;
}

/** Where to listen for hostIP, best first; the next one is tried when a family is missing. */
export function listenAddresses(hostIP: string | undefined): ListenAddress[] {
  if (hostIP === undefined)
    return [
      { address: '::', family: 6, ipv6Only: false },
      { address: '0.0.0.0', family: 4, ipv6Only: false },
    ];
  const family = net.isIPv6(hostIP) ? 6 : 4;
  return [{ address: hostIP, family, ipv6Only: hostIP === '::' }];
}

const FAMILY_MISSING = new Set(['EAFNOSUPPORT', 'EADDRNOTAVAIL']);

/** Opens a forwarder on the first usable listen address of hostIP. */
export async function openOnHostIP<T>(hostIP: string | undefined, open: (at: ListenAddress) => Promise<T>): Promise<T> {
  const candidates = listenAddresses(hostIP);
  for (let i = 0; ; i += 1) {
    const at = candidates[i] as ListenAddress;
    try {
      return await open(at);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (i + 1 >= candidates.length || !FAMILY_MISSING.has(code)) throw err;
    }
  }
}

/** Ports bound per native call; between calls the JS thread serves others (a publish never holds it long). */
export const BIND_CHUNK = 512;

/**
 * Binds target's host range in chunks with bind(firstPort, count) (one native call each),
 * yielding to the event loop between them. All or nothing: on a failure the ids bound so far go
 * to close and the error (with its `port`) is thrown.
 */
export async function bindInChunks(target: RangeTarget, bind: (firstPort: number, count: number) => number[], close: (ids: number[]) => void): Promise<number[]> {
  const ids: number[] = [];
  for (let port = target.hostPort; port <= target.hostPortEnd; port += BIND_CHUNK) {
    if (port > target.hostPort) await yieldToLoop();
    try {
      ids.push(...bind(port, Math.min(BIND_CHUNK, target.hostPortEnd - port + 1)));
    } catch (err) {
      close(ids);
      throw err;
    }
  }
  return ids;
}
