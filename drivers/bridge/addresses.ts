// Setup step 2: the gateway addresses on the bridge (IPv4 unless inhibited, IPv6 without DAD),
// kept if already present so that adopting a configured bridge changes nothing, and left there
// when the network goes if the adopted bridge had them before.
import { addAddress, deleteAddress, listAddresses, type LinkRef, type NetlinkHandle } from '../../src/netlink/index.js';
import type { NetworkRecord } from '../../src/core/model.js';
import type { BridgeConfig } from './config.js';

/** The gateway CIDRs the bridge carries: IPv4 unless inhibited, and IPv6. */
export function gateways(net: NetworkRecord, config: BridgeConfig): Array<{ cidr: string; v6: boolean }> {
  const out: Array<{ cidr: string; v6: boolean }> = [];
  if (!config.inhibitIPv4) for (const s of net.ipv4) if (s.gateway) out.push({ cidr: s.gateway, v6: false });
  for (const s of net.ipv6) if (s.gateway) out.push({ cidr: s.gateway, v6: true });
  return out;
}

/**
 * Equivalent to: `ip addr add GW/LEN dev BRIDGE` for each gateway not yet there; bridge by name or
 * ifindex (which saves a lookup per address). A bridge made just now (made) has none: its
 * addresses are not listed.
 */
export async function ensureGatewayAddresses(h: NetlinkHandle, bridge: LinkRef, net: NetworkRecord, config: BridgeConfig, made = false): Promise<void> {
  const present = new Set(made ? [] : (await listAddresses(h, { dev: bridge })).map((a) => a.cidr));
  for (const gw of gateways(net, config)) {
    if (!present.has(gw.cidr)) await addAddress(h, bridge, gw.cidr, { nodad: gw.v6 });
  }
}

/** Removes the gateway addresses (for an adopted bridge that stays), but none it had before. Idempotent. */
export async function removeGatewayAddresses(h: NetlinkHandle, bridge: string, net: NetworkRecord, config: BridgeConfig): Promise<void> {
  const kept = new Set(config.keptAddresses ?? []);
  for (const gw of gateways(net, config)) if (!kept.has(gw.cidr)) await deleteAddress(h, bridge, gw.cidr, { ifExists: true });
}
