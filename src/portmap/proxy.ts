// The userland proxy: every published (host IP, host port, proto) held by a listening socket in
// this one process and forwarded to the container: TCP ranges through the native acceptor, UDP
// with a Node socket per port. TCP and UDP only (Node has no SCTP sockets).
import { CnmkitError, ConflictError, InvalidArgumentError } from '../errors.js';
import { openTcpForward, sharedAcceptor } from './forward-tcp.js';
import { openUdpForward } from './forward-udp.js';
import type { ForwardOptions, Forwarder, UdpTarget } from './forward.js';
import { silentLogger, type Logger } from './log.js';
import { canonicalIP, hostIPsOverlap, isUnspecifiedIP } from './spec.js';

/** A port or a range to publish; host and container ranges have the same size. */
export interface ProxyMapping {
  proto: 'tcp' | 'udp';
  /** Unset = every address of both families. */
  hostIP?: string;
  hostPort: number;
  hostPortEnd?: number;
  containerIP: string;
  containerPort: number;
  containerPortEnd?: number;
}

export interface PublishedMapping extends Required<Omit<ProxyMapping, 'hostIP'>> {
  owner: string;
  hostIP?: string;
}

export interface UserlandProxyOptions {
  logger?: Logger;
  /** TCP_NODELAY on both sides of every forwarded connection (default true, as docker-proxy). */
  noDelay?: boolean;
  /** A UDP flow with no traffic either way for this long is closed (default 30 s). */
  udpIdleTimeoutMs?: number;
}

interface Published {
  mapping: PublishedMapping;
  forwards: Forwarder[];
}

const DEFAULT_UDP_IDLE_MS = 30_000;

function portField(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535)
    throw new InvalidArgumentError(field, `${JSON.stringify(value)} is not a port in 1-65535`);
  return value;
}

/** Checks one mapping; field names carry its index, e.g. `mappings[3].hostPort`. */
function checkMapping(owner: string, value: unknown, field: string): PublishedMapping {
  if (typeof value !== 'object' || value === null) throw new InvalidArgumentError(field, 'a mapping object is required');
  const m = value as Record<string, unknown>;
  if (m.proto === 'sctp') throw new InvalidArgumentError(`${field}.proto`, 'sctp is not forwarded by the userland proxy (publish it with kernel rules)');
  if (m.proto !== 'tcp' && m.proto !== 'udp') throw new InvalidArgumentError(`${field}.proto`, `${JSON.stringify(m.proto)} is not tcp or udp`);
  const hostPort = portField(m.hostPort, `${field}.hostPort`);
  const hostPortEnd = portField(m.hostPortEnd ?? hostPort, `${field}.hostPortEnd`);
  const containerPort = portField(m.containerPort, `${field}.containerPort`);
  const containerPortEnd = portField(m.containerPortEnd ?? containerPort, `${field}.containerPortEnd`);
  if (hostPortEnd < hostPort) throw new InvalidArgumentError(`${field}.hostPortEnd`, `${hostPortEnd} is below hostPort ${hostPort}`);
  if (containerPortEnd - containerPort !== hostPortEnd - hostPort)
    throw new InvalidArgumentError(`${field}.containerPortEnd`, `container range ${containerPort}-${containerPortEnd} and host range ${hostPort}-${hostPortEnd} differ in size`);
  if (typeof m.containerIP !== 'string') throw new InvalidArgumentError(`${field}.containerIP`, 'a container address is required');
  const containerIP = canonicalIP(m.containerIP, `${field}.containerIP`);
  if (isUnspecifiedIP(containerIP)) throw new InvalidArgumentError(`${field}.containerIP`, `${containerIP} is not a container address`);
  const mapping: PublishedMapping = { owner, proto: m.proto, hostPort, hostPortEnd, containerIP, containerPort, containerPortEnd };
  if (m.hostIP !== undefined && m.hostIP !== '') {
    if (typeof m.hostIP !== 'string') throw new InvalidArgumentError(`${field}.hostIP`, `${JSON.stringify(m.hostIP)} is not a string`);
    mapping.hostIP = canonicalIP(m.hostIP, `${field}.hostIP`);
  }
  return mapping;
}

