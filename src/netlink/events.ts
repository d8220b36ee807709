// Link and address events of one namespace, typed new/del, from a socket of their own (never the
// request socket). NETLINK_NO_ENOBUFS keeps an overflow from aborting the process; the socket's
// drop counter reveals it and a dump resyncs. Limits: a resync says what is, not what changed.
import fs from 'node:fs';
import { parseMessages, rt } from 'netlink';
import { runInNetns } from '../netns/index.js';
import { listAddresses, parseAddress, type Address } from './addrs.js';
import type { NetlinkHandle } from './handle.js';
import { AF_BRIDGE } from './af.js';
import { briefLink, linkMessageName, parseLink } from './link-parse.js';
import { listLinks } from './links.js';
import { openRtSocket, type RtSocket } from './socket.js';
import type { Link } from './types.js';

export type ResyncReason = 'overflow' | 'queue-full' | 'requested';

export type NetlinkEvent =
  /** A link appeared or changed (RTM_NEWLINK). */
  | { type: 'new-link'; link: Link }
  | { type: 'del-link'; link: Link }
  | { type: 'new-address'; address: Address }
  | { type: 'del-address'; address: Address }
  /** Events were lost: the full current state, from a dump. */
  | { type: 'resync'; reason: ResyncReason; links?: Link[]; addresses?: Address[] };

export interface SubscribeOptions {
  /** Link events (default true). */
  links?: boolean;
  /** IPv4 and IPv6 address events (default true). */
  addresses?: boolean;
  onEvent?: (event: NetlinkEvent) => void;
  /** Failures of a resync dump or of the socket (without it, the iterator throws them). */
  onError?: (err: Error) => void;
  /** Receive buffer in bytes (SO_RCVBUFFORCE; default 8 MiB). */
  receiveBuffer?: number;
  /** How often to look at the socket's drop counter, in ms (default 1000; 0: only on demand). */
  overflowCheckMs?: number;
  /** Events held for a slow async iterator before they are dropped for a resync (default 10 000). */
  maxQueued?: number;
  /** Keep the process alive while subscribed (default true). */
  keepAlive?: boolean;
  /**
   * Link events of these names (or indexes) only (asked for each event): the others are dropped
   * before they are parsed, which costs more than the name alone. A resync still lists every link.
   */
  linkNamed?: (ifname: string, index: number) => boolean;
  /**
   * Link events carry brief links (briefLink: name, ifindex, up, MTU; kind 'other'), read without
   * parsing the rest of each message. A resync still lists whole links.
   */
  brief?: boolean;
}

const GROUPS = { links: ['LINK'], addresses: ['IPV4_IFADDR', 'IPV6_IFADDR'] } as const;

/** The Drops column of the NETLINK_ROUTE socket bound to port in a /proc/net/netlink text. */
export function netlinkDrops(procText: string, port: number): number | undefined {
  for (const line of procText.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length >= 10 && cols[1] === '0' && Number(cols[2]) === port) return Number(cols[8]);
  }
  return undefined;
}

/**
 * Typed event of one raw notification; undefined for types this layer does not report (or a link
 * linkNamed leaves out). brief: links as briefLink reads them.
 */
export function eventOf(type: number, data: Buffer, linkNamed?: (ifname: string, index: number) => boolean, brief = false): NetlinkEvent | undefined {
  switch (type) {
    case rt.MessageType.NEWLINK:
    case rt.MessageType.DELLINK: {
      // Bridges also announce their ports' bridge state as AF_BRIDGE link messages: not link changes
      // (about half of a new bridge port's messages), dropped before anything is read.
      if (data.length < 1 || data[0] === AF_BRIDGE) return undefined;
      let link: Link | undefined;
      if (brief) {
        // Its name and index come in the same one pass: filtered after it.
        link = briefLink(data);
        if (link && linkNamed && !linkNamed(link.name, link.index)) return undefined;
      } else {
        const name = linkNamed ? linkMessageName(data) : undefined;
        // ifinfomsg: family, pad, type (2 bytes), then the index.
        if (name !== undefined && !linkNamed!(name, data.readInt32LE(4))) return undefined;
        link = parseLink(rt.parseLinkMessage(data));
      }
      if (!link) return undefined;
      return type === rt.MessageType.NEWLINK ? { type: 'new-link', link } : { type: 'del-link', link };
    }
    case rt.MessageType.NEWADDR:
    case rt.MessageType.DELADDR: {
      const address = parseAddress(rt.parseAddressMessage(data));
      if (!address) return undefined;
      return type === rt.MessageType.NEWADDR ? { type: 'new-address', address } : { type: 'del-address', address };
    }
    default:
      return undefined;
  }
}

