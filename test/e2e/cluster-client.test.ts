// The etcd client's JSON mapping against a real etcd (Debian's, in a namespace of its own, over
// its unix socket): every compare target and result, prefix compares, put/get/delete ops in a
// transaction, keys only, count, a key past ASCII, lease IDs beyond 2^53 as strings, etcd's own
// errors (lease not found, compacted revision) as EtcdError with etcd's message, an unknown
// lease's TTL and keep-alive, and a watch stream's events (a put has no type, a delete is DELETE).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { EtcdError, keyRange, type StoreClient } from '../../src/cluster/client.js';
import { LeaseKeeper } from '../../src/cluster/lease.js';
import { standaloneEtcd, waitFor, type EtcdServer } from '../helpers/cluster.js';
import { describeRoot } from '../helpers/root.js';

let etcd: EtcdServer;
let destroy: () => Promise<void>;
let c: StoreClient;

describeRoot('etcd client on a real etcd (JSON gateway)', () => {
  beforeAll(async () => {
    ({ etcd, destroy } = await standaloneEtcd());
    c = etcd.client();
  });

  afterAll(async () => {
    c?.close();
    await destroy?.();
  });

  it('compares: each target and result holds or not as etcd decides; a prefix compare covers every key under it', async () => {
    const put = await c.txn('put', [], [{ put: '/cmp/a', value: 1 }, { put: '/cmp/b', value: 2 }]);
    const { kv } = await c.get('/cmp/a');
    expect(kv).toMatchObject({ key: '/cmp/a', version: 1, createRevision: put.revision, modRevision: put.revision, lease: '0' });
    const holds = async (cmp: Parameters<StoreClient['txn']>[1][number]) => (await c.txn('cmp', [cmp], [])).succeeded;
    expect(await holds({ key: '/cmp/a', target: 'version', op: '=', value: 1 })).toBe(true);
    expect(await holds({ key: '/cmp/a', target: 'version', op: '!=', value: 1 })).toBe(false);
    expect(await holds({ key: '/cmp/a', target: 'mod', op: '<', value: put.revision + 1 })).toBe(true);
    expect(await holds({ key: '/cmp/a', target: 'mod', op: '>', value: put.revision })).toBe(false);
    expect(await holds({ key: '/cmp/a', target: 'create', op: '=', value: put.revision })).toBe(true);
    expect(await holds({ key: '/cmp/a', target: 'lease', op: '=', value: '0' })).toBe(true);
    expect(await holds({ key: '/cmp/none', target: 'version', op: '=', value: 0 })).toBe(true);
    expect(await holds({ key: '/cmp/', prefix: true, target: 'version', op: '>', value: 0 })).toBe(true);
    expect(await holds({ key: '/cmp/', prefix: true, target: 'version', op: '=', value: 1 })).toBe(true);
    await c.txn('bump', [], [{ put: '/cmp/b', value: 3 }]);
    expect(await holds({ key: '/cmp/', prefix: true, target: 'version', op: '=', value: 1 })).toBe(false);
  });

  it('ops: the failure branch runs when a compare fails; gets read in order, keys only without values; delete of a prefix; count', async () => {
    const r = await c.txn('ops', [{ key: '/ops/x', target: 'version', op: '>', value: 0 }], [], [
      { put: '/ops/1', value: { n: 1 } }, { put: '/ops/2', value: 'two' }, { get: '/ops/', prefix: true }, { get: '/ops/', prefix: true, keysOnly: true }, { get: '/ops/none' },
    ]);
    expect(r.succeeded).toBe(false);
    expect(r.reads.map((kvs) => kvs.map((kv) => [kv.key, kv.value.toString()]))).toEqual([
      [['/ops/1', '{"n":1}'], ['/ops/2', '"two"']], [['/ops/1', ''], ['/ops/2', '']], [],
    ]);
    expect(await c.count('/ops/')).toBe(2);
    await c.txn('del', [], [{ del: '/ops/', prefix: true }]);
    expect(await c.count('/ops/')).toBe(0);
    expect(await c.range('/ops/')).toMatchObject({ kvs: [] });
  });

  it('a key and value past ASCII read back the same', async () => {
    await c.txn('utf8', [], [{ put: '/utf8/é☃', value: 'ü' }]);
    expect((await c.range('/utf8/')).kvs.map((kv) => [kv.key, JSON.parse(kv.value.toString())])).toEqual([['/utf8/é☃', 'ü']]);
  });

  it('leases: an ID past 2^53 goes and comes back exact, puts on it, its TTL, keep-alive and revoke; an unknown lease is lost and a put on it is etcd\'s error', async () => {
    const id = await c.leaseGrant(30);
    expect(id).toMatch(/^[0-9]+$/);
    expect(BigInt(id)).toBeGreaterThan(2n ** 53n);
    await c.txn('on lease', [], [{ put: '/lease/k', value: 1, lease: id }]);
    expect((await c.get('/lease/k')).kv!.lease).toBe(id);
    expect((await c.txn('lease cmp', [{ key: '/lease/k', target: 'lease', op: '=', value: id }], [])).succeeded).toBe(true);
    const { ttl, grantedTtl } = await c.leaseTtl(id);
    expect(grantedTtl).toBe(30);
    expect(ttl).toBeGreaterThan(25);
    const keeper = new LeaseKeeper(c, 30);
    expect(await keeper.keepAlive(id)).toMatchObject({ ok: true, ttl: 30 });
    await c.leaseRevoke(id);
    expect((await c.get('/lease/k')).kv).toBeUndefined();
    expect(await keeper.keepAlive(id)).toEqual({ ok: false, lost: true });
    expect((await c.leaseTtl(id)).ttl).toBe(-1);
    const err = await c.txn('put on a revoked lease', [], [{ put: '/lease/k', value: 1, lease: id }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EtcdError);
    expect(err).toMatchObject({ code: 5, message: 'etcdserver: requested lease not found' });
    await expect(c.leaseRevoke(id)).rejects.toMatchObject({ name: 'EtcdError', code: 5 });
  });

  it('compaction: a compacted revision is etcd\'s error; a watch from it is canceled with the compact revision', async () => {
    const { revision } = await c.txn('put', [], [{ put: '/cp/a', value: 1 }]);
    await c.txn('put', [], [{ put: '/cp/a', value: 2 }]);
    await c.compact(revision + 1);
    await expect(c.compact(revision)).rejects.toMatchObject({ name: 'EtcdError', code: 11, message: 'etcdserver: mvcc: required revision has been compacted' });
    const results: Record<string, unknown>[] = [];
    const s = await c.stream('/v3/watch', { create_request: { ...keyRange('/cp/', true), start_revision: String(revision) } }, { onResult: (r) => results.push(r), onEnd: () => undefined });
    await waitFor('the cancel', async () => (results.some((r) => r.canceled) ? true : undefined), 2000);
    s.close();
    expect(results.find((r) => r.canceled)).toMatchObject({ canceled: true, compact_revision: String(revision + 1) });
  });

  it('watch: created first, then a put (no type) and a delete (DELETE) with base64 keys and values', async () => {
    const results: Record<string, unknown>[] = [];
    const s = await c.stream('/v3/watch', { create_request: keyRange('/w/', true) }, { onResult: (r) => results.push(r), onEnd: () => undefined });
    await c.txn('put', [], [{ put: '/w/a', value: 1 }]);
    await c.txn('del', [], [{ del: '/w/a' }]);
    await waitFor('two events', async () => (results.flatMap((r) => (r.events as unknown[] | undefined) ?? []).length === 2 ? true : undefined), 2000);
    s.close();
    expect(results[0]).toMatchObject({ created: true });
    const events = results.flatMap((r) => (r.events as { type?: string; kv: { key: string; value?: string } }[] | undefined) ?? []);
    expect(events.map((e) => [e.type ?? 'PUT', Buffer.from(e.kv.key, 'base64').toString(), Buffer.from(e.kv.value ?? '', 'base64').toString()]))
      .toEqual([['PUT', '/w/a', '1'], ['DELETE', '/w/a', '']]);
  });
});
