// The macvlan driver's check (CNI's CHECK): the parent present and up (of the kind cnmkit made it,
// when it made it), and each joined endpoint's macvlan in its sandbox — up, its MAC and MTU, its
// addresses and their connected routes, a default route unless the network is internal. Reads only;
// repairMacvlan (`check --fix`) sets a parent cnmkit made and the joined endpoints' macvlans up again.
// Limits: a detached endpoint (the Docker engine's) is not checked: the engine moved it where cnmkit
// does not look; a missing device, address or route is not repaired; a parent of the user's is left as it is.
import { checkAddresses, checkConnectedRoutes, checkDefaultRoute, checkDevice, endpointObject, item } from '../../src/contract/check.js';
import type { CheckedEndpoint, CheckItem } from '../../src/contract/driver.js';
import { upEndpoints, upIfDown } from '../../src/contract/repair.js';
import type { NetworkRecord } from '../../src/core/model.js';
import { findLink, type NetlinkHandlePool } from '../../src/netlink/index.js';
import type { MacvlanConfig } from './config.js';

export async function checkMacvlan(pool: NetlinkHandlePool, net: NetworkRecord, config: MacvlanConfig, endpoints: CheckedEndpoint[]): Promise<CheckItem[]> {
  const items: CheckItem[] = [];
  const parent = config.parentName!;
  const object = `network ${net.name}`;
  if (config.origin === 'bridge') await checkDevice(pool.get(), parent, { kind: 'bridge' }, object, items);
  else if (config.origin === 'vlan') await checkDevice(pool.get(), parent, { kind: 'other' }, object, items);
  else {
    const link = await findLink(pool.get(), parent);
    if (!link) items.push(item(object, 'device', `parent interface ${parent} in the host namespace`, 'missing'));
  }
  for (const { ep, sb } of endpoints) {
    if (!sb || sb.kind === 'host' || !ep.ifname) continue;
    const h = pool.get(sb.netnsPath);
    const obj = endpointObject(ep, sb);
    const link = await checkDevice(h, ep.ifname, { kind: 'macvlan', ...(ep.macAddress ? { mac: ep.macAddress } : {}), ...(config.mtu !== undefined ? { mtu: config.mtu } : {}) }, obj, items, `sandbox ${sb.name}`);
    if (!link) continue;
    const cidrs = [ep.ipv4, ep.ipv6].filter((c): c is string => !!c);
    await checkAddresses(h, link, cidrs, obj, items);
    await checkConnectedRoutes(h, link, cidrs, obj, items);
    const gw4 = net.ipv4[0]?.gateway?.split('/')[0];
    if (gw4 && ep.ipv4 && !config.internal) await checkDefaultRoute(h, link, gw4, obj, items);
    const gw6 = net.ipv6[0]?.gateway?.split('/')[0];
    if (gw6 && ep.ipv6 && !config.internal) await checkDefaultRoute(h, link, gw6, obj, items);
  }
  return items;
}

/** `check --fix`: the parent (when cnmkit made it) and each joined endpoint's macvlan up. */
export async function repairMacvlan(pool: NetlinkHandlePool, config: MacvlanConfig, endpoints: CheckedEndpoint[]): Promise<void> {
  if (config.origin === 'bridge' || config.origin === 'vlan') await upIfDown(pool.get(), config.parentName!);
  await upEndpoints(pool, endpoints);
}
