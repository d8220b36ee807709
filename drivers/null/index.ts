// The null driver (Docker's `none`): a sandbox on it keeps only its loopback interface.
// Its networks have no addresses and no kernel objects; every operation (check included) is a
// no-op by design.
import { parseNoOptions, type Driver, type DriverContext } from '../../src/contract/driver.js';

export function createNullDriver(_ctx: DriverContext): Driver<Record<string, never>> {
  return {
    name: 'null',
    scope: 'local',
    usesIpam: false,
    parse: (input) => parseNoOptions('null', input),
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
    async check() {
      return [];
    },
  };
}
