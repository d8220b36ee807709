// A netlink handle bound to one network namespace: one rtnetlink socket opened there once and
// reused for every request and dump. Each call sends its message and reads the kernel's whole
// answer in one native call (the kernel answers rtnetlink inside sendmsg), so requests cost no
// event-loop turn; kernel errors become KernelError with the extended-ACK text. batch() sends
// many requests in few datagrams. dumpFiltered() asks the kernel to filter a dump by its header
// (an address dump by ifindex) on a second socket with strict checking, opened on first use.
// Limits: rtnetlink only; synchronous (a request blocks the JS thread for the kernel's time, as
// the `netlink` package's own send did); event subscriptions use sockets of their own (events.ts).
import { FlagsGet, MessageType as NlMessageType, rt } from 'netlink';
import { CnmkitError, KernelError } from '../errors.js';
import { native, rtnetlinkSocketIn } from '../netns/index.js';
import { errnoName, parseErrorReply } from './reply.js';
import { validateNetnsPath } from './validate.js';

export interface HandleOptions {
  /** Time to wait for the kernel's answer to one request, in ms (default 15 000). */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 15_000;
const NLMSG_HDRLEN = 16;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
/** The caller's own namespace, for handles opened without a path. */
const OWN_NETNS = '/proc/thread-self/ns/net';

function closedError(operation: string, nsPath: string | undefined): CnmkitError {
  return new CnmkitError('ERR_NETLINK_CLOSED', 'unavailable', `${operation}: the netlink handle for ${nsPath ?? 'the host namespace'} is closed`);
}

/** A reply message as received: its type and its payload (after the 16-byte header). */
export interface RawReply {
  type: number;
  data: Buffer;
}

const parseReply = (m: RawReply): rt.Message => rt.parseMessage(m.type, m.data);

/** The messages of a datagram: type, flags and payload (after the 16-byte header). */
function* messages(datagram: Buffer): Generator<{ type: number; flags: number; data: Buffer }> {
  for (let off = 0; off + NLMSG_HDRLEN <= datagram.length; ) {
    const len = datagram.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > datagram.length) return;
    yield { type: datagram.readUInt16LE(off + 4), flags: datagram.readUInt16LE(off + 6), data: datagram.subarray(off + NLMSG_HDRLEN, off + len) };
    off += (len + 3) & ~3;
  }
}

/** One request of a batch: its message type, flags (NLM_F_REQUEST and the ACK are added) and body. */
export interface BatchRequest {
  type: number;
  flags: number;
  body: Buffer;
}

/** Bytes of one batched datagram: ~60 neighbour requests, whose error answers (if all failed) still fit the socket's receive buffer. */
const BATCH_BYTES = 4096;

/** A whole message: header and body, padded to 4 bytes. */
function frame(type: number, flags: number, seq: number, payload: Buffer): Buffer {
  const out = Buffer.alloc(NLMSG_HDRLEN + ((payload.length + 3) & ~3));
  out.writeUInt32LE(NLMSG_HDRLEN + payload.length, 0);
  out.writeUInt16LE(type, 4);
  out.writeUInt16LE(flags | NLM_F_REQUEST, 6);
  out.writeUInt32LE(seq, 8);
  payload.copy(out, NLMSG_HDRLEN);
  return out;
}

export class NetlinkHandle {
  private readonly fd: number;
  private readonly timeoutMs: number;
  private seq = 0;
  private isClosed = false;
  /** The socket of requests run in the background (opened on first use), one at a time. */
  private backgroundFd?: number;
  private backgroundTail: Promise<unknown> = Promise.resolve();
  /** The socket of filtered dumps (NETLINK_GET_STRICT_CHK), opened on first use. */
  private strictFd?: number;
  /** Background requests made and not finished: the socket closes after the last, once the handle is closed. */
  private backgroundPending = 0;
  /** The socket's netlink port (unique per namespace). */
  readonly port: number;

