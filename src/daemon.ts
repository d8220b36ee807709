// The daemon: opens the store, reconciles it with the kernel, registers the drivers, creates the
// predefined networks, and serves the management API on a root-only unix socket. Stops cleanly
// on SIGINT/SIGTERM; a SIGKILL at any instant is repaired by reconcile at the next start.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import { servePlugins, type PluginServers } from './api/docker/index.js';
import { claimSocket, listenUnix } from './api/socket.js';
import { bridgeBackend } from './api/docker/bridge-backend.js';
import { Controller } from './cnm/controller.js';
import { DriverRegistry, type DriverContext } from './cnm/driver.js';
import { createSandboxKernel } from './cnm/sandbox-kernel.js';
import { buildManagementApi } from './api/management.js';
import { openStore, type Store } from './store/index.js';
import { Ipam, type DefaultPool } from './ipam/index.js';
import { createNullDriver } from '../drivers/null/index.js';
import { createHostDriver } from '../drivers/host/index.js';
import { createBridgeDriver } from '../drivers/bridge/index.js';
import { NetlinkHandlePool, setLinkUp } from './netlink/index.js';
import { createFirewall, type FirewallBackend } from './firewall/index.js';
import { PortAllocator, UserlandProxy } from './portmap/index.js';
import type { ProxyLimitOptions } from './portmap/limits.js';
import { PortPublisher } from './portmap/publisher.js';
import { VERSION } from './version.js';
import { InvalidArgumentError } from './errors.js';
import IPCIDR from 'ip-cidr';

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
  const [gateway, len] = bip.split('/');
  if (!gateway || !net.isIPv4(gateway) || !len || !IPCIDR.isValidCIDR(bip) || Number(len) > 30)
    throw new InvalidArgumentError('bip', `expected an IPv4 gateway address with a prefix length up to /30, e.g. 172.17.0.1/16, got ${JSON.stringify(bip)}`);
  return { subnet: `${new IPCIDR(bip).start()}/${len}`, gateway };
}

export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const logger = opts.logger ?? pino({ level: opts.logLevel, base: { pid: process.pid } });
  fs.mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
  fs.mkdirSync(path.dirname(opts.socket), { recursive: true, mode: 0o750 });
  await claimSocket(opts.socket);
  const store = openStore(opts.stateDir);
  const netlink = new NetlinkHandlePool();
  let ports: PortPublisher | undefined;
  let plugins: PluginServers | undefined;
  try {
    const ipam = new Ipam(store, opts.defaultAddressPools ? { defaultPools: opts.defaultAddressPools } : {});
    const firewall = await createFirewall({ backend: opts.firewallBackend, logger });
    const proxy = opts.userlandProxy ? new UserlandProxy({ ...opts.proxyLimits, logger: logger.child({ part: 'proxy' }) }) : undefined;
    ports = new PortPublisher(new PortAllocator(), proxy, firewall);
    const ctx: DriverContext = { logger, netlink, firewall, ports };
    const drivers = new DriverRegistry();
    drivers.register(createNullDriver(ctx));
    drivers.register(createHostDriver(ctx));
    drivers.register(createBridgeDriver(ctx, { userlandProxy: opts.userlandProxy }));
    const kernel = createSandboxKernel({
      netnsDir: opts.netnsDir,
      loopbackUp: (nsPath) => setLinkUp(netlink.get(nsPath), 'lo'),
      forget: (nsPath) => netlink.release(nsPath),
    });
    const controller = new Controller({ store, ipam, drivers, kernel, logger, defaultDriver: 'bridge', predefined: new Set(PREDEFINED.keys()) });
    for (const line of await controller.reconcile()) logger.warn({ reconcile: line }, 'reconciled');
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
    const api = await buildManagementApi({ controller, logger, reloadFirewall });
    // Plugin sockets first: once the management socket answers, the whole daemon is ready.
    fs.mkdirSync(opts.pluginDir, { recursive: true, mode: 0o755 });
    plugins = await servePlugins({ pluginDir: opts.pluginDir, ipam, network: bridgeBackend(controller), logger: logger.child({ part: 'docker-plugin' }) });
    await listenUnix(api, opts.socket);
    logger.info({ version: VERSION, socket: opts.socket, stateDir: opts.stateDir, drivers: drivers.names(), firewall: firewall.name, plugins: plugins.sockets }, 'cnmkit daemon ready');
    return {
      controller, store, firewall, api, logger,
      async close() {
        await plugins?.close();
        await api.close();
        await ports?.close();
        netlink.closeAll();
        store.close();
      },
    };
  } catch (err) {
    await plugins?.close();
    await ports?.close();
    netlink.closeAll();
    store.close();
    throw err;
  }
}