export class Subscription implements AsyncIterable<NetlinkEvent> {
  private readonly sock: RtSocket;
  /** An fd of the namespace, to read its /proc/net/netlink even after its name is deleted. */
  private readonly nsFd?: number;
  private readonly timer?: NodeJS.Timeout;
  private readonly queue: NetlinkEvent[] = [];
  private iterating = false;
  private wake?: () => void;
  private drops = 0;
  private isClosed = false;
  private pendingError?: Error;

  constructor(
    private readonly handle: NetlinkHandle,
    private readonly options: SubscribeOptions = {},
  ) {
    this.sock = openRtSocket(handle.nsPath, { noEnobufs: true, receiveBuffer: options.receiveBuffer ?? 8 << 20, ref: options.keepAlive ?? true });
    try {
      this.sock.rt.socket.on('error', (err) => this.fail(err));
      this.sock.rt.socket.socket.on('message', (buf) => this.receive(buf));
      if (options.links ?? true) for (const g of GROUPS.links) this.sock.rt.addMembership(g);
      if (options.addresses ?? true) for (const g of GROUPS.addresses) this.sock.rt.addMembership(g);
      if (handle.nsPath !== undefined) this.nsFd = fs.openSync(handle.nsPath, 'r');
    } catch (err) {
      this.sock.close();
      throw err;
    }
    const every = options.overflowCheckMs ?? 1000;
    if (every > 0) this.timer = setInterval(() => void this.checkOverflow().catch((err: Error) => this.fail(err)), every).unref();
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Events dropped by the kernel so far (the socket's drop counter). */
  get dropped(): number {
    return this.drops;
  }

  /** Looks at the kernel's drop counter; when it grew, resyncs and resolves true. */
  async checkOverflow(): Promise<boolean> {
    if (this.isClosed) return false;
    const read = (): string => fs.readFileSync('/proc/thread-self/net/netlink', 'utf8');
    const text = this.nsFd === undefined ? read() : runInNetns(`/proc/self/fd/${this.nsFd}`, read);
    const drops = netlinkDrops(text, this.sock.port) ?? this.drops;
    if (drops === this.drops) return false;
    this.drops = drops;
    await this.resync('overflow');
    return true;
  }

  /** Dumps the current state (through the handle) and delivers it as one 'resync' event. */
  async resync(reason: ResyncReason = 'requested'): Promise<void> {
    const event: NetlinkEvent = { type: 'resync', reason };
    if (this.options.links ?? true) event.links = await listLinks(this.handle);
    if (this.options.addresses ?? true) event.addresses = await listAddresses(this.handle);
    this.deliver(event);
  }

  /** Stops the subscription and ends any iterator. Idempotent. Close before the process exits. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    if (this.timer) clearInterval(this.timer);
    this.sock.close();
    if (this.nsFd !== undefined) fs.closeSync(this.nsFd);
    this.wake?.();
  }

  [Symbol.asyncIterator](): AsyncIterator<NetlinkEvent> {
    this.iterating = true;
    return {
      next: async () => {
        while (this.queue.length === 0 && !this.isClosed && !this.pendingError) await new Promise<void>((resolve) => (this.wake = resolve));
        const err = this.pendingError;
        this.pendingError = undefined;
        if (err) throw err;
        const value = this.queue.shift();
        return value === undefined ? { done: true, value: undefined } : { done: false, value };
      },
      return: async () => {
        this.close();
        return { done: true, value: undefined };
      },
    };
  }

  /** Called from the package's native callback: must never throw (that aborts the process). */
  private receive(buf: Buffer): void {
    if (this.isClosed) return;
    let events: NetlinkEvent[];
    try {
      events = parseMessages(buf).flatMap((msg) => eventOf(msg.type, msg.data, this.options.linkNamed, this.options.brief) ?? []);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    for (const event of events) this.deliver(event);
  }

  private deliver(event: NetlinkEvent): void {
    if (this.isClosed) return;
    try {
      this.options.onEvent?.(event);
    } catch (err) {
      this.fail(err as Error);
    }
    if (!this.iterating) return;
    if (event.type !== 'resync' && this.queue.length >= (this.options.maxQueued ?? 10_000)) {
      this.queue.length = 0;
      void this.resync('queue-full').catch((err: Error) => this.fail(err));
      return;
    }
    this.queue.push(event);
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** To onError when given, else to the iterator's next(); never silently dropped. */
  private fail(err: Error): void {
    if (this.options.onError) return this.options.onError(err);
    this.pendingError = err;
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/**
 * Subscribes to link and address events of the handle's namespace, on a socket of its own.
 * Deliver by callback (onEvent) and/or by iterating: `for await (const e of subscribe(h))`.
 * Equivalent to: `ip monitor link address`
 */
export function subscribe(handle: NetlinkHandle, options: SubscribeOptions = {}): Subscription {
  return new Subscription(handle, options);
}
