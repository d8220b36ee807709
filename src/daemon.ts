// The daemon: checks its options, takes its network namespace (one daemon per namespace), opens
// the store, reconciles it with the kernel, registers the drivers, creates the predefined
// networks, and serves the management API on a root-only unix socket (with /health and /metrics;
// metrics on TCP too with --metrics-addr). Stops cleanly on SIGINT/SIGTERM; a SIGKILL at
// any instant is repaired by reconcile at the next start.
import fs from 'node:fs';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import type { PluginServers } from './api/docker/index.js';
import { claimSocket, listenUnix } from './api/socket.js';
import { Controller } from './controller/controller.js';
import { resolveRef } from './core/refs.js';
import { DriverRegistry, type DriverContext } from './contract/driver.js';
import { createSandboxKernel } from './controller/sandbox-kernel.js';
import { endpointNames, ownerNames } from './controller/owner-names.js';
import { buildManagementApi } from './api/management.js';
import { LinkService } from './links/index.js';
import { openStore, type Store } from './store/index.js';
import { Ipam, type DefaultPool } from './ipam/index.js';
import { createNullDriver } from '../drivers/null/index.js';
import { createHostDriver } from '../drivers/host/index.js';
import { createBridgeDriver } from '../drivers/bridge/index.js';
import { createMacvlanDriver } from '../drivers/macvlan/index.js';
import { createOverlayDriver } from '../drivers/overlay/index.js';
import { getLink, NetlinkHandlePool, netnsIdOf, netnsIdReferenced, setLinkUp } from './netlink/index.js';
import { DaemonMetrics } from './api/metrics.js';
import { observeController, observeFirewall, observeStore } from './api/instrument.js';
import { healthChecker } from './api/health.js';
import { parseMetricsAddr, serveMetrics } from './api/metrics-server.js';
import { createFirewall, type FirewallBackend } from './firewall/index.js';
import { PortAllocator, UserlandProxy } from './portmap/index.js';
import type { ProxyLimitOptions } from './portmap/limits.js';
import { PortPublisher } from './portmap/publisher.js';
import { VERSION } from './version.js';
import { InvalidArgumentError } from './errors.js';
import { ensureSysctl, validateIfname } from './netns/index.js';
import { lockNetworkNamespace, type NamespaceLock } from './netns/daemon-lock.js';
import { maskedPrefix, splitCidr } from './ip/index.js';
import type { ClusterConfig } from './cluster/options.js';
import type { Cluster } from './cluster/types.js';
import { StartTrace } from './daemon/start-trace.js';

export interface DaemonOptions {
  socket: string;
  stateDir: string;
  runDir: string;
  pluginDir: string;
  netnsDir: string;
  logLevel: string;
  defaultAddressPools?: DefaultPool[];
  /** Device of the default `bridge` network. */
  bridgeName: string;
  /** Gateway CIDR of the default bridge (`--bip 172.17.0.1/16`); default: the first free pool. */
  bip?: string;
  firewallBackend: 'auto' | 'iptables' | 'nftables' | 'none';
  userlandProxy: boolean;
  /** `HOST:PORT` to serve GET /metrics on over TCP too (off when absent). */
  metricsAddr?: string;
  /** Cluster mode (--cluster-store …): global networks, IPAM and peers in etcd. */
  cluster?: ClusterConfig;
  /** Serve the Docker plugin sockets (default true); a lab's simulated host has no Docker engine. */
  dockerPlugins?: boolean;
  /** The userland proxy's connection, port and idle limits (--proxy-* flags); unset = derived from the fd limit. */
  proxyLimits?: ProxyLimitOptions;
  /** A logger to use instead of a new one (tests). */
  logger?: Logger;
}

export { DAEMON_DEFAULTS } from './defaults.js';

/** The networks every daemon has, like Docker's `host` and `none`; never pruned or removed. */
export const PREDEFINED = new Map([['none', 'null'], ['host', 'host'], ['bridge', 'bridge']]);

export interface Daemon {
  controller: Controller;
  store: Store;
  firewall: FirewallBackend;
  cluster?: Cluster;
  api: FastifyInstance;
  logger: Logger;
  close(): Promise<void>;
}

/** The predefined networks: `none`, `host`, and the default `bridge` on its device. */
async function createPredefined(controller: Controller, store: Store, opts: DaemonOptions): Promise<void> {
  for (const [name, driver] of PREDEFINED) {
    if (store.networks.getByName(name)) continue;
    if (driver !== 'bridge') {
      await controller.createNetwork({ name, driver });
      continue;
    }
    const bip = opts.bip ? parseBip(opts.bip) : undefined;
    await controller.createNetwork({
      name, driver, options: { 'com.docker.network.bridge.name': opts.bridgeName },
      ...(bip ? { subnet: bip.subnet, gateway: bip.gateway } : {}),
    });
  }
}