function overlaps(m: PublishedMapping, proto: string, hostIP: string | undefined, port: number): boolean {
  return m.proto === proto && port >= m.hostPort && port <= m.hostPortEnd && hostIPsOverlap(m.hostIP, hostIP);
}

/** Refuses a batch whose own mappings would take the same host port twice. */
function checkBatch(mappings: PublishedMapping[]): void {
  const seen = new Map<string, (string | undefined)[]>();
  mappings.forEach((m, i) => {
    for (let port = m.hostPort; port <= m.hostPortEnd; port += 1) {
      const key = `${m.proto}/${port}`;
      const ips = seen.get(key) ?? [];
      if (ips.some((ip) => hostIPsOverlap(ip, m.hostIP)))
        throw new InvalidArgumentError(`mappings[${i}].hostPort`, `port ${port}/${m.proto} is published twice in this batch`);
      ips.push(m.hostIP);
      seen.set(key, ips);
    }
  });
}

/** The UDP ports of a mapping, one forwarder each. */
function udpTargets(m: PublishedMapping): UdpTarget[] {
  const out: UdpTarget[] = [];
  for (let i = 0; i <= m.hostPortEnd - m.hostPort; i += 1) {
    const t: UdpTarget = { hostPort: m.hostPort + i, containerIP: m.containerIP, containerPort: m.containerPort + i };
    if (m.hostIP !== undefined) t.hostIP = m.hostIP;
    out.push(t);
  }
  return out;
}

/** How many host ports mappings hold. */
function portCount(mappings: PublishedMapping[]): number {
  return mappings.reduce((sum, m) => sum + m.hostPortEnd - m.hostPort + 1, 0);
}

/** A bind failure and the port it is about. */
interface BindFailure {
  err: unknown;
  port: number;
}

export class UserlandProxy {
  private readonly options: ForwardOptions;
  private readonly owners = new Map<string, Published[]>();
  private readonly queues = new Map<string, Promise<unknown>>();
  private closed = false;

  constructor(options: UserlandProxyOptions = {}) {
    const idle = options.udpIdleTimeoutMs ?? DEFAULT_UDP_IDLE_MS;
    if (!Number.isInteger(idle) || idle < 1) throw new InvalidArgumentError('udpIdleTimeoutMs', `${idle} is not a positive number of milliseconds`);
    this.options = { logger: options.logger ?? silentLogger, noDelay: options.noDelay ?? true, udpIdleTimeoutMs: idle };
    sharedAcceptor();
  }

  /**
   * Binds every host port of mappings (ranges included) concurrently and starts forwarding.
   * All or nothing: when one bind fails, the ports this call bound are closed again and the
   * error names the port (ConflictError when it is taken, naming the owner when it is ours).
   */
  async publish(owner: string, mappings: readonly ProxyMapping[]): Promise<PublishedMapping[]> {
    if (typeof owner !== 'string' || owner === '') throw new InvalidArgumentError('owner', 'an owner id is required');
    if (!Array.isArray(mappings)) throw new InvalidArgumentError('mappings', 'a list of mappings is required');
    const checked = mappings.map((m, i) => checkMapping(owner, m, `mappings[${i}]`));
    checkBatch(checked);
    return this.serial(owner, () => this.bindAll(owner, checked));
  }

  /** Closes owner's listeners and live connections. Idempotent; returns the ports it freed. */
  unpublish(owner: string): Promise<number> {
    return this.serial(owner, async () => {
      const published = this.owners.get(owner) ?? [];
      this.owners.delete(owner);
      await Promise.all(published.flatMap((p) => p.forwards).map((f) => f.close()));
      const ports = portCount(published.map((p) => p.mapping));
      if (ports > 0) this.options.logger.info({ owner, ports }, 'proxy: unpublished');
      return ports;
    });
  }

  /** What is published, of one owner or of all, as given to publish (ranges kept whole). */
  list(owner?: string): PublishedMapping[] {
    const lists = owner === undefined ? [...this.owners.values()] : [this.owners.get(owner) ?? []];
    return lists.flat().map((p) => ({ ...p.mapping }));
  }

