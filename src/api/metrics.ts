// The daemon's Prometheus metrics (prom-client), one registry per daemon: operation counts and
// latencies per operation and driver, Docker plugin calls per method, API errors per class, store
// transaction and firewall apply times, and gauges read from the store, the port allocator and the
// userland proxy when scraped. Labels take bounded values only (no names, ids or URLs).
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Store } from '../store/index.js';
import { errorClassOf, toReply } from './errors.js';

/** What the userland proxy reports (UserlandProxy.stats()). */
export interface ProxyStats {
  tcpConnections: number;
  udpFlows: number;
  bytesToContainer: number;
  bytesFromContainer: number;
  /** Limit name → times it refused a connection or flow since start. */
  limitHits: Record<string, number>;
}

/** A published host port range, as the port allocator leases it. */
export interface PortLeaseLike {
  proto: string;
  hostPort: number;
  hostPortEnd: number;
}

/** Where the gauges are read from at each scrape. */
export interface MetricSources {
  store: Pick<Store, 'networks' | 'sandboxes' | 'endpoints'>;
  leases?: () => readonly PortLeaseLike[];
  proxyStats?: () => ProxyStats | undefined;
}

const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const FAST_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1];

/** Sets a counter to a total kept elsewhere (prom-client counters only go up by inc). */
function setTotal(counter: Counter<string>, labels: Record<string, string>, total: number): void {
  if (Number.isFinite(total) && total >= 0) counter.inc(labels, total);
}

export class DaemonMetrics {
  readonly registry = new Registry();
  readonly operations: Counter<'operation' | 'driver' | 'result'>;
  readonly operationSeconds: Histogram<'operation' | 'driver'>;
  readonly pluginCalls: Counter<'method' | 'result'>;
  readonly pluginSeconds: Histogram<'method'>;
  readonly errors: Counter<'api' | 'class' | 'code'>;
  readonly storeTxSeconds: Histogram<string>;
  readonly firewallSeconds: Histogram<'backend' | 'operation' | 'result'>;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.operations = new Counter({
      name: 'cnmkit_operations_total', help: 'Controller operations by operation, driver and result (ok or error).',
      labelNames: ['operation', 'driver', 'result'], registers,
    });
    this.operationSeconds = new Histogram({
      name: 'cnmkit_operation_duration_seconds', help: 'Controller operation latency, queueing included.',
      labelNames: ['operation', 'driver'], buckets: SECONDS, registers,
    });
    this.pluginCalls = new Counter({
      name: 'cnmkit_plugin_requests_total', help: 'Docker plugin calls by method and result (ok or error).',
      labelNames: ['method', 'result'], registers,
    });
    this.pluginSeconds = new Histogram({
      name: 'cnmkit_plugin_request_duration_seconds', help: 'Docker plugin call latency by method.',
      labelNames: ['method'], buckets: SECONDS, registers,
    });
    this.errors = new Counter({
      name: 'cnmkit_api_errors_total', help: 'Error replies by API (management, plugin), error class and code.',
      labelNames: ['api', 'class', 'code'], registers,
    });
    this.storeTxSeconds = new Histogram({
      name: 'cnmkit_store_transaction_duration_seconds', help: 'State store transactions (each CNM operation writes in them).',
      buckets: FAST_SECONDS, registers,
    });
    this.firewallSeconds = new Histogram({
      name: 'cnmkit_firewall_apply_duration_seconds', help: 'Firewall backend calls (each applies one batch of rules) by operation and result.',
      labelNames: ['backend', 'operation', 'result'], buckets: SECONDS, registers,
    });
  }

  /** Registers the gauges that are read from sources at each scrape. */
  collectFrom(sources: MetricSources): void {
    const registers = [this.registry];
    new Gauge({
      name: 'cnmkit_objects', help: 'CNM objects in the store, by kind.', labelNames: ['kind'], registers,
      collect() {
        this.set({ kind: 'network' }, sources.store.networks.list().length);
        this.set({ kind: 'sandbox' }, sources.store.sandboxes.list().length);
        this.set({ kind: 'endpoint' }, sources.store.endpoints.list().length);
      },
    });
    if (sources.leases) this.collectPorts(sources.leases);
    if (sources.proxyStats) this.collectProxy(sources.proxyStats);
  }

  private collectPorts(leases: () => readonly PortLeaseLike[]): void {
    new Gauge({
      name: 'cnmkit_published_ports', help: 'Host ports published, by protocol.', labelNames: ['proto'], registers: [this.registry],
      collect() {
        this.reset();
        const byProto = new Map<string, number>([['tcp', 0], ['udp', 0], ['sctp', 0]]);
        for (const l of leases()) byProto.set(l.proto, (byProto.get(l.proto) ?? 0) + l.hostPortEnd - l.hostPort + 1);
        for (const [proto, n] of byProto) this.set({ proto }, n);
      },
    });
  }

  private collectProxy(stats: () => ProxyStats | undefined): void {
    const registers = [this.registry];
    new Gauge({
      name: 'cnmkit_proxy_connections', help: 'Userland proxy: open TCP connections and live UDP flows.', labelNames: ['proto'], registers,
      collect() {
        const s = stats();
        if (!s) return;
        this.set({ proto: 'tcp' }, s.tcpConnections);
        this.set({ proto: 'udp' }, s.udpFlows);
      },
    });
    new Counter({
      name: 'cnmkit_proxy_bytes_total', help: 'Userland proxy: bytes relayed, by direction.', labelNames: ['direction'], registers,
      collect() {
        const s = stats();
        if (!s) return;
        this.reset();
        setTotal(this, { direction: 'to_container' }, s.bytesToContainer);
        setTotal(this, { direction: 'from_container' }, s.bytesFromContainer);
      },
    });
    new Counter({
      name: 'cnmkit_proxy_limit_hits_total', help: 'Userland proxy: connections or flows refused by a limit, by limit.', labelNames: ['limit'], registers,
      collect() {
        const s = stats();
        if (!s) return;
        this.reset();
        for (const [limit, n] of Object.entries(s.limitHits)) setTotal(this, { limit }, n);
      },
    });
  }

  /** Counts an error reply of an API. */
  countError(api: 'management' | 'plugin', err: unknown): void {
    const { code } = toReply(err).body;
    this.errors.inc({ api, class: errorClassOf(err), code: /^[A-Z0-9_]{1,48}$/.test(code) ? code : 'other' });
  }

  /** The Prometheus text exposition and its content type. */
  async expose(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}
