// Namespace ids (`ip netns list-id`): the id the handle's namespace gives another namespace, every
// id it gives, and whether the namespace behind an id is still referenced. The kernel answers a lookup by id only
// while the namespace has references, so "not found" proves it is being destroyed (its devices go
// with it) even before its teardown has run. Limits: ids are freed and reused by the kernel, so a
// "still referenced" answer may be about a newer namespace that took the id (never the other way).
import { FlagsGet } from 'netlink';
import { KernelError } from '../errors.js';
import type { NetlinkHandle } from './handle.js';
import { validateUint } from './validate.js';

const RTM_NEWNSID = 88;
const RTM_GETNSID = 90;
const NETNSA_NSID = 1;
const NETNSA_FD = 3;
/** struct rtgenmsg, padded to 4 bytes: family AF_UNSPEC. */
const RTGENMSG = Buffer.alloc(4);

function s32Attr(type: number, value: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(8, 0);
  b.writeUInt16LE(type, 2);
  b.writeInt32LE(value, 4);
  return b;
}

/** NETNSA_NSID of an RTM_NEWNSID reply, or -1 (NETNSA_NSID_NOT_ASSIGNED). */
function nsidOfReply(data: Buffer): number {
  for (let off = RTGENMSG.length; off + 8 <= data.length; ) {
    const len = data.readUInt16LE(off);
    if (len < 4) break;
    if ((data.readUInt16LE(off + 2) & 0x3fff) === NETNSA_NSID) return data.readInt32LE(off + 4);
    off += (len + 3) & ~3;
  }
  return -1;
}

/**
 * The id the handle's namespace gives the namespace open as fd, assigned now if it had none.
 * Equivalent to: `ip netns set NAME auto` (when unassigned), then `ip netns list-id`.
 */
export async function netnsIdOf(h: NetlinkHandle, fd: number): Promise<number> {
  validateUint(fd, 'fd', 0, 0x7fffffff);
  const get = async (): Promise<number> => {
    const replies = await h.requestRaw('netns id', RTM_GETNSID, [RTGENMSG, s32Attr(NETNSA_FD, fd)]);
    return replies[0] ? nsidOfReply(replies[0].data) : -1;
  };
  const known = await get();
  if (known >= 0) return known;
  try {
    await h.requestRaw('netns set auto', RTM_NEWNSID, [RTGENMSG, s32Attr(NETNSA_FD, fd), s32Attr(NETNSA_NSID, -1)]);
  } catch (err) {
    // Another process assigned one meanwhile.
    if (!(err instanceof KernelError && err.errnoCode === 'EEXIST')) throw err;
  }
  return get();
}

/**
 * False once the namespace the handle's namespace calls nsid has no references left (it is being
 * destroyed, or gone); true while anything holds it. No iproute2 twin: RTM_GETNSID with NETNSA_NSID.
 */
export async function netnsIdReferenced(h: NetlinkHandle, nsid: number): Promise<boolean> {
  validateUint(nsid, 'nsid', 0, 0x7fffffff);
  try {
    await h.requestRaw('netns by id', RTM_GETNSID, [RTGENMSG, s32Attr(NETNSA_NSID, nsid)]);
    return true;
  } catch (err) {
    if (err instanceof KernelError && err.errnoCode === 'ENOENT') return false;
    throw err;
  }
}

/**
 * Every id the handle's namespace gives other namespaces (the kernel gives one, among others, to
 * a namespace a link of this one was moved into). Equivalent to: `ip netns list-id`
 */
export async function listNetnsIds(h: NetlinkHandle): Promise<number[]> {
  const replies = await h.requestRaw('netns list-id', RTM_GETNSID, [RTGENMSG], FlagsGet.DUMP);
  return replies.filter((r) => r.type === RTM_NEWNSID).map((r) => nsidOfReply(r.data)).filter((id) => id >= 0);
}
