// The overlay's check on one host: while the network is here, its bridge and VXLAN device are
// present and up, each local endpoint's host-side veth is a port of the bridge (and in its sandbox:
// the veth's peer, up, with its MAC, MTU, addresses and their connected routes), and the VXLAN
// device sends from this host's VTEP with learning off and proxy on, and holds exactly the static
// FDB and neighbour entries the peer records ask for (a missing one and a stale one are both
// reported; the multicast and NOARP neighbour entries the kernel makes itself are no peer's); an endpoint whose address another host took while this one was away is named.
// Reads only. Limits: a network not here has nothing to check.
import { checkDevice, checkVethInSandbox, endpointObject, item } from '../../src/contract/check.js';
import type { CheckedEndpoint, CheckItem } from '../../src/contract/driver.js';
import type { EndpointRecord, SandboxRecord } from '../../src/core/model.js';
import type { Link, NetlinkHandlePool } from '../../src/netlink/index.js';
import { deviceNames } from './device.js';
import { hostIfnameFor, type OverlayEndpointData } from './endpoint.js';
import type { HostNetwork } from './hostnet.js';

/** The endpoint's interface in its sandbox: no default route to check (the overlay gives none). */
async function checkInside(pool: NetlinkHandlePool, port: Link | undefined, mtu: number, ep: EndpointRecord, sb: SandboxRecord, items: CheckItem[]): Promise<void> {
  if (!ep.ifname || sb.kind === 'host') return;
  const mac = (ep.driverData as Partial<OverlayEndpointData> | undefined)?.mac ?? ep.macAddress;
  await checkVethInSandbox(pool.get(sb.netnsPath), { ...ep, ifname: ep.ifname }, sb, port, { ...(mac ? { mac } : {}), mtu }, items);
}

export async function checkOverlay(pool: NetlinkHandlePool, s: HostNetwork | undefined, endpoints: CheckedEndpoint[]): Promise<CheckItem[]> {
  const items: CheckItem[] = [];
  const h = pool.get();
  if (!s?.isUp) return items;
  const object = `network ${s.name}`;
  const names = deviceNames(s.config.vni);
  const bridge = await checkDevice(h, names.bridge, { kind: 'bridge' }, object, items);
  const vx = await checkDevice(h, names.vxlan, { kind: 'vxlan', master: { name: names.bridge, index: bridge?.index } }, object, items);
  if (vx?.kind === 'vxlan') {
    const vtep = s.programmer?.self.vtep;
    if (vtep && vx.local !== vtep) items.push(item(object, 'vxlan', `${names.vxlan} sending from this host's VTEP ${vtep}`, `local ${vx.local ?? 'none'}`));
    if (vx.learning !== false) items.push(item(object, 'vxlan', `${names.vxlan} with learning off`, 'learning on'));
    if (vx.proxy !== true) items.push(item(object, 'vxlan', `${names.vxlan} answering ARP/ND from its neighbour table (proxy)`, 'proxy off'));
  }
  for (const { ep, sb } of endpoints) {
    if (ep.state !== 'ready' || !s.local.has(ep.id)) continue;
    const port = (ep.driverData as Partial<OverlayEndpointData> | undefined)?.hostIfname ?? hostIfnameFor(ep.id);
    const link = await checkDevice(h, port, { kind: 'veth', master: { name: names.bridge, index: bridge?.index } }, endpointObject(ep, sb), items);
    if (sb && ep.sandboxId !== undefined) await checkInside(pool, link, s.mtu, ep, sb, items);
    const lost = s.lost.get(ep.id);
    if (lost) items.push(item(endpointObject(ep, sb), 'address', `its address ${ep.ipv4 ?? ep.ipv6 ?? ''} held in the cluster by this endpoint`, lost));
  }
  if (!s.programmer) return items;
  const { want, have } = await s.programmer.compare();
  for (const [key, e] of want.fdb) if (!have.fdb.has(key)) items.push(item(object, 'fdb', `${e.mac} via ${e.dst} on ${names.vxlan}`, 'missing'));
  for (const [key, e] of have.fdb) if (!want.fdb.has(key)) items.push(item(object, 'fdb', `no ${e.mac} via ${e.dst} (no such peer)`, 'stale entry'));
  for (const [ip, mac] of want.neigh) {
    const found = have.neigh.get(ip);
    if (found !== mac) items.push(item(object, 'neighbour', `${ip} lladdr ${mac} permanent on ${names.vxlan}`, found ? `lladdr ${found || 'none'}` : 'missing'));
  }
  for (const [ip, mac] of have.neigh) if (!want.neigh.has(ip)) items.push(item(object, 'neighbour', `no ${ip} (no such peer)`, `lladdr ${mac || 'none'}`));
  return items;
}
