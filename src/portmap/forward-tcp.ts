// TCP forwarding for one host port, both ways with backpressure and half-close: spliced by the native
// relay; without it, copied through one 64 KiB buffer per connection (pipe() if one relay fails). No idle timeout.
import net from 'node:net';
import type { SpliceRelay } from '../netns/native.js';
import { onceListening, openOnHostIP, type ForwardOptions, type ForwardTarget, type Forwarder, type ListenAddress } from './forward.js';
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

class TcpForward implements Forwarder {
  private readonly server: net.Server;
  /** Sockets JS reads or writes: connecting, or copied through streams. */
  private conns?: Set<net.Socket>;
  /** Connections the native relay carries; their sockets are closed when it reports done. */
  private readonly relays = new Set<SpliceRelay>();

  constructor(
    private readonly target: ForwardTarget,
    private readonly options: ForwardOptions,
  ) {
    // Paused on accept: nothing is read into JS before the upstream connect picks splice or streams.
    this.server = net.createServer({ allowHalfOpen: true, noDelay: options.noDelay, pauseOnConnect: true }, (client) => this.accept(client));
  }

  async listen(at: ListenAddress): Promise<void> {
    const listening = onceListening(this.server);
    this.server.listen({ host: at.address, port: this.target.hostPort, ipv6Only: at.ipv6Only, backlog: 511 });
    await listening;
    this.server.on('error', (err) => this.options.logger.warn({ err, port: this.target.hostPort }, 'proxy: tcp listener error'));
  }

  /** Joins a new client to a new connection to the container. */
  private accept(client: net.Socket): void {
    const { containerIP, containerPort } = this.target;
    // Spliced connections need no JS buffer; without the relay, one reusable buffer each.
    const onread = spliceAvailable() ? undefined : { buffer: Buffer.allocUnsafeSlow(READ_CHUNK), callback: relay(client, () => upstream) };
    const upstream: net.Socket = net.connect({ host: containerIP, port: containerPort, allowHalfOpen: true, noDelay: this.options.noDelay, ...(onread && { onread }) });
    upstream.pause();
    const conns = (this.conns ??= new Set());
    conns.add(client).add(upstream);
    let connected = false;
    let spliced: SpliceRelay | undefined;
    const abort = (err: Error): void => {
      this.options.logger.debug({ err, hostPort: this.target.hostPort, containerIP, containerPort }, 'proxy: tcp connection failed');
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
      spliced = this.splice(client, upstream);
      if (spliced) return;
      client.pipe(upstream);
      if (!onread) return void upstream.pipe(client);
      upstream.on('end', () => client.end());
      upstream.resume();
    });
  }

  /** Moves a connected pair to the native relay; undefined when it cannot take them. */
  private splice(client: net.Socket, upstream: net.Socket): SpliceRelay | undefined {
    const { containerIP, containerPort } = this.target;
    const spliced = spliceSockets(client, upstream, this.options.logger, (err) => {
      this.relays.delete(spliced as SpliceRelay);
      if (err) this.options.logger.debug({ err, hostPort: this.target.hostPort, containerIP, containerPort }, 'proxy: tcp connection failed');
      client.destroy();
      upstream.destroy();
    });
    if (!spliced) return undefined;
    this.conns?.delete(client);
    this.conns?.delete(upstream);
    this.relays.add(spliced);
    return spliced;
  }

  /** Stops accepting, ends live connections, resolves when the port is free. */
  close(): Promise<void> {
    for (const spliced of this.relays) spliced.cancel();
    for (const socket of this.conns ?? []) socket.destroy();
    this.conns?.clear();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Binds target's host port for TCP; rejects with the socket error (EADDRINUSE, …). */
export function openTcpForward(target: ForwardTarget, options: ForwardOptions): Promise<Forwarder> {
  return openOnHostIP(target.hostIP, async (at) => {
    const forward = new TcpForward(target, options);
    await forward.listen(at);
    return forward;
  });
}
