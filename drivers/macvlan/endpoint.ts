// Endpoints: one macvlan link on the network's parent per endpoint. For cnmkit's own sandboxes it
// is born inside the sandbox (IFLA_NET_NS_FD, one request) with its name, MAC and MTU; for the
// Docker engine it is left in the daemon's namespace for the engine to move. Join describes the
// rest (addresses, gateways) as a JoinInfo, which the controller's applier or the engine applies. MAC: the one asked for, or Docker's 02:42 + the IPv4 address bytes.
// Limits: the host cannot reach its own macvlan children (the kernel passes no frames between a
// parent and its macvlans); there is no host-side device, so nothing is published.
import { randomBytes } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { InvalidArgumentError } from '../../src/errors.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../../src/core/model.js';
import type { EndpointCheck, JoinInfo } from '../../src/contract/driver.js';
import type { DockerJoinData } from '../../src/contract/handback.js';
import { KernelError } from '../../src/errors.js';
import {
  addMacvlan, deleteLink, findLink, listFdb, listLinks, listNetnsIds, type Link, type MacvlanLink, type NetlinkHandle, type NetlinkHandlePool,
} from '../../src/netlink/index.js';
import { linkNamesIn } from '../../src/netns/index.js';
import type { MacvlanConfig } from './config.js';
import { LINK_GROUP } from './parent.js';

/** What the macvlan driver keeps per endpoint (stored as driverData; a detached one's notes the engine's Join). */
export interface MacvlanEndpointData extends DockerJoinData {
  mac: string;
  /** Sandbox endpoints: the name it was born with there (kept before the applier runs, so a failed join is undone). */
  ifname?: string;
  /** Detached endpoints only: the link in the daemon's namespace, for the engine to move. */
  hostIfname?: string;
}

/** A detached endpoint's link in the daemon's namespace: `mv` + 12 hex digits of the endpoint id. */
export function detachedIfnameFor(endpointId: string): string {
  return `mv${endpointId.slice(0, 12)}`;
}

