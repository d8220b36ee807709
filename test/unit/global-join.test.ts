// The network a connect joins on a cluster host (src/controller/global.ts), without root: an
// in-memory store and a fake global driver whose watched copy of the cluster can lag the store,
// as the real one does for a network made a moment ago (on this host or another).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { openStore, type Store } from '../../src/store/index.js';
import { DriverRegistry, type Driver, type GlobalNetworkView } from '../../src/contract/driver.js';
import { networkToJoin, recordOf } from '../../src/controller/global.js';
import type { ControllerDeps } from '../../src/controller/types.js';
import { NotFoundError } from '../../src/errors.js';

const view: GlobalNetworkView = {
  id: 'ab'.repeat(32), name: 'mesh', internal: false, enableIPv6: false, options: {}, config: { vni: 4096 },
  ipv4: [{ subnet: '198.19.0.0/24', gateway: '198.19.0.1' }], ipv6: [],
} as unknown as GlobalNetworkView;

/** A global driver: `cluster` is the store's truth, `watched` the lagging copy answered without fresh. */
function fakeOverlay(state: { cluster?: GlobalNetworkView; watched?: GlobalNetworkView }, calls: string[]): Driver {
  return {
    name: 'overlay', scope: 'global', usesIpam: true,
    parse: () => ({}),
    async createNetwork() {},
    async deleteNetwork(net: { name: string }) { calls.push(`deleteNetwork ${net.name}`); },
    async createEndpoint() { return { driverData: {} }; },
    async deleteEndpoint() {},
    async join() { return {}; },
    async leave() {},
    global: {
      ensure: async () => view,
      lookup: async (name: string, opts?: { fresh?: boolean }) => {
        const v = opts?.fresh ? state.cluster : state.watched;
        return v?.name === name ? v : undefined;
      },
      follow: () => undefined,
      list: async () => (state.cluster ? [state.cluster] : []),
      requestAddress: async () => '198.19.0.2/24',
      releaseAddress: async () => undefined,
      describe: async () => ({}),
      remove: async () => undefined,
    },
  } as unknown as Driver;
}

describe('networkToJoin on a cluster host', () => {
  let store: Store;
  let calls: string[];
  let deps: ControllerDeps;
  const state: { cluster?: GlobalNetworkView; watched?: GlobalNetworkView } = {};

  beforeEach(() => {
    store = openStore(':memory:');
    calls = [];
    const drivers = new DriverRegistry();
    drivers.register(fakeOverlay(state, calls));
    deps = { store, drivers, logger: pino({ level: 'silent' }) } as unknown as ControllerDeps;
  });
  afterEach(() => store.close());

  it('keeps a network made here a moment ago that the watched copy does not have yet', async () => {
    store.networks.put(recordOf('overlay', view));
    state.cluster = view;
    state.watched = undefined;
    const net = await networkToJoin(deps, 'mesh');
    expect(net.id).toBe(view.id);
    expect(store.networks.getByName('mesh')?.id).toBe(view.id);
    expect(calls).toEqual([]);
  });

  it('adopts a network made on another host a moment ago that the watched copy does not have yet', async () => {
    state.cluster = view;
    state.watched = undefined;
    const net = await networkToJoin(deps, 'mesh');
    expect(net.id).toBe(view.id);
    expect(store.networks.getByName('mesh')?.id).toBe(view.id);
  });

  it('refuses a network neither the watched copy nor the store has', async () => {
    state.cluster = undefined;
    state.watched = undefined;
    await expect(networkToJoin(deps, 'mesh')).rejects.toBeInstanceOf(NotFoundError);
    expect(store.networks.getByName('mesh')).toBeUndefined();
  });

  it('drops the record (and its devices) of a network the store no longer has', async () => {
    store.networks.put(recordOf('overlay', view));
    state.cluster = undefined;
    state.watched = undefined;
    await expect(networkToJoin(deps, 'mesh')).rejects.toBeInstanceOf(NotFoundError);
    expect(store.networks.getByName('mesh')).toBeUndefined();
    expect(calls).toEqual(['deleteNetwork mesh']);
  });

  it('adopts the network made again under another id', async () => {
    store.networks.put(recordOf('overlay', view));
    const again = { ...view, id: 'cd'.repeat(32) };
    state.cluster = again;
    state.watched = again;
    const net = await networkToJoin(deps, 'mesh');
    expect(net.id).toBe(again.id);
    expect(store.networks.getByName('mesh')?.id).toBe(again.id);
    expect(calls).toEqual(['deleteNetwork mesh']);
  });
});
