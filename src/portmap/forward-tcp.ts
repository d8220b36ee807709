// TCP forwarding for one host port: accept, connect to the container, pipe both ways with
// backpressure and half-close. No idle timeout (as docker-proxy); data is copied through JS.
import net from 'node:net';
import { onceListening, openOnHostIP, type ForwardOptions, type ForwardTarget, type Forwarder, type ListenAddress } from './forward.js';

class TcpForward implements Forwarder {
  private readonly server: net.Server;
  private readonly conns = new Set<net.Socket>();

  constructor(
    private readonly target: ForwardTarget,
    private readonly options: ForwardOptions,
  ) {
    this.server = net.createServer({ allowHalfOpen: true, noDelay: options.noDelay }, (client) => this.accept(client));
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
    const upstream = net.connect({ host: containerIP, port: containerPort, allowHalfOpen: true, noDelay: this.options.noDelay });
    this.conns.add(client);
    this.conns.add(upstream);
    let connected = false;
    upstream.once('connect', () => (connected = true));
    const abort = (err: Error): void => {
      this.options.logger.debug({ err, hostPort: this.target.hostPort, containerIP, containerPort }, 'proxy: tcp connection failed');
      if (connected || client.destroyed) client.destroy();
      else client.resetAndDestroy();
      upstream.destroy();
    };
    client.on('error', abort);
    upstream.on('error', abort);
    client.on('close', (hadError) => {
      this.conns.delete(client);
      if (hadError) upstream.destroy();
    });
    upstream.on('close', (hadError) => {
      this.conns.delete(upstream);
      if (hadError) client.destroy();
    });
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Stops accepting, ends live connections, resolves when the port is free. */
  close(): Promise<void> {
    for (const socket of this.conns) socket.destroy();
    this.conns.clear();
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
