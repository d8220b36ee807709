// UDP forwarding for one host port: one upstream socket per client address (closed after an
// idle time, like docker-proxy), replies sent back from the listening socket. No flow limit.
import dgram from 'node:dgram';
import net from 'node:net';
import { onceListening, openOnHostIP, type ForwardOptions, type UdpTarget, type Forwarder, type ListenAddress } from './forward.js';

/** Datagrams a flow keeps while its upstream socket is still connecting. */
const MAX_PENDING = 64;

interface Flow {
  upstream: dgram.Socket;
  timer: NodeJS.Timeout;
  /** Datagrams waiting for the upstream connect; undefined once connected. */
  pending?: Buffer[];
}

class UdpForward implements Forwarder {
  private readonly flows = new Map<string, Flow>();
  private socket?: dgram.Socket;

  constructor(
    private readonly target: UdpTarget,
    private readonly options: ForwardOptions,
  ) {}

  async listen(at: ListenAddress): Promise<void> {
    const socket = dgram.createSocket({ type: at.family === 6 ? 'udp6' : 'udp4', ipv6Only: at.ipv6Only });
    const listening = onceListening(socket);
    socket.bind({ address: at.address, port: this.target.hostPort, exclusive: true });
    try {
      await listening;
    } catch (err) {
      socket.close();
      throw err;
    }
    socket.on('error', (err) => this.options.logger.warn({ err, port: this.target.hostPort }, 'proxy: udp listener error'));
    socket.on('message', (msg, rinfo) => this.fromClient(msg, rinfo));
    this.socket = socket;
  }

  private fromClient(msg: Buffer, client: dgram.RemoteInfo): void {
    const key = `${client.address}|${client.port}`;
    const flow = this.flows.get(key) ?? this.openFlow(key, client);
    flow.timer.refresh();
    if (flow.pending) {
      if (flow.pending.length < MAX_PENDING) flow.pending.push(msg);
      return;
    }
    flow.upstream.send(msg);
  }

  /** A socket connected to the container for one client; its replies go back to that client. */
  private openFlow(key: string, client: dgram.RemoteInfo): Flow {
    const { containerIP, containerPort } = this.target;
    const upstream = dgram.createSocket(net.isIPv6(containerIP) ? 'udp6' : 'udp4');
    const timer = setTimeout(() => this.closeFlow(key), this.options.udpIdleTimeoutMs).unref();
    const flow: Flow = { upstream, timer, pending: [] };
    this.flows.set(key, flow);
    upstream.on('connect', () => {
      const queued = flow.pending ?? [];
      delete flow.pending;
      for (const msg of queued) upstream.send(msg);
    });
    upstream.on('message', (reply) => {
      flow.timer.refresh();
      this.socket?.send(reply, client.port, client.address);
    });
    upstream.on('error', (err) => {
      this.options.logger.debug({ err, hostPort: this.target.hostPort, client: key }, 'proxy: udp flow closed on error');
      this.closeFlow(key);
    });
    upstream.connect(containerPort, containerIP);
    return flow;
  }

  private closeFlow(key: string): void {
    const flow = this.flows.get(key);
    if (!flow) return;
    this.flows.delete(key);
    clearTimeout(flow.timer);
    flow.upstream.close();
  }

  close(): Promise<void> {
    for (const key of [...this.flows.keys()]) this.closeFlow(key);
    const socket = this.socket;
    delete this.socket;
    return new Promise((resolve) => (socket ? socket.close(() => resolve()) : resolve()));
  }
}

/** Binds target's host port for UDP; rejects with the socket error (EADDRINUSE, …). */
export function openUdpForward(target: UdpTarget, options: ForwardOptions): Promise<Forwarder> {
  return openOnHostIP(target.hostIP, async (at) => {
    const forward = new UdpForward(target, options);
    await forward.listen(at);
    return forward;
  });
}
