// What drivers' repair steps share (`cnmkit check --fix`): a device that check found down set up
// again, and each endpoint's interfaces so. Changes only what differs (a device that is up, or
// missing, is left as it is).
// Limits: a missing device is not made again (that is a restart's restore, with its rollback).
import { findLink, setLink, type NetlinkHandle, type NetlinkHandlePool } from '../netlink/index.js';
import type { EndpointRecord } from '../core/model.js';
import type { CheckedEndpoint } from './driver.js';

/** Sets the device `name` up when it is there and down. */
export async function upIfDown(h: NetlinkHandle, name: string): Promise<void> {
  const link = await findLink(h, name);
  if (link && !link.up) await setLink(h, link.index, { up: true });
}

/** Each endpoint's interfaces up: its host end (hostIfname, for drivers whose endpoints have one) and its interface in its sandbox. */
export async function upEndpoints(pool: NetlinkHandlePool, endpoints: CheckedEndpoint[], hostIfname?: (ep: EndpointRecord) => string): Promise<void> {
  for (const { ep, sb } of endpoints) {
    if (hostIfname) await upIfDown(pool.get(), hostIfname(ep));
    if (sb && sb.kind !== 'host' && ep.ifname) await upIfDown(pool.get(sb.netnsPath), ep.ifname);
  }
}
