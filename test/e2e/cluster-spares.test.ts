// Spare addresses against a real etcd (hosts are Cluster objects in this process, checked by
// reading etcd directly): connects from hosts' stocks (published after the connect answers) race
// connects claiming in etcd (a host without stock) and never get the same address; spare keys sit
// on their host's lease and are not endpoints; a small pool gets no stock; a host that drops its
// stock deletes its keys, and one that restarts deletes the spares its previous run left; an endpoint
// of the host asking for one of its spares by address gets it, as does another host's (the Docker
// engine's RequestAddress with an address) once the holder gave it up, unless the holder handed it
// out (refused within the bound); an idle host gives its stock back
// when the pool gets tight, so that another host can fill the pool to its last address; a refill
// that loses its race to another host's spares reads back only the keys it chose, and stocks others;
// a network that appears is read ahead by the other hosts, with a stock of spares each (their first
// address needs no round trip), given back when unused for 2 s.
import os from 'node:os';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { networksWatched, SimCluster, storedPeers, waitFor } from '../helpers/cluster.js';
import type { Cluster } from '../../src/cluster/types.js';
import type { Op, StoreClient } from '../../src/cluster/client.js';

const spec = (name: string, extra: Record<string, unknown> = {}) => ({ name, driver: 'overlay', internal: false, enableIPv6: false, options: {}, ipv4: [], ipv6: [], ...extra });
const mac = (ip: string) => `02:42:${ip.split('/')[0]!.split('.').map((b) => Number(b).toString(16).padStart(2, '0')).join(':')}`;

interface Kv { key: string; value: { owner: string; kind: string; host: string }; lease: string; createRevision: number }