/** `--bip 172.17.0.1/16` → subnet 172.17.0.0/16 with gateway 172.17.0.1. */
export function parseBip(bip: string): { subnet: string; gateway: string } {
  const refuse = (): never => {
    throw new InvalidArgumentError('--bip', `expected an IPv4 gateway address with a prefix length up to /30, e.g. 172.17.0.1/16, got ${JSON.stringify(bip)}`);
  };
  let cidr: ReturnType<typeof splitCidr>;
  try {
    cidr = splitCidr('--bip', bip);
  } catch {
    return refuse();
  }
  if (cidr.address.family !== 4 || cidr.bits > 30) refuse();
  return { subnet: maskedPrefix(4, cidr.address.value, cidr.bits).text, gateway: bip.split('/')[0]! };
}

/**
 * Checks every option that could otherwise fail half-way through a start (after the sweep of
 * devices nothing owns): errors name the flag. No side effects.
 */
export function validateDaemonOptions(opts: DaemonOptions): void {
  const paths = { '--socket': opts.socket, '--state-dir': opts.stateDir, '--run-dir': opts.runDir, '--plugin-dir': opts.pluginDir, '--netns-dir': opts.netnsDir };
  for (const [flag, value] of Object.entries(paths)) {
    if (typeof value !== 'string' || value === '' || value.includes('\0')) throw new InvalidArgumentError(flag, `expected a path, got ${JSON.stringify(value)}`);
  }
  if (!path.isAbsolute(opts.netnsDir)) throw new InvalidArgumentError('--netns-dir', `expected an absolute path, got ${JSON.stringify(opts.netnsDir)}`);
  validateIfname(opts.bridgeName, '--bridge-name');
  if (opts.bip !== undefined) parseBip(opts.bip);
}

/** The subnets of this host's local networks, which global pools must not overlap. */
function localSubnets(store: Store): { network: string; subnet: string }[] {
  return store.networks.list().filter((n) => n.scope === 'local')
    .flatMap((n) => [...n.ipv4, ...n.ipv6].map((s) => ({ network: n.name, subnet: s.subnet })));
}

/**
 * Cluster mode's code (etcd) is loaded only when the flags ask for it, and its registration
 * runs while the rest of the daemon is set up (store, firewall, drivers): both wait on I/O.
 */
async function startClusterMode(opts: DaemonOptions, store: Store, logger: Logger, trace: StartTrace): Promise<Cluster | undefined> {
  if (!opts.cluster) return undefined;
  const { startCluster } = await import('./cluster/index.js');
  trace.mark('clusterLoaded');
  const cluster = await startCluster({ config: opts.cluster, stateDir: opts.stateDir, logger: logger.child({ part: 'cluster' }), localSubnets: () => localSubnets(store) });
  trace.mark('clusterRegistered');
  return cluster;
}

export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const trace = new StartTrace();
  trace.mark('daemonLoaded');
  validateDaemonOptions(opts);
  // Before anything changes on disk or in the kernel: one daemon per network namespace.
  const lock = await lockNetworkNamespace({ pid: process.pid, socket: path.resolve(opts.socket), stateDir: path.resolve(opts.stateDir) });
  try {
    trace.mark('locked');
    return await start(opts, lock, trace);
  } catch (err) {
    await lock.release();
    throw err;
  }
}

