// How cluster mode names things to a user (issue 11, from a review): the store and its outage
// (outage.ts: since when, for how long, why, what still works; never a key), and who holds an
// address in the cluster (hosts.ts describeHost, owned.ts holderOf: a host as `cluster hosts`
// shows it, its id alone when it is not registered or cannot be read), and a request's error while
// the store is away (errors.ts asked(): what the user asked for, then the store and why). Pure, with a fake client.
import { describe, expect, it } from 'vitest';
import { Outage, seconds, storeName } from '../../src/cluster/outage.js';
import { describeHost } from '../../src/cluster/hosts.js';
import { holderOf } from '../../src/cluster/owned.js';
import { Keys } from '../../src/cluster/keys.js';
import type { StoreClient } from '../../src/cluster/client.js';
import { asked, ClusterUnavailableError, ConflictError } from '../../src/errors.js';

describe('the cluster store, as a user reads it', () => {
  it('is named as --cluster-store names it', () => {
    expect(storeName(['http://198.19.255.254:2379'])).toBe('etcd://198.19.255.254:2379');
    expect(storeName(['https://a:2379', 'https://[fd00::1]:2379'])).toBe('etcd://a:2379,[fd00::1]:2379');
    expect(storeName(['unix:///run/etcd.sock'])).toBe('unix:///run/etcd.sock');
  });

  it('while away: since the first failure (kept across later ones), for how long, why and what still works; over when it answers', () => {
    const o = new Outage('etcd://198.19.255.254:2379');
    expect(o.report(0)).toEqual({ store: 'etcd://198.19.255.254:2379' });
    const t0 = Date.parse('2026-12-07T12:00:00.000Z');
    o.set('connect ECONNREFUSED 198.19.255.254:2379', t0);
    o.set('no answer from etcd within 1500 ms', t0 + 5000);
    const r = o.report(t0 + 75_400);
    expect(r).toMatchObject({ store: 'etcd://198.19.255.254:2379', unavailableSince: '2026-12-07T12:00:00.000Z', unavailableFor: 75 });
    expect(r.error).toBe('cluster store unavailable since 2026-12-07T12:00:00.000Z (1 min 15 s): etcd://198.19.255.254:2379 does not answer (no answer from etcd within 1500 ms). '
      + 'Existing endpoints keep forwarding (their FDB and neighbour entries are static) and local networks keep working; '
      + 'creating or connecting to overlay networks fails until it answers, and disconnects made meanwhile are written then');
    expect(o.reason()).toBe('etcd://198.19.255.254:2379 does not answer (no answer from etcd within 1500 ms)');
    // One wording: check says the outage as cluster status's error begins.
    expect(r.outage).toBe('cluster store unavailable since 2026-12-07T12:00:00.000Z (1 min 15 s): etcd://198.19.255.254:2379 does not answer (no answer from etcd within 1500 ms)');
    expect(r.error!.startsWith(`${r.outage!}. Existing endpoints`)).toBe(true);
    o.set(undefined);
    expect(o.report()).toEqual({ store: 'etcd://198.19.255.254:2379' });
    expect(o.reason()).toBeUndefined();
    expect([seconds(0), seconds(59_999), seconds(60_000), seconds(125_000)]).toEqual(['0 s', '59 s', '1 min', '2 min 5 s']);
  });
});

describe('an error of a request while the store does not answer', () => {
  it('says first what the user asked for, once, then the store and why; other errors pass as they are', async () => {
    const down = new ClusterUnavailableError('etcd://198.19.255.254:2379 does not answer (connect ECONNREFUSED 198.19.255.254:2379)');
    expect(down.message).toBe('cluster store unavailable: etcd://198.19.255.254:2379 does not answer (connect ECONNREFUSED 198.19.255.254:2379)');
    const err = await asked('connect sandbox s1 to network ov', () => asked('an inner step', () => Promise.reject(down))).catch((e: unknown) => e as ClusterUnavailableError);
    expect(err).toBeInstanceOf(ClusterUnavailableError);
    expect(err).toMatchObject({ code: 'ERR_CLUSTER_UNAVAILABLE', errorClass: 'unavailable', reason: down.reason });
    expect(err.message).toBe('an inner step: cluster store unavailable: etcd://198.19.255.254:2379 does not answer (connect ECONNREFUSED 198.19.255.254:2379)');
    const other = new ConflictError('taken');
    await expect(asked('connect sandbox s1 to network ov', () => Promise.reject(other))).rejects.toBe(other);
    expect(await asked('x', async () => 5)).toBe(5);
  });
});

describe('a host, as an error names it', () => {
  const keys = new Keys('/cnmkit');
  const record = { id: 'aaaa000011112222', hostname: 'alpha', vtep: '198.19.255.1', pid: 1, started: '', version: '', localSubnets: [] };
  const client = {
    get: async (key: string) => {
      if (key === keys.host('bbbb000011112222')) throw new ClusterUnavailableError('test');
      return key === keys.host(record.id) ? { revision: 1, kv: { key, value: Buffer.from(JSON.stringify(record)) } } : { revision: 1 };
    },
  } as unknown as StoreClient;
  const describeIt = (id: string) => describeHost(client, keys, id);

  it('registered: name, VTEP and id; not registered: the id, said; unreadable: the id alone', async () => {
    expect(await describeIt(record.id)).toBe('host alpha (198.19.255.1, id aaaa000011112222)');
    expect(await describeIt('cccc000011112222')).toBe('host id cccc000011112222 (not registered)');
    expect(await describeIt('bbbb000011112222')).toBe('host id bbbb000011112222');
  });

  it('names an address\'s holder by its kind: an endpoint (short id), the Docker engine\'s, a spare, a network\'s gateway', async () => {
    const host = record.id;
    expect(await holderOf({ kind: 'endpoint', owner: `endpoint:${'e'.repeat(64)}`, host }, describeIt)).toBe('endpoint eeeeeeeeeeee on host alpha (198.19.255.1, id aaaa000011112222)');
    expect(await holderOf({ kind: 'endpoint', owner: `docker:${host}`, host }, describeIt)).toBe('an endpoint of the Docker engine on host alpha (198.19.255.1, id aaaa000011112222)');
    expect(await holderOf({ kind: 'spare', owner: `spare:${host}`, host }, describeIt)).toBe('a spare address of host alpha (198.19.255.1, id aaaa000011112222)');
    expect(await holderOf({ kind: 'gateway', owner: 'mesh', host }, describeIt)).toBe('the gateway address of mesh');
  });
});
