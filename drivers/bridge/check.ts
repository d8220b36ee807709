// The bridge driver's check: the network's own objects (./verify.ts), then each endpoint — its
// bridge port present, up and a port of the bridge; when joined to a sandbox, the interface in
// there (a veth whose peer is that port, up, its MAC and MTU), its addresses, their connected
// routes and a default route when the network gives one. Reads only; repairBridge (`check --fix`)
// sets the bridge and the endpoints' veths up again and, when their count differs, renders the
// network's firewall rules again.
// Limits: the default route is only required to exist (via this gateway or another network's); a
// missing device, address or route is not repaired; published ports' rules are not checked.
import type { CheckedEndpoint, CheckItem, DriverContext } from '../../src/contract/driver.js';
import { checkDefaultRoute, checkDevice, checkVethInSandbox, endpointObject } from '../../src/contract/check.js';
import { upEndpoints, upIfDown } from '../../src/contract/repair.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../../src/core/model.js';
import type { Link } from '../../src/netlink/index.js';
import type { BridgeConfig } from './config.js';
import { hostIfnameOf, type BridgeEndpointData } from './endpoint.js';
import { checkBridgeNetwork } from './verify.js';
import { installRules } from './firewall.js';

async function checkInside(
  ctx: DriverContext, port: Link | undefined, net: NetworkRecord, config: BridgeConfig, ep: EndpointRecord, sb: SandboxRecord, items: CheckItem[],
): Promise<void> {
  if (!ep.ifname) return;
  const mac = (ep.driverData as Partial<BridgeEndpointData> | undefined)?.mac ?? ep.macAddress;
  const h = ctx.netlink.get(sb.netnsPath);
  const inside = await checkVethInSandbox(h, { ...ep, ifname: ep.ifname }, sb, port, { ...(mac ? { mac } : {}), ...(config.mtu !== undefined ? { mtu: config.mtu } : {}) }, items);
  if (!inside) return;
  const object = endpointObject(ep, sb);
  if (config.internal) return;
  const gw4 = net.ipv4[0]?.gateway?.split('/')[0];
  if (gw4 && ep.ipv4 && !config.inhibitIPv4) await checkDefaultRoute(h, inside, gw4, object, items);
  const gw6 = net.ipv6[0]?.gateway?.split('/')[0];
  if (gw6 && ep.ipv6) await checkDefaultRoute(h, inside, gw6, object, items);
}

export async function checkBridge(ctx: DriverContext, bridge: string, net: NetworkRecord, config: BridgeConfig, endpoints: CheckedEndpoint[]): Promise<CheckItem[]> {
  const items: CheckItem[] = [];
  const master = await checkBridgeNetwork(ctx, bridge, net, config, items);
  const host = ctx.netlink.get();
  for (const { ep, sb } of endpoints) {
    const name = hostIfnameOf(ep);
    const want = { kind: 'veth' as const, master: { ...(master !== undefined ? { index: master } : {}), name: bridge }, ...(config.mtu !== undefined ? { mtu: config.mtu } : {}) };
    const port = await checkDevice(host, name, want, endpointObject(ep, sb), items);
    if (sb && sb.kind !== 'host') await checkInside(ctx, port, net, config, ep, sb, items);
  }
  return items;
}

/** `check --fix`: the bridge and every endpoint's veth (both ends) up; the network's firewall rules rendered again when check counted them wrong. */
export async function repairBridge(ctx: DriverContext, bridge: string, net: NetworkRecord, config: BridgeConfig, endpoints: CheckedEndpoint[], items: CheckItem[]): Promise<void> {
  await upIfDown(ctx.netlink.get(), bridge);
  await upEndpoints(ctx.netlink, endpoints, hostIfnameOf);
  if (items.some((i) => i.what === 'firewall rules')) await installRules(ctx.firewall, net, config, bridge);
}
