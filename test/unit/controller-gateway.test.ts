// A global network's endpoint and the sandbox's cnmkit_gwbridge endpoint, as the store holds them
// while a connect or a disconnect is under way (what a daemon killed at that instant leaves to the
// start-up reconcile, which removes every endpoint not 'ready'): the global endpoint is ready only
// once the gateway endpoint is made, and a disconnect marks both 'deleting' before it removes
// either. Fake drivers (the global one's scope answering from memory), an in-memory store, no root.
import { expect, it } from 'vitest';
import pino from 'pino';
import { openStore } from '../../src/store/index.js';
import { Ipam } from '../../src/ipam/index.js';
import { Controller } from '../../src/controller/controller.js';
import { DriverRegistry, type Driver, type GlobalScope } from '../../src/contract/driver.js';
import type { NetworkRecord } from '../../src/core/model.js';
import { bornInSandbox, FakeKernel } from './fake-kernel.js';

const logger = pino({ level: 'silent' });

/** A promise and its resolve, to hold a driver call until the test has looked at the store. */
function held(): { wait: Promise<void>; release: () => void; reached: Promise<void>; reach: () => void } {
  let release!: () => void;
  let reach!: () => void;
  const wait = new Promise<void>((r) => (release = r));
  const reached = new Promise<void>((r) => (reach = r));
  return { wait, release, reached, reach };
}

const base = {
  createNetwork: async () => undefined, deleteNetwork: async () => undefined, createEndpoint: async () => ({}), deleteEndpoint: async () => undefined, check: async () => [],
};

it('the global endpoint is ready on record only with its gateway endpoint; a disconnect marks both deleting before it removes either', async () => {
  const store = openStore(':memory:');
  const ipam = new Ipam(store, { environment: { linkRoutes: () => [], nameservers: () => [] } });
  const kernel = new FakeKernel();
  const gate = { join: undefined as ReturnType<typeof held> | undefined, leave: undefined as ReturnType<typeof held> | undefined };
  const bridge: Driver = {
    name: 'bridge', scope: 'local', usesIpam: true, parse: () => ({}), ...base,
    async join() {
      gate.join?.reach();
      await gate.join?.wait;
      return bornInSandbox('eth1');
    },
    async leave() { return undefined; },
  };
  const net: NetworkRecord = {
    id: 'a'.repeat(64), name: 'g', driver: 'gfake', scope: 'global', internal: false, enableIPv6: false, options: {}, labels: {}, config: {},
    ipv4: [{ poolId: 'gpool', subnet: '10.60.0.0/24' }], ipv6: [], state: 'ready', created: new Date().toISOString(),
  };
  let next = 1;
  const scope = {
    follow: () => undefined, lookup: async (name: string) => (name === net.name ? { ...net } : undefined), requestAddress: async () => `10.60.0.${++next}/24`, releaseAddress: async () => undefined,
  } as unknown as GlobalScope;
  const global: Driver = {
    name: 'gfake', scope: 'global', usesIpam: true, parse: () => ({}), ...base, global: scope,
    async join() { return bornInSandbox('eth0'); },
    async leave() {
      gate.leave?.reach();
      await gate.leave?.wait;
    },
  };
  const drivers = new DriverRegistry();
  drivers.register(bridge);
  drivers.register(global);
  const controller = new Controller({ store, ipam, drivers, kernel, logger, defaultDriver: 'bridge', predefined: new Set() });
  store.networks.put(net);
  await controller.createSandbox({ name: 's1' });
  const states = () => Object.fromEntries(store.endpoints.list().map((e) => [store.networks.get(e.networkId)!.name, e.state]));

  gate.join = held();
  const connecting = controller.connect('g', 's1');
  await gate.join.reached;
  // The gateway endpoint's join is under way: a crash now must not leave the global endpoint ready without it.
  expect(states()).toEqual({ g: 'creating', cnmkit_gwbridge: 'creating' });
  gate.join.release();
  await connecting;
  expect(states()).toEqual({ g: 'ready', cnmkit_gwbridge: 'ready' });

  gate.leave = held();
  const leaving = controller.disconnect('g', 's1');
  await gate.leave.reached;
  expect(states()).toEqual({ g: 'deleting', cnmkit_gwbridge: 'deleting' });
  gate.leave.release();
  await leaving;
  expect(states()).toEqual({});
});