  private constructor(
    readonly nsPath: string | undefined,
    options: HandleOptions,
  ) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    ({ fd: this.fd, port: this.port } = openSocket(nsPath));
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

  /** Sends one request and resolves with its parsed replies (none for a plain ACK). */
  async request(operation: string, type: rt.MessageType, body: Uint8Array[], flags = 0): Promise<rt.Message[]> {
    return this.exchange(operation, type, body, flags | NLM_F_ACK).map(parseReply);
  }

  /** Like request, but the replies stay raw (type and payload), for callers that read a field or two. */
  async requestRaw(operation: string, type: rt.MessageType, body: Uint8Array[], flags = 0): Promise<RawReply[]> {
    return this.exchange(operation, type, body, flags | NLM_F_ACK);
  }

  /**
   * Like request, but the kernel's work runs on a thread of libuv's pool, on a socket of its own,
   * one such request at a time: for requests the kernel takes long over (deleting a device waits
   * for RCU grace periods), so that the JS thread serves others meanwhile.
   */
  requestInBackground(operation: string, type: rt.MessageType, body: Uint8Array[], flags = 0): Promise<rt.Message[]> {
    if (this.isClosed) return Promise.reject(closedError(operation, this.nsPath));
    this.backgroundPending += 1;
    const run = async (): Promise<rt.Message[]> => {
      try {
        this.backgroundFd ??= openSocket(this.nsPath).fd;
        const fd = this.backgroundFd;
        const message = this.encode(type, body, flags | NLM_F_ACK);
        const datagrams = await new Promise<Buffer[]>((resolve, reject) => {
          native.netlinkRequestAsync(fd, message, this.timeoutMs, (err, answer) => (err ? reject(socketError(operation, err)) : resolve(answer)));
        });
        return this.decode(operation, datagrams).map(parseReply);
      } finally {
        this.backgroundPending -= 1;
        if (this.isClosed && this.backgroundPending === 0) this.closeBackground();
      }
    };
    const next = this.backgroundTail.then(run, run);
    this.backgroundTail = next.catch(() => undefined);
    return next;
  }

  /**
   * Sends many requests in few datagrams (at most BATCH_BYTES each, so that the kernel's answers
   * fit the socket's buffer): the requests of a datagram share one sequence number and only the
   * last asks for an ACK, so the kernel runs them in order and answers with that ACK, or first
   * with the error of a request that failed (the ones after it still run). Throws that error.
   * Returns the number of datagrams sent.
   */
  batch(operation: string, requests: BatchRequest[]): number {
    if (this.isClosed) throw closedError(operation, this.nsPath);
    const chunks: BatchRequest[][] = [];
    let size = BATCH_BYTES;
    for (const r of requests) {
      const n = NLMSG_HDRLEN + ((r.body.length + 3) & ~3);
      if (size + n > BATCH_BYTES) {
        chunks.push([]);
        size = 0;
      }
      chunks[chunks.length - 1]!.push(r);
      size += n;
    }
    for (const chunk of chunks) {
      this.seq = (this.seq % 0x7fffffff) + 1;
      const message = Buffer.concat(chunk.map((r, i) => frame(r.type, r.flags | (i === chunk.length - 1 ? NLM_F_ACK : 0), this.seq, r.body)));
      let datagrams: Buffer[];
      try {
        datagrams = native.netlinkRequest(this.fd, message, this.timeoutMs);
      } catch (err) {
        throw socketError(operation, err);
      }
      this.decode(operation, datagrams);
    }
    return chunks.length;
  }

  /** Dumps a table. */
  async dump(operation: string, type: rt.MessageType, body: Uint8Array[]): Promise<rt.Message[]> {
    return this.exchange(operation, type, body, FlagsGet.DUMP).map(parseReply);
  }

