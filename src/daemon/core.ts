// What a start needs before it may serve: the kernel and the store brought back in line (firewall,
// drivers, reconcile with each driver's restore — an overlay's remote peers programmed again),
// links, the predefined networks, and the firewall rules nothing owns removed. Loaded by the
// daemon while the cluster registers; holds none of the API's modules, which load after.
import type { Logger } from 'pino';
import { Controller } from '../controller/controller.js';
import { resolveRef } from '../core/refs.js';
import { DriverRegistry, type DriverContext } from '../contract/driver.js';
import { createSandboxKernel } from '../controller/sandbox-kernel.js';
import { endpointNames, ownerNames } from '../controller/owner-names.js';
import { LinkService } from '../links/index.js';
import type { Store } from '../store/index.js';
import { Ipam } from '../ipam/index.js';
import { createNullDriver } from '../../drivers/null/index.js';
import { createHostDriver } from '../../drivers/host/index.js';
import { createBridgeDriver } from '../../drivers/bridge/index.js';
import { createMacvlanDriver } from '../../drivers/macvlan/index.js';
import { createOverlayDriver } from '../../drivers/overlay/index.js';
import { NetlinkHandlePool, netnsIdOf, netnsIdReferenced, setLinkUp } from '../netlink/index.js';
import { observeFirewall, type TimingSink } from '../api/instrument.js';
import { createFirewall, type FirewallBackend } from '../firewall/index.js';
import { PortAllocator, UserlandProxy } from '../portmap/index.js';
import { PortPublisher } from '../portmap/publisher.js';
import { ensureSysctl, setSysctl } from '../netns/index.js';
import type { Cluster } from '../cluster/types.js';
import { parseBip, type DaemonOptions } from './options.js';
import { PREDEFINED_NETWORKS } from '../defaults.js';
import type { StartTrace } from './start-trace.js';
import type { AnswerGate } from '../core/answers.js';


export interface CoreParts {
  store: Store;
  logger: Logger;
  trace: StartTrace;
  timings: TimingSink;
  /** Settles to the cluster once it registered (or gave up for now); undefined without cluster mode. */
  cluster: Promise<Cluster | undefined>;
  /** Set as soon as each is made: the caller closes them when a later step fails. */
  made: { ports?: PortPublisher; netlink?: NetlinkHandlePool };
  /** Background work held back until the connects under way answered (the cluster's publishes). */
  answers: AnswerGate;
}

export interface Restored {
  controller: Controller;
  drivers: DriverRegistry;
  links: LinkService;
  ipam: Ipam;
  firewall: FirewallBackend;
  /** The firewall backend itself, for health checks (not timed). */
  bareFirewall: FirewallBackend;
  ports: PortPublisher;
  allocator: PortAllocator;
  proxy: UserlandProxy | undefined;
  cluster: Cluster | undefined;
  netlink: NetlinkHandlePool;
  /** `cnmkit firewall reload`: the backend set up again, every rule re-applied, orphans removed. */
  reloadFirewall(): Promise<{ backend: string; removedOwners: string[]; notes: string[] }>;
}

/** The predefined networks: `none`, `host`, and the default `bridge` on its device. */
async function createPredefined(controller: Controller, store: Store, opts: DaemonOptions): Promise<void> {
  for (const [name, driver] of PREDEFINED_NETWORKS) {
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

function registerDrivers(ctx: DriverContext, opts: DaemonOptions): DriverRegistry {
  const drivers = new DriverRegistry();
  drivers.register(createNullDriver(ctx));
  drivers.register(createHostDriver(ctx));
  drivers.register(createBridgeDriver(ctx, { userlandProxy: opts.userlandProxy }));
  drivers.register(createMacvlanDriver(ctx));
  drivers.register(createOverlayDriver(ctx));
  return drivers;
}

/** Firewall, drivers and controller made; the kernel and the store reconciled (the restore first). */
export async function restore(opts: DaemonOptions, p: CoreParts): Promise<Restored> {
  const { store, logger, trace } = p;
  const netlink = new NetlinkHandlePool();
  p.made.netlink = netlink;
  const ipam = new Ipam(store, { ...(opts.defaultAddressPools ? { defaultPools: opts.defaultAddressPools } : {}), describeOwner: ownerNames(store) });
  const bareFirewall = await createFirewall({ backend: opts.firewallBackend, logger });
  const firewall = observeFirewall(bareFirewall, p.timings);
  trace.mark('firewall');
  const proxy = opts.userlandProxy ? new UserlandProxy({ ...opts.proxyLimits, logger: logger.child({ part: 'proxy' }) }) : undefined;
  const allocator = new PortAllocator({ describeOwner: endpointNames(store) });
  const ports = new PortPublisher(allocator, proxy, firewall);
  p.made.ports = ports;
  const cluster = await p.cluster;
  const ctx: DriverContext = { logger, netlink, firewall, ports, sysctl: { ensure: ensureSysctl, set: setSysctl }, ...(cluster ? { cluster } : {}) };
  const drivers = registerDrivers(ctx, opts);
  const kernel = createSandboxKernel({
    netlink,
    netnsDir: opts.netnsDir,
    loopbackUp: (nsPath) => setLinkUp(netlink.get(nsPath), 'lo'),
    forget: (nsPath) => netlink.release(nsPath),
    netnsId: (fd) => netnsIdOf(netlink.get(), fd),
    netnsReferenced: (nsid) => netnsIdReferenced(netlink.get(), nsid),
  });
  const links = new LinkService({ store, netlink, sandbox: (ref) => resolveRef('sandbox', ref, store.sandboxes), exists: kernel.exists, logger });
  const controller = new Controller({ store, ipam, drivers, kernel, logger, links, defaultDriver: 'bridge', predefined: new Set(PREDEFINED_NETWORKS.keys()), answers: p.answers });
  for (const line of await controller.reconcile()) logger.warn({ reconcile: line }, 'reconciled');
  trace.mark('reconciled');
  return {
    controller, drivers, links, ipam, firewall, bareFirewall, ports, allocator, proxy, cluster, netlink,
    async reloadFirewall() {
      await firewall.init();
      const notes = await controller.reapply();
      const removedOwners = await firewall.reconcile(controller.firewallOwners());
      logger.info({ backend: firewall.name, removedOwners, notes }, 'firewall reloaded');
      return { backend: firewall.name, removedOwners, notes };
    },
  };
}

/** After the restore: links reconciled, the predefined networks made (and in the host's cluster record), rules nothing owns removed. */
export async function finishRestore(opts: DaemonOptions, r: Restored, store: Store, logger: Logger): Promise<void> {
  for (const line of await r.links.reconcile()) logger.warn({ reconcile: line }, 'reconciled');
  await createPredefined(r.controller, store, opts);
  // The host registered before the predefined networks were made at a first start: their subnets
  // go in its record now (a round trip only when they changed), not at its next keep-alive, so
  // that a global pool chosen meanwhile on another host avoids them.
  await r.cluster?.refreshLocalSubnets().catch((err: Error) => logger.debug({ err: err.message }, 'cluster: local subnets not published now; at the next keep-alive'));
  const removed = await r.firewall.reconcile(r.controller.firewallOwners());
  if (removed.length > 0) logger.warn({ owners: removed }, 'removed firewall rules that nothing owns');
}
