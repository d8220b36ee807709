// Setup step 1: the bridge device. Created if missing (MTU, snooping, up, cnmkit's link group), adopted if
// a bridge of that name exists; anything else of that name is refused. Deletion is idempotent.
import { ConflictError } from '../../src/errors.js';
import { addBridge, deleteLink, findLink, setLink, type NetlinkHandle } from '../../src/netlink/index.js';

/**
 * The link group of every device the bridge driver creates (`ip link show group 0x636e6d6b`), so
 * that a sweep at start finds leftovers by group, never touching devices of others (Docker's own
 * br-* and veth* share our names' shapes) or bridges the user let us adopt.
 */
export const LINK_GROUP = 0x636e6d6b;

/**
 * Ensures the bridge exists and is up; returns true when someone else's bridge was adopted (its
 * multicast snooping is left as it is).
 */
export async function ensureBridge(h: NetlinkHandle, name: string, mtu: number | undefined, mcastSnooping: boolean): Promise<boolean> {
  const existing = await findLink(h, name);
  if (existing) {
    if (existing.kind !== 'bridge') throw new ConflictError(`a ${existing.kind === 'other' ? existing.type ?? 'device' : existing.kind} named ${name} already exists and is not a bridge`);
    if (!existing.up || (mtu !== undefined && existing.mtu !== mtu)) await setLink(h, name, { up: true, ...(mtu !== undefined ? { mtu } : {}) });
    return existing.group !== LINK_GROUP;
  }
  await addBridge(h, { name, up: true, group: LINK_GROUP, mcastSnooping, ...(mtu !== undefined ? { mtu } : {}) });
  return false;
}

/** Removes the bridge unless it was adopted. Deleting one that is gone succeeds. */
export async function removeBridge(h: NetlinkHandle, name: string, adopted: boolean | undefined): Promise<void> {
  if (adopted) return;
  await deleteLink(h, name, { ifExists: true });
}
