// Setup step 1: the bridge device. Planned first (adopt a bridge of that name that someone else
// made, refuse anything else of that name), then created if missing (MTU, snooping, up, cnmkit's
// link group). Deletion is idempotent and never touches an adopted bridge.
import { ConflictError, KernelError } from '../../src/errors.js';
import { addBridge, deleteLink, findLink, listAddresses, setLink, type LinkRef, type NetlinkHandle } from '../../src/netlink/index.js';

/**
 * The link group of every device the bridge driver creates (`ip link show group 0x636e6d6b`), so
 * that a sweep at start finds leftovers by group, never touching devices of others (Docker's own
 * br-* and veth* share our names' shapes) or bridges the user let us adopt.
 */
export const LINK_GROUP = 0x636e6d6b;

/** What creating the bridge will find: whether someone else's bridge is there to adopt, and its addresses. */
export interface BridgePlan {
  adopted: boolean;
  /** The adopted bridge's addresses before cnmkit came: they stay when the network goes. */
  keptAddresses?: string[];
}

/**
 * Looks, without changing anything, at what is named `name`: nothing or a bridge of cnmkit's
 * group (created, not adopted), someone else's bridge (adopted, with the addresses it has), or
 * another kind of device (refused).
 */
export async function planBridge(h: NetlinkHandle, name: string): Promise<BridgePlan> {
  const existing = await findLink(h, name);
  if (!existing) return { adopted: false };
  if (existing.kind !== 'bridge') throw new ConflictError(`a ${existing.kind === 'other' ? existing.type ?? 'device' : existing.kind} named ${name} already exists and is not a bridge`);
  if (existing.group === LINK_GROUP) return { adopted: false };
  return { adopted: true, keptAddresses: (await listAddresses(h, { dev: name })).map((a) => a.cidr) };
}

/**
 * Ensures the bridge exists and is up, as planned; says whether it was made now or found, and
 * its ifindex when the kernel said it (its name otherwise). A bridge not adopted is created at
 * once (nothing is there, as a rule) and looked at only when the kernel says the name is taken.
 * An adopted bridge keeps its multicast snooping; one that is gone is created. A foreign bridge
 * where the plan found none (it appeared since) is refused, so that cnmkit never deletes a device
 * it was not recorded as adopting.
 */
export async function ensureBridge(h: NetlinkHandle, name: string, opts: { mtu: number | undefined; mcastSnooping: boolean; adopted: boolean }): Promise<{ made: boolean; dev: LinkRef }> {
  const { mtu } = opts;
  const make = async (): Promise<{ made: boolean; dev: LinkRef }> => {
    const { index } = await addBridge(h, { name, up: true, group: LINK_GROUP, mcastSnooping: opts.mcastSnooping, ...(mtu !== undefined ? { mtu } : {}) });
    return { made: true, dev: index ?? name };
  };
  if (!opts.adopted) {
    try {
      return await make();
    } catch (err) {
      if (!(err instanceof KernelError && err.errnoCode === 'EEXIST')) throw err;
    }
  }
  const existing = await findLink(h, name);
  if (!existing) return make();
  if (existing.kind !== 'bridge') throw new ConflictError(`a ${existing.kind === 'other' ? existing.type ?? 'device' : existing.kind} named ${name} already exists and is not a bridge`);
  if (!opts.adopted && existing.group !== LINK_GROUP) throw new ConflictError(`a bridge named ${name} appeared that cnmkit did not create; try again to adopt it`);
  if (!existing.up || (mtu !== undefined && existing.mtu !== mtu)) await setLink(h, name, { up: true, ...(mtu !== undefined ? { mtu } : {}) });
  return { made: false, dev: existing.index };
}

/** Removes the bridge unless it was adopted. Deleting one that is gone succeeds. */
export async function removeBridge(h: NetlinkHandle, name: string, adopted: boolean | undefined): Promise<void> {
  if (adopted) return;
  await deleteLink(h, name, { ifExists: true });
}
