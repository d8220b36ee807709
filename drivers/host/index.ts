// The host driver (Docker's `host`): the sandbox is the host's own network namespace, so there
// is nothing to create (and nothing to check); joining is allowed only for sandboxes that live in
// the host namespace.
import { parseNoOptions, type Driver, type DriverContext } from '../../src/contract/driver.js';
import { InvalidArgumentError } from '../../src/errors.js';

export function createHostDriver(_ctx: DriverContext): Driver<Record<string, never>> {
  return {
    name: 'host',
    scope: 'local',
    usesIpam: false,
    parse: (input) => parseNoOptions('host', input),
    async createNetwork() {},
    async deleteNetwork() {},
    async createEndpoint() {
      return {};
    },
    async deleteEndpoint() {},
    async join(net, _config, _ep, placement) {
      if (placement.kind !== 'sandbox') throw new InvalidArgumentError('sandbox', `network ${net.name} (host driver) is joined only by sandboxes of cnmkit`);
      const sb = placement.sandbox;
      if (sb.kind !== 'host')
        throw new InvalidArgumentError('sandbox', `network ${net.name} (host driver) can only be joined by a sandbox in the host namespace; ${sb.name} has its own`);
      return {};
    },
    async leave() {},
    async check() {
      return [];
    },
  };
}