async function start(opts: DaemonOptions, lock: NamespaceLock, trace: StartTrace): Promise<Daemon> {
  const metricsAddr = opts.metricsAddr === undefined ? undefined : parseMetricsAddr(opts.metricsAddr);
  const logger = opts.logger ?? pino({ level: opts.logLevel, base: { pid: process.pid } });
  fs.mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
  fs.mkdirSync(path.dirname(opts.socket), { recursive: true, mode: 0o750 });
  await claimSocket(opts.socket);
  const store = openStore(opts.stateDir);
  trace.mark('storeOpen');
  const netlink = new NetlinkHandlePool();
  let ports: PortPublisher | undefined;
  let plugins: PluginServers | undefined;
  let metricsServer: FastifyInstance | undefined;
  const metrics = new DaemonMetrics();
  observeStore(store, metrics);
  let cluster: Cluster | undefined;
  // Settled before start() returns or throws: awaited below, or in the catch (then closed).
  const clusterStart = startClusterMode(opts, store, logger, trace);
  clusterStart.catch(() => undefined);
  try {
    const ipam = new Ipam(store, { ...(opts.defaultAddressPools ? { defaultPools: opts.defaultAddressPools } : {}), describeOwner: ownerNames(store) });
    const bareFirewall = await createFirewall({ backend: opts.firewallBackend, logger });
    const firewall = observeFirewall(bareFirewall, metrics);
    trace.mark('firewall');
    const proxy = opts.userlandProxy ? new UserlandProxy({ ...opts.proxyLimits, logger: logger.child({ part: 'proxy' }) }) : undefined;
    const allocator = new PortAllocator({ describeOwner: endpointNames(store) });
    ports = new PortPublisher(allocator, proxy, firewall);
    metrics.collectFrom({ store, leases: () => allocator.leases(), proxyStats: () => proxy?.stats() });
    cluster = await clusterStart;
    const ctx: DriverContext = { logger, netlink, firewall, ports, sysctl: { ensure: ensureSysctl }, ...(cluster ? { cluster } : {}) };
    const drivers = new DriverRegistry();
    drivers.register(createNullDriver(ctx));
    drivers.register(createHostDriver(ctx));
    drivers.register(createBridgeDriver(ctx, { userlandProxy: opts.userlandProxy }));
    drivers.register(createMacvlanDriver(ctx));
    drivers.register(createOverlayDriver(ctx));
    const kernel = createSandboxKernel({
      netlink,
      netnsDir: opts.netnsDir,
      loopbackUp: (nsPath) => setLinkUp(netlink.get(nsPath), 'lo'),
      forget: (nsPath) => netlink.release(nsPath),
      netnsId: (fd) => netnsIdOf(netlink.get(), fd),
      netnsReferenced: (nsid) => netnsIdReferenced(netlink.get(), nsid),
    });
    const links = new LinkService({ store, netlink, sandbox: (ref) => resolveRef('sandbox', ref, store.sandboxes), exists: kernel.exists, logger });
    const controller = new Controller({ store, ipam, drivers, kernel, logger, links, defaultDriver: 'bridge', predefined: new Set(PREDEFINED.keys()) });
    for (const line of await controller.reconcile()) logger.warn({ reconcile: line }, 'reconciled');
    trace.mark('reconciled');
    for (const line of await links.reconcile()) logger.warn({ reconcile: line }, 'reconciled');
    await createPredefined(controller, store, opts);
    const removed = await firewall.reconcile(controller.firewallOwners());
    if (removed.length > 0) logger.warn({ owners: removed }, 'removed firewall rules that nothing owns');
    const reloadFirewall = async () => {
      await firewall.init();
      const notes = await controller.reapply();
      const removedOwners = await firewall.reconcile(controller.firewallOwners());
      logger.info({ backend: firewall.name, removedOwners, notes }, 'firewall reloaded');
      return { backend: firewall.name, removedOwners, notes };
    };
    const observed = observeController(controller, metrics, { defaultDriver: 'bridge', drivers: new Set(drivers.names()) });
    const health = healthChecker({ store, firewall: bareFirewall, kernel: () => getLink(netlink.get(), 'lo') });
    const api = await buildManagementApi({ controller: observed, logger, reloadFirewall, metrics, health, links, netlink, ...(cluster ? { cluster } : {}) });
    // Plugin sockets first: once the management socket answers, the whole daemon is ready.
    if (opts.dockerPlugins !== false) {
      // Loaded only when served: a daemon without them starts sooner.
      const { driverBackend, overlayNameOf, servePlugins } = await import('./api/docker/index.js');
      // A driver of global networks is offered to the engine only in cluster mode (without it, no socket: `plugin not found`).
      const served = drivers.list().filter((d) => d.docker && (!d.global || cluster));
      const globalName = cluster ? (pool: string | undefined) => overlayNameOf(cluster!, pool) : undefined;
      const networks = Object.fromEntries(served.map((d) => [d.docker!.pluginName, driverBackend(observed, d.name, d.docker!.scope ?? 'local', d.global ? globalName : undefined)]));
      fs.mkdirSync(opts.pluginDir, { recursive: true, mode: 0o755 });
      plugins = await servePlugins({ pluginDir: opts.pluginDir, ipam, networks, logger: logger.child({ part: 'docker-plugin' }), metrics, ...(cluster ? { cluster } : {}) });
    }
    if (metricsAddr) metricsServer = await serveMetrics(metricsAddr, metrics, logger.child({ part: 'metrics' }));
    await listenUnix(api, opts.socket);
    trace.mark('listening');
    logger.info({ version: VERSION, socket: opts.socket, stateDir: opts.stateDir, drivers: drivers.names(), firewall: firewall.name, plugins: plugins?.sockets ?? [], metricsAddr: opts.metricsAddr, ...(cluster ? { cluster: cluster.status() } : {}), ...trace.fields() }, 'cnmkit daemon ready');
    return {
      controller, store, firewall, api, logger, ...(cluster ? { cluster } : {}),
      async close() {
        await metricsServer?.close();
        await plugins?.close();
        await api.close();
        await cluster?.close();
        await ports?.close();
        netlink.closeAll();
        store.close();
        await lock.release();
      },
    };
  } catch (err) {
    await metricsServer?.close();
    await plugins?.close();
    await (cluster ?? await clusterStart.catch(() => undefined))?.close();
    await ports?.close();
    netlink.closeAll();
    store.close();
    throw err;
  }
}
