// Overlay endpoints: a veth pair made in one request — host end on the network's bridge, the
// container end born in the sandbox with its name, MTU and MAC — then its addresses and link up
// through a handle in the sandbox. No default route: the overlay has no gateway of its own (the
// sandbox's way out is the gateway bridge, see the controller's gateway endpoint). The MAC is
// Docker's 02:42 + IPv4 bytes, so it is unique wherever the address is (global IPAM).
import { randomBytes } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { InvalidArgumentError } from '../../src/errors.js';
import { ensureSysctl, runInNetns, validateIfname } from '../../src/netns/index.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../../src/core/model.js';
import { addAddress, addVeth, deleteLink, linkIndex, listLinks, setLinkUp, type NetlinkHandlePool } from '../../src/netlink/index.js';
import { OVERLAY_GROUP } from './device.js';

export interface OverlayEndpointData {
  hostIfname: string;
  mac: string;
}

export function hostIfnameFor(endpointId: string): string {
  return `ov${endpointId.slice(0, 10)}`;
}

export function macFor(ipv4Cidr: string | undefined): string {
  const ip = ipv4Cidr?.split('/')[0];
  const bytes = ip && isIPv4(ip) ? [0x02, 0x42, ...ip.split('.').map(Number)] : [0x02, ...randomBytes(5)];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/**
 * Equivalent to: `ip link add ovX master ovbrN mtu M up type veth peer name ethK netns SB address MAC mtu M`,
 * then inside: addresses, `ip link set ethK up`.
 */
export async function joinSandbox(
  pool: NetlinkHandlePool, bridge: number, net: NetworkRecord, mtu: number, ep: EndpointRecord, sb: SandboxRecord, opts: { fresh: boolean; ifname?: string },
): Promise<{ ifname: string; data: OverlayEndpointData }> {
  if (sb.kind === 'host') throw new InvalidArgumentError('sandbox', `sandbox ${sb.name} is the host namespace: it cannot join overlay network ${net.name}`);
  const host = pool.get();
  const sbh = pool.get(sb.netnsPath);
  const ifname = opts.ifname !== undefined ? validateIfname(opts.ifname, 'ifname') : opts.fresh ? 'eth0' : await nextIfname(sbh);
  const data: OverlayEndpointData = { hostIfname: hostIfnameFor(ep.id), mac: ep.macAddress ?? macFor(ep.ipv4) };
  const created = await addVeth(host, {
    name: data.hostIfname, master: bridge, up: true, group: OVERLAY_GROUP, mtu,
    peer: { name: ifname, nsPath: sb.netnsPath, mac: data.mac, mtu },
  });
  try {
    ensureSysctl(`net/ipv6/conf/${data.hostIfname}/disable_ipv6`, '1');
    const index = created.peerIndex ?? (await linkIndex(sbh, ifname));
    const v6 = net.ipv6.length > 0;
    if (sb.kind !== 'named' || v6) runInNetns(sb.netnsPath, () => ensureSysctl(`net/ipv6/conf/${ifname}/disable_ipv6`, v6 ? '0' : '1'));
    if (ep.ipv4) await addAddress(sbh, index, ep.ipv4);
    if (ep.ipv6) await addAddress(sbh, index, ep.ipv6, { nodad: true });
    await setLinkUp(sbh, index);
  } catch (err) {
    await deleteLink(host, data.hostIfname, { ifExists: true });
    throw err;
  }
  return { ifname, data };
}

async function nextIfname(sbh: ReturnType<NetlinkHandlePool['get']>): Promise<string> {
  const taken = new Set((await listLinks(sbh)).map((l) => l.name));
  for (let i = 0; ; i++) if (!taken.has(`eth${i}`)) return `eth${i}`;
}

/** Deletes the host end (the container end goes with it). Idempotent. */
export async function leaveSandbox(pool: NetlinkHandlePool, ep: EndpointRecord): Promise<void> {
  const data = ep.driverData as Partial<OverlayEndpointData> | undefined;
  await deleteLink(pool.get(), data?.hostIfname ?? hostIfnameFor(ep.id), { ifExists: true });
}
