// The daemon's serving side, loaded once the kernel is restored (its modules — fastify, ajv, the
// swagger spec, prom-client, the Docker plugin — would otherwise delay the restore): the metrics
// registry (given the start's kept timings), the management API, the Docker plugin sockets, the
// optional TCP metrics endpoint, then the management socket, which answers last.
import fs from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { PluginServers } from '../api/docker/index.js';
import { listenUnix } from '../api/socket.js';
import { getLink } from '../netlink/index.js';
import { DaemonMetrics } from '../api/metrics.js';
import { observeController, observeStore } from '../api/instrument.js';
import { healthChecker } from '../api/health.js';
import { serveMetrics } from '../api/metrics-server.js';
import { buildManagementApi } from '../api/management.js';
import type { Store } from '../store/index.js';
import type { Restored } from './core.js';
import type { CheckedOptions, DaemonOptions } from './options.js';
import type { StartTimings } from './timings.js';

export interface Serving {
  api: FastifyInstance;
  plugins: PluginServers | undefined;
  metricsServer: FastifyInstance | undefined;
}

/** The Docker plugin sockets of the drivers served (a global driver only in cluster mode: without it, no socket, `plugin not found`). */
async function servePluginSockets(opts: DaemonOptions, r: Restored, observed: Restored['controller'], metrics: DaemonMetrics, logger: Logger): Promise<PluginServers> {
  const { cluster } = r;
  // Loaded only when served: a daemon without them starts sooner.
  const { driverBackend, overlayNameOf, servePlugins } = await import('../api/docker/index.js');
  const served = r.drivers.list().filter((d) => d.docker && (!d.global || cluster));
  const globalName = cluster ? (pool: string | undefined) => overlayNameOf(cluster, pool) : undefined;
  const networks = Object.fromEntries(served.map((d) => [d.docker!.pluginName, driverBackend(observed, d.name, d.docker!.scope ?? 'local', d.global ? globalName : undefined)]));
  fs.mkdirSync(opts.pluginDir, { recursive: true, mode: 0o755 });
  return servePlugins({ pluginDir: opts.pluginDir, ipam: r.ipam, networks, logger: logger.child({ part: 'docker-plugin' }), metrics, ...(cluster ? { cluster } : {}) });
}

/** Serves everything; on a failure, what it opened is closed again before the error is thrown. */
export async function serve(opts: DaemonOptions, checked: CheckedOptions, r: Restored, store: Store, timings: StartTimings, logger: Logger): Promise<Serving> {
  const { metricsAddr } = checked;
  const metrics = new DaemonMetrics();
  timings.attach(metrics);
  observeStore(store, metrics);
  metrics.collectFrom({ store, leases: () => r.allocator.leases(), proxyStats: () => r.proxy?.stats() });
  const observed = observeController(r.controller, metrics, { defaultDriver: 'bridge', drivers: new Set(r.drivers.names()) });
  const health = healthChecker({ store, firewall: r.bareFirewall, kernel: () => getLink(r.netlink.get(), 'lo') });
  let plugins: PluginServers | undefined;
  let metricsServer: FastifyInstance | undefined;
  try {
    const api = await buildManagementApi({
      controller: observed, logger, reloadFirewall: r.reloadFirewall, metrics, health, links: r.links, netlink: r.netlink, ...(r.cluster ? { cluster: r.cluster } : {}),
    });
    // Plugin sockets first: once the management socket answers, the whole daemon is ready.
    if (opts.dockerPlugins !== false) plugins = await servePluginSockets(opts, r, observed, metrics, logger);
    if (metricsAddr) metricsServer = await serveMetrics(metricsAddr, metrics, logger.child({ part: 'metrics' }));
    await listenUnix(api, opts.socket);
    return { api, plugins, metricsServer };
  } catch (err) {
    await metricsServer?.close();
    await plugins?.close();
    throw err;
  }
}
