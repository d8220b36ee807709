// The daemon: checks its options, takes its network namespace (one daemon per namespace), opens
// the store, starts cluster mode's registration, restores the kernel from the store (./daemon/
// core.ts), and only then loads and serves the management API on a root-only unix socket (with
// /health and /metrics; metrics on TCP too with --metrics-addr) and the Docker plugin sockets
// (./daemon/serve.ts). Stops cleanly on SIGINT/SIGTERM; a SIGKILL at any instant is repaired by
// reconcile at the next start.
import fs from 'node:fs';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import { claimSocket } from './api/socket.js';
import type { Controller } from './controller/controller.js';
import { openStore, type Store } from './store/index.js';
import type { FirewallBackend } from './firewall/index.js';
import { VERSION } from './version.js';
import { lockNetworkNamespace, type NamespaceLock } from './netns/daemon-lock.js';
import type { Cluster } from './cluster/types.js';
import type { CoreParts } from './daemon/core.js';
import { validateDaemonOptions, type CheckedOptions, type DaemonOptions } from './daemon/options.js';
import { StartTimings } from './daemon/timings.js';
import { StartTrace } from './daemon/start-trace.js';
import { AnswerGate } from './core/answers.js';

export { parseBip, validateDaemonOptions, type DaemonOptions } from './daemon/options.js';
export { DAEMON_DEFAULTS } from './defaults.js';

export interface Daemon {
  controller: Controller;
  store: Store;
  firewall: FirewallBackend;
  cluster?: Cluster;
  api: FastifyInstance;
  logger: Logger;
  close(): Promise<void>;
}

/** The subnets of this host's local networks, which global pools must not overlap. */
function localSubnets(store: Store): { network: string; subnet: string }[] {
  return store.networks.list().filter((n) => n.scope === 'local')
    .flatMap((n) => [...n.ipv4, ...n.ipv6].map((s) => ({ network: n.name, subnet: s.subnet })));
}

/**
 * Cluster mode's code (etcd) is loaded only when the flags ask for it, before the rest of the
 * daemon's, and its registration runs while the rest is loaded and set up (store, firewall,
 * drivers): both wait on I/O.
 */
async function startClusterMode(opts: DaemonOptions, store: Store, logger: Logger, trace: StartTrace, answers: AnswerGate): Promise<{ cluster: Promise<Cluster | undefined> }> {
  if (!opts.cluster) return { cluster: Promise.resolve(undefined) };
  const { startCluster } = await import('./cluster/index.js');
  trace.mark('clusterLoaded');
  // The peers of the global networks recorded here are listed while the host registers: the restore watches them first.
  const prefetchPeers = store.networks.list().filter((n) => n.scope === 'global').map((n) => n.name);
  const cluster = startCluster({ config: opts.cluster, stateDir: opts.stateDir, logger: logger.child({ part: 'cluster' }), localSubnets: () => localSubnets(store), prefetchPeers,
    afterAnswers: (job) => answers.after(job),
  });
  return {
    cluster: cluster.then((c) => {
      trace.mark('clusterRegistered');
      return c;
    }),
  };
}

export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const trace = new StartTrace();
  trace.mark('daemonLoaded');
  const checked = validateDaemonOptions(opts);
  // Before anything changes on disk or in the kernel: one daemon per network namespace.
  const lock = await lockNetworkNamespace({ pid: process.pid, socket: path.resolve(opts.socket), stateDir: path.resolve(opts.stateDir) });
  try {
    trace.mark('locked');
    return await start(opts, checked, lock, trace);
  } catch (err) {
    await lock.release();
    throw err;
  }
}

async function start(opts: DaemonOptions, checked: CheckedOptions, lock: NamespaceLock, trace: StartTrace): Promise<Daemon> {
  const logger = opts.logger ?? pino({ level: opts.logLevel, base: { pid: process.pid } });
  fs.mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
  fs.mkdirSync(path.dirname(opts.socket), { recursive: true, mode: 0o750 });
  await claimSocket(opts.socket);
  const store = openStore(opts.stateDir);
  trace.mark('storeOpen');
  const timings = new StartTimings();
  store.onTxTimed = (seconds) => timings.storeTxSeconds.observe(seconds);
  const p: CoreParts = { store, logger, trace, timings, cluster: Promise.resolve(undefined), made: {}, answers: new AnswerGate() };
  let cluster: Cluster | undefined;
  try {
    ({ cluster: p.cluster } = await startClusterMode(opts, store, logger, trace, p.answers));
    // Settled before start() returns or throws: awaited by the restore, or in the catch (then closed).
    p.cluster.catch(() => undefined);
    // A plain daemon loads the API's modules alongside the rest, as they wait on the same I/O; in
    // cluster mode they load after the restore, which they would otherwise delay.
    let serveModule = opts.cluster ? undefined : import('./daemon/serve.js');
    serveModule?.catch(() => undefined);
    const { restore, finishRestore } = await import('./daemon/core.js');
    const r = await restore(opts, p);
    cluster = r.cluster;
    // The API's modules load while the rest of the start waits on the firewall's commands.
    serveModule ??= import('./daemon/serve.js');
    serveModule.catch(() => undefined);
    await finishRestore(opts, r, store, logger);
    const serving = await (await serveModule).serve(opts, checked, r, store, timings, logger);
    trace.mark('listening');
    logger.info({
      version: VERSION, socket: opts.socket, stateDir: opts.stateDir, drivers: r.drivers.names(), firewall: r.firewall.name, plugins: serving.plugins?.sockets ?? [],
      metricsAddr: opts.metricsAddr, ...(cluster ? { cluster: cluster.status() } : {}), ...trace.fields(),
    }, 'cnmkit daemon ready');
    const { api, plugins, metricsServer } = serving;
    return {
      controller: r.controller, store, firewall: r.firewall, api, logger, ...(cluster ? { cluster } : {}),
      async close() {
        await metricsServer?.close();
        await plugins?.close();
        await api.close();
        await cluster?.close();
        await p.made.ports?.close();
        p.made.netlink?.closeAll();
        store.close();
        await lock.release();
      },
    };
  } catch (err) {
    await (cluster ?? await p.cluster.catch(() => undefined))?.close();
    await p.made.ports?.close();
    p.made.netlink?.closeAll();
    store.close();
    throw err;
  }
}
