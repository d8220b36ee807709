// What drivers' repair steps share (`cnmkit check --fix`): a device that check found down set up
// again. Changes only what differs (a device that is up, or missing, is left as it is).
// Limits: a missing device is not made again (that is a restart's restore, with its rollback).
import { findLink, setLink, type NetlinkHandle } from '../netlink/index.js';

/** Sets the device `name` up when it is there and down. */
export async function upIfDown(h: NetlinkHandle, name: string): Promise<void> {
  const link = await findLink(h, name);
  if (link && !link.up) await setLink(h, link.index, { up: true });
}
