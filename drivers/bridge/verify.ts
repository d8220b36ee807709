// Setup step 5: reads back what the earlier steps set (bridge up, gateway addresses present) so a
// silent kernel refusal is caught at creation rather than by the first container.
import { CnmkitError } from '../../src/errors.js';
import { getLink, listAddresses, type NetlinkHandle } from '../../src/netlink/index.js';
import type { NetworkRecord } from '../../src/core/model.js';
import type { BridgeConfig } from './config.js';

export async function verifyNetwork(h: NetlinkHandle, bridge: string, net: NetworkRecord, config: BridgeConfig): Promise<void> {
  const link = await getLink(h, bridge);
  if (link.kind !== 'bridge' || !link.up) throw new CnmkitError('ERR_BRIDGE_VERIFY', 'internal', `bridge ${bridge} is not an up bridge after setup`);
  const have = new Set((await listAddresses(h, { dev: bridge })).map((a) => a.cidr));
  const want = [...(config.inhibitIPv4 ? [] : net.ipv4), ...net.ipv6].map((s) => s.gateway).filter((g): g is string => !!g);
  const missing = want.filter((g) => !have.has(g));
  if (missing.length > 0) throw new CnmkitError('ERR_BRIDGE_VERIFY', 'internal', `bridge ${bridge} lacks gateway address(es) ${missing.join(', ')} after setup`);
}
