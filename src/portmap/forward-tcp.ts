// TCP forwarding for a host port range: listeners held by the native acceptor (one thread, epoll,
// a range bound in chunks), which counts connections against the per-port and total limits and
// resets those over them before JS sees them; each admitted client is joined to a new connection
// to the container, spliced by the native relay (a fixed pool of threads, the idle timeout there)
// or, without it, copied through one 64 KiB buffer per connection. Keepalive on both sockets.
import net from 'node:net';
import { native, type LimitReason, type SpliceRelay, type TcpAcceptor } from '../netns/native.js';
import { bindInChunks, openOnHostIP, type ForwardOptions, type Forwarder, type ListenAddress, type RangeTarget } from './forward.js';
import { TCP_KEEPALIVE_MS } from './limits.js';
import { spliceAvailable, spliceSockets } from './splice-tcp.js';

const READ_CHUNK = 64 * 1024;
/** How long a client whose upstream failed may stay silent before it is reset anyway. */
const RESET_GRACE_MS = 250;
const BACKLOG = 511;

/**
 * The onread callback that writes each read of `from` to `to` straight out of the one reusable
 * buffer. A write the kernel cannot take at once still points into that buffer, so reading
 * stops (return false) until that write is flushed.
 */
function relay(to: net.Socket, from: () => net.Socket): (nread: number, buf: Buffer) => boolean {
  let writes = 0;
  let pausedAt = 0;
  return (nread, buf) => {
    const id = ++writes;
    to.write(buf.subarray(0, nread), (err) => {
      if (err || id !== pausedAt) return;
      pausedAt = 0;
      from().resume();
    });
    if (to.writableLength === 0) return true;
    pausedAt = id;
    return false;
  };
}

/**
 * Resets a client whose upstream connect failed, once it has sent something or after a short
 * grace. An RST sent at once can beat the client's own check of its connect, which then reports
 * a failed connect instead of "reset by peer".
 */
function resetClient(client: net.Socket): void {
  const reset = (): void => {
    clearTimeout(timer);
    if (!client.destroyed) client.resetAndDestroy();
  };
  const timer = setTimeout(reset, RESET_GRACE_MS);
  client.once('readable', reset);
  client.once('close', () => clearTimeout(timer));
}

interface Route {
  forward: TcpForward;
  index: number;
}

/** The daemon's one native acceptor, and the range and index each of its listener ids belongs to. */
const routes = new Map<number, Route>();
let acceptor: TcpAcceptor | undefined;

/** Clients admitted a burst at a time wait here and are joined ACCEPT_BATCH per turn of the event loop, so that the API is served in between. */
const ACCEPT_BATCH = 32;
const admitted: { route: Route; id: number; fd: number }[] = [];
let joining = false;

function joinSome(): void {
  for (const { route, id, fd } of admitted.splice(0, ACCEPT_BATCH)) route.forward.accept(id, route.index, fd);
  joining = admitted.length > 0;
  if (joining) setImmediate(joinSome);
}

/** The shared acceptor, made on first use; making it early moves its start-up cost (a grown fd table) off the first publish. */
export function sharedAcceptor(): TcpAcceptor {
  acceptor ??= native.tcpAcceptor((id, fd, err, limit) => {
    const route = routes.get(id);
    if (!route) return false;
    if (limit) route.forward.limitHit(route.index, limit);
    else if (err) route.forward.acceptFailed(route.index, err);
    else admitted.push({ route, id, fd });
    if (admitted.length > 0 && !joining) {
      joining = true;
      setImmediate(joinSome);
    }
    return true;
  });
  return acceptor;
}

/** A published TCP port range: its listeners live in the native acceptor, its connections here. */
class TcpForward implements Forwarder {
  private ids: number[] = [];
  private closed = false;
  /** Sockets JS reads or writes: connecting, or copied through streams. */
  private readonly conns = new Set<net.Socket>();
  /** Connections the native relay carries; their sockets are closed when it reports done. */
  private readonly relays = new Set<SpliceRelay>();

  constructor(
    private readonly target: RangeTarget,
    private readonly options: ForwardOptions,
  ) {}

  /** Binds the whole range on `at`, all or nothing (the error carries the failing `port`). */
  async listen(at: ListenAddress): Promise<void> {
    const { budget, limits } = this.options;
    const bind = (port: number, count: number): number[] =>
      sharedAcceptor().listen(at.address, port, count, at.ipv6Only, BACKLOG, budget, limits.maxConnectionsPerPort);
    this.ids = await bindInChunks(this.target, bind, (ids) => acceptor?.close(ids));
    this.ids.forEach((id, index) => routes.set(id, { forward: this, index }));
  }

