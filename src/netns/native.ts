// Typed loader for the native/ addon: namespace switching, the splice relay, the TCP acceptor, the UDP
// forwarder and their shared proxy budget, nothing JS can do itself. Limits: Linux only; namespace calls act on the calling thread (keep them on Node's main thread).
import { createRequire } from 'node:module';
import { projectPath } from '../paths.js';

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
  /** No byte moved either way for idleMs: the relay ended itself. */
  timedOut: boolean;
}

/** Why the proxy refused a connection or ended one; the names of the daemon flags that set them. */
export type LimitReason = 'max-connections' | 'max-connections-per-port' | 'idle-timeout';

export interface ProxyBudgetStats {
  /** TCP connections and UDP flows held against limit. */
  live: number;
  limit: number;
  tcp: number;
  udp: number;
  /** Bytes the native parts carried (relayed TCP, UDP datagrams), each way. */
  toContainer: number;
  fromContainer: number;
  hits: Record<LimitReason, number>;
}

/** One proxy's connection limit and counters, shared by its acceptor listeners, UDP listeners and relays. */
export interface ProxyBudget {
  stats(): ProxyBudgetStats;
  /** A TCP connection the acceptor admitted has ended. */
  releaseTcp(): void;
}

export interface SpliceRelayOptions {
  /** End the relay when no byte moved either way for this long (0 = never). */
  idleMs?: number;
  /** Counts the relayed bytes (fdA → fdB is "to container") and idle-timeout hits. */
  budget?: ProxyBudget;
}

/** A running relay; cancel() stops both directions, and done then reports `cancelled`. */
export interface SpliceRelay {
  cancel(): void;
}

/** Called once on the JS thread when both directions have ended; err carries errno, code, syscall. */
export type SpliceRelayDone = (err: NodeJS.ErrnoException | null, stats: SpliceRelayStats) => void;

/**
 * Called on the JS thread for each admitted client: fd is the caller's to close when it returns true
 * (else the acceptor closes it and gives its place back); err when accept failed (fd -1); limit when
 * connections were refused over a limit (fd -1, at most once a second per reason).
 */
export type TcpAcceptHandler = (id: number, fd: number, err?: NodeJS.ErrnoException, limit?: LimitReason) => boolean;

/** Listening TCP sockets held natively, accepted on one native thread (see native/src/acceptor.c). */
export interface TcpAcceptor {
  /**
   * Binds and listens on firstPort .. firstPort+count-1 of address; returns a listener id per port,
   * in port order. All or nothing: throws (errno, code, syscall, port = the failing port).
   */
  listen(address: string, firstPort: number, count: number, ipv6Only: boolean, backlog: number, budget: ProxyBudget, perPortLimit: number): number[];
  /** Stops listening on these ids and frees their ports at once; unknown ids are skipped. */
  close(ids: number[]): void;
  /** A connection admitted on listener id has ended (skipped when the listener is closed). */
  release(id: number): void;
}

/** Published UDP ports held natively, a flow per client served on one native thread (see native/src/udp.c). */
export interface UdpForwarder {
  /**
   * Binds firstPort .. firstPort+count-1 of address, port i forwarding to containerPort + i; flows end
   * after idleMs without traffic. Returns an id per port; all or nothing (throws with `port`).
   */
  listen(
    address: string, firstPort: number, count: number, ipv6Only: boolean, containerIP: string, containerPort: number,
    budget: ProxyBudget, perPortLimit: number, idleMs: number,
  ): number[];
  /** Closes these listeners and their flows; the ports are free on return. */
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
   * Relays bytes both ways between two connected stream sockets with splice(2), on a fixed pool of
   * native threads shared by every relay. EOF one way shuts the other socket's write side
   * (half-close); the first error (ECONNRESET, EPIPE, …), cancel() or the idle timeout ends both ways. The fds stay the caller's: stop libuv
   * reading them first and close them only after done. Optional: an older build lacks it.
   * Throws (errno, code, syscall) when the fds are not sockets or pipes/threads cannot be had.
   */
  /** A raw ICMP socket (echo replies only) in the calling thread's namespace: call it inside runIn. */
  icmpSocket?(): number;
  /**
   * One ICMP echo to every target of every job, each on its job's socket, all at once; done on the
   * JS thread with each target's round trip in ms, or -1 when none came within timeoutMs. IPv4 only.
   */
  icmpSweep?(jobs: Array<{ fd: number; targets: string[] }>, timeoutMs: number, done: (err: NodeJS.ErrnoException | null, rtts: number[][]) => void): void;
  spliceRelay?(fdA: number, fdB: number, done: SpliceRelayDone, options?: SpliceRelayOptions): SpliceRelay;
  /** A TCP acceptor with its thread running; it keeps the event loop alive while it listens. */
  tcpAcceptor(onAccept: TcpAcceptHandler): TcpAcceptor;
  /** A UDP forwarder with its thread running; onLimit hears of flows refused over a limit. */
  udpForwarder(onLimit: (id: number, limit: LimitReason) => void): UdpForwarder;
  /** A new budget of limit connections and flows. */
  proxyBudget(limit: number): ProxyBudget;
}

const addonPath = projectPath('native', 'build', 'Release', 'cnmkit_native.node');

export const native: NativeAddon = createRequire(import.meta.url)(addonPath) as NativeAddon;
