// The "none" backend: programs nothing. Isolation, masquerade and published ports then depend
// entirely on whatever the host's own firewall does; input is still validated.
import type { FirewallBackend, FirewallLogger, FirewallNetwork, PortMapping } from './types.js';
import { validateMappings, validateNetwork, validateOwner, validateOwners } from './validate.js';

export class NoneBackend implements FirewallBackend {
  readonly name = 'none';

  constructor(private readonly log: FirewallLogger) {}

  async init(): Promise<void> {
    this.log.warn({ backend: 'none' }, 'firewall: backend "none": no rules are programmed; no isolation, NAT or published ports');
  }

  async addNetwork(net: FirewallNetwork): Promise<void> {
    const valid = validateNetwork(net);
    this.log.debug({ network: valid.id }, 'firewall none: network rules skipped');
  }

  async removeNetwork(id: string): Promise<void> {
    validateOwner(id);
  }

  async addPorts(mappings: PortMapping[]): Promise<void> {
    const valid = validateMappings(mappings);
    if (valid.length > 0) this.log.debug({ owners: [...new Set(valid.map((m) => m.id))] }, 'firewall none: published ports skipped');
  }

  async removePorts(ids: string[]): Promise<void> {
    validateOwners(ids, 'ids');
  }

  async countNetworkRules(net: FirewallNetwork): Promise<{ expected: number; found: number }> {
    validateNetwork(net);
    return { expected: 0, found: 0 };
  }

  async listOwners(): Promise<Set<string>> {
    return new Set();
  }

  async removeOwner(owner: string): Promise<void> {
    validateOwner(owner, 'owner');
  }

  async reconcile(): Promise<string[]> {
    return [];
  }

  async flushAll(): Promise<void> {}
}