  /**
   * Like dump, but the kernel keeps only what the request's header selects (an address dump's
   * ifindex: the namespace's other addresses are neither copied nor parsed). Strict checking is
   * set on a socket of its own, so the plain dumps of this handle stay as lenient as before.
   * Callers still filter: a kernel may ignore what it does not filter on.
   */
  async dumpFiltered(operation: string, type: rt.MessageType, body: Uint8Array[]): Promise<rt.Message[]> {
    if (this.isClosed) throw closedError(operation, this.nsPath);
    if (this.strictFd === undefined) {
      try {
        this.strictFd = openSocket(this.nsPath, true).fd;
      } catch (err) {
        // A kernel before 4.20 has no strict checking: the plain dump, which the caller filters.
        if ((err as NodeJS.ErrnoException).code !== 'ENOPROTOOPT') throw err;
        this.strictFd = this.fd;
      }
    }
    return this.exchange(operation, type, body, FlagsGet.DUMP, this.strictFd).map(parseReply);
  }

  /** Closes the sockets (background requests made before finish first); later requests fail. Idempotent. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    native.closeFd(this.fd);
    if (this.strictFd !== undefined && this.strictFd !== this.fd) native.closeFd(this.strictFd);
    if (this.backgroundPending === 0) this.closeBackground();
  }

  private closeBackground(): void {
    if (this.backgroundFd === undefined) return;
    native.closeFd(this.backgroundFd);
    this.backgroundFd = undefined;
  }

  /** A whole request message: header (the next sequence number) and body. */
  private encode(type: number, body: Uint8Array[], flags: number): Buffer {
    this.seq = (this.seq % 0x7fffffff) + 1;
    const payload = Buffer.concat(body);
    const header = Buffer.alloc(NLMSG_HDRLEN);
    header.writeUInt32LE(NLMSG_HDRLEN + payload.length, 0);
    header.writeUInt16LE(type, 4);
    header.writeUInt16LE(flags | NLM_F_REQUEST, 6);
    header.writeUInt32LE(this.seq, 8);
    return Buffer.concat([header, payload]);
  }

  private exchange(operation: string, type: number, body: Uint8Array[], flags: number, fd = this.fd): RawReply[] {
    if (this.isClosed) throw closedError(operation, this.nsPath);
    let datagrams: Buffer[];
    try {
      datagrams = native.netlinkRequest(fd, this.encode(type, body, flags), this.timeoutMs);
    } catch (err) {
      throw socketError(operation, err);
    }
    return this.decode(operation, datagrams);
  }

  /** The replies of an answer; a kernel error (NLMSG_ERROR, or a dump's DONE with one) is thrown. */
  private decode(operation: string, datagrams: Buffer[]): RawReply[] {
    const out: RawReply[] = [];
    for (const datagram of datagrams) {
      for (const m of messages(datagram)) {
        if (m.type === NlMessageType.ERROR) {
          const reply = parseErrorReply(m.data, m.flags);
          if (reply.errno !== 0) throw new KernelError(operation, reply.code, reply.extack);
        } else if (m.type === NlMessageType.DONE) {
          // A dump cut short ends with a negative errno in its DONE message.
          if (m.data.length >= 4 && m.data.readInt32LE(0) < 0) throw new KernelError(operation, errnoName(-m.data.readInt32LE(0)));
        } else if (m.type !== NlMessageType.NOOP) {
          out.push({ type: m.type, data: m.data });
        }
      }
    }
    return out;
  }
}

/** A bound rtnetlink socket in the namespace at nsPath (the caller's own when undefined). */
function openSocket(nsPath: string | undefined, strictCheck = false): { fd: number; port: number } {
  const fd = rtnetlinkSocketIn(nsPath ?? OWN_NETNS, { extAck: true, ...(strictCheck ? { strictCheck } : {}) });
  try {
    return { fd, port: native.netlinkBind(fd) };
  } catch (err) {
    native.closeFd(fd);
    throw err;
  }
}

/** A failure of the socket itself (send or receive error, no answer in time) as a KernelError. */
function socketError(operation: string, err: unknown): KernelError {
  const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
  return new KernelError(operation, code, code === 'ETIMEDOUT' ? 'no reply from the kernel in time' : undefined, { cause: err });
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
