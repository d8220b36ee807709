// The macvlan driver (Docker's `macvlan`): endpoints are macvlan links on a host interface (the
// parent), so containers sit directly on the parent's LAN with their own MACs. The plan decides
// the parent before anything changes: the given interface (one network per parent, as Docker),
// an 802.1Q sub-interface `NAME.ID` cnmkit makes (needs the kernel's 8021q), or — no parent given —
// a bridge with no ports that cnmkit makes and names `mv-<12 hex of the id>`, standing in for
// Docker's dummy link (this kernel has no dummy): such a network reaches only its own endpoints.
// At start-up it tells the Docker engine's endpoints that the engine handed back while the daemon
// was away (their macvlan back here after a join, src/contract/handback.ts), for the controller to remove.
// Limits: the host namespace cannot reach its own macvlan children (Docker's documented limit);
// no port publishing (nothing to publish to: there is no NAT).
import { isFresh, type Driver, type DriverContext } from '../../src/contract/driver.js';
import { ifnameInSandbox } from '../../src/contract/ifname.js';
import { handedBack, markJoined } from '../../src/contract/handback.js';
import type { NetworkRecord } from '../../src/core/model.js';
import { bestEffort, withRollback } from '../../src/core/steps.js';
import { findLink } from '../../src/netlink/index.js';
import { linkNamesIn } from '../../src/netns/index.js';
import { parseMacvlanConfig, type MacvlanConfig } from './config.js';
import { ensureParent, planParent, removeParent, sweepOrphans } from './parent.js';
import { checkMacvlan, repairMacvlan } from './check.js';
import { checkJoined, createDetached, createdDetached, createInSandbox, deleteDetached, goneDetached, leaveSandbox, macvlanJoinInfo, type MacvlanEndpointData } from './endpoint.js';

export { parseMacvlanConfig, type MacvlanConfig } from './config.js';
export type { MacvlanEndpointData } from './endpoint.js';

export function createMacvlanDriver(ctx: DriverContext): Driver<MacvlanConfig> {
  const log = ctx.logger.child({ driver: 'macvlan' });
  const host = () => ctx.netlink.get();
  return {
    name: 'macvlan',
    scope: 'local',
    usesIpam: true,
    docker: { pluginName: 'cnmkit-macvlan' },
    parse: parseMacvlanConfig,
    plan(net, config, { networks }) {
      return planParent(host(), net, config, networks);
    },
    async createNetwork(net, config) {
      await withRollback(async (undo) => {
        await ensureParent(host(), config);
        undo.push('parent', () => removeParent(host(), config));
      });
      log.info({ network: net.name, parent: config.parentName, origin: config.origin, mode: config.mode }, 'macvlan network ready');
      return config;
    },
    sweep(networks, endpoints) {
      return sweepOrphans(host(), networks, endpoints, (ep) => (ep.driverData as Partial<MacvlanEndpointData> | undefined)?.hostIfname);
    },
    async restore(net: NetworkRecord, config) {
      if (config.origin !== 'host') return ensureParent(host(), config);
      // Someone else's parent cannot be made again: its endpoints fail until it is back.
      if (!(await findLink(host(), config.parentName!))) log.warn({ network: net.name, parent: config.parentName }, 'the parent interface of a macvlan network is missing');
    },
    async deleteNetwork(net, config) {
      await bestEffort(`macvlan network ${net.name}`, [['parent', () => removeParent(host(), config)]]);
    },
    async createEndpoint(_net, config, ep, placement) {
      // In a sandbox the macvlan is born at join, already inside with its final name.
      if (placement.kind === 'sandbox') return {};
      const data = await createDetached(ctx.netlink, config, ep);
      return { driverData: data, macAddress: data.mac };
    },
    async deleteEndpoint(_net, _config, ep) {
      // Born in a sandbox: the link is leave's (or went with the namespace).
      if (createdDetached(ep)) await deleteDetached(ctx.netlink, ep);
    },
    async join(net, config, ep, placement) {
      if (placement.kind === 'detached') {
        const data = ep.driverData as MacvlanEndpointData;
        return { info: macvlanJoinInfo(net, config, ep, { name: data.hostIfname!, where: 'host' }), macAddress: data.mac, driverData: markJoined(data) };
      }
      const sb = placement.sandbox;
      const ifname = await ifnameInSandbox(ctx.netlink, sb, 'eth', { ...(placement.ifname ? { asked: placement.ifname } : {}), fresh: isFresh(placement) });
      const data = await createInSandbox(ctx.netlink, net, config, ep, sb, ifname);
      return { info: macvlanJoinInfo(net, config, ep, { name: ifname, where: 'sandbox' }), macAddress: data.mac, driverData: data };
    },
    goneEndpoints(_net, config, eps) {
      return goneDetached(ctx.netlink, config, eps);
    },
    async handedBack(_net, _config, eps) {
      // The engine moves a macvlan back under the name it took it by: the one made here.
      const links = linkNamesIn(host().nsPath);
      return eps.filter((e) => handedBack(e, (e.driverData as Partial<MacvlanEndpointData> | undefined)?.hostIfname, links)).map((e) => e.id);
    },
    check(net, config, endpoints) {
      return checkMacvlan(ctx.netlink, net, config, endpoints);
    },
    repair(_net, config, endpoints) {
      return repairMacvlan(ctx.netlink, config, endpoints);
    },
    checkEndpoint(_net, _config, ep, sb) {
      return checkJoined(ctx.netlink, ep, sb);
    },
    async leave(_net, _config, ep, sb, hint) {
      // A destroyed namespace takes its macvlans with it; a detached endpoint's link is deleteEndpoint's.
      if (sb && !hint?.namespaceGone) await leaveSandbox(ctx.netlink, ep, sb);
    },
  };
}