  acceptFailed(index: number, err: Error): void {
    this.options.logger.warn({ err, hostPort: this.target.hostPort + index }, 'proxy: tcp accept failed');
  }

  limitHit(index: number, reason: LimitReason): void {
    this.options.onLimit(reason, 'tcp', this.target.hostPort + index);
  }

  /** Joins a new client (an accepted fd of listener id, port hostPort + index) to a new connection to the container. */
  accept(id: number, index: number, fd: number): void {
    const { noDelay, logger, budget } = this.options;
    if (this.closed) {
      native.closeFd(fd);
      budget.releaseTcp();
      return;
    }
    const client = new net.Socket({ fd, allowHalfOpen: true, pauseOnCreate: true, readable: true, writable: true } as net.SocketConstructorOpts);
    client.setNoDelay(noDelay);
    client.setKeepAlive(true, TCP_KEEPALIVE_MS);
    const where = { hostPort: this.target.hostPort + index, containerIP: this.target.containerIP, containerPort: this.target.containerPort + index };
    // Spliced connections need no JS buffer; without the relay, one reusable buffer each.
    const onread = spliceAvailable() ? undefined : { buffer: Buffer.allocUnsafeSlow(READ_CHUNK), callback: relay(client, () => upstream) };
    const upstream: net.Socket = net.connect({ host: where.containerIP, port: where.containerPort, allowHalfOpen: true, noDelay, keepAlive: true, keepAliveInitialDelay: TCP_KEEPALIVE_MS, ...(onread && { onread }) });
    upstream.pause();
    this.conns.add(client).add(upstream);
    let connected = false;
    let spliced: SpliceRelay | undefined;
    const abort = (err: Error): void => {
      logger.debug({ err, ...where }, 'proxy: tcp connection failed');
      if (spliced) return spliced.cancel();
      upstream.destroy();
      if (connected || client.destroyed) client.destroy();
      else resetClient(client);
    };
    client.on('error', abort);
    upstream.on('error', abort);
    client.on('close', (hadError) => {
      this.conns.delete(client);
      if (!spliced) this.options.stream.toContainer += client.bytesRead;
      if (hadError) upstream.destroy();
      acceptor?.release(id);
      budget.releaseTcp();
    });
    upstream.on('close', (hadError) => {
      this.conns.delete(upstream);
      if (!spliced) this.options.stream.fromContainer += upstream.bytesRead;
      if (hadError && connected) client.destroy();
    });
    upstream.once('connect', () => {
      connected = true;
      spliced = this.splice(client, upstream, where);
      if (spliced) return;
      const idleMs = this.options.limits.idleTimeoutMs;
      // Either way's traffic touches the client socket, so its timeout is the connection's.
      if (idleMs > 0) client.setTimeout(idleMs, () => {
        this.options.stream.idleTimeouts += 1;
        client.destroy();
        upstream.destroy();
      });
      client.pipe(upstream);
      if (!onread) return void upstream.pipe(client);
      upstream.on('end', () => client.end());
      upstream.resume();
    });
  }

  /** Moves a connected pair to the native relay; undefined when it cannot take them. */
  private splice(client: net.Socket, upstream: net.Socket, where: Record<string, unknown>): SpliceRelay | undefined {
    const { logger, budget, limits } = this.options;
    const relayOptions = { idleMs: limits.idleTimeoutMs, budget };
    const spliced = spliceSockets(client, upstream, logger, relayOptions, (err, stats) => {
      this.relays.delete(spliced as SpliceRelay);
      if (err) logger.debug({ err, ...where }, 'proxy: tcp connection failed');
      else if (stats.timedOut) logger.debug({ idleTimeoutMs: limits.idleTimeoutMs, ...where }, 'proxy: idle tcp connection closed');
      client.destroy();
      upstream.destroy();
    });
    if (!spliced) return undefined;
    this.conns.delete(client);
    this.conns.delete(upstream);
    this.relays.add(spliced);
    return spliced;
  }

  /** Stops accepting (the ports are free on return), ends live connections. */
  close(): Promise<void> {
    this.closed = true;
    acceptor?.close(this.ids);
    for (const id of this.ids) routes.delete(id);
    this.ids = [];
    for (const spliced of this.relays) spliced.cancel();
    for (const socket of this.conns) socket.destroy();
    this.conns.clear();
    return Promise.resolve();
  }
}

/** Binds target's host port range for TCP; throws the socket error (EADDRINUSE, …) with the failing `port`. */
export function openTcpForward(target: RangeTarget, options: ForwardOptions): Promise<Forwarder> {
  return openOnHostIP(target.hostIP, async (at) => {
    const forward = new TcpForward(target, options);
    await forward.listen(at);
    return forward;
  });
}
