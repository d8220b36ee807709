// The bridge driver: a Linux bridge per network, veth endpoints, forwarding and firewall rules.
// A plan decides the bridge's name and whether it is adopted before anything changes (so the
// stored intent says it, and one device never serves two networks); network setup then runs as
// named ordered steps (device, addresses, forwarding, firewall, verify), each pushing its undo so
// a failure leaves nothing behind; teardown is idempotent. At start-up it tells the Docker engine's
// endpoints that the engine handed back while the daemon was away (their container end is back
// here after a join, src/contract/handback.ts), for the controller to remove with their ports.
import { isFresh, type Driver, type DriverContext } from '../../src/contract/driver.js';
import { ifnameInSandbox } from '../../src/contract/ifname.js';
import { handedBack, markJoined } from '../../src/contract/handback.js';
import type { NetworkRecord } from '../../src/core/model.js';
import { bestEffort, withRollback } from '../../src/core/steps.js';
import { ConflictError } from '../../src/errors.js';
import { linkNamesIn } from '../../src/netns/index.js';
import { bridgeNameFor, OPT, parseBridgeConfig, type BridgeConfig } from './config.js';
import { ensureBridge, planBridge, removeBridge } from './device.js';
import { ensureGatewayAddresses, removeGatewayAddresses } from './addresses.js';
import { enableForwarding } from './forwarding.js';
import { installRules, removeRules } from './firewall.js';
import { BridgeIndexes, bridgeJoinInfo, checkJoined, createDetached, createdDetached, createInSandbox, leaveSandbox, type BridgeEndpointData } from './endpoint.js';
import { verifyNetwork } from './verify.js';
import { checkBridge, repairBridge } from './check.js';
import { publishPorts } from './ports.js';
import { sweepOrphans } from './sweep.js';

export { parseBridgeConfig, type BridgeConfig } from './config.js';

export interface BridgeDriverOptions {
  /** The userland proxy serves published ports for loopback and hairpin clients (Docker's default). */
  userlandProxy: boolean;
}

/** Runs the setup steps for a network whose config is planned (bridge name and adoption decided). */
async function setUp(ctx: DriverContext, net: NetworkRecord, config: BridgeConfig & { bridgeName: string }): Promise<BridgeConfig> {
  const h = ctx.netlink.get();
  const bridge = config.bridgeName;
  const adopted = config.adopted ?? false;
  return withRollback(async (undo) => {
    const device = await ensureBridge(h, bridge, { mtu: config.mtu, mcastSnooping: config.mcastSnooping ?? false, adopted });
    undo.push('device', () => removeBridge(h, bridge, adopted));
    await ensureGatewayAddresses(h, device.dev, net, config, device.made);
    undo.push('addresses', () => removeGatewayAddresses(h, bridge, net, config));
    const changed = enableForwarding(ctx.sysctl, { ipv6: net.ipv6.length > 0, bridgeNetfilter: ctx.firewall.name !== 'none' });
    if (changed.length > 0) ctx.logger.info({ sysctl: changed }, 'forwarding enabled');
    await installRules(ctx.firewall, net, config, bridge);
    undo.push('firewall', () => removeRules(ctx.firewall, net));
    await verifyNetwork(h, bridge, net, config);
    return config;
  });
}