/** Docker's container MAC: 02:42 followed by the IPv4 address bytes; random (locally administered) when there is none. */
export function macFor(ipv4Cidr: string | undefined): string {
  const ip = ipv4Cidr?.split('/')[0];
  const bytes = ip && isIPv4(ip) ? [0x02, 0x42, ...ip.split('.').map(Number)] : [0x02, ...randomBytes(5)];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

function linkSpec(config: MacvlanConfig, name: string, mac: string) {
  return { name, parent: config.parentName!, mode: config.mode, mac, group: LINK_GROUP, ...(config.mtu !== undefined ? { mtu: config.mtu } : {}) };
}

/**
 * The macvlan born in the sandbox with its final name, MAC and MTU, in one request; the applier
 * configures it there. Equivalent to: `ip link add IFNAME link PARENT netns SB address MAC [mtu M] type macvlan mode MODE`
 */
export async function createInSandbox(
  pool: NetlinkHandlePool, net: NetworkRecord, config: MacvlanConfig, ep: EndpointRecord, sb: SandboxRecord, ifname: string,
): Promise<MacvlanEndpointData> {
  if (sb.kind === 'host') throw new InvalidArgumentError('sandbox', `sandbox ${sb.name} is the host namespace: it cannot join macvlan network ${net.name} (the host cannot reach its own macvlans)`);
  const data: MacvlanEndpointData = { mac: ep.macAddress ?? macFor(ep.ipv4), ifname };
  await addMacvlan(pool.get(), { ...linkSpec(config, ifname, data.mac), nsPath: sb.netnsPath });
  return data;
}

/**
 * What a macvlan endpoint looks like from the sandbox: its addresses and, unless the network is
 * internal, the gateways for the default routes (Docker's macvlan Join).
 */
export function macvlanJoinInfo(net: NetworkRecord, config: MacvlanConfig, ep: EndpointRecord, src: JoinInfo['src']): JoinInfo {
  const gw4 = net.ipv4[0]?.gateway?.split('/')[0];
  const gw6 = net.ipv6[0]?.gateway?.split('/')[0];
  return {
    src, ...(src.where === 'host' ? { dstPrefix: 'eth' } : { dstName: src.name }),
    ...(ep.ipv4 ? { ipv4: ep.ipv4 } : {}), ...(ep.ipv6 ? { ipv6: ep.ipv6 } : {}),
    ...(gw4 && ep.ipv4 && !config.internal ? { gateway: gw4 } : {}),
    ...(gw6 && ep.ipv6 && !config.internal ? { gatewayV6: gw6 } : {}),
    routes: [], noGateway: config.internal, ipv6Enabled: net.ipv6.length > 0,
  };
}

/** Deletes the endpoint's macvlan inside the sandbox, if that name is still a macvlan there. Idempotent. */
export async function leaveSandbox(pool: NetlinkHandlePool, ep: EndpointRecord, sb: SandboxRecord): Promise<void> {
  const ifname = ep.ifname ?? (ep.driverData as Partial<MacvlanEndpointData> | undefined)?.ifname;
  if (!ifname || sb.kind === 'host') return;
  const sbh = pool.get(sb.netnsPath);
  const link = await findLink(sbh, ifname);
  if (link?.kind === 'macvlan') await deleteLink(sbh, ifname, { ifExists: true });
}

/**
 * A detached endpoint (the Docker engine's flow): the macvlan in the daemon's namespace with its
 * MAC, down, for the engine to move into the container. Equivalent to:
 * `ip link add mvID link PARENT address MAC type macvlan mode MODE`
 */
export async function createDetached(pool: NetlinkHandlePool, config: MacvlanConfig, ep: EndpointRecord): Promise<MacvlanEndpointData> {
  const data: MacvlanEndpointData = { mac: ep.macAddress ?? macFor(ep.ipv4), hostIfname: detachedIfnameFor(ep.id) };
  await addMacvlan(pool.get(), linkSpec(config, data.hostIfname!, data.mac));
  return data;
}

/** Deletes a detached endpoint's link where the engine left it (back in the daemon's namespace), if there. Idempotent. */
export async function deleteDetached(pool: NetlinkHandlePool, ep: EndpointRecord): Promise<void> {
  const name = (ep.driverData as Partial<MacvlanEndpointData> | undefined)?.hostIfname ?? detachedIfnameFor(ep.id);
  const link = await findLink(pool.get(), name);
  if (link?.kind === 'macvlan') await deleteLink(pool.get(), name, { ifExists: true });
}

/** Whether the endpoint's link was made detached, in the daemon's namespace (as its data records), rather than born in a sandbox. */
export function createdDetached(ep: EndpointRecord): boolean {
  return (ep.driverData as Partial<MacvlanEndpointData> | undefined)?.hostIfname !== undefined;
}

/**
 * The macvlans on the parent (ifindex parent in the daemon's namespace) that live in other
 * namespaces: those the daemon's namespace has an id for, which every namespace a link of it was
 * moved into has (the kernel gives one at the move). Stops once found(links so far) says so.
 * Equivalent to: `ip netns list-id`, then `ip -target-nsid ID -d link show type macvlan` for each.
 */
async function movedMacvlans(h: NetlinkHandle, parent: number, found: (links: MacvlanLink[]) => boolean): Promise<MacvlanLink[]> {
  const out: MacvlanLink[] = [];
  for (const nsid of await listNetnsIds(h)) {
    let links: Link[];
    try {
      links = await listLinks(h, { kind: 'macvlan', nsid });
    } catch (err) {
      // A namespace being destroyed between the two requests: its macvlans go with it.
      if (err instanceof KernelError && (err.errnoCode === 'EINVAL' || err.errnoCode === 'ENOENT')) continue;
      throw err;
    }
    out.push(...links.filter((l): l is MacvlanLink => l.kind === 'macvlan' && l.parentIndex === parent && l.netnsId !== undefined));
    if (found(out)) break;
  }
  return out;
}

/**
 * The detached endpoints whose macvlan is gone (the Docker engine forgot them: the container's
 * namespace was destroyed, and its macvlans with it). Only a vanished link means gone: a detached
 * macvlan is alive while it is in the daemon's namespace under its name (not moved yet), or while
 * a macvlan on the parent with its MAC (passthru: any macvlan on the parent, which has one at
 * most and takes the parent's MAC) is in a namespace the engine moved it into, up or down. A MAC
 * among the parent's unicast addresses (an up macvlan holds its own there) is enough, and is read
 * first: one request for the usual case. No parent left: its macvlans went with it.
 * Equivalent to: `ip link show`, `bridge fdb show dev PARENT`, then the namespaces' links.
 * Limits: one whose MAC a live macvlan on the parent also has looks alive (a later container given
 * the dead one's address has Docker's same MAC: prune before it starts, as the Docker backend does
 * at CreateEndpoint); a macvlan moved on from the namespace the engine put it in, to one the
 * daemon's namespace has no id for, looks gone once it is down.
 */
export async function goneDetached(pool: NetlinkHandlePool, config: MacvlanConfig, eps: EndpointRecord[]): Promise<string[]> {
  const h = pool.get();
  const here = linkNamesIn(h.nsPath);
  const macOf = (e: EndpointRecord): string => (e.driverData as MacvlanEndpointData).mac.toLowerCase();
  let moved = eps.filter((e) => !here.has((e.driverData as Partial<MacvlanEndpointData>).hostIfname ?? detachedIfnameFor(e.id)));
  if (moved.length === 0) return [];
  const parent = await findLink(h, config.parentName!);
  if (!parent) return moved.map((e) => e.id);
  const passthru = config.mode === 'passthru';
  if (!passthru) {
    const held = new Set((await listFdb(h, { dev: parent.index })).filter((f) => f.self).map((f) => f.mac.toLowerCase()));
    moved = moved.filter((e) => !held.has(macOf(e)));
    if (moved.length === 0) return [];
  }
  const alive = (links: MacvlanLink[], e: EndpointRecord): boolean => links.some((l) => passthru || l.mac?.toLowerCase() === macOf(e));
  const links = await movedMacvlans(h, parent.index, (ls) => moved.every((e) => alive(ls, e)));
  return moved.filter((e) => !alive(links, e)).map((e) => e.id);
}

/**
 * After a restart: the endpoint's interface must still be a macvlan in the sandbox. Vanished:
 * missing (the controller joins it again with the same name, MAC and addresses). The name taken
 * by another device: lost.
 */
export async function checkJoined(pool: NetlinkHandlePool, ep: EndpointRecord, sb: SandboxRecord): Promise<EndpointCheck> {
  if (sb.kind === 'host' || !ep.ifname) return { state: 'ok' };
  const inside = await findLink(pool.get(sb.netnsPath), ep.ifname);
  if (inside?.kind === 'macvlan') return { state: 'ok' };
  if (inside) return { state: 'lost', reason: `${ep.ifname} in sandbox ${sb.name} is another device now` };
  return { state: 'missing', detail: `interface ${ep.ifname} had vanished from sandbox ${sb.name}` };
}
