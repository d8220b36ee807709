// An overlay network's devices on one host, in the daemon's own (host) namespace: a Linux bridge
// `ovbr<VNI>` and a VXLAN device `ovvx<VNI>` on it (learning off, no miss handlers, proxy ARP/ND
// from the static neighbour table), neither with an address: the host does not route into the
// overlay, and sandboxes reach each other at layer 2 only. MTU: given, or the VTEP interface's
// less 50. Both sit in cnmkit's overlay link group so that a start-up sweep finds leftovers.
import { ConflictError, NotFoundError } from '../../src/errors.js';
import type { HostSysctl } from '../../src/contract/driver.js';
import {
  addBridge, addVxlan, deleteLink, findLink, listAddresses, listLinks, setBridgePort, setLink, type NetlinkHandle,
} from '../../src/netlink/index.js';
import { withRollback } from '../../src/core/steps.js';
import { VXLAN_OVERHEAD } from './config.js';

/** The link group of every device the overlay driver creates (`ip link show group 0x636e6f76`). */
export const OVERLAY_GROUP = 0x636e6f76;

export interface DeviceNames {
  bridge: string;
  vxlan: string;
}

export function deviceNames(vni: number): DeviceNames {
  return { bridge: `ovbr${vni}`, vxlan: `ovvx${vni}` };
}

/** The MTU of the interface holding the VTEP address, less the VXLAN overhead. */
export async function overlayMtu(h: NetlinkHandle, vtep: string): Promise<number> {
  const addr = (await listAddresses(h, { family: 4 })).find((a) => a.address === vtep);
  if (!addr) throw new NotFoundError('interface with the advertise address', vtep);
  const link = await findLink(h, addr.index);
  return (link?.mtu ?? 1500) - VXLAN_OVERHEAD;
}

export interface DeviceSpec {
  vni: number;
  port: number;
  vtep: string;
  mtu: number;
  ipv6: boolean;
}

/**
 * Makes the bridge and the VXLAN device if missing, up, with the MTU; returns their ifindexes.
 * Equivalent to: `ip link add ovbrN mtu M type bridge mcast_snooping 0; ip link add ovvxN mtu M
 * master ovbrN type vxlan id N local VTEP dstport P nolearning proxy; ip link set … up`
 */
export function ensureDevices(h: NetlinkHandle, sysctl: HostSysctl, spec: DeviceSpec): Promise<{ bridge: number; vxlan: number }> {
  const names = deviceNames(spec.vni);
  // A device this call made goes again when a later step fails; one that was there stays.
  return withRollback(async (undo) => {
    const bridge = await findLink(h, names.bridge);
    if (bridge && (bridge.kind !== 'bridge' || bridge.group !== OVERLAY_GROUP)) throw new ConflictError(`a device named ${names.bridge} exists that cnmkit did not create`);
    if (!bridge) {
      await addBridge(h, { name: names.bridge, mtu: spec.mtu, group: OVERLAY_GROUP, mcastSnooping: false });
      undo.push('overlay bridge', () => deleteLink(h, names.bridge, { ifExists: true }));
      noIPv6(sysctl, names.bridge, false);
    }
    let vxlan = await findLink(h, names.vxlan);
    if (vxlan && (vxlan.kind !== 'vxlan' || vxlan.group !== OVERLAY_GROUP || vxlan.vni !== spec.vni || vxlan.port !== spec.port)) {
      throw new ConflictError(`a device named ${names.vxlan} exists that is not this network's VXLAN device (VNI ${spec.vni}, port ${spec.port})`);
    }
    if (!vxlan) {
      await addVxlan(h, { name: names.vxlan, vni: spec.vni, local: spec.vtep, port: spec.port, learning: false, proxy: true, mtu: spec.mtu, group: OVERLAY_GROUP, master: names.bridge });
      undo.push('overlay VXLAN device', () => deleteLink(h, names.vxlan, { ifExists: true }));
      noIPv6(sysctl, names.vxlan, spec.ipv6);
      vxlan = await findLink(h, names.vxlan);
    }
    await setLink(h, names.vxlan, { up: true, mtu: spec.mtu, master: names.bridge });
    // The bridge learns nothing from the VXLAN port either: frames to remote MACs are flooded to it
    // and the VXLAN device's static FDB sends them on; no learned entry can outlive its peer.
    await setBridgePort(h, names.vxlan, { learning: false });
    await setLink(h, names.bridge, { up: true, mtu: spec.mtu });
    const br = await findLink(h, names.bridge);
    if (!br || !vxlan) throw new NotFoundError('overlay device', !br ? names.bridge : names.vxlan);
    return { bridge: br.index, vxlan: vxlan.index };
  });
}

/**
 * No IPv6 address on a device of the overlay, before it comes up. The VXLAN device of an IPv6
 * network keeps IPv6 on (the kernel takes IPv6 neighbour entries only there) without a
 * link-local address. Equivalent to: `sysctl -w net.ipv6.conf.DEV.disable_ipv6=1` (or `addr_gen_mode=1`)
 */
function noIPv6(sysctl: HostSysctl, dev: string, neighbours: boolean): void {
  if (neighbours) sysctl.ensure(`net/ipv6/conf/${dev}/addr_gen_mode`, '1');
  else sysctl.ensure(`net/ipv6/conf/${dev}/disable_ipv6`, '1');
}

/** Removes both devices (the VXLAN device first); deleting what is gone succeeds. */
export async function removeDevices(h: NetlinkHandle, vni: number): Promise<void> {
  const names = deviceNames(vni);
  await deleteLink(h, names.vxlan, { ifExists: true });
  await deleteLink(h, names.bridge, { ifExists: true });
}

/**
 * Overlay devices and endpoint ports (in the overlay group) that none of the given VNIs and port
 * names own are deleted; returns what was deleted, and the names of the links left.
 */
export async function sweepDevices(h: NetlinkHandle, vnis: Set<number>, ports: Set<string>): Promise<{ removed: string[]; left: Set<string> }> {
  const owned = new Set([...vnis].flatMap((v) => Object.values(deviceNames(v))));
  const removed: string[] = [];
  const left = new Set<string>();
  for (const link of await listLinks(h)) {
    if (link.group !== OVERLAY_GROUP || owned.has(link.name) || ports.has(link.name)) left.add(link.name);
    else if (await deleteLink(h, link.name, { ifExists: true })) removed.push(`${link.kind} ${link.name}: deleted (no overlay network or endpoint owns it)`);
  }
  return { removed, left };
}
