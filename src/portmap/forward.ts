// What the userland proxy's TCP and UDP forwarders share: what they forward (a TCP range, a UDP
// port), and the socket address a host IP is listened on (unset = dual-stack `::`, else 0.0.0.0).
import net from 'node:net';
import type { Logger } from './log.js';

/** One UDP host port forwarded to one container port. */
export interface UdpTarget {
  /** Unset = every address of both families. */
  hostIP?: string;
  hostPort: number;
  containerIP: string;
  containerPort: number;
}

export interface ForwardOptions {
  logger: Logger;
  noDelay: boolean;
  udpIdleTimeoutMs: number;
}

/** A TCP host port range forwarded to a container port range of the same size. */
export interface TcpRangeTarget {
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

/** Rejects with the first 'error' or resolves on 'listening', then stops listening for either. */
export function onceListening(emitter: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      emitter.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      emitter.off('error', onError);
      resolve();
    };
    emitter.once('error', onError);
    emitter.once('listening', onListening);
  });
}
