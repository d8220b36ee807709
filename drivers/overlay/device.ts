// An overlay network's devices on one host, in the daemon's own (host) namespace: a Linux bridge
// `ovbr<VNI>` and a VXLAN device `ovvx<VNI>` on it (learning off, no miss handlers, proxy ARP/ND
// from the static neighbour table), neither with an address: the host does not route into the
// overlay, and sandboxes reach each other at layer 2 only. MTU: given, or the VTEP interface's
// less 50. Both sit in cnmkit's overlay link group so that a start-up sweep finds leftovers.
import { ConflictError, KernelError } from '../../src/errors.js';
import type { HostSysctl } from '../../src/contract/driver.js';
import {
  addBridge, addVxlan, deleteLink, findLink, linkIndex, listLinks, setBridgePort, setLink, type Link, type NetlinkHandle, type VxlanLink,
} from '../../src/netlink/index.js';
import { withRollback } from '../../src/core/steps.js';

/** The link group of every device the overlay driver creates (`ip link show group 0x636e6f76`). */
export const OVERLAY_GROUP = 0x636e6f76;

export interface DeviceNames {
  bridge: string;
  vxlan: string;
}

export function deviceNames(vni: number): DeviceNames {
  return { bridge: `ovbr${vni}`, vxlan: `ovvx${vni}` };
}

/** The MTU of the network's bridge when one cnmkit made is there (left by an earlier run of the daemon). */
export async function keptMtu(h: NetlinkHandle, vni: number): Promise<number | undefined> {
  const bridge = await findLink(h, deviceNames(vni).bridge);
  return bridge?.kind === 'bridge' && bridge.group === OVERLAY_GROUP ? bridge.mtu : undefined;
}

export interface DeviceSpec {
  vni: number;
  port: number;
  vtep: string;
  mtu: number;
  ipv6: boolean;
}

/**
 * What create resolved with; or, when the kernel refused it as taken (EEXIST), the link of that
 * name that is there (the refusal itself when there is none: the kernel meant something else).
 */
async function madeOrFound<T>(h: NetlinkHandle, name: string, create: Promise<T>): Promise<{ made: T } | { found: Link }> {
  try {
    return { made: await create };
  } catch (err) {
    if (!(err instanceof KernelError) || err.errnoCode !== 'EEXIST') throw err;
    const found = await findLink(h, name);
    if (!found) throw err;
    return { found };
  }
}

/** Whether link is this network's VXLAN device, made by cnmkit (its VNI and port). */
function isOwnVxlan(link: Link, spec: DeviceSpec): link is VxlanLink {
  return link.kind === 'vxlan' && link.group === OVERLAY_GROUP && link.vni === spec.vni && link.port === spec.port;
}

/**
 * Makes the bridge and the VXLAN device if missing, up, with the MTU; returns their ifindexes,
 * whether the VXLAN device was made now (then it holds no FDB or neighbour entry yet), and whether
 * the bridge was (then no endpoint's port is on it). A new
 * network's devices are made without looking first (the kernel refuses a name that is taken:
 * then the device there is checked, and kept when it is this network's).
 * Equivalent to: `ip link add ovbrN mtu M type bridge mcast_snooping 0; ip link add ovvxN mtu M
 * master ovbrN type vxlan id N local VTEP dstport P nolearning proxy; ip link set … up`
 */
export function ensureDevices(h: NetlinkHandle, sysctl: HostSysctl, spec: DeviceSpec): Promise<{ bridge: number; vxlan: number; made: boolean; bridgeMade: boolean }> {
  const names = deviceNames(spec.vni);
  // A device this call made goes again when a later step fails; one that was there stays.
  return withRollback(async (undo) => {
    let bridge: number;
    const br = await madeOrFound(h, names.bridge, addBridge(h, { name: names.bridge, mtu: spec.mtu, group: OVERLAY_GROUP, mcastSnooping: false }));
    if ('made' in br) {
      undo.push('overlay bridge', () => deleteLink(h, names.bridge, { ifExists: true }));
      noIPv6(sysctl, names.bridge, false);
      bridge = br.made.index ?? (await linkIndex(h, names.bridge));
    } else {
      if (br.found.kind !== 'bridge' || br.found.group !== OVERLAY_GROUP) throw new ConflictError(`a device named ${names.bridge} exists that cnmkit did not create`);
      bridge = br.found.index;
    }
    let vxlan: number;
    const addVx = () => addVxlan(h, {
      name: names.vxlan, vni: spec.vni, local: spec.vtep, port: spec.port, learning: false, proxy: true, mtu: spec.mtu, group: OVERLAY_GROUP, master: bridge,
    });
    let vx = await madeOrFound(h, names.vxlan, addVx());
    // This network's device made for another VTEP (the advertise address changed across a restart),
    // or with learning on or proxy off (set by hand): made again as it must be, not adopted.
    if ('found' in vx && isOwnVxlan(vx.found, spec) && (vx.found.local !== spec.vtep || vx.found.learning !== false || vx.found.proxy !== true)) {
      await deleteLink(h, names.vxlan, { ifExists: true });
      vx = { made: await addVx() };
    }
    if ('made' in vx) {
      undo.push('overlay VXLAN device', () => deleteLink(h, names.vxlan, { ifExists: true }));
      noIPv6(sysctl, names.vxlan, spec.ipv6);
      // The kernel echoes no VXLAN device it makes (its driver announces the link itself): looked up.
      vxlan = vx.made.index ?? (await linkIndex(h, names.vxlan));
      await setLink(h, vxlan, { up: true });
    } else {
      const link = vx.found;
      if (!isOwnVxlan(link, spec)) {
        throw new ConflictError(`a device named ${names.vxlan} exists that is not this network's VXLAN device (VNI ${spec.vni}, port ${spec.port})`);
      }
      vxlan = link.index;
      await setLink(h, vxlan, { up: true, mtu: spec.mtu, master: bridge });
    }
    // The bridge learns nothing from the VXLAN port either: frames to remote MACs are flooded to it
    // and the VXLAN device's static FDB sends them on; no learned entry can outlive its peer.
    await setBridgePort(h, vxlan, { learning: false });
    await setLink(h, bridge, { up: true, mtu: spec.mtu });
    return { bridge, vxlan, made: 'made' in vx, bridgeMade: 'made' in br };
  });
}

/**
 * No IPv6 address on a device of the overlay just made, before it comes up (written, not read
 * first: it has the namespace's default). The VXLAN device of an IPv6 network keeps IPv6 on (the
 * kernel takes IPv6 neighbour entries only there) without a link-local address.
 * Equivalent to: `sysctl -w net.ipv6.conf.DEV.disable_ipv6=1` (or `addr_gen_mode=1`)
 */
function noIPv6(sysctl: HostSysctl, dev: string, neighbours: boolean): void {
  if (neighbours) sysctl.set(`net/ipv6/conf/${dev}/addr_gen_mode`, '1');
  else sysctl.set(`net/ipv6/conf/${dev}/disable_ipv6`, '1');
}

/**
 * Removes both devices (the VXLAN device first), each only when cnmkit made it (in the overlay's
 * link group): a device of that name someone else made stays. Deleting what is gone succeeds.
 */
export async function removeDevices(h: NetlinkHandle, vni: number): Promise<void> {
  const names = deviceNames(vni);
  for (const name of [names.vxlan, names.bridge]) {
    const link = await findLink(h, name);
    if (link?.group === OVERLAY_GROUP) await deleteLink(h, link.index, { ifExists: true });
  }
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
