// TCP forwarding for a host port range: listeners held by the native acceptor (one thread, epoll, a
// range bound in one call), each accepted client joined to a new connection to the container, both ways
// with backpressure and half-close: spliced by the native relay; without it, copied through one 64 KiB
// buffer per connection (pipe() if one relay fails). No idle timeout.
import net from 'node:net';
import { native, type SpliceRelay, type TcpAcceptor } from '../netns/native.js';
import { openOnHostIP, type ForwardOptions, type Forwarder, type ListenAddress, type TcpRangeTarget } from './forward.js';
import { spliceAvailable, spliceSockets } from './splice-tcp.js';

const READ_CHUNK = 64 * 1024;
/** How long a client whose upstream failed may stay silent before it is reset anyway. */
const RESET_GRACE_MS = 250;

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

/** The daemon's one native acceptor, and the range and index each of its listener ids belongs to. */
const routes = new Map<number, { forward: TcpForward; index: number }>();
let acceptor: TcpAcceptor | undefined;

/** The shared acceptor, made on first use; making it early moves its start-up cost (a grown fd table) off the first publish. */
export function sharedAcceptor(): TcpAcceptor {
  acceptor ??= native.tcpAcceptor((id, fd, err) => {
    const route = routes.get(id);
    if (!route) return void (fd >= 0 && native.closeFd(fd));
    if (err) route.forward.acceptFailed(route.index, err);
    else route.forward.accept(route.index, fd);
  });
  return acceptor;
}

/** A published TCP port range: its listeners live in the native acceptor, its connections here. */
class TcpForward implements Forwarder {
  private ids: number[] = [];
  /** Sockets JS reads or writes: connecting, or copied through streams. */
  private conns?: Set<net.Socket>;
  /** Connections the native relay carries; their sockets are closed when it reports done. */
  private readonly relays = new Set<SpliceRelay>();

  constructor(
    private readonly target: TcpRangeTarget,
    private readonly options: ForwardOptions,
  ) {}

  /** Binds the whole range on `at`, all or nothing (the error carries the failing `port`). */
  listen(at: ListenAddress): void {
    const count = this.target.hostPortEnd - this.target.hostPort + 1;
    this.ids = sharedAcceptor().listen(at.address, this.target.hostPort, count, at.ipv6Only, 511);
    this.ids.forEach((id, index) => routes.set(id, { forward: this, index }));
  }

  acceptFailed(index: number, err: Error): void {
    this.options.logger.warn({ err, hostPort: this.target.hostPort + index }, 'proxy: tcp accept failed');
  }

  /** Joins a new client (an accepted fd of port hostPort + index) to a new connection to the container. */
  accept(index: number, fd: number): void {
    const client = new net.Socket({ fd, allowHalfOpen: true, pauseOnCreate: true, readable: true, writable: true } as net.SocketConstructorOpts);
    client.setNoDelay(this.options.noDelay);
    const hostPort = this.target.hostPort + index;
    const containerIP = this.target.containerIP;
    const containerPort = this.target.containerPort + index;
    // Spliced connections need no JS buffer; without the relay, one reusable buffer each.
    const onread = spliceAvailable() ? undefined : { buffer: Buffer.allocUnsafeSlow(READ_CHUNK), callback: relay(client, () => upstream) };
    const upstream: net.Socket = net.connect({ host: containerIP, port: containerPort, allowHalfOpen: true, noDelay: this.options.noDelay, ...(onread && { onread }) });
    upstream.pause();
    const conns = (this.conns ??= new Set());
    conns.add(client).add(upstream);
    let connected = false;
    let spliced: SpliceRelay | undefined;
    const abort = (err: Error): void => {
      this.options.logger.debug({ err, hostPort, containerIP, containerPort }, 'proxy: tcp connection failed');
      if (spliced) return spliced.cancel();
      upstream.destroy();
      if (connected || client.destroyed) client.destroy();
      else resetClient(client);
    };
    client.on('error', abort);
    upstream.on('error', abort);
    client.on('close', (hadError) => {
      conns.delete(client);
      if (hadError) upstream.destroy();
    });
    upstream.on('close', (hadError) => {
      conns.delete(upstream);
      if (hadError && connected) client.destroy();
    });
    upstream.once('connect', () => {
      connected = true;
      spliced = this.splice(client, upstream, { hostPort, containerIP, containerPort });
      if (spliced) return;
      client.pipe(upstream);
      if (!onread) return void upstream.pipe(client);
      upstream.on('end', () => client.end());
      upstream.resume();
    });
  }

  /** Moves a connected pair to the native relay; undefined when it cannot take them. */
  private splice(client: net.Socket, upstream: net.Socket, where: Record<string, unknown>): SpliceRelay | undefined {
    const spliced = spliceSockets(client, upstream, this.options.logger, (err) => {
      this.relays.delete(spliced as SpliceRelay);
      if (err) this.options.logger.debug({ err, ...where }, 'proxy: tcp connection failed');
      client.destroy();
      upstream.destroy();
    });
    if (!spliced) return undefined;
    this.conns?.delete(client);
    this.conns?.delete(upstream);
    this.relays.add(spliced);
    return spliced;
  }

  /** Stops accepting (the ports are free on return), ends live connections. */
  close(): Promise<void> {
    acceptor?.close(this.ids);
    for (const id of this.ids) routes.delete(id);
    this.ids = [];
    for (const spliced of this.relays) spliced.cancel();
    for (const socket of this.conns ?? []) socket.destroy();
    this.conns?.clear();
    return Promise.resolve();
  }
}

/** Binds target's host port range for TCP; throws the socket error (EADDRINUSE, …) with the failing `port`. */
export function openTcpForward(target: TcpRangeTarget, options: ForwardOptions): Promise<Forwarder> {
  return openOnHostIP(target.hostIP, async (at) => {
    const forward = new TcpForward(target, options);
    forward.listen(at);
    return forward;
  });
}
