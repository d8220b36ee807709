// The parent device of a macvlan network: planned without side effects (which device, whether
// cnmkit makes it, one network per parent as Docker, the MTU no larger than the parent's), then
// made when the plan says cnmkit owns it — an 802.1Q link `eth0.10` (Docker's behaviour; this
// needs the kernel's 8021q) or, with no parent given, a bridge with no ports that cnmkit names
// (Docker makes a dummy link, which needs the kernel's dummy; macvlan on a bridge works the same,
// and the bridge is in every kernel cnmkit runs on). Deleted with the network only when cnmkit made it.
import { ConflictError, InvalidArgumentError, KernelError, KernelFeatureError } from '../../src/errors.js';
import { addBridge, addVlan, deleteLink, findLink, listLinks, setLinkUp, type Link, type NetlinkHandle } from '../../src/netlink/index.js';
import type { EndpointRecord, NetworkRecord } from '../../src/core/model.js';
import { OPT, ownBridgeNameFor, vlanOf, type MacvlanConfig } from './config.js';

/**
 * The link group of every device the macvlan driver makes (`ip link show group 0x636e6d76`), so a
 * sweep finds its leftovers without touching anyone else's (the bridge driver has its own group).
 */
export const LINK_GROUP = 0x636e6d76;

function refuseLargerMtu(config: MacvlanConfig, parent: Link): void {
  if (config.mtu !== undefined && parent.mtu !== undefined && config.mtu > parent.mtu) {
    throw new InvalidArgumentError(OPT.mtu, `${config.mtu} is larger than the MTU ${parent.mtu} of parent interface ${parent.name} (a macvlan cannot exceed its parent's)`);
  }
}

/**
 * Decides the parent, changing nothing: the one given (it must exist, or be NAME.VLAN on an
 * existing NAME), or cnmkit's own bridge. Refuses a parent another network of this driver uses.
 */
export async function planParent(h: NetlinkHandle, net: NetworkRecord, config: MacvlanConfig, others: NetworkRecord[]): Promise<MacvlanConfig> {
  const parentName = config.parent ?? ownBridgeNameFor(net.id);
  const owner = others.find((n) => (n.config as MacvlanConfig).parentName === parentName);
  if (owner) {
    throw new ConflictError(`network ${owner.name} is already using parent interface ${parentName} (as in Docker, one macvlan network per parent; use a VLAN sub-interface such as ${parentName}.10 for another)`, { field: OPT.parent });
  }
  const existing = await findLink(h, parentName);
  if (config.parent === undefined) {
    if (existing && existing.group !== LINK_GROUP) throw new ConflictError(`a ${existing.kind} named ${parentName} already exists that cnmkit did not make`, { field: OPT.parent });
    return { ...config, parentName, origin: 'bridge' };
  }
  if (existing) {
    refuseLargerMtu(config, existing);
    return { ...config, parentName, origin: existing.kind === 'other' && existing.type === 'vlan' && existing.group === LINK_GROUP ? 'vlan' : 'host' };
  }
  const vlan = vlanOf(parentName);
  if (!vlan) throw new InvalidArgumentError(OPT.parent, `parent interface ${parentName} was not found on the host (a VLAN sub-interface cnmkit makes is named NAME.ID, e.g. eth0.10)`);
  if (vlan.id < 1 || vlan.id > 4094) throw new InvalidArgumentError(OPT.parent, `VLAN id must be between 1 and 4094, got ${vlan.id} in ${parentName}`);
  const base = await findLink(h, vlan.base);
  if (!base) throw new InvalidArgumentError(OPT.parent, `interface ${vlan.base}, the parent of VLAN sub-interface ${parentName}, was not found on the host`);
  refuseLargerMtu(config, base);
  return { ...config, parentName, origin: 'vlan' };
}

/**
 * Makes the parent when cnmkit owns it and it is missing (idempotent; the parent up either way).
 * Equivalent to: `ip link add mv-ID group G up type bridge` or `ip link add eth0.10 link eth0 group G up type vlan id 10`
 */
export async function ensureParent(h: NetlinkHandle, config: MacvlanConfig): Promise<void> {
  const name = config.parentName!;
  if (config.origin === 'host') return;
  const existing = await findLink(h, name);
  if (existing) {
    if (existing.group !== LINK_GROUP) throw new ConflictError(`a ${existing.kind} named ${name} appeared that cnmkit did not make`, { field: OPT.parent });
    if (!existing.up) await setLinkUp(h, name);
    return;
  }
  if (config.origin === 'bridge') {
    await addBridge(h, { name, up: true, group: LINK_GROUP, mcastSnooping: false, ...(config.mtu !== undefined ? { mtu: config.mtu } : {}) });
    return;
  }
  const vlan = vlanOf(name)!;
  try {
    await addVlan(h, { name, parent: vlan.base, id: vlan.id, up: true, group: LINK_GROUP });
  } catch (err) {
    // EOPNOTSUPP, which Node names ENOTSUP (the same errno on Linux): the kernel knows no link type vlan.
    if (err instanceof KernelError && (err.errnoCode === 'EOPNOTSUPP' || err.errnoCode === 'ENOTSUP')) {
      throw new KernelFeatureError('802.1Q VLAN (module 8021q, link type vlan)', `cannot create VLAN sub-interface ${name} of ${vlan.base} for the macvlan parent`, { cause: err, field: OPT.parent });
    }
    throw err;
  }
}

/** Deletes the parent if cnmkit made it (and it still carries cnmkit's group). Idempotent. */
export async function removeParent(h: NetlinkHandle, config: MacvlanConfig): Promise<void> {
  if (config.origin === 'host' || config.origin === undefined || config.parentName === undefined) return;
  const link = await findLink(h, config.parentName);
  if (link?.group === LINK_GROUP) await deleteLink(h, config.parentName, { ifExists: true });
}

/**
 * Start-up sweep in the daemon's namespace: devices of the macvlan group that no network (a parent
 * cnmkit made) or detached endpoint (a link the engine has not moved yet) owns are deleted.
 * detachedName: the link an endpoint's record says it made in the daemon's namespace, if it did
 * (what creation recorded decides, not whether the record names a sandbox).
 */
export async function sweepOrphans(
  h: NetlinkHandle, networks: NetworkRecord[], endpoints: EndpointRecord[], detachedName: (ep: EndpointRecord) => string | undefined,
): Promise<string[]> {
  const owned = new Set<string>();
  for (const n of networks) {
    const c = n.config as MacvlanConfig;
    if (c.parentName && c.origin !== 'host') owned.add(c.parentName);
  }
  for (const e of endpoints) {
    const name = detachedName(e);
    if (name !== undefined) owned.add(name);
  }
  const removed: string[] = [];
  for (const link of await listLinks(h)) {
    if (link.group !== LINK_GROUP || owned.has(link.name)) continue;
    if (await deleteLink(h, link.name, { ifExists: true })) removed.push(`${link.kind === 'other' ? link.type ?? 'device' : link.kind} ${link.name}: deleted (nothing owns it)`);
  }
  return removed;
}
