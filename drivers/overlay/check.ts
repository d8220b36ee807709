// The overlay's check on one host: while the network is here, its bridge and VXLAN device are
// present and up, each local endpoint's host-side veth is a port of the bridge (and in its sandbox:
// the veth's peer, up, with its MAC, MTU, addresses and their connected routes), and the VXLAN
// device sends from this host's VTEP with learning off and proxy on, and holds exactly the static
// FDB and neighbour entries the peer records ask for (a missing one, one that is not permanent and
// a stale one are all reported; the multicast and NOARP neighbour entries the kernel makes itself are no peer's; the
// entries of a peer kept for its grace after its host's lease ended are wanted until it ends); an
// endpoint whose address another host took while this one was away is named; so is this host's
// advertise address when no interface has it. Peer entries are compared only with peer records
// read since this daemon started: before that (the cluster store away at its start) they are
// listed as not compared, with why and how many are kept; while the watch has lost the store they
// are compared with the records as last read, and that is said too. And, while the cluster store
// answers, this host's peers and endpoint addresses in it that no endpoint here has (they go once
// the store answers after a restart).
// Reads only; repairOverlay (`check --fix`) puts back what can be: the devices set up again, and
// the peer entries made to hold what the records last read want (the programmer's resync).
// Limits: a network not here has no devices to check; with the store away its leftovers are not
// known; a missing device, and this host's leftover peers and addresses in the store, are not
// repaired (a missing VXLAN device stops the repair, saying that a restart makes it).
import { checkDevice, checkVethInSandbox, endpointObject, item } from '../../src/contract/check.js';
import { upEndpoints, upIfDown } from '../../src/contract/repair.js';
import type { CheckedEndpoint, CheckItem, UncheckedItem } from '../../src/contract/driver.js';
import type { Cluster } from '../../src/cluster/types.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../../src/core/model.js';
import { findLink, listAddresses, type Link, type NetlinkHandlePool } from '../../src/netlink/index.js';
import { ConflictError } from '../../src/errors.js';
import { deviceNames } from './device.js';
import { hostIfnameOf, type OverlayEndpointData } from './endpoint.js';
import type { HostNetwork } from './hostnet.js';
import { fdbKey, notPermanentKey, readKernel } from './program.js';

/** The endpoint's interface in its sandbox: no default route to check (the overlay gives none). */
async function checkInside(pool: NetlinkHandlePool, port: Link | undefined, mtu: number, ep: EndpointRecord, sb: SandboxRecord, items: CheckItem[]): Promise<void> {
  if (!ep.ifname || sb.kind === 'host') return;
  const mac = (ep.driverData as Partial<OverlayEndpointData> | undefined)?.mac ?? ep.macAddress;
  await checkVethInSandbox(pool.get(sb.netnsPath), { ...ep, ifname: ep.ifname }, sb, port, { ...(mac ? { mac } : {}), mtu }, items);
}

/** Why the peer records are not followed live now: the store's state as this host sees it. */
function notLive(c: Cluster): string {
  const { state, error, outage } = c.status();
  if (state === 'unavailable' && outage !== undefined) return outage;
  if (state === 'unavailable') return `cluster store unavailable${error ? ` (${error})` : ''}`;
  if (state === 'connecting') return 'cluster store not reached yet since the daemon started';
  return 'the peer records are being listed again';
}