describeRoot('spare addresses on a real etcd', () => {
  let sim: SimCluster;
  let direct: StoreClient;

  beforeAll(async () => {
    sim = await SimCluster.create({ hosts: 0, leaseTtl: 5 });
    direct = sim.etcd.client();
  });
  afterAll(async () => {
    direct?.close();
    await sim?.destroy();
  });

  const addresses = async (prefix: string, poolId: string): Promise<Kv[]> =>
    (await direct.range(`${prefix}/v1/ipam/addresses/${poolId.replace('/', '_')}/`)).kvs.map((kv) => ({ ...kv, value: JSON.parse(kv.value.toString()) as Kv['value'] }));
  const sparesOf = async (prefix: string, poolId: string, host: string) => (await addresses(prefix, poolId)).filter((a) => a.value.kind === 'spare' && a.value.host === host);

  /** Hosts a and b on one overlay of subnet (under prefix), a holding a stock of spares there (idle checks every 10 minutes): its keys once it has at least 4. */
  const twoWithStock = async (prefix: string, name: string, subnet: string) => {
    const [a, b] = (await Promise.all([1, 2].map((n) => sim.inProcessHost(n, { prefix, spareIdleMs: 600_000 })))) as [Awaited<ReturnType<SimCluster['inProcessHost']>>, Awaited<ReturnType<SimCluster['inProcessHost']>>];
    const net = await a.ensureNetwork(spec(name, { ipv4: [{ subnet }] }));
    await b.ensureNetwork(spec(name, { ipv4: [{ subnet }] }));
    const poolId = net.ipv4[0]!.poolId;
    a.holdSpares([poolId]);
    const stock = await waitFor('a stock claimed', async () => {
      const held = await sparesOf(prefix, poolId, a.hostId);
      return held.length >= 4 ? held : undefined;
    }, 5000);
    return { a, b, poolId, stock };
  };

  /** A connect as the controller makes it: reserve, join; chosen again when another host took the address. */
  const connect = async (h: Cluster, net: string, poolId: string, id: string): Promise<string> => {
    for (;;) {
      const address = await h.reserveAddress(poolId);
      try {
        await h.joinEndpoint(net, { endpointId: id, ip: address, mac: mac(address) }, [{ poolId, address, owner: `endpoint:${id}` }]);
        return address;
      } catch (err) {
        h.forgetAddress(poolId, address);
        if ((err as { code?: string }).code !== 'ERR_ADDRESS_RACED') throw err;
      }
    }
  };

  it('3 hosts × 30 concurrent connects, two from their stocks and one claiming in etcd, get 90 distinct addresses; every peer lands on its host\'s lease; spares are not endpoints', async () => {
    const [a, b] = [await sim.inProcessHost(1, { prefix: '/t-spare' }), await sim.inProcessHost(2, { prefix: '/t-spare' })];
    const net = await a.ensureNetwork(spec('ovs', { ipv4: [{ subnet: '198.19.44.0/24' }] }));
    // c starts once the network exists (in its first list, not seen appearing): it holds no stock ahead.
    const c = await sim.inProcessHost(3, { prefix: '/t-spare' });
    const hosts = [a, b, c];
    await Promise.all([b, c].map((h) => h.ensureNetwork(spec('ovs', { ipv4: [{ subnet: '198.19.44.0/24' }] }))));
    const poolId = net.ipv4[0]!.poolId;
    a.holdSpares([poolId]);
    b.holdSpares([poolId]);
    for (const h of [a, b]) await waitFor('a stock claimed', async () => ((await sparesOf('/t-spare', poolId, h.hostId)).length >= 4 ? true : undefined), 5000);
    const stocked = await sparesOf('/t-spare', poolId, a.hostId);
    for (const s of stocked) expect(s.lease).toBe(a.status().lease!.id);
    // a's first connect takes a spare, with etcd frozen: it answers at once (no round trip), and its
    // peer is published once etcd runs again (retried until it lands).
    sim.etcd.freeze();
    let first: string;
    try {
      const t0 = Date.now();
      first = await connect(a, 'ovs', poolId, 'a-first');
      expect(Date.now() - t0).toBeLessThan(200);
      await new Promise((r) => setTimeout(r, 2000));
    } finally {
      sim.etcd.thaw();
    }
    expect(stocked.map((s) => s.key.split('/').pop())).toContain(first.split('/')[0]);
    await waitFor('the frozen connect\'s peer', async () => ((await storedPeers(direct, 'ovs', { prefix: '/t-spare' })).length === 1 ? true : undefined), 5000);

    const got = await Promise.all(hosts.flatMap((h, i) => Array.from({ length: 30 }, (_, j) => connect(h, 'ovs', poolId, `h${i}e${j}`))));
    expect(new Set([first, ...got]).size).toBe(91);
    const peers = await waitFor('every peer published', async () => {
      const stored = await storedPeers(direct, 'ovs', { prefix: '/t-spare' });
      return stored.length === 91 ? stored : undefined;
    }, 5000);
    const leaseOf = new Map(hosts.map((h) => [h.hostId, h.status().lease!.id]));
    const all = await addresses('/t-spare', poolId);
    const byIp = new Map(all.map((kv) => [kv.key.split('/').pop()!, kv]));
    for (const p of peers) {
      expect(p.lease).toBe(leaseOf.get(p.host));
      const addr = byIp.get(p.ip)!;
      expect(addr.value).toEqual({ owner: `endpoint:${p.endpointId}`, kind: 'endpoint', host: p.host });
      expect(addr.lease).toBe(leaseOf.get(p.host));
    }
    expect(all.filter((kv) => kv.value.kind === 'endpoint')).toHaveLength(91);
    // What is left as spare belongs to a or b (c keeps none), on its lease; c's connects all claimed in etcd.
    const spares = all.filter((kv) => kv.value.kind === 'spare');
    for (const s of spares) {
      expect([a.hostId, b.hostId]).toContain(s.value.host);
      expect(s.lease).toBe(leaseOf.get(s.value.host));
    }
    // Spares are no endpoints: the network counts no holder for them.
    for (const e of peers) await hosts.find((h) => e.key.includes(`/${h.hostId}/`))!.removePeer('ovs', e.key.split('/').pop()!);
    for (const kv of all.filter((x) => x.value.kind === 'endpoint')) await direct.txn('test: release', [], [{ del: kv.key }]);
    expect(await a.removeNetwork('ovs')).toEqual({ deleted: true, holders: [], engines: [] });
  });

  it('a pool with few free addresses gets no stock; a dropped stock deletes its keys; a restarted host deletes the spares its previous run left', async () => {
    const a = await sim.inProcessHost(1, { prefix: '/t-spare2' });
    const small = await a.ensureNetwork(spec('ov-small', { ipv4: [{ subnet: '198.19.45.0/26' }] }));
    const big = await a.ensureNetwork(spec('ov-big', { ipv4: [{ subnet: '198.19.46.0/24' }] }));
    a.holdSpares([small.ipv4[0]!.poolId, big.ipv4[0]!.poolId]);
    const bigPool = big.ipv4[0]!.poolId;
    await waitFor('the big pool stocked', async () => ((await sparesOf('/t-spare2', bigPool, a.hostId)).length >= 4 ? true : undefined), 5000);
    // 61 free in the /26: fewer than 64, so every connect there claims in etcd.
    expect(await sparesOf('/t-spare2', small.ipv4[0]!.poolId, a.hostId)).toEqual([]);
    await a.dropSpares([bigPool]);
    expect(await sparesOf('/t-spare2', bigPool, a.hostId)).toEqual([]);

    // A run that ends without its clean stop (the keys stay on the lease), then the same host again.
    const b = await sim.inProcessHost(2, { prefix: '/t-spare2', leaseTtl: 30 });
    await b.ensureNetwork(spec('ov-big'));
    b.holdSpares([bigPool]);
    const left = await waitFor('b stocked', async () => {
      const s = await sparesOf('/t-spare2', bigPool, b.hostId);
      return s.length >= 4 ? s : undefined;
    }, 5000);
    const { revision } = await direct.get('/t-spare2/none');
    const again = await sim.inProcessHost(2, { prefix: '/t-spare2', leaseTtl: 30, stateDir: b.stateDir });
    expect(again.hostId).toBe(b.hostId);
    expect(again.status().lease!.id).toBe(left[0]!.lease);
    // The sweep runs a few seconds after the registration: none of the old run's spares is left.
    await waitFor('old spares swept', async () => ((await sparesOf('/t-spare2', bigPool, b.hostId)).every((s) => s.createRevision > revision) ? true : undefined), 10_000);
  });

  it('an endpoint of this host may take one of its own spares by address (--ip, a restart\'s replay): it leaves the stock and is the endpoint\'s', async () => {
    const a = await sim.inProcessHost(1, { prefix: '/t-spare3' });
    const net = await a.ensureNetwork(spec('ovs3', { ipv4: [{ subnet: '198.19.47.0/24' }] }));
    const poolId = net.ipv4[0]!.poolId;
    a.holdSpares([poolId]);
    const stock = await waitFor('a stock claimed', async () => {
      const s = await sparesOf('/t-spare3', poolId, a.hostId);
      return s.length >= 4 ? s.map((x) => x.key.split('/').pop()!) : undefined;
    }, 5000);
    const [s1, s2] = stock as [string, string];
    // A restart's replay asks for its endpoint's address, which its stock holds.
    expect(await a.ipam.requestAddress(poolId, { address: s1, kind: 'endpoint', owner: 'endpoint:r1' })).toBe(`${s1}/24`);
    // A connect with --ip of another one.
    const r = await a.reserveAddress(poolId, s2);
    await a.joinEndpoint('ovs3', { endpointId: 'r2', ip: r, mac: mac(r) }, [{ poolId, address: r, owner: 'endpoint:r2' }]);
    const held = new Map((await addresses('/t-spare3', poolId)).map((kv) => [kv.key.split('/').pop()!, kv]));
    expect(held.get(s1)!.value).toEqual({ owner: 'endpoint:r1', kind: 'endpoint', host: a.hostId });
    expect(held.get(s2)!.value).toEqual({ owner: 'endpoint:r2', kind: 'endpoint', host: a.hostId });
    expect(held.get(s2)!.lease).toBe(a.status().lease!.id);
    // Neither is handed out again.
    const got = await Promise.all(Array.from({ length: 10 }, (_, i) => connect(a, 'ovs3', poolId, `n${i}`)));
    expect(new Set(got).size).toBe(10);
    expect(got.map((g) => g.split('/')[0])).not.toContain(s1);
    expect(got.map((g) => g.split('/')[0])).not.toContain(s2);
  });

  it('another host asking for a spare by address (the Docker engine\'s RequestAddress) gets it once the holder gave it up; one the holder handed out is refused within the bound; no request is left', async () => {
    const { a, b, poolId, stock } = await twoWithStock('/t-spare8', 'ovs8', '198.19.55.0/24');
    const asked = stock.at(-1)!.key.split('/').pop()!;
    expect(await b!.ipam.requestAddress(poolId, { address: asked, kind: 'endpoint', owner: 'endpoint:d1' })).toBe(`${asked}/24`);
    const held = new Map((await addresses('/t-spare8', poolId)).map((kv) => [kv.key.split('/').pop()!, kv]));
    expect(held.get(asked)!.value).toEqual({ owner: 'endpoint:d1', kind: 'endpoint', host: b!.hostId });
    // A spare a handed to a connect (reserved, its join not made yet) stays a's.
    const out = (await a!.reserveAddress(poolId)).split('/')[0]!;
    const started = Date.now();
    await expect(b!.ipam.requestAddress(poolId, { address: out, kind: 'endpoint', owner: 'endpoint:d2' }))
      .rejects.toThrow(`address ${out} is in use by a spare address of host ${os.hostname()} (${a!.vtep}, id ${a!.hostId}), which did not give it up within 2000 ms`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    a!.forgetAddress(poolId, `${out}/24`);
    expect((await addresses('/t-spare8', poolId)).find((kv) => kv.key.endsWith(`/${out}`))?.value.kind).toBe('spare');
    expect((await direct.range('/t-spare8/v1/ipam/wanted/')).kvs).toEqual([]);
  });

  it('a pool full but for another host\'s spares says so: the error names that host and how many it holds', async () => {
    // a checks its idle stock only every 10 minutes: it still holds it when b finds the pool full.
    const { a, b, poolId, stock } = await twoWithStock('/t-spare4', 'ovs4', '198.19.48.0/25');
    const held = stock.length;
    // b holds no stock: each of its connects claims in etcd, until none is left but a's spares.
    let err: Error | undefined;
    for (let i = 0; i < 130 && !err; i++) await connect(b!, 'ovs4', poolId, `f${i}`).catch((e: Error) => (err = e));
    expect(err?.message).toBe(`no free address left in pool ${poolId}; ${held} held as spare addresses by host ${os.hostname()} (${a!.vtep}, id ${a!.hostId}) (deleted when that host leaves the network or stops)`);
    expect((await addresses('/t-spare4', poolId)).length).toBe(126);
  });

  it('an idle host gives its stock back when the pool gets tight, so another host fills the pool to its last address', async () => {
    const [a, b] = await Promise.all([1, 2].map((n) => sim.inProcessHost(n, { prefix: '/t-spare5', spareIdleMs: 200 })));
    const net = await a!.ensureNetwork(spec('ovs5', { ipv4: [{ subnet: '198.19.49.0/25' }] }));
    await b!.ensureNetwork(spec('ovs5', { ipv4: [{ subnet: '198.19.49.0/25' }] }));
    const poolId = net.ipv4[0]!.poolId;
    a!.holdSpares([poolId]);
    await waitFor('a stock claimed', async () => ((await sparesOf('/t-spare5', poolId, a!.hostId)).length >= 4 ? true : undefined), 5000);
    // b (no stock) takes 70 of the 125 addresses: fewer than 64 are free now, and a, idle, gives its stock back.
    const got: string[] = [];
    for (let i = 0; i < 70; i++) got.push(await connect(b!, 'ovs5', poolId, `g${i}`));
    await waitFor('a\'s idle stock given back', async () => ((await sparesOf('/t-spare5', poolId, a!.hostId)).length === 0 ? true : undefined), 5000);
    let err: Error | undefined;
    for (let i = 70; i < 130 && !err; i++) await connect(b!, 'ovs5', poolId, `g${i}`).then((ip) => got.push(ip), (e: Error) => (err = e));
    expect(err?.message).toBe(`no free address left in pool ${poolId}`);
    expect(new Set(got).size).toBe(125);
    const held = await addresses('/t-spare5', poolId);
    expect(held).toHaveLength(126);
    expect(held.filter((kv) => kv.value.kind === 'endpoint' && kv.value.host === b!.hostId)).toHaveLength(125);
  });

  it('a refill that loses its race to another host\'s spares reads back only the keys it chose, learns them, and stocks others', async () => {
    // b starts after the network exists: it reads the pool at its reserve below (not ahead, when the network appears).
    const a = await sim.inProcessHost(1, { prefix: '/t-spare6', spareIdleMs: 600_000 });
    const net = await a.ensureNetwork(spec('ovs6', { ipv4: [{ subnet: '198.19.50.0/24' }] }));
    const b = await sim.inProcessHost(2, { prefix: '/t-spare6', spareIdleMs: 600_000 });
    await b!.ensureNetwork(spec('ovs6', { ipv4: [{ subnet: '198.19.50.0/24' }] }));
    const poolId = net.ipv4[0]!.poolId;
    // b reads the pool now (its view), then a claims its stock there: b's view does not show a's spares (no watch does).
    b!.forgetAddress(poolId, await b!.reserveAddress(poolId));
    a!.holdSpares([poolId]);
    const ofA = await waitFor('a stock claimed', async () => {
      const s = await sparesOf('/t-spare6', poolId, a!.hostId);
      return s.length >= 4 ? new Set(s.map((x) => x.key.split('/').pop()!)) : undefined;
    }, 5000);
    const client = (b as unknown as { client: StoreClient }).client;
    const refills: { then: Op[]; otherwise: Op[]; succeeded: boolean }[] = [];
    const txn = client.txn.bind(client);
    client.txn = async (what, compare, then, otherwise = []) => {
      const res = await txn(what, compare, then, otherwise);
      if (what === 'claim spare addresses') refills.push({ then, otherwise, succeeded: res.succeeded });
      return res;
    };
    b!.holdSpares([poolId]);
    const ofB = await waitFor('b stock claimed', async () => {
      const s = await sparesOf('/t-spare6', poolId, b!.hostId);
      return s.length >= 4 ? s.map((x) => x.key.split('/').pop()!) : undefined;
    }, 5000);
    expect(ofB.filter((ip) => ofA.has(ip))).toEqual([]);
    const lost = refills.filter((r) => !r.succeeded);
    expect(lost.length).toBeGreaterThan(0);
    for (const r of lost) {
      // The pool's key and the chosen ones, keys only: no read of the pool's every key.
      expect(r.otherwise.every((op) => 'get' in op && op.prefix !== true && op.keysOnly === true)).toBe(true);
      expect(r.otherwise).toHaveLength(r.then.length + 1);
    }
    // What the lost refill found held is never chosen again.
    const chosenAfter = refills.slice(refills.indexOf(lost[0]!) + 1).flatMap((r) => r.then.map((op) => ('put' in op ? op.put.split('/').pop()! : '')));
    const heldFound = lost[0]!.then.map((op) => ('put' in op ? op.put.split('/').pop()! : '')).filter((ip) => ofA.has(ip));
    expect(heldFound.length).toBeGreaterThan(0);
    expect(chosenAfter.filter((ip) => heldFound.includes(ip))).toEqual([]);
  });

  it('a network that appears is read ahead by the other hosts, each claiming a stock of spares: their first connect takes one with no round trip; unused, the view and the spares go after 2 s; none in a tight pool; a network made again meanwhile gets a new stock', async () => {
    const [a, b] = await Promise.all([1, 2].map((n) => sim.inProcessHost(n, { prefix: '/t-warm', spareIdleMs: 600_000 })));
    const client = (b as unknown as { client: StoreClient }).client;
    const calls: string[] = [];
    const [txn, range] = [client.txn.bind(client), client.range.bind(client)];
    client.txn = (what, ...rest) => (calls.push(what), txn(what, ...rest));
    client.range = (...args) => (calls.push('range'), range(...args));
    await networksWatched(b!);
    for (const [name, subnet, wait] of [['ovw1', '198.19.52.0/24', 0], ['ovw2', '198.19.53.0/24', 2500]] as const) {
      const net = await a!.ensureNetwork(spec(name, { ipv4: [{ subnet }] }));
      const poolId = net.ipv4[0]!.poolId;
      await waitFor(`b read ${name}'s pool ahead`, async () => (calls.includes('read a pool') ? true : undefined), 3000);
      const held = await waitFor(`b holds spares in ${name}`, async () => {
        const mine = await sparesOf('/t-warm', poolId, b!.hostId);
        return mine.length === 4 ? mine : undefined;
      }, 3000);
      // On b's lease, as every spare.
      expect(new Set(held.map((kv) => kv.lease))).toEqual(new Set([(b as unknown as { keeper: { id: string } }).keeper.id]));
      await new Promise((r) => setTimeout(r, wait));
      calls.length = 0;
      const address = await b!.reserveAddress(poolId);
      if (wait === 0) {
        // Used within 2 s: one of b's spares, taken with no request.
        expect(calls).toEqual([]);
        expect(held.map((kv) => `${kv.key.split('/').at(-1)}/24`)).toContain(address);
      } else {
        // Left unused longer: the view was dropped (read again), and the spares deleted.
        expect(calls).toEqual(['read a pool']);
        expect(await sparesOf('/t-warm', poolId, b!.hostId)).toEqual([]);
      }
      expect(address).toMatch(new RegExp(`^198\\.19\\.${subnet.split('.')[2]}\\.\\d+/24$`));
      b!.forgetAddress(poolId, address);
      calls.length = 0;
    }
    // ovw1's spares were never held by a connect (hold()): deleted after the window as well.
    const ovw1 = (await a!.listNetworks()).find((n) => n.name === 'ovw1')!.ipv4[0]!.poolId;
    await waitFor('b gave ovw1\'s spares back', async () => ((await sparesOf('/t-warm', ovw1, b!.hostId)).length === 0 ? true : undefined), 4000);
    // A tight pool (62 addresses, fewer than 64 free): read ahead, no spare.
    const tight = await a!.ensureNetwork(spec('ovw3', { ipv4: [{ subnet: '198.19.54.0/26' }] }));
    await waitFor('b read ovw3\'s pool ahead', async () => (calls.includes('read a pool') ? true : undefined), 3000);
    await new Promise((r) => setTimeout(r, 300));
    expect(await sparesOf('/t-warm', tight.ipv4[0]!.poolId, b!.hostId)).toEqual([]);
    // Removed and made again within the window: b's stock of the old pool (its keys gone with it) gives way to one in the new.
    const again = spec('ovw5', { ipv4: [{ subnet: '198.19.55.0/24' }] });
    const pool5 = (await a!.ensureNetwork(again)).ipv4[0]!.poolId;
    await waitFor('b holds spares in ovw5', async () => ((await sparesOf('/t-warm', pool5, b!.hostId)).length === 4 ? true : undefined), 3000);
    expect(await a!.removeNetwork('ovw5')).toMatchObject({ deleted: true });
    const removedAt = (await direct.get('/none')).revision;
    await a!.ensureNetwork(again);
    const fresh = await waitFor('b holds spares in ovw5 made again', async () => {
      const mine = await sparesOf('/t-warm', pool5, b!.hostId);
      return mine.length === 4 ? mine : undefined;
    }, 3000);
    for (const kv of fresh) expect(kv.createRevision).toBeGreaterThan(removedAt);
  });
});
