// The userland proxy: every published (host IP, host port, proto) held by a listening socket in
// this one process and forwarded to the container: TCP ranges through the native acceptor and
// splice relay, UDP ranges through the native UDP forwarder. Connections, flows and ports are
// bounded (see limits.ts); stats() counts them. TCP and UDP only (no SCTP sockets here).
import { CnmkitError, ConflictError, InvalidArgumentError, PortInUseError } from '../errors.js';
import { native, type LimitReason, type ProxyBudget } from '../netns/native.js';
import { openTcpForward, sharedAcceptor } from './forward-tcp.js';
import { openUdpForward, sharedUdpForwarder } from './forward-udp.js';
import type { ForwardOptions, Forwarder } from './forward.js';
import { checkPortCapacity, LimitLog, resolveProxyLimits, type ProxyLimitOptions, type ProxyLimits } from './limits.js';
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

export interface UserlandProxyOptions extends ProxyLimitOptions {
  logger?: Logger;
  /** TCP_NODELAY on both sides of every forwarded connection (default true, as docker-proxy). */
  noDelay?: boolean;
}

/** What the proxy carries and refuses, for metrics. Bytes of the stream fallback count when a connection ends. */
export interface ProxyStats {
  tcpConnections: number;
  udpFlows: number;
  bytesToContainer: number;
  bytesFromContainer: number;
  /** By the flag that set the limit: max-connections, max-connections-per-port, idle-timeout, max-ports. */
  limitHits: Record<LimitReason | 'max-ports', number>;
}

interface Published {
  mapping: PublishedMapping;
  forwards: Forwarder[];
}

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
  readonly limits: ProxyLimits;
  private readonly options: ForwardOptions;
  private readonly budget: ProxyBudget;
  private readonly owners = new Map<string, Published[]>();
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Ports of publishes checked and still binding: counted as held, so that two at once cannot pass the limit together. */
  private pending = 0;
  private portHits = 0;
  private closed = false;

  /** Resolves and checks the limits (throws InvalidArgumentError naming the option) before anything starts. */
  constructor(options: UserlandProxyOptions = {}) {
    this.limits = resolveProxyLimits(options);
    const logger = options.logger ?? silentLogger;
    const limitLog = new LimitLog(logger);
    this.budget = native.proxyBudget(this.limits.maxConnections);
    const onLimit = (reason: LimitReason, proto: 'tcp' | 'udp', hostPort: number): void =>
      limitLog.hit(reason, this.budget.stats().hits[reason], { proto, hostPort, maxConnections: this.limits.maxConnections, maxConnectionsPerPort: this.limits.maxConnectionsPerPort });
    const stream = { toContainer: 0, fromContainer: 0, idleTimeouts: 0 };
    this.options = { logger, noDelay: options.noDelay ?? true, limits: this.limits, budget: this.budget, onLimit, stream };
    sharedAcceptor();
    sharedUdpForwarder();
    logger.info({ ...this.limits }, 'proxy: limits');
  }

  /** Live connections and flows, bytes carried both ways, and limit hits by reason. */
  stats(): ProxyStats {
    const b = this.budget.stats();
    const { stream } = this.options;
    return {
      tcpConnections: b.tcp,
      udpFlows: b.udp,
      bytesToContainer: b.toContainer + stream.toContainer,
      bytesFromContainer: b.fromContainer + stream.fromContainer,
      limitHits: { ...b.hits, 'idle-timeout': b.hits['idle-timeout'] + stream.idleTimeouts, 'max-ports': this.portHits },
    };
  }

  /**
   * Refuses, before anything is allocated or bound, a publish of `ports` more host ports that
   * would pass --proxy-max-ports or the descriptors the process has free (errors name `ports`).
   */
  checkCapacity(ports: number): void {
    try {
      checkPortCapacity(this.limits, ports, { held: this.heldPorts() + this.pending, connections: this.budget.stats().live });
    } catch (err) {
      this.portHits += 1;
      this.options.logger.warn({ ports, held: this.heldPorts(), maxPorts: this.limits.maxPorts, err: (err as Error).message }, 'proxy: publish refused');
      throw err;
    }
  }

  private heldPorts(): number {
    return portCount([...this.owners.values()].flat().map((p) => p.mapping));
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
    const ports = portCount(checked);
    this.checkCapacity(ports);
    this.pending += ports;
    try {
      return await this.serial(owner, () => this.bindAll(owner, checked));
    } finally {
      this.pending -= ports;
    }
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

  /** Binds one mapping's range, all or nothing; rejects with a BindFailure naming the port. */
  private async open(m: PublishedMapping): Promise<Forwarder[]> {
    try {
      return [await (m.proto === 'tcp' ? openTcpForward : openUdpForward)(m, this.options)];
    } catch (err) {
      throw { err, port: (err as { port?: number }).port ?? m.hostPort } satisfies BindFailure;
    }
  }

  /** Turns a bind failure into an error that names the port and, when it is ours, its owner. */
  private bindError(err: unknown, m: PublishedMapping, port: number, total: number): Error {
    const code = (err as NodeJS.ErrnoException).code ?? 'UNKNOWN';
    const where = `port ${port}/${m.proto} on ${m.hostIP ?? 'all addresses'}`;
    const batch = total > 1 ? ` (none of the batch's ${total} ports is kept)` : '';
    const options = { cause: err, field: 'hostPort' };
    if (code === 'EADDRINUSE') {
      const holder = [...this.owners.values()].flat().find((p) => overlaps(p.mapping, m.proto, m.hostIP, port));
      if (holder) return new ConflictError(`${where} is already published for ${JSON.stringify(holder.mapping.owner)}${batch}`, options);
      return new PortInUseError(`${where} is already in use by another socket on this host${batch}`, m.proto, port, options);
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