export async function checkOverlay(
  pool: NetlinkHandlePool, net: NetworkRecord, s: HostNetwork | undefined, endpoints: CheckedEndpoint[], cluster: Cluster | undefined, unchecked: UncheckedItem[],
): Promise<CheckItem[]> {
  const items: CheckItem[] = [];
  const h = pool.get();
  const object = `network ${net.name}`;
  // Read in the driver's namespace (the daemon's), as the connect that would be refused reads it.
  if (cluster && !(await listAddresses(h, { family: 4 })).some((a) => a.address === cluster.vtep)) {
    items.push(item(object, 'vtep', `this host's advertise address ${cluster.vtep} on one of its interfaces (the VXLAN device sends from it)`, 'on no interface'));
  }
  if (!s?.isUp) return items;
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
    const port = hostIfnameOf(ep);
    const link = await checkDevice(h, port, { kind: 'veth', master: { name: names.bridge, index: bridge?.index } }, endpointObject(ep, sb), items);
    if (sb && ep.sandboxId !== undefined) await checkInside(pool, link, s.mtu, ep, sb, items);
    const lost = s.lost.get(ep.id);
    if (lost) items.push(item(endpointObject(ep, sb), 'address', `its address ${ep.ipv4 ?? ep.ipv6 ?? ''} and its MAC held in the cluster by this endpoint`, lost));
  }
  if (!s.programmer || !vx || !cluster) return items;
  const { view, revision } = s.peerView();
  if (view === 'none') {
    const kept = await readKernel(h, vx.index);
    unchecked.push({ object, what: 'peers', reason: `${notLive(cluster)}: the FDB and neighbour entries of ${names.vxlan} not compared with the peer records, which this host has not read since its daemon started; its ${kept.fdb.size} FDB and ${kept.neigh.size} neighbour entries are kept as they are until it has` });
    return items;
  }
  if (view === 'last') {
    unchecked.push({ object, what: 'peers', reason: `${notLive(cluster)}: the entries of ${names.vxlan} compared with the peer records as last read (revision ${revision}); changes made since are not known` });
  }
  const { want, have } = await s.programmer.compare();
  for (const [key, e] of want.fdb) {
    if (!have.fdb.has(key)) items.push(item(object, 'fdb', `${e.mac} via ${e.dst} on ${names.vxlan}`, have.fdb.has(notPermanentKey(e.mac, e.dst)) ? 'not permanent' : 'missing'));
  }
  for (const [key, e] of have.fdb) {
    if (want.fdb.has(key) || (e.permanent === false && want.fdb.has(fdbKey(e.mac, e.dst)))) continue;
    items.push(item(object, 'fdb', `no ${e.mac} via ${e.dst} (no such peer)`, e.permanent === false ? 'stale entry (not permanent)' : 'stale entry'));
  }
  for (const [ip, mac] of want.neigh) {
    const found = have.neigh.get(ip);
    if (found !== mac) items.push(item(object, 'neighbour', `${ip} lladdr ${mac} permanent on ${names.vxlan}`, found ? `lladdr ${found || 'none'}` : 'missing'));
  }
  for (const [ip, mac] of have.neigh) if (!want.neigh.has(ip)) items.push(item(object, 'neighbour', `no ${ip} (no such peer)`, `lladdr ${mac || 'none'}`));
  return items;
}

/**
 * This host's peers and endpoint addresses on the network in the cluster store that no endpoint of
 * known (ids) has. A store that fails the read (it went away a moment ago) is no drift: that goes
 * to unchecked, as while it is known away.
 */
export async function checkLeftovers(c: Cluster, network: string, pools: string[], known: Set<string>, unchecked: UncheckedItem[]): Promise<CheckItem[]> {
  if (c.status().state !== 'connected') return [];
  const object = `network ${network}`;
  let found;
  try {
    found = await c.leftovers(network, pools, known);
  } catch (err) {
    unchecked.push({ object, what: 'leftovers', reason: `this host's peers and addresses in the cluster store not read: ${(err as Error).message}` });
    return [];
  }
  return [
    ...found.peers.map((id) => item(object, 'peer', `no peer of this host for endpoint ${id} in the cluster store (no such endpoint here)`, 'stale peer')),
    ...found.addresses.map((a) => item(object, 'address', `address ${a.address} not held for this host (no endpoint here has it)`, `held by ${a.owner}`)),
  ];
}

/** `check --fix` for a network here: its devices and its endpoints' veths up, and its peer entries programmed again from the records as last read. */
export async function repairOverlay(pool: NetlinkHandlePool, s: HostNetwork, endpoints: CheckedEndpoint[]): Promise<void> {
  const h = pool.get();
  const names = deviceNames(s.config.vni);
  await upIfDown(h, names.bridge);
  await upIfDown(h, names.vxlan);
  await upEndpoints(pool, endpoints.filter(({ ep }) => ep.state === 'ready' && s.local.has(ep.id)), hostIfnameOf);
  // Its entries cannot be programmed without it (the kernel would refuse them by its old index).
  if (!(await findLink(h, names.vxlan))) {
    throw new ConflictError(`its VXLAN device ${names.vxlan} is missing (deleted by hand?): check --fix does not make it again; restarting the daemon does (its start makes the network's devices and programs its peers)`);
  }
  await s.programmer?.reread();
}
