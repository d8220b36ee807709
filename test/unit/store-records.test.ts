import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/index.js';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../../src/errors.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../../src/core/model.js';

const created = '2024-01-01T00:00:00.000Z';

function network(id: string, name = id, extra: Partial<NetworkRecord> = {}): NetworkRecord {
  return {
    id,
    name,
    driver: 'bridge',
    scope: 'local',
    internal: false,
    enableIPv6: true,
    options: { 'com.docker.network.bridge.name': `br-${id}` },
    labels: { team: 'lab' },
    config: { bridge: `br-${id}`, mtu: 1500, nested: { icc: true } },
    ipv4: [{ poolId: 'LocalDefault/172.18.0.0/16', subnet: '172.18.0.0/16', gateway: '172.18.0.1/16' }],
    ipv6: [],
    state: 'ready',
    created,
    ...extra,
  };
}

function sandbox(id: string, name = id): SandboxRecord {
  return { id, name, kind: 'named', netnsPath: `/run/netns/${name}`, labels: {}, state: 'ready', created };
}

function endpoint(id: string, networkId: string, name = id, extra: Partial<EndpointRecord> = {}): EndpointRecord {
  return { id, networkId, name, ports: [{ proto: 'tcp', port: 80 }], driverData: { hostIfname: `veth${id}` }, state: 'ready', created, ...extra };
}

