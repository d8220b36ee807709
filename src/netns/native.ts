// Typed loader for the native/ addon: namespace switching and nothing JS can do itself.
// Limits: Linux only; the addon acts on the calling thread (keep it on Node's main thread).
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export interface NetlinkSocketOptions {
  /** NETLINK_NO_ENOBUFS: drop overflowing events instead of failing the socket. */
  noEnobufs?: boolean;
  /** NETLINK_EXT_ACK: ask the kernel for its error text. */
  extAck?: boolean;
  /** NETLINK_GET_STRICT_CHK: strict checking of dump requests. */
  strictCheck?: boolean;
  /** SO_RCVBUFFORCE, in bytes. */
  receiveBuffer?: number;
}

export interface NativeAddon {
  /** Enters the namespace at nsPath, calls fn, returns to the home namespace whatever fn did. */
  runIn<T>(nsPath: string, fn: () => T): T;
  /** Inode of the calling thread's network namespace. */
  currentNetns(): number;
  /** `ip netns add`: a new namespace bind-mounted at dir/name; returns its path. */
  createNamed(dir: string, name: string): string;
  /** `ip netns del`: false when it was already gone. */
  deleteNamed(nsPath: string): boolean;
  /** A raw netlink socket fd created inside the namespace at nsPath. */
  netlinkSocketIn(nsPath: string, protocol: number): number;
  closeFd(fd: number): void;
  /** Sets options on this process's netlink socket bound to port; returns its fd. */
  setNetlinkOptions(port: number, options: NetlinkSocketOptions): number;
}

const here = path.dirname(fileURLToPath(import.meta.url));
const addonPath = path.resolve(here, '../../native/build/Release/cnmkit_native.node');

export const native: NativeAddon = createRequire(import.meta.url)(addonPath) as NativeAddon;
