// Overlay endpoints: a veth pair made in one request — host end on the network's bridge, the
// container end born in the sandbox with its name, MTU and MAC (or left detached for the Docker
// engine) — described to the applier as a JoinInfo (addresses, IPv6). No default route: the overlay has no gateway of its own (the
// sandbox's way out is the gateway bridge, see the controller's gateway endpoint). The MAC is
// Docker's 02:42 + IPv4 bytes, so it is unique wherever the address is (global IPAM).
import { randomBytes } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { ClusterUnavailableError, ConflictError, InvalidArgumentError } from '../../src/errors.js';
import type { Cluster } from '../../src/cluster/types.js';
import type { EndpointRecord, NetworkRecord } from '../../src/core/model.js';
import { shortId } from '../../src/core/refs.js';
import { isFresh, type JoinInfo, type Placement } from '../../src/contract/driver.js';
import { IPV6_MIN_MTU } from '../../src/contract/options.js';
import { ifnameInSandbox } from '../../src/contract/ifname.js';
import type { DockerJoinData } from '../../src/contract/handback.js';
import { addVeth, deleteLink, setLink, type NetlinkHandlePool } from '../../src/netlink/index.js';
import { contains, parseAddress, parsePrefix } from '../../src/ip/index.js';
import { OVERLAY_GROUP } from './device.js';

/** What the overlay driver keeps per endpoint (stored as driverData; a detached one's notes the engine's Join). */
export interface OverlayEndpointData extends DockerJoinData {
  hostIfname: string;
  mac: string;
  /** Detached endpoints only: the container end, left in the daemon's namespace for the engine to move. */
  containerIfname?: string;
}

/**
 * A sandbox's neighbour solicitations on an overlay: every 20 ms, 15 times (the kernel's: every
 * 1000 ms, 3 times). The VXLAN device answers its ARP and NS from the static table, or drops them
 * when it has no entry yet (proxy mode never floods them): none goes on the underlay, so asking
 * again sooner costs no traffic, and a peer programmed a moment after the sandbox first asked for
 * it (a connect on another host that had just answered) is reached within 20 ms, not after a
 * second. An address no peer has fails after 300 ms.
 */
export const NEIGH_SOLICIT = { intervalMs: 20, probes: 15 };

export function hostIfnameFor(endpointId: string): string {
  return `ov${endpointId.slice(0, 10)}`;
}

/** The endpoint's host end: as its driver data names it, else the name it gets by default. */
export function hostIfnameOf(ep: EndpointRecord): string {
  return (ep.driverData as Partial<OverlayEndpointData> | undefined)?.hostIfname ?? hostIfnameFor(ep.id);
}

