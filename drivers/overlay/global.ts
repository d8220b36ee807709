// The overlay's global scope: a network is one record in the cluster store, made by the first
// host that creates the name (with its VNI and pools) and joined by the others with the same
// settings; its addresses come from the cluster's IPAM. Overlapping subnets across overlays are
// refused: global pools never overlap (the cluster's IPAM checks every pool in one transaction).
// Inspect's hosts count this host's endpoints whose address or MAC another host took while it was
// away (not published, in conflict), and names them (conflicts).
import type { Cluster, GlobalNetwork, GlobalSubnet, SubnetRequest } from '../../src/cluster/types.js';
import type { GlobalNetworkView, GlobalScope, NetworkParseInput, SubnetAsk } from '../../src/contract/driver.js';
import type { NetworkRecord, SubnetRecord } from '../../src/core/model.js';
import { shortId } from '../../src/core/refs.js';
import { ConflictError, NotInClusterError } from '../../src/errors.js';
import { clusterOptions, DEFAULT_PORT, OPT, type OverlayConfig } from './config.js';
import type { PendingWrites } from './pending.js';
import { mtuAboveUnderlay, type HostNetwork } from './hostnet.js';

export function needCluster(cluster: Cluster | undefined): Cluster {
  if (!cluster) throw new NotInClusterError();
  return cluster;
}

function subnets(list: GlobalSubnet[]): SubnetRecord[] {
  return list.map((s) => ({ poolId: s.poolId, subnet: s.subnet, gateway: s.gateway, ...(s.ipRange ? { ipRange: s.ipRange } : {}) }));
}

/** The local record's config of a cluster network (createdHere: whether this host made it). */
export function configOf(g: GlobalNetwork, createdHere: boolean): OverlayConfig {
  const mtu = g.options[OPT.mtu];
  return {
    vni: g.vni, port: Number(g.options[OPT.port] ?? DEFAULT_PORT), ...(mtu !== undefined ? { mtu: Number(mtu) } : {}),
    internal: g.internal, enableIPv6: g.enableIPv6, ...(createdHere ? { createdHere } : {}),
  };
}

export function viewOf(g: GlobalNetwork, createdHere: boolean): GlobalNetworkView {
  return {
    id: g.id, name: g.name, internal: g.internal, enableIPv6: g.enableIPv6, options: { ...g.options }, labels: { ...g.labels }, created: g.created,
    config: configOf(g, createdHere), ipv4: subnets(g.ipv4), ipv6: subnets(g.ipv6),
  };
}

function requests(ask: SubnetAsk): { ipv4: SubnetRequest[]; ipv6: SubnetRequest[] } {
  const v4: SubnetRequest = { ...(ask.subnet ? { subnet: ask.subnet } : {}), ...(ask.ipRange ? { ipRange: ask.ipRange } : {}), ...(ask.gateway ? { gateway: ask.gateway } : {}) };
  const v6: SubnetRequest = { ...(ask.subnetV6 ? { subnet: ask.subnetV6 } : {}), ...(ask.gatewayV6 ? { gateway: ask.gatewayV6 } : {}) };
  return { ipv4: Object.keys(v4).length > 0 ? [v4] : [], ipv6: Object.keys(v6).length > 0 ? [v6] : [] };
}

function poolOf(net: NetworkRecord, family: 4 | 6): string {
  const s = (family === 4 ? net.ipv4 : net.ipv6)[0];
  if (!s) throw new Error(`network ${net.name} has no IPv${family} subnet`);
  return s.poolId;
}

