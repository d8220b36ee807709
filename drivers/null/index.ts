// The null driver (Docker's `none`): a sandbox on it keeps only its loopback interface.
// Its networks have no addresses and no kernel objects; every operation is a no-op by design.
import type { Driver, DriverContext } from '../../src/cnm/driver.js';
import { InvalidArgumentError } from '../../src/errors.js';

export function createNullDriver(_ctx: DriverContext): Driver<Record<string, never>> {
  return {
    name: 'null',
    scope: 'local',
    usesIpam: false,
    parse(input) {
      const keys = Object.keys(input.options);
      if (keys.length > 0) throw new InvalidArgumentError(`options.${keys[0]}`, 'the null driver takes no options');
      if (input.enableIPv6) throw new InvalidArgumentError('ipv6', 'the null driver has no addresses');
      return {};
    },
    async createNetwork() {},
    async deleteNetwork() {},
    async createEndpoint() {
      return {};
    },
    async deleteEndpoint() {},
    async join() {
      return {};
    },
    async leave() {},
  };
}
