// The host driver (Docker's `host`): the sandbox is the host's own network namespace, so there
// is nothing to create; joining is allowed only for sandboxes that live in the host namespace.
import type { Driver, DriverContext } from '../../src/cnm/driver.js';
import { InvalidArgumentError } from '../../src/errors.js';

export function createHostDriver(_ctx: DriverContext): Driver<Record<string, never>> {
  return {
    name: 'host',
    scope: 'local',
    usesIpam: false,
    parse(input) {
      const keys = Object.keys(input.options);
      if (keys.length > 0) throw new InvalidArgumentError(`options.${keys[0]}`, 'the host driver takes no options');
      if (input.enableIPv6) throw new InvalidArgumentError('ipv6', 'the host driver has no addresses of its own');
      return {};
    },
    async createNetwork() {},
    async deleteNetwork() {},
    async createEndpoint() {
      return {};
    },
    async deleteEndpoint() {},
    async join(net, _config, _ep, sb) {
      if (sb.kind !== 'host')
        throw new InvalidArgumentError('sandbox', `network ${net.name} (host driver) can only be joined by a sandbox in the host namespace; ${sb.name} has its own`);
      return {};
    },
    async leave() {},
  };
}