  /** Unpublishes everything; later publish calls are refused. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.owners.keys()].map((owner) => this.unpublish(owner)));
  }

  private async bindAll(owner: string, mappings: PublishedMapping[]): Promise<PublishedMapping[]> {
    if (this.closed) throw new CnmkitError('ERR_PROXY_CLOSED', 'unavailable', 'the userland proxy is closed');
    const settled = await Promise.allSettled(mappings.map((m) => this.open(m)));
    const failed = settled.findIndex((r) => r.status === 'rejected');
    if (failed >= 0) {
      const bound = settled.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
      await Promise.all(bound.map((f) => f.close()));
      const { err, port } = (settled[failed] as PromiseRejectedResult).reason as BindFailure;
      throw this.bindError(err, mappings[failed] as PublishedMapping, port, portCount(mappings));
    }
    const published = mappings.map((mapping, i) => ({ mapping, forwards: (settled[i] as PromiseFulfilledResult<Forwarder[]>).value }));
    this.owners.set(owner, [...(this.owners.get(owner) ?? []), ...published]);
    this.options.logger.info({ owner, mappings: mappings.length, ports: portCount(mappings) }, 'proxy: published');
    return mappings.map((m) => ({ ...m }));
  }

  /**
   * Binds one mapping, all or nothing: a TCP range in one native call, UDP port by port
   * (closed again when one fails). Rejects with a BindFailure naming the port.
   */
  private async open(m: PublishedMapping): Promise<Forwarder[]> {
    if (m.proto === 'tcp') {
      try {
        return [await openTcpForward(m, this.options)];
      } catch (err) {
        throw { err, port: (err as { port?: number }).port ?? m.hostPort } satisfies BindFailure;
      }
    }
    const targets = udpTargets(m);
    const settled = await Promise.allSettled(targets.map((t) => openUdpForward(t, this.options)));
    const failed = settled.findIndex((r) => r.status === 'rejected');
    const bound = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    if (failed < 0) return bound;
    await Promise.all(bound.map((f) => f.close()));
    throw { err: (settled[failed] as PromiseRejectedResult).reason, port: (targets[failed] as UdpTarget).hostPort } satisfies BindFailure;
  }

  /** Turns a bind failure into an error that names the port and, when it is ours, its owner. */
  private bindError(err: unknown, m: PublishedMapping, port: number, total: number): Error {
    const code = (err as NodeJS.ErrnoException).code ?? 'UNKNOWN';
    const where = `port ${port}/${m.proto} on ${m.hostIP ?? 'all addresses'}`;
    const batch = total > 1 ? ` (none of the batch's ${total} ports is kept)` : '';
    const options = { cause: err, field: 'hostPort' };
    if (code === 'EADDRINUSE') {
      const holder = [...this.owners.values()].flat().find((p) => overlaps(p.mapping, m.proto, m.hostIP, port));
      const by = holder ? `already published for ${JSON.stringify(holder.mapping.owner)}` : 'already in use by another socket on this host';
      return new ConflictError(`${where} is ${by}${batch}`, options);
    }
    if (code === 'EADDRNOTAVAIL') return new InvalidArgumentError('hostIP', `${m.hostIP} is not an address of this host${batch}`, { cause: err });
    if (code === 'EACCES') return new CnmkitError('ERR_PORT_FORBIDDEN', 'forbidden', `${where}: binding is not permitted (EACCES)${batch}`, options);
    if (code === 'EMFILE' || code === 'ENFILE')
      return new CnmkitError('ERR_PORT_NO_FILES', 'unavailable', `${where}: out of file descriptors (${code})${batch}`, options);
    return new CnmkitError('ERR_PORT_BIND', 'internal', `${where}: ${(err as Error).message}${batch}`, options);
  }

  /** Runs fn after the owner's earlier operations, so publish and unpublish never interleave. */
  private serial<T>(owner: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(owner) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.queues.set(owner, tail);
    void tail.then(() => {
      if (this.queues.get(owner) === tail) this.queues.delete(owner);
    });
    return next;
  }
}
