// UDP forwarding for a host port range, held by the native UDP forwarder (one thread, epoll, a range
// bound in chunks): a flow per client address — a socket connected to the container, closed after
// an idle time like docker-proxy's — whose replies leave from the published port; flows count
// against the per-port and total limits, a datagram over them is dropped.
import { native, type UdpForwarder } from '../netns/native.js';
import { bindInChunks, openOnHostIP, type ForwardOptions, type Forwarder, type ListenAddress, type RangeTarget } from './forward.js';

/** The daemon's one native UDP forwarder, and the range and index each of its listener ids belongs to. */
const routes = new Map<number, { forward: UdpForward; index: number }>();
let forwarder: UdpForwarder | undefined;

/** The shared forwarder, made on first use. */
export function sharedUdpForwarder(): UdpForwarder {
  forwarder ??= native.udpForwarder((id, limit) => {
    const route = routes.get(id);
    if (route) route.forward.options.onLimit(limit, 'udp', route.forward.target.hostPort + route.index);
  });
  return forwarder;
}

class UdpForward implements Forwarder {
  private ids: number[] = [];

  constructor(
    readonly target: RangeTarget,
    readonly options: ForwardOptions,
  ) {}

  async listen(at: ListenAddress): Promise<void> {
    const { budget, limits } = this.options;
    const { hostPort, containerIP, containerPort } = this.target;
    const bind = (port: number, count: number): number[] =>
      sharedUdpForwarder().listen(at.address, port, count, at.ipv6Only, containerIP, containerPort + port - hostPort, budget, limits.maxConnectionsPerPort, limits.udpIdleTimeoutMs);
    this.ids = await bindInChunks(this.target, bind, (ids) => forwarder?.close(ids));
    this.ids.forEach((id, index) => routes.set(id, { forward: this, index }));
  }

  close(): Promise<void> {
    forwarder?.close(this.ids);
    for (const id of this.ids) routes.delete(id);
    this.ids = [];
    return Promise.resolve();
  }
}

/** Binds target's host port range for UDP; throws the socket error (EADDRINUSE, …) with the failing `port`. */
export function openUdpForward(target: RangeTarget, options: ForwardOptions): Promise<Forwarder> {
  return openOnHostIP(target.hostIP, async (at) => {
    const forward = new UdpForward(target, options);
    await forward.listen(at);
    return forward;
  });
}