export function createBridgeDriver(ctx: DriverContext, opts: BridgeDriverOptions): Driver<BridgeConfig> {
  const log = ctx.logger.child({ driver: 'bridge' });
  const nameOf = (net: NetworkRecord, config: BridgeConfig): string => config.bridgeName ?? bridgeNameFor(net.id);
  const bridges = new BridgeIndexes();
  return {
    name: 'bridge',
    scope: 'local',
    usesIpam: true,
    docker: { pluginName: 'cnmkit-bridge' },
    parse: parseBridgeConfig,
    async plan(net, config, { networks }) {
      const bridge = nameOf(net, config);
      const owner = networks.find((n) => nameOf(n, n.config as BridgeConfig) === bridge);
      if (owner) throw new ConflictError(`bridge ${bridge} is already the device of network ${owner.name}`, { field: OPT.name });
      return { ...config, bridgeName: bridge, ...(await planBridge(ctx.netlink.get(), bridge)) };
    },
    async createNetwork(net, config) {
      const done = await setUp(ctx, net, { ...config, bridgeName: nameOf(net, config) });
      log.info({ network: net.name, bridge: done.bridgeName, adopted: done.adopted ?? false }, 'bridge network ready');
      return done;
    },
    sweep(networks, endpoints) {
      return sweepOrphans(ctx.netlink.get(), networks, endpoints);
    },
    async restore(net, config) {
      await setUp(ctx, net, { ...config, bridgeName: nameOf(net, config) });
    },
    async deleteNetwork(net, config) {
      const h = ctx.netlink.get();
      const bridge = nameOf(net, config);
      bridges.forget(bridge);
      await bestEffort(`bridge network ${net.name}`, [
        ['firewall', () => removeRules(ctx.firewall, net)],
        ['addresses', () => (config.adopted ? removeGatewayAddresses(h, bridge, net, config) : undefined)],
        ['device', () => removeBridge(h, bridge, config.adopted)],
      ]);
    },
    async createEndpoint(net, config, ep, placement) {
      // In a sandbox the pair is born at join, its container end already inside.
      if (placement.kind === 'sandbox') return {};
      const data = await createDetached(ctx.netlink, bridges, nameOf(net, config), config, ep, { hairpin: !opts.userlandProxy, sysctl: ctx.sysctl });
      return { driverData: data, macAddress: data.mac };
    },
    async deleteEndpoint(_net, _config, ep) {
      // Born in a sandbox: the pair is leave's (or went with the namespace).
      if (createdDetached(ep)) await leaveSandbox(ctx.netlink, ep);
    },
    async join(net, config, ep, placement) {
      if (placement.kind === 'detached') {
        const data = ep.driverData as BridgeEndpointData;
        return { info: bridgeJoinInfo(net, config, ep, { name: data.containerIfname!, where: 'host' }), macAddress: data.mac, driverData: markJoined(data) };
      }
      const sb = placement.sandbox;
      const ifname = await ifnameInSandbox(ctx.netlink, sb, config.ifacePrefix, { ...(placement.ifname ? { asked: placement.ifname } : {}), fresh: isFresh(placement) });
      const { index, data } = await createInSandbox(ctx.netlink, bridges, nameOf(net, config), net, config, ep, sb, { hairpin: !opts.userlandProxy, ifname, sysctl: ctx.sysctl });
      return { info: bridgeJoinInfo(net, config, ep, { name: ifname, where: 'sandbox', ...(index !== undefined ? { index } : {}) }), macAddress: data.mac, driverData: data };
    },
    check(net, config, endpoints) {
      return checkBridge(ctx, nameOf(net, config), net, config, endpoints);
    },
    repair(net, config, endpoints, items) {
      return repairBridge(ctx, nameOf(net, config), net, config, endpoints, items);
    },
    checkEndpoint(_net, _config, ep, sb) {
      return checkJoined(ctx.netlink, ep, sb);
    },
    async goneEndpoints(_net, _config, eps) {
      // The host ends live in the daemon's namespace (the pool's, not necessarily the process's).
      const links = linkNamesIn(ctx.netlink.get().nsPath);
      return eps.filter((e) => !links.has((e.driverData as BridgeEndpointData).hostIfname)).map((e) => e.id);
    },
    async handedBack(_net, _config, eps) {
      const links = linkNamesIn(ctx.netlink.get().nsPath);
      return eps.filter((e) => handedBack(e, (e.driverData as Partial<BridgeEndpointData> | undefined)?.containerIfname, links)).map((e) => e.id);
    },
    hostInterface(_net, _config, ep) {
      return (ep.driverData as Partial<BridgeEndpointData> | undefined)?.hostIfname;
    },
    async leave(_net, _config, ep, _sb, hint) {
      // Deleting one veth costs the kernel ~20 ms; a destroyed namespace takes its pairs along in a batch.
      if (!hint?.namespaceGone) await leaveSandbox(ctx.netlink, ep);
    },
    publish(net, config, ep, ports) {
      return publishPorts(ctx.ports, nameOf(net, config), net, config, ep, ports);
    },
    async unpublish(_net, _config, ep) {
      // An endpoint records its ports before publishing: none recorded means none published.
      if (ep.ports.length > 0) await ctx.ports.unpublish(ep.id);
    },
  };
}