/** local: the network on this host, while it is here (up when its devices are made and its peers watched). */
export function globalScope(cluster: () => Cluster | undefined, pending: PendingWrites, local: (net: NetworkRecord) => HostNetwork | undefined): GlobalScope<OverlayConfig> {
  return {
    async ensure(input: NetworkParseInput & { labels: Record<string, string> }, config: OverlayConfig, ask: SubnetAsk, dockerNetwork?: string) {
      const c = needCluster(cluster());
      const g = await c.ensureNetwork({
        name: input.name, driver: 'overlay', ...(config.vni !== undefined ? { vni: config.vni } : {}), internal: input.internal,
        enableIPv6: input.enableIPv6, options: clusterOptions(config), labels: input.labels, ...requests(ask), ...(dockerNetwork ? { dockerNetwork } : {}),
      });
      return viewOf(g, true);
    },
    async lookup(name, opts = {}) {
      // Without a cluster there is no global network to find: the caller says "not found".
      const c = cluster();
      if (!c) return undefined;
      // From the watch-fed copy: a network removed an instant ago is still refused by the address claim (its pool is gone too).
      const g = await c.getNetwork(name, { cached: !opts.fresh });
      return g && g.driver === 'overlay' ? viewOf(g, false) : undefined;
    },
    follow(follower) {
      cluster()?.followNetworks(follower);
    },
    async list() {
      const c = cluster();
      if (!c) return [];
      return (await c.listNetworks()).filter((g) => g.driver === 'overlay').map((g) => viewOf(g, false));
    },
    requestAddress(net, family, address, owner) {
      return needCluster(cluster()).ipam.requestAddress(poolOf(net, family), { ...(address ? { address } : {}), kind: 'endpoint', owner });
    },
    reserveAddress(net, family, address) {
      const c = needCluster(cluster());
      // A first join here: the peer list its watch starts from is read meanwhile (address, devices), not after.
      if (local(net)?.isUp !== true) c.prefetchPeers(net.name);
      return c.reserveAddress(poolOf(net, family), address);
    },
    forgetAddress(net, family, address) {
      cluster()?.forgetAddress(poolOf(net, family), address);
    },
    async releaseAddress(net, family, address, owner) {
      const c = needCluster(cluster());
      const pool = poolOf(net, family);
      await pending.run(`address:${pool}:${address}`, () => c.ipam.releaseAddress(pool, address, owner));
    },
    async remove(name, id) {
      const c = needCluster(cluster());
      const { deleted, holders, engines } = await c.removeNetwork(name, id);
      if (deleted || (holders.length === 0 && engines.length === 0)) return deleted;
      const byId = new Map((await c.hosts()).map((h) => [h.id, h]));
      const host = (id: string) => (byId.get(id) ? `${byId.get(id)!.hostname} (${byId.get(id)!.vtep})` : `host id ${shortId(id)} (not registered)`);
      const reasons = [
        ...(holders.length > 0 ? [`has active endpoints on host(s) ${holders.map(host).join(', ')}: disconnect them there first`] : []),
        ...(engines.length > 0 ? [`is the Docker network ${engines.map((e) => `${shortId(e.dockerNetwork)} of the engine on ${host(e.host)}`).join(', ')}: remove it there with docker network rm`] : []),
      ];
      throw new ConflictError(`network ${name} ${reasons.join('; and ')}`, { field: 'name' });
    },
    async describe(net) {
      const c = needCluster(cluster());
      const config = net.config as OverlayConfig;
      const [peers, hosts] = await Promise.all([c.peersOf(net.name), c.hosts()]);
      const byId = new Map(hosts.map((h) => [h.id, h]));
      const counts = new Map<string, number>();
      for (const p of peers) counts.set(p.host, (counts.get(p.host) ?? 0) + 1);
      // This host's endpoints in conflict are not published, but they are here.
      const unpublished = local(net)?.lost.size ?? 0;
      if (unpublished > 0) counts.set(c.hostId, (counts.get(c.hostId) ?? 0) + unpublished);
      return {
        vni: config.vni, port: config.port, ...(config.mtu !== undefined ? { mtu: config.mtu } : {}),
        hosts: [...counts].map(([id, endpoints]) => ({ id, hostname: byId.get(id)?.hostname ?? '', vtep: byId.get(id)?.vtep ?? '', endpoints }))
          .sort((a, b) => a.hostname.localeCompare(b.hostname) || a.id.localeCompare(b.id)),
      };
    },
    conflicts(net) {
      return new Map(local(net)?.lost);
    },
    warnings(net) {
      const below = local(net)?.underlayBelow;
      const mtu = (net.config as OverlayConfig).mtu;
      return below !== undefined && mtu !== undefined ? [mtuAboveUnderlay(mtu, below)] : [];
    },
  };
}
