// A netlink handle bound to one network namespace: one rtnetlink socket opened there once and
// reused for every request, with timeouts, serialised dumps and kernel errors as KernelError.
// Limits: rtnetlink only; event subscriptions use sockets of their own (see events.ts).
import { FlagsGet, MessageType as NlMessageType, rt, type NetlinkMessage } from 'netlink';
import { CnmkitError, KernelError } from '../errors.js';
import { RequestGate } from './gate.js';
import { kernelErrorFromException, parseErrorReply } from './reply.js';
import { openRtSocket, type RtSocket } from './socket.js';
import { validateNetnsPath } from './validate.js';

export interface HandleOptions {
  /** Time to wait for the kernel's reply to one request, in ms (default 15 000). */
  timeoutMs?: number;
  /** Requests allowed in flight at once on the socket (default 64). */
  maxInFlight?: number;
}

const DEFAULT_TIMEOUT_MS = 15_000;

function closedError(operation: string, nsPath: string | undefined): CnmkitError {
  return new CnmkitError('ERR_NETLINK_CLOSED', 'unavailable', `${operation}: the netlink handle for ${nsPath ?? 'the host namespace'} is closed`);
}

export class NetlinkHandle {
  private sock: RtSocket;
  private readonly gate: RequestGate;
  private readonly timeoutMs: number;
  private readonly aborts = new Set<(err: Error) => void>();
  private isClosed = false;

  private constructor(
    readonly nsPath: string | undefined,
    options: HandleOptions,
  ) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.gate = new RequestGate(options.maxInFlight);
    this.sock = this.openSocket();
  }

  /**
   * Opens a handle on the namespace at nsPath (the caller's own when omitted): its socket is
   * created inside that namespace and pins it until close().
   */
  static open(nsPath?: string, options: HandleOptions = {}): NetlinkHandle {
    if (nsPath !== undefined) validateNetnsPath(nsPath, 'nsPath');
    return new NetlinkHandle(nsPath, options);
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** The netlink port of the request socket (unique per namespace). */
  get port(): number {
    return this.sock.port;
  }

  /** Sends one request and resolves with its parsed replies (none for a plain ACK). */
  request(operation: string, type: rt.MessageType, body: Uint8Array[], flags = 0): Promise<rt.Message[]> {
    return this.gate.run(false, () => this.exchange(operation, type, body, flags));
  }

  /** Dumps a table; runs alone on the socket (the package mixes up overlapping replies). */
  dump(operation: string, type: rt.MessageType, body: Uint8Array[]): Promise<rt.Message[]> {
    return this.gate.run(true, () => this.exchange(operation, type, body, FlagsGet.DUMP));
  }

  /** Closes the socket (releasing the namespace); pending requests fail. Idempotent. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.sock.close();
    this.abortAll(closedError('request', this.nsPath));
  }

  private async exchange(operation: string, type: rt.MessageType, body: Uint8Array[], flags: number): Promise<rt.Message[]> {
    if (this.isClosed) throw closedError(operation, this.nsPath);
    let replies: NetlinkMessage[];
    try {
      replies = await this.send(type, body, flags);
    } catch (err) {
      if (err instanceof CnmkitError) throw err;
      const kerr = kernelErrorFromException(operation, err);
      if (flags === FlagsGet.DUMP && kerr.errnoCode === 'ETIMEDOUT') this.renewSocket();
      throw kerr;
    }
    const first = replies[0];
    if (first !== undefined && first.type === NlMessageType.ERROR) {
      const reply = parseErrorReply(first.data, first.flags);
      if (reply.errno !== 0) throw new KernelError(operation, reply.code, reply.extack);
      return [];
    }
    return replies.map((m) => rt.parseMessage(m.type, m.data));
  }

  private send(type: number, body: Uint8Array[], flags: number): Promise<NetlinkMessage[]> {
    const pending = this.sock.rt.socket.request(type, body, { flags, checkError: false, timeout: this.timeoutMs });
    return new Promise<NetlinkMessage[]>((resolve, reject) => {
      this.aborts.add(reject);
      pending.then(
        ([msgs]) => resolve(msgs),
        (err: unknown) => reject(err),
      ).finally(() => this.aborts.delete(reject));
    });
  }

  private openSocket(): RtSocket {
    const sock = openRtSocket(this.nsPath, { extAck: true });
    sock.rt.socket.on('error', (err) => this.abortAll(kernelErrorFromException('receive', err)));
    return sock;
  }

  private abortAll(err: Error): void {
    for (const abort of [...this.aborts]) abort(err);
    this.aborts.clear();
  }

  /** A dump cut short leaves its tail on the socket: start over on a fresh one. */
  private renewSocket(): void {
    this.sock.close();
    try {
      this.sock = this.openSocket();
    } catch {
      this.close();
    }
  }
}

/**
 * Handles kept open per namespace path, so that callers reuse one socket per namespace. Not a
 * singleton: whoever owns the lifetime of the namespaces creates one and passes it around.
 */
export class NetlinkHandlePool {
  private readonly handles = new Map<string, NetlinkHandle>();

  constructor(private readonly options: HandleOptions = {}) {}

  /** The open handle for nsPath (the host namespace when omitted), opening it on first use. */
  get(nsPath?: string): NetlinkHandle {
    const key = nsPath ?? '';
    const known = this.handles.get(key);
    if (known && !known.closed) return known;
    const handle = NetlinkHandle.open(nsPath, this.options);
    this.handles.set(key, handle);
    return handle;
  }

  has(nsPath?: string): boolean {
    const known = this.handles.get(nsPath ?? '');
    return known !== undefined && !known.closed;
  }

  /** Closes and forgets the handle for nsPath, so the namespace is no longer pinned. */
  release(nsPath?: string): boolean {
    const key = nsPath ?? '';
    const known = this.handles.get(key);
    if (!known) return false;
    this.handles.delete(key);
    known.close();
    return true;
  }

  get size(): number {
    return this.handles.size;
  }

  closeAll(): void {
    for (const handle of this.handles.values()) handle.close();
    this.handles.clear();
  }
}
