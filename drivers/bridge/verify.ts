// The network's own kernel objects read back: the bridge (present, up, MTU), its gateway
// addresses and its firewall rules by owner tag. Setup step 5 (verify) uses the device and
// address part so that a silent kernel refusal is caught at creation; `check` reports it all.
import { CnmkitError } from '../../src/errors.js';
import type { NetlinkHandle } from '../../src/netlink/index.js';
import type { NetworkRecord } from '../../src/core/model.js';
import type { CheckItem, DriverContext } from '../../src/contract/driver.js';
import { checkAddresses, checkDevice, checkFirewallRules } from '../../src/contract/check.js';
import type { BridgeConfig } from './config.js';
import { gateways } from './addresses.js';
import { firewallNetwork } from './firewall.js';

/** The bridge and its gateway addresses; returns the bridge's ifindex when it is there. */
export async function checkBridgeDevice(h: NetlinkHandle, bridge: string, net: NetworkRecord, config: BridgeConfig, items: CheckItem[]): Promise<number | undefined> {
  const object = `network ${net.name}`;
  const link = await checkDevice(h, bridge, { kind: 'bridge', ...(config.mtu !== undefined ? { mtu: config.mtu } : {}) }, object, items);
  if (link) await checkAddresses(h, link, gateways(net, config).map((g) => g.cidr), object, items);
  return link?.index;
}

/** Everything the network owns in the kernel, besides its endpoints. */
export async function checkBridgeNetwork(ctx: DriverContext, bridge: string, net: NetworkRecord, config: BridgeConfig, items: CheckItem[]): Promise<number | undefined> {
  const index = await checkBridgeDevice(ctx.netlink.get(), bridge, net, config, items);
  await checkFirewallRules(ctx.firewall, firewallNetwork(net, config, bridge), `network ${net.name}`, items);
  return index;
}

/** Setup step 5: throws when the bridge is not an up bridge with its gateway addresses. */
export async function verifyNetwork(h: NetlinkHandle, bridge: string, net: NetworkRecord, config: BridgeConfig): Promise<void> {
  const items: CheckItem[] = [];
  await checkBridgeDevice(h, bridge, net, config, items);
  if (items.length > 0) {
    const what = items.map((i) => `${i.what}: expected ${i.expected}, found ${i.found}`).join('; ');
    throw new CnmkitError('ERR_BRIDGE_VERIFY', 'internal', `bridge ${bridge} after setup: ${what}`);
  }
}
