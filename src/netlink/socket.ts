// One rtnetlink socket of the `netlink` package, born inside a chosen network namespace (through
// native/) with its options set. Limits: the package hides the fd, so options are set by port.
import os from 'node:os';
import { createRtNetlink, generateLocalPort, type RtNetlinkSocket } from 'netlink';
import { native, runInNetns } from '../netns/index.js';
import type { NetlinkSocketOptions } from '../netns/native.js';

/**
 * Netlink ports of the sockets opened here that are still open. Ports are unique only within a
 * namespace, while native.setNetlinkOptions finds a socket by port across the whole process:
 * two live sockets of ours must never share one, whatever namespaces they are in. The request
 * sockets of NetlinkHandle are bound by the kernel, which gives the first of each namespace the
 * process id as its port: that port is never taken here.
 */
const livePorts = new Set<number>();

export interface RtSocketOptions extends NetlinkSocketOptions {
  /** Keep the event loop alive while the socket is open (event subscriptions). */
  ref?: boolean;
}

export interface RtSocket {
  readonly rt: RtNetlinkSocket;
  readonly port: number;
  readonly nsPath: string | undefined;
  close(): void;
}

function bindFreshPort(nsPath: string | undefined, ref: boolean): { rt: RtNetlinkSocket; port: number } {
  for (let tries = 0; tries < 2048; tries++) {
    const port = generateLocalPort();
    if (livePorts.has(port) || port === process.pid) continue;
    const make = (): RtNetlinkSocket => createRtNetlink({ localPort: port, recvBufferSize: 0, sendBufferSize: 0, ref });
    try {
      return { rt: nsPath === undefined ? make() : runInNetns(nsPath, make), port };
    } catch (err) {
      const e = err as { code?: string; errno?: number };
      if (e.code !== 'EADDRINUSE' && e.errno !== os.constants.errno.EADDRINUSE) throw err;
    }
  }
  throw new Error('no free netlink port for a new socket');
}

/** Opens an rtnetlink socket in the namespace at nsPath (the caller's when undefined). */
export function openRtSocket(nsPath: string | undefined, options: RtSocketOptions = {}): RtSocket {
  const { ref = false, ...sockopts } = options;
  const { rt, port } = bindFreshPort(nsPath, ref);
  try {
    if (Object.keys(sockopts).length > 0) native.setNetlinkOptions(port, sockopts);
  } catch (err) {
    rt.socket.close();
    throw err;
  }
  livePorts.add(port);
  let open = true;
  return {
    rt,
    port,
    nsPath,
    close() {
      if (!open) return;
      open = false;
      livePorts.delete(port);
      rt.socket.close();
    },
  };
}
