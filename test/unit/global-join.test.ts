// The network a connect joins on a cluster host (src/controller/global.ts), without root: an
// in-memory store and a fake global driver whose watched copy of the cluster can lag the store,
// as the real one does for a network made a moment ago (on this host or another); and a network
// found by id or id prefix among this host's records and the cluster's (findNetwork); what inspect
// answers (networkOrGlobal) and which name a local network may not take (globalNamed) while the copy
// lags; a connect whose network left the cluster while it ran says the network is not found.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { openStore, type Store } from '../../src/store/index.js';
import { DriverRegistry, type Driver, type GlobalNetworkView } from '../../src/contract/driver.js';
import { findNetwork, globalNamed, joinNetwork, networkOrGlobal, networkToJoin, recordOf } from '../../src/controller/global.js';
import type { ControllerDeps } from '../../src/controller/types.js';
import { ConflictError, NotFoundError } from '../../src/errors.js';

const view: GlobalNetworkView = {
  id: 'ab'.repeat(32), name: 'mesh', internal: false, enableIPv6: false, options: {}, labels: { team: 'blue' }, created: '2026-01-02T03:04:05.000Z', config: { vni: 4096 },
  ipv4: [{ subnet: '198.19.0.0/24', gateway: '198.19.0.1' }], ipv6: [],
} as unknown as GlobalNetworkView;

interface FakeState { cluster?: GlobalNetworkView; watched?: GlobalNetworkView; listed?: GlobalNetworkView[]; down?: boolean }