describe('store records', () => {
  let store: Store;
  beforeEach(() => {
    store = openStore(':memory:');
  });
  afterEach(() => store.close());

  it('round-trips every record kind, JSON fields and optional fields included', () => {
    const n = network('n1', 'front', { dockerId: 'a'.repeat(64) });
    const s = sandbox('s1', 'web');
    const e = endpoint('e1', 'n1', 'web-eth0', { sandboxId: 's1', ifname: 'eth0', macAddress: '02:42:ac:12:00:02', ipv4: '172.18.0.2/16' });
    store.tx(() => {
      store.networks.put(n);
      store.sandboxes.put(s);
      store.endpoints.put(e);
    });
    expect(store.networks.get('n1')).toEqual(n);
    expect(store.sandboxes.get('s1')).toEqual(s);
    expect(store.endpoints.get('e1')).toEqual(e);
    const bare = endpoint('e2', 'n1');
    store.endpoints.put(bare);
    expect(store.endpoints.get('e2')).toEqual(bare);
    expect(Object.keys(store.endpoints.get('e2')!)).not.toContain('sandboxId');
  });

  it('finds records by name and by Docker id, and lists them', () => {
    store.networks.put(network('n1', 'front', { dockerId: 'd1' }));
    store.networks.put(network('n2', 'back'));
    store.endpoints.put(endpoint('e1', 'n1', 'web', { dockerId: 'de1' }));
    expect(store.networks.getByName('back')?.id).toBe('n2');
    expect(store.networks.getByName('nope')).toBeUndefined();
    expect(store.networks.getByDockerId('d1')?.id).toBe('n1');
    expect(store.endpoints.getByName('n1', 'web')?.id).toBe('e1');
    expect(store.endpoints.getByDockerId('de1')?.id).toBe('e1');
    expect(store.networks.list().map((n) => n.id)).toEqual(['n1', 'n2']);
  });

  it('lists records made in the same millisecond in the order they were made, also after one is put again', () => {
    // Ids that sort the other way round (the predefined networks' are random).
    store.networks.put(network('zz', 'none', { state: 'creating' }));
    store.networks.put(network('zz', 'none'));
    store.networks.put(network('aa', 'host'));
    expect(store.networks.list().map((n) => n.name)).toEqual(['none', 'host']);
    expect(store.networks.listWhere('state', 'ready').map((n) => n.name)).toEqual(['none', 'host']);
  });

  it('updates a record in place when put again with the same id', () => {
    store.networks.put(network('n1', 'front'));
    store.networks.put(network('n1', 'renamed', { state: 'deleting' }));
    expect(store.networks.list()).toHaveLength(1);
    expect(store.networks.get('n1')).toMatchObject({ name: 'renamed', state: 'deleting' });
    expect(store.networks.getByName('front')).toBeUndefined();
  });

  it('keeps network and sandbox names unique and names the holder', () => {
    store.networks.put(network('n1', 'front'));
    expect(() => store.networks.put(network('n2', 'front'))).toThrow(ConflictError);
    expect(() => store.networks.put(network('n2', 'front'))).toThrow(/network name "front" is already used by network n1/);
    store.sandboxes.put(sandbox('s1', 'web'));
    expect(() => store.sandboxes.put(sandbox('s2', 'web'))).toThrow(/already used by sandbox s1/);
    expect(store.networks.get('n2')).toBeUndefined();
  });

  it('keeps endpoint names unique per network only', () => {
    store.networks.put(network('n1'));
    store.networks.put(network('n2'));
    store.endpoints.put(endpoint('e1', 'n1', 'web'));
    store.endpoints.put(endpoint('e2', 'n2', 'web'));
    expect(() => store.endpoints.put(endpoint('e3', 'n1', 'web'))).toThrow(/endpoint name "web" is already used by endpoint e1/);
  });

  it('refuses an endpoint on a network or sandbox that does not exist', () => {
    expect(() => store.endpoints.put(endpoint('e1', 'missing'))).toThrow(NotFoundError);
    store.networks.put(network('n1'));
    expect(() => store.endpoints.put(endpoint('e1', 'n1', 'e1', { sandboxId: 'gone' }))).toThrow(/sandbox "gone" not found/);
    expect(store.endpoints.list()).toEqual([]);
  });

  it('deletes idempotently, and refuses to delete what endpoints still use', () => {
    store.networks.put(network('n1'));
    store.sandboxes.put(sandbox('s1'));
    store.endpoints.put(endpoint('e1', 'n1', 'e1', { sandboxId: 's1' }));
    expect(() => store.networks.delete('n1')).toThrow(/network n1 cannot be deleted: it still has 1 endpoint/);
    expect(() => store.sandboxes.delete('s1')).toThrow(/1 endpoint\(s\) are still joined/);
    expect(store.endpoints.delete('e1')).toBe(true);
    expect(store.endpoints.delete('e1')).toBe(false);
    expect(store.networks.delete('n1')).toBe(true);
    expect(store.networks.delete('n1')).toBe(false);
    expect(store.sandboxes.delete('s1')).toBe(true);
    expect(store.networks.get('n1')).toBeUndefined();
  });

  it('sets states and lists what a crash left half-done, for reconcile', () => {
    store.networks.put(network('n1', 'a', { state: 'creating' }));
    store.networks.put(network('n2', 'b'));
    store.sandboxes.put({ ...sandbox('s1'), state: 'deleting' });
    store.endpoints.put(endpoint('e1', 'n2', 'x', { state: 'creating' }));
    store.setState('network', 'n2', 'deleting');
    const creating = store.listByState('creating');
    expect(creating.networks.map((n) => n.id)).toEqual(['n1']);
    expect(creating.endpoints.map((e) => e.id)).toEqual(['e1']);
    expect(creating.sandboxes).toEqual([]);
    const deleting = store.listByState('deleting');
    expect(deleting.networks.map((n) => n.id)).toEqual(['n2']);
    expect(deleting.sandboxes.map((s) => s.id)).toEqual(['s1']);
    expect(() => store.setState('endpoint', 'nope', 'ready')).toThrow(NotFoundError);
    expect(() => store.setState('network', 'n1', 'gone' as never)).toThrow(/^state: must be one of creating, ready, deleting/);
  });

  it.each([
    ['id', { id: '' }],
    ['name', { name: '' }],
    ['state', { state: 'up' }],
    ['scope', { scope: 'site' }],
    ['labels', { labels: { n: 1 } }],
    ['ipv4', { ipv4: 'x' }],
  ])('refuses a network with a bad %s, naming the field, and changes nothing', (field, bad) => {
    store.networks.put(network('n1', 'keep'));
    const err = (() => {
      try {
        store.networks.put(network('n1', 'changed', bad as Partial<NetworkRecord>));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).field).toBe(field);
    expect(store.networks.get('n1')?.name).toBe('keep');
  });
});

describe('store transactions', () => {
  let store: Store;
  beforeEach(() => {
    store = openStore(':memory:');
  });
  afterEach(() => store.close());

  it('rolls back every write of a transaction that throws', () => {
    expect(() =>
      store.tx(() => {
        store.networks.put(network('n1', 'a'));
        store.sandboxes.put(sandbox('s1'));
        store.networks.put(network('n2', 'a'));
      }),
    ).toThrow(ConflictError);
    expect(store.networks.list()).toEqual([]);
    expect(store.sandboxes.list()).toEqual([]);
  });

  it('nests as savepoints: an inner failure caught by the caller keeps the outer writes', () => {
    store.tx(() => {
      store.networks.put(network('n1'));
      expect(() =>
        store.tx(() => {
          store.networks.put(network('n2'));
          throw new Error('inner');
        }),
      ).toThrow('inner');
    });
    expect(store.networks.list().map((n) => n.id)).toEqual(['n1']);
  });

  it('runs rollback hooks only when the transaction rolls back, including an enclosing one', () => {
    const undone: string[] = [];
    store.tx(() => store.onRollback(() => undone.push('committed')));
    expect(() =>
      store.tx(() => {
        store.tx(() => store.onRollback(() => undone.push('inner')));
        throw new Error('outer fails');
      }),
    ).toThrow('outer fails');
    expect(undone).toEqual(['inner']);
    expect(() => store.onRollback(() => undefined)).toThrow(/outside a transaction/);
  });

  it('refuses an async transaction function, and writes nothing', () => {
    expect(() =>
      store.tx((async () => {
        store.networks.put(network('n1'));
      }) as never),
    ).toThrow(/cannot return a promise/);
    expect(store.networks.list()).toEqual([]);
  });
});

describe('store on disk', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-store-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('creates the state directory and a WAL database that keeps records across reopen', () => {
    const stateDir = path.join(dir, 'nested', 'state');
    const store = openStore(stateDir);
    // The switch to WAL runs unsynced (a new file); the store then commits with synchronous=NORMAL (1).
    expect((store as unknown as { db: Database.Database }).db.pragma('synchronous', { simple: true })).toBe(1);
    store.networks.put(network('n1', 'front'));
    store.close();
    expect(fs.statSync(stateDir).mode & 0o777).toBe(0o700);
    const raw = new Database(path.join(stateDir, 'state.db'));
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();
    const again = openStore(stateDir);
    expect(again.networks.getByName('front')?.id).toBe('n1');
    again.close();
  });

  it('sees other connections commit through dataVersion', () => {
    const a = openStore(dir);
    const b = openStore(dir);
    const before = a.dataVersion();
    a.networks.put(network('n1'));
    expect(a.dataVersion()).toBe(before);
    b.networks.put(network('n2'));
    expect(a.dataVersion()).not.toBe(before);
    expect(a.networks.list()).toHaveLength(2);
    a.close();
    b.close();
  });
});
