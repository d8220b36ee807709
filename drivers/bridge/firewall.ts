// Setup step 4: the network's firewall rules (isolation, ICC, masquerade or SNAT, internal),
// through whichever backend the daemon chose. Replacing is idempotent; removal by owner tag.
import type { FirewallBackend, FirewallNetwork } from '../../src/firewall/index.js';
import type { NetworkRecord } from '../../src/core/model.js';
import type { BridgeConfig } from './config.js';

export function firewallNetwork(net: NetworkRecord, config: BridgeConfig, bridge: string): FirewallNetwork {
  return {
    id: net.id,
    bridge,
    subnets4: net.ipv4.map((s) => s.subnet),
    subnets6: net.ipv6.map((s) => s.subnet),
    icc: config.icc,
    masquerade: config.masquerade,
    internal: config.internal,
    ...(config.hostIPv4 ? { hostIPv4: config.hostIPv4 } : {}),
  };
}

export function installRules(fw: FirewallBackend, net: NetworkRecord, config: BridgeConfig, bridge: string): Promise<void> {
  return fw.addNetwork(firewallNetwork(net, config, bridge));
}

export function removeRules(fw: FirewallBackend, net: NetworkRecord): Promise<void> {
  return fw.removeNetwork(net.id);
}