/** A global driver: `cluster` is the store's truth, `watched` the lagging copy answered without fresh; `listed` what list() gives (default: cluster); `down`: the store does not answer. */
function fakeOverlay(state: FakeState, calls: string[]): Driver {
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
        if (state.down) throw new Error('cluster store unavailable');
        const v = opts?.fresh ? state.cluster : state.watched;
        return v?.name === name ? v : undefined;
      },
      follow: () => undefined,
      list: async () => {
        if (state.down) throw new Error('cluster store unavailable');
        return state.listed ?? (state.cluster ? [state.cluster] : []);
      },
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
  const state: FakeState = {};

  beforeEach(() => {
    store = openStore(':memory:');
    calls = [];
    const drivers = new DriverRegistry();
    drivers.register(fakeOverlay(state, calls));
    deps = { store, drivers, logger: pino({ level: 'silent' }) } as unknown as ControllerDeps;
  });
  afterEach(() => {
    store.close();
    for (const k of Object.keys(state) as (keyof FakeState)[]) delete state[k];
  });

  it('keeps a network made here a moment ago that the watched copy does not have yet', async () => {
    store.networks.put(recordOf('overlay', view));
    state.cluster = view;
    state.watched = undefined;
    const { net } = await networkToJoin(deps, 'mesh');
    expect(net.id).toBe(view.id);
    expect(store.networks.getByName('mesh')?.id).toBe(view.id);
    expect(calls).toEqual([]);
  });

  it('adopts a network made on another host a moment ago that the watched copy does not have yet', async () => {
    state.cluster = view;
    state.watched = undefined;
    const { net } = await networkToJoin(deps, 'mesh');
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

  it('a failed connect drops the record it adopted, and keeps one the host had before', async () => {
    state.cluster = view;
    state.watched = view;
    const failing = async (): Promise<never> => {
      throw new Error('EEXIST');
    };
    await expect(joinNetwork(deps, 'mesh', failing)).rejects.toThrow('EEXIST');
    expect(store.networks.getByName('mesh')).toBeUndefined();
    store.networks.put(recordOf('overlay', view));
    await expect(joinNetwork(deps, 'mesh', failing)).rejects.toThrow('EEXIST');
    expect(store.networks.getByName('mesh')?.id).toBe(view.id);
    expect(await joinNetwork(deps, 'mesh', async (net) => net.id)).toBe(view.id);
    expect(calls).toEqual([]);
  });

  it('a connect that finds the network\'s pool gone says the network is not found when the cluster no longer has it (a rm on another host while it ran); another not-found passes unchanged', async () => {
    state.cluster = view;
    state.watched = view;
    const poolGone = (): Promise<never> => {
      state.cluster = undefined;
      return Promise.reject(new NotFoundError('pool', '198.19.0.0/24'));
    };
    await expect(joinNetwork(deps, 'mesh', poolGone)).rejects.toThrow('network "mesh" not found');
    state.cluster = view;
    await expect(joinNetwork(deps, 'mesh', () => Promise.reject(new NotFoundError('pool', '198.19.0.0/24')))).rejects.toThrow('pool "198.19.0.0/24" not found');
    store.networks.put(recordOf('overlay', view));
    state.cluster = { ...view, id: 'cd'.repeat(32) };
    await expect(joinNetwork(deps, 'mesh', () => Promise.reject(new NotFoundError('pool', '198.19.0.0/24')))).rejects.toThrow('network "mesh" not found');
  });

  it('adopts the network made again under another id', async () => {
    store.networks.put(recordOf('overlay', view));
    const again = { ...view, id: 'cd'.repeat(32) };
    state.cluster = again;
    state.watched = again;
    const { net } = await networkToJoin(deps, 'mesh');
    expect(net.id).toBe(again.id);
    expect(store.networks.getByName('mesh')?.id).toBe(again.id);
    expect(calls).toEqual(['deleteNetwork mesh']);
  });

  it('adopts a network this host has no record of, named by full id or unique id prefix, with the cluster\'s labels and creation time', async () => {
    state.cluster = view;
    state.watched = view;
    expect(await findNetwork(deps, view.id)).toMatchObject({ view: { id: view.id } });
    const { net, adopted } = await networkToJoin(deps, 'abab');
    expect(adopted).toBe(true);
    expect(net).toMatchObject({ id: view.id, name: 'mesh', labels: { team: 'blue' }, created: view.created });
    expect(store.networks.get(view.id)?.labels).toEqual({ team: 'blue' });
  });

  it('refuses an id prefix that more than one network starts with, here or in the cluster, naming each', async () => {
    store.networks.put(recordOf('overlay', { ...view, id: `abcd${'0'.repeat(60)}`, name: 'lan' }));
    const other = { ...view, id: `abce${'1'.repeat(60)}`, name: 'mesh2' };
    state.cluster = view;
    state.watched = view;
    state.listed = [view, other];
    const err = await findNetwork(deps, 'ab').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toBe(
      `network "ab" is ambiguous: more than one id starts with it: lan (abcd00000000), mesh (${view.id.slice(0, 12)}, in the cluster), mesh2 (abce11111111, in the cluster)`,
    );
    expect(await findNetwork(deps, 'abcd')).toMatchObject({ local: { name: 'lan' } });
    expect(await findNetwork(deps, 'abce')).toMatchObject({ view: { name: 'mesh2' } });
    expect(await findNetwork(deps, 'abf')).toBeUndefined();
    // A name is found before an id prefix, as docker does.
    expect(await findNetwork(deps, 'mesh')).toMatchObject({ view: { id: view.id } });
  });

  it('finds a record here by unique id prefix while the cluster store does not answer; a cluster-only prefix fails with the store\'s error', async () => {
    store.networks.put(recordOf('overlay', { ...view, id: `cdef${'0'.repeat(60)}`, name: 'lan' }));
    state.down = true;
    expect(await findNetwork(deps, 'cde')).toMatchObject({ local: { name: 'lan' } });
    expect(await findNetwork(deps, 'lan')).toMatchObject({ local: { name: 'lan' } });
    await expect(findNetwork(deps, 'abab')).rejects.toThrow('cluster store unavailable');
  });

  it('inspect answers from the store, not the lagging copy: a network made on another host a moment ago is found, one removed a moment ago is not', async () => {
    state.cluster = view;
    state.watched = undefined;
    expect(await networkOrGlobal(deps, 'mesh')).toMatchObject({ id: view.id, name: 'mesh', scope: 'global' });
    state.cluster = undefined;
    state.watched = view;
    await expect(networkOrGlobal(deps, 'mesh')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('a local network may not take the name of a cluster network the lagging copy does not have yet; none is assumed while the store does not answer', async () => {
    state.cluster = view;
    state.watched = undefined;
    expect(await globalNamed(deps, 'mesh')).toMatchObject({ view: { id: view.id } });
    expect(await globalNamed(deps, 'lan')).toBeUndefined();
    state.down = true;
    expect(await globalNamed(deps, 'mesh')).toBeUndefined();
  });
});