export function macFor(ipv4Cidr: string | undefined): string {
  const ip = ipv4Cidr?.split('/')[0];
  const bytes = ip && isIPv4(ip) ? [0x02, 0x42, ...ip.split('.').map(Number)] : [0x02, ...randomBytes(5)];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Whether the endpoint's MAC is not the one its IPv4 address gives (macFor): given, it is claimed in the cluster with its peer (src/cluster/macs.ts). */
export function isGivenMac(ep: EndpointRecord, mac: string): boolean {
  return ep.ipv4 === undefined || mac.toLowerCase() !== macFor(ep.ipv4);
}

/** Refuses a placement an overlay endpoint cannot have (the host namespace), before anything is made or published. */
export function checkPlacement(net: NetworkRecord, placement: Placement): void {
  if (placement.kind === 'sandbox' && placement.sandbox.kind === 'host') {
    throw new InvalidArgumentError('sandbox', `sandbox ${placement.sandbox.name} is the host namespace: it cannot join overlay network ${net.name}`);
  }
}

/**
 * The address of the network whose own MAC (macFor) mac is, when that is not the endpoint's own
 * address: an endpoint given it would clash with the one that takes that address later, on any
 * host, without --mac (its MAC is not checked against the peers: it answers before etcd does).
 */
export function defaultMacOf(net: NetworkRecord, mac: string, ownIpv4: string | undefined): string | undefined {
  const bytes = mac.toLowerCase().split(':');
  if (bytes.length !== 6 || bytes[0] !== '02' || bytes[1] !== '42') return undefined;
  const ip = bytes.slice(2).map((b) => parseInt(b, 16)).join('.');
  if (ip === ownIpv4?.split('/')[0]) return undefined;
  const address = parseAddress('mac', ip);
  return net.ipv4.some((s) => contains(parsePrefix('subnet', s.subnet), address)) ? ip : undefined;
}

/**
 * A MAC given for the endpoint (--mac) that another endpoint of the network has, on any host, is
 * refused: two peers of one MAC would share one FDB entry, and one of them would be unreachable.
 * So is the MAC the network gives another of its addresses (02:42 + that IPv4 address), checked
 * without etcd. The peers are read from etcd (one listing of the network's peers); not checked
 * while the store does not answer. This is the early word, naming the other endpoint's address:
 * the claim of the MAC in the peer's transaction (isGivenMac) is what refuses one of two hosts
 * giving it at the same moment.
 */
export async function refuseTakenMac(cluster: Cluster, net: NetworkRecord, ep: EndpointRecord): Promise<void> {
  const mac = ep.macAddress;
  if (mac === undefined) return;
  const meant = defaultMacOf(net, mac, ep.ipv4);
  if (meant !== undefined) {
    throw new InvalidArgumentError('mac', `${mac} is the MAC that network ${net.name} gives the endpoint of its address ${meant} (02:42 + the IPv4 address): two endpoints would share it; give another MAC, or no MAC with --ip ${meant}`);
  }
  let peers;
  try {
    peers = await cluster.peersOf(net.name);
  } catch (err) {
    if (err instanceof ClusterUnavailableError) return;
    throw err;
  }
  const other = peers.find((p) => p.mac === mac && p.endpointId !== ep.id);
  if (!other) return;
  // Its host as `cluster hosts` shows it: name, VTEP and id; the id alone when it is not registered (or the hosts cannot be read).
  const hosts = await cluster.hosts().catch(() => undefined);
  const h = hosts?.find((x) => x.id === other.host);
  const host = h ? `host ${h.hostname} (${h.vtep}, id ${h.id})` : `host id ${other.host}${hosts ? ' (not registered)' : ''}`;
  throw new ConflictError(`mac address ${mac} is in use by endpoint ${shortId(other.endpointId)} (${other.ip}) of network ${net.name} on ${host}`, { field: 'mac' });
}

/**
 * The veth of an endpoint: the host end on the network's bridge, up; the container end born in
 * the sandbox with its final name (placement 'sandbox') or left in the daemon's namespace as
 * `c<id>` for the Docker engine to move (placement 'detached'), with its MAC and MTU either way.
 * The applier (or the engine) puts the addresses on it and brings it up.
 * Equivalent to: `ip link add ovX master ovbrN mtu M up type veth peer name NAME [netns SB] address MAC mtu M;
 *   ip link set ovX addrgenmode none` (the latter with M at least 1280: under it the port has no IPv6)
 */
export async function makeVeth(
  pool: NetlinkHandlePool, bridge: number, net: NetworkRecord, mtu: number, ep: EndpointRecord, placement: Placement,
): Promise<{ info: JoinInfo; data: OverlayEndpointData }> {
  checkPlacement(net, placement);
  const host = pool.get();
  const inSandbox = placement.kind === 'sandbox';
  const name = inSandbox
    ? await ifnameInSandbox(pool, placement.sandbox, 'eth', { ...(placement.ifname ? { asked: placement.ifname } : {}), fresh: isFresh(placement) })
    : `c${ep.id.slice(0, 10)}`;
  const data: OverlayEndpointData = { hostIfname: hostIfnameFor(ep.id), mac: ep.macAddress ?? macFor(ep.ipv4), ...(inSandbox ? {} : { containerIfname: name }) };
  const created = await addVeth(host, {
    name: data.hostIfname, master: bridge, up: true, group: OVERLAY_GROUP, mtu,
    peer: { name, ...(inSandbox ? { nsPath: placement.sandbox.netnsPath } : {}), mac: data.mac, mtu },
  });
  try {
    // No link-local address on the port (no DAD, router solicitation or MLD report flooded to
    // every VTEP when its carrier comes up with the sandbox end); IPv6 stays on, inert: what a
    // bridge port receives goes to the bridge, never to the port's own stack. A netlink request
    // waits for the kernel's lock asleep, where the disable_ipv6 sysctl spins on it while other
    // daemons program peers (its cost grew sixfold at 1000 endpoints). Under IPv6's 1280 (an IPv4
    // network's MTU) the port has no IPv6 at all, and the kernel refuses the setting (EAFNOSUPPORT).
    if (mtu >= IPV6_MIN_MTU) await setLink(host, created.index ?? data.hostIfname, { addrGenMode: 'none' });
  } catch (err) {
    await deleteLink(host, data.hostIfname, { ifExists: true });
    throw err;
  }
  const info: JoinInfo = {
    src: { name, where: inSandbox ? 'sandbox' : 'host', ...(inSandbox && created.peerIndex !== undefined ? { index: created.peerIndex } : {}) },
    ...(inSandbox ? {} : { dstPrefix: 'eth', mac: data.mac, mtu }),
    ...(ep.ipv4 ? { ipv4: ep.ipv4 } : {}), ...(ep.ipv6 ? { ipv6: ep.ipv6 } : {}),
    routes: [], noGateway: false, ipv6Enabled: net.ipv6.length > 0, ...(inSandbox ? { neighSolicit: NEIGH_SOLICIT } : {}),
  };
  return { info, data };
}

/** The JoinInfo of a detached endpoint (made by createEndpoint) for the engine to move and name. */
export function detachedInfo(net: NetworkRecord, ep: EndpointRecord, data: OverlayEndpointData, mtu: number): JoinInfo {
  return {
    src: { name: data.containerIfname ?? `c${ep.id.slice(0, 10)}`, where: 'host' }, dstPrefix: 'eth', mac: data.mac, mtu,
    ...(ep.ipv4 ? { ipv4: ep.ipv4 } : {}), ...(ep.ipv6 ? { ipv6: ep.ipv6 } : {}), routes: [], noGateway: false, ipv6Enabled: net.ipv6.length > 0,
  };
}

/** Deletes the host end (the container end goes with it). Idempotent. */
export async function leaveSandbox(pool: NetlinkHandlePool, ep: EndpointRecord): Promise<void> {
  await deleteLink(pool.get(), hostIfnameOf(ep), { ifExists: true });
}
