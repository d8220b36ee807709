// Start-up sweep: devices in cnmkit's link group that no stored network or endpoint owns (left by
// a crash between the kernel change and the store, or by a lost state directory) are deleted.
import { deleteLink, listLinks, type NetlinkHandle } from '../../src/netlink/index.js';
import type { EndpointRecord, NetworkRecord } from '../../src/core/model.js';
import { bridgeNameFor, type BridgeConfig } from './config.js';
import { LINK_GROUP } from './device.js';
import { hostIfnameOf } from './endpoint.js';

export async function sweepOrphans(h: NetlinkHandle, networks: NetworkRecord[], endpoints: EndpointRecord[]): Promise<string[]> {
  const owned = new Set<string>();
  for (const n of networks) owned.add((n.config as BridgeConfig).bridgeName ?? bridgeNameFor(n.id));
  for (const e of endpoints) owned.add(hostIfnameOf(e));
  const removed: string[] = [];
  for (const link of await listLinks(h)) {
    if (link.group !== LINK_GROUP || owned.has(link.name)) continue;
    if (await deleteLink(h, link.name, { ifExists: true })) removed.push(`${link.kind} ${link.name}: deleted (nothing owns it)`);
  }
  return removed;
}
