// Typed loader for the native/ addon: namespace switching, the splice relay, the TCP acceptor, nothing JS can do
// itself. Limits: Linux only; namespace calls act on the calling thread (keep them on Node's main thread).
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

/** What a splice relay moved before it ended. */
export interface SpliceRelayStats {
  /** Bytes written to fdB that were read from fdA. */
  aToB: number;
  /** Bytes written to fdA that were read from fdB. */
  bToA: number;
  /** cancel() reached the relay while it ran. */
  cancelled: boolean;
}

/** A running relay; cancel() stops both directions, and done then reports `cancelled`. */
export interface SpliceRelay {
  cancel(): void;
}

/** Called once on the JS thread when both directions have ended; err carries errno, code, syscall. */
export type SpliceRelayDone = (err: NodeJS.ErrnoException | null, stats: SpliceRelayStats) => void;

/** Called on the JS thread for each accepted client: fd is the caller's to close; err when accept failed (fd -1). */
export type TcpAcceptHandler = (id: number, fd: number, err?: NodeJS.ErrnoException) => void;

/** Listening TCP sockets held natively, accepted on one native thread (see native/src/acceptor.c). */
export interface TcpAcceptor {
  /**
   * Binds and listens on firstPort .. firstPort+count-1 of address; returns a listener id per port,
   * in port order. All or nothing: throws (errno, code, syscall, port = the failing port).
   */
  listen(address: string, firstPort: number, count: number, ipv6Only: boolean, backlog: number): number[];
  /** Stops listening on these ids and frees their ports at once; unknown ids are skipped. */
  close(ids: number[]): void;
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
  /** A raw netlink socket fd created inside the namespace at nsPath, with options set on it. */
  netlinkSocketIn(nsPath: string, protocol: number, options?: NetlinkSocketOptions): number;
  /** Binds a netlink socket to a port the kernel picks; returns the port. */
  netlinkBind(fd: number): number;
  /**
   * Sends one whole netlink message (its seq set) on fd and returns the datagrams answering it,
   * up to its ACK, error or NLMSG_DONE; throws (errno, code, syscall) on a socket error or ETIMEDOUT.
   */
  netlinkRequest(fd: number, message: Buffer, timeoutMs: number): Buffer[];
  /** netlinkRequest on a thread of libuv's pool; done on the JS thread. Keep fd open until then. */
  netlinkRequestAsync(fd: number, message: Buffer, timeoutMs: number, done: (err: NodeJS.ErrnoException | null, datagrams: Buffer[]) => void): void;
  closeFd(fd: number): void;
  /** Sets options on this process's netlink socket bound to port; returns its fd. */
  setNetlinkOptions(port: number, options: NetlinkSocketOptions): number;
  /**
   * Relays bytes both ways between two connected stream sockets with splice(2), on native
   * threads. EOF one way shuts the other socket's write side (half-close); the first error
   * (ECONNRESET, EPIPE, …) or cancel() ends both ways. The fds stay the caller's: stop libuv
   * reading them first and close them only after done. Optional: an older build lacks it.
   * Throws (errno, code, syscall) when the fds are not sockets or pipes/threads cannot be had.
   */
  spliceRelay?(fdA: number, fdB: number, done: SpliceRelayDone): SpliceRelay;
  /** A raw ICMP socket (echo replies only) in the calling thread's namespace: call it inside runIn. */
  icmpSocket?(): number;
  /**
   * One ICMP echo to every target of every job, each on its job's socket, all at once; done on the
   * JS thread with each target's round trip in ms, or -1 when none came within timeoutMs. IPv4 only.
   */
  icmpSweep?(jobs: Array<{ fd: number; targets: string[] }>, timeoutMs: number, done: (err: NodeJS.ErrnoException | null, rtts: number[][]) => void): void;
  /** A TCP acceptor with its thread running; it keeps the event loop alive while it listens. */
  tcpAcceptor(onAccept: TcpAcceptHandler): TcpAcceptor;
}

const here = path.dirname(fileURLToPath(import.meta.url));
const addonPath = path.resolve(here, '../../native/build/Release/cnmkit_native.node');

export const native: NativeAddon = createRequire(import.meta.url)(addonPath) as NativeAddon;
