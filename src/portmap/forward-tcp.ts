// TCP forwarding for one host port, both ways with backpressure and half-close: spliced in the
// kernel by the native relay, else copied through one 64 KiB buffer per connection. No idle timeout.
import net from 'node:net';
import type { SpliceRelay } from '../netns/native.js';
import { onceListening, openOnHostIP, type ForwardOptions, type ForwardTarget, type Forwarder, type ListenAddress } from './forward.js';
import { spliceSockets } from './splice-tcp.js';

const READ_CHUNK = 64 * 1024;

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
    // Paused on accept: nothing is read into JS before join() picks splice or streams.
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
    const upstream: net.Socket = net.connect({
      host: containerIP,
      port: containerPort,
      allowHalfOpen: true,
      noDelay: this.options.noDelay,
      onread: { buffer: Buffer.allocUnsafeSlow(READ_CHUNK), callback: relay(client, () => upstream) },
    });
    upstream.pause();
    const conns = (this.conns ??= new Set());
    conns.add(client).add(upstream);
    let connected = false;
    let spliced: SpliceRelay | undefined;
    const abort = (err: Error): void => {
      this.options.logger.debug({ err, hostPort: this.target.hostPort, containerIP, containerPort }, 'proxy: tcp connection failed');
      if (spliced) return spliced.cancel();
      if (connected || client.destroyed) client.destroy();
      else client.resetAndDestroy();
      upstream.destroy();
    };
    client.on('error', abort);
    upstream.on('error', abort);
    client.on('close', (hadError) => {
      conns.delete(client);
      if (hadError) upstream.destroy();
    });
    upstream.on('close', (hadError) => {
      conns.delete(upstream);
      if (hadError) client.destroy();
    });
    upstream.once('connect', () => {
      connected = true;
      spliced = this.splice(client, upstream);
      if (spliced) return;
      client.pipe(upstream);
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
