// The control plane against a real etcd (Debian etcd-server in an underlay namespace): global
// IPAM and VNIs under concurrency from several hosts, peers and their watch (also one started
// ahead, and when a network appears), lease loss and expiry, and the faults (etcd stopped, frozen, restarted,
// compacted). Hosts are Cluster objects in this process, each with its own state dir, host id,
// lease and etcd connection; what they claim is checked by reading etcd directly.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { networksWatched, SimCluster, storedPeers, waitFor } from '../helpers/cluster.js';
import type { PeerBatch } from '../../src/cluster/types.js';
import type { StoreClient } from '../../src/cluster/client.js';
import { canonicalPool } from '../../src/cluster/ipam.js';
import { processStartTime } from '../../src/netns/pids.js';

const spec = (name: string, extra: Record<string, unknown> = {}) => ({ name, driver: 'overlay', internal: false, enableIPv6: false, options: {}, ipv4: [], ipv6: [], ...extra });
const mac = (n: number) => `02:42:c6:13:00:${n.toString(16).padStart(2, '0')}`;

/** Collects a watcher's batches and keeps its view of the peers (host/endpoint → ip). */
function collector() {
  const batches: PeerBatch[] = [];
  const view = new Map<string, string>();
  return {
    batches, view,
    handler: (b: PeerBatch) => {
      batches.push(b);
      for (const c of b.changes) {
        if (c.kind === 'removed') view.delete(`${c.peer.host}/${c.peer.endpointId}`);
        else view.set(`${c.peer.host}/${c.peer.endpointId}`, c.peer.ip);
      }
    },
  };
}

/** The peer lists a host's client makes of prefix (spied on), each its promise. */
function peerLists(host: object, prefix: string): Promise<unknown>[] {
  const client = (host as { client: StoreClient }).client;
  const lists: Promise<unknown>[] = [];
  const range = client.range.bind(client);
  client.range = (key, opts) => {
    const p = range(key, opts);
    if (key === prefix) lists.push(p);
    return p;
  };
  return lists;
}

/** The watch streams a host's client opens under peers/ (spied on): their prefix, events seen, and whether closed. */
function peerStreams(host: object): { prefix: string; events: number; closed: boolean }[] {
  const client = (host as { client: StoreClient }).client;
  const out: { prefix: string; events: number; closed: boolean }[] = [];
  const stream = client.stream.bind(client);
  client.stream = async (p, body, h) => {
    const key = Buffer.from((body as { create_request: { key: string } }).create_request.key, 'base64').toString();
    const st = { prefix: key, events: 0, closed: false };
    if (key.includes('/peers/')) out.push(st);
    const open = await stream(p, body, { ...h, onResult: (r) => {
      st.events += ((r as { events?: unknown[] }).events ?? []).length;
      h.onResult(r);
    } });
    return { close: () => {
      st.closed = true;
      open.close();
    } };
  };
  return out;
}

async function expectUnavailableFast(p: Promise<unknown>): Promise<void> {
  const t0 = Date.now();
  const err = await p.then(() => undefined, (e: unknown) => e as { errorClass?: string; message?: string });
  expect(Date.now() - t0).toBeLessThan(2000);
  expect(err).toMatchObject({ errorClass: 'unavailable', code: 'ERR_CLUSTER_UNAVAILABLE' });
  expect(err?.message).toMatch(/^cluster store unavailable: /);
}

describeRoot('cluster control plane on a real etcd', () => {
  let sim: SimCluster;
  let direct: StoreClient;

  beforeAll(async () => {
    sim = await SimCluster.create({ hosts: 0, leaseTtl: 3 });
    direct = sim.etcd.client();
  });
  afterAll(async () => {
    direct?.close();
    await sim?.destroy();
  });

  it('global IPAM: 3 hosts × 50 concurrent requests get 150 distinct addresses, each stored once on its host\'s lease', async () => {
    const hosts = await Promise.all([1, 2, 3].map((n) => sim.inProcessHost(n, { prefix: '/t-ipam' })));
    const nets = await Promise.all(hosts.map((h) => h.ensureNetwork(spec('ov-ipam'))));
    expect(new Set(nets.map((n) => n.id)).size).toBe(1);
    // The hosts that lost the create joined the network from its answer: each holds a member key.
    const members = await direct.range('/t-ipam/v1/members/ov-ipam/');
    expect(members.kvs.map((kv) => kv.key.split('/').pop()).sort()).toEqual(hosts.map((h) => h.hostId).sort());
    const pool = nets[0]!.ipv4[0]!;
    expect(pool.subnet).toBe('198.19.0.0/24');
    expect(pool.gateway).toBe('198.19.0.1/24');
    const got = await Promise.all(hosts.flatMap((h, i) => Array.from({ length: 50 }, (_, j) => h.ipam.requestAddress(pool.poolId, { kind: 'endpoint', owner: `h${i}-ep${j}` }))));
    expect(new Set(got).size).toBe(150);
    // Anywhere in .2–.254 (hosts that collide go on from random points, so not the lowest 150).
    for (const a of got) expect(a).toMatch(/^198\.19\.0\.([2-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-4])\/24$/);
    // Read etcd itself: one key per address, the endpoint ones on the lease of the host that asked
    // (spares left out: a host that saw the network appear before its own create answered holds some ahead).
    const held = async () => (await direct.range('/t-ipam/v1/ipam/addresses/198.19.0.0_24/')).kvs.filter((kv) => !/"kind":"spare"/.test(kv.value.toString()));
    const kvs = await held();
    expect(kvs).toHaveLength(151);
    const leaseOf = new Map(hosts.map((h, i) => [`h${i}`, h.status().lease!.id]));
    for (const kv of kvs) {
      const v = JSON.parse(kv.value.toString()) as { owner: string; kind: string };
      if (v.kind === 'gateway') expect(kv.lease).toBe('0');
      else expect(kv.lease).toBe(leaseOf.get(v.owner.split('-')[0]!));
    }
    // A replay by the same owner gets its address again; another owner asking for it is refused.
    const first = got[0]!;
    expect(await hosts[0]!.ipam.requestAddress(pool.poolId, { address: first, kind: 'endpoint', owner: 'h0-ep0' })).toBe(first);
    await expect(hosts[1]!.ipam.requestAddress(pool.poolId, { address: first, kind: 'endpoint', owner: 'other' })).rejects.toThrow(/address 198\.19\.0\.\d+ is in use by endpoint h0-ep0 on host/);
    await Promise.all(got.slice(0, 50).map((a, j) => hosts[0]!.ipam.releaseAddress(pool.poolId, a, `h0-ep${j}`)));
    expect(await held()).toHaveLength(101);
  });

  it('global IPAM from each host\'s cached view: hosts taking turns get distinct addresses until the pool is full; one freed by another host is found; then "no free address"', async () => {
    const [a, b] = await Promise.all([1, 2].map((n) => sim.inProcessHost(n, { prefix: '/t-ipview' })));
    const net = await a!.ensureNetwork(spec('ov-view', { ipv4: [{ subnet: '198.19.9.0/29' }] }));
    await b!.ensureNetwork(spec('ov-view'));
    const poolId = net.ipv4[0]!.poolId;
    // .1 is the gateway: .2 to .6 are left, taken in turns so each host's view is stale at every request.
    const got: string[] = [];
    for (let i = 0; i < 5; i++) got.push(await [a, b][i % 2]!.ipam.requestAddress(poolId, { kind: 'endpoint', owner: `ep${i}` }));
    expect([...got].sort()).toEqual(['198.19.9.2/29', '198.19.9.3/29', '198.19.9.4/29', '198.19.9.5/29', '198.19.9.6/29']);
    const prefix = '/t-ipview/v1/ipam/addresses/198.19.9.0_29/';
    expect((await direct.range(prefix)).kvs.map((kv) => kv.key.slice(prefix.length)).sort()).toEqual(['198.19.9.1', ...got.map((g) => g.split('/')[0]!)].sort());
    // b frees the one a took first: a's view still shows it taken, so a must read the pool again to find it.
    await b!.ipam.releaseAddress(poolId, got[0]!, 'ep0');
    expect(await a!.ipam.requestAddress(poolId, { kind: 'endpoint', owner: 'ep5' })).toBe(got[0]);
    await expect(b!.ipam.requestAddress(poolId, { kind: 'endpoint', owner: 'ep6' })).rejects.toThrow('no free address left in pool 198.19.9.0/29');
  });

  it('VNIs: 12 networks created at once from 3 hosts get 12 distinct VNIs from 4096; a taken VNI and other settings are refused by name', async () => {
    const hosts = await Promise.all([1, 2, 3].map((n) => sim.inProcessHost(n, { prefix: '/t-vni' })));
    const nets = await Promise.all(Array.from({ length: 12 }, (_, i) => hosts[i % 3]!.ensureNetwork(spec(`vn${i}`))));
    const vnis = nets.map((n) => n.vni).sort((a, b) => a - b);
    expect(vnis).toEqual(Array.from({ length: 12 }, (_, i) => 4096 + i));
    expect(new Set(nets.map((n) => n.ipv4[0]!.subnet)).size).toBe(12);
    const stored = await direct.range('/t-vni/v1/vni/');
    expect(stored.kvs.map((kv) => Number(kv.key.split('/').pop()))).toHaveLength(12);
    await expect(hosts[0]!.ensureNetwork(spec('given', { vni: 4100 }))).rejects.toThrow(/vxlanid 4100 is in use by global network vn\d+/);
    expect((await hosts[0]!.ensureNetwork(spec('given', { vni: 70000 }))).vni).toBe(70000);
    const same = await hosts[2]!.ensureNetwork(spec('vn0'));
    expect(same).toEqual(nets[0]);
    await expect(hosts[1]!.ensureNetwork(spec('vn0', { internal: true, options: { 'cnmkit.overlay.port': '4790' } })))
      .rejects.toThrow(/network vn0 exists in the cluster with other settings: internal: true here, false in the cluster; options\.cnmkit\.overlay\.port: "4790" here, unset in the cluster/);
  });

  it('a global pool never overlaps a local network of a registered host: skipped by default (and said why), refused when given', async () => {
    const pools = [{ base: '198.19.64.0/22', size: 24 }];
    const local = [{ network: 'lan', subnet: '198.19.64.0/23' }];
    const h1 = await sim.inProcessHost(1, { prefix: '/t-overlap', globalPools: pools, localSubnets: local });
    const h2 = await sim.inProcessHost(2, { prefix: '/t-overlap', globalPools: pools });
    expect((await h2.ensureNetwork(spec('o1'))).ipv4[0]!.subnet).toBe('198.19.66.0/24');
    expect((await h2.ensureNetwork(spec('o2'))).ipv4[0]!.subnet).toBe('198.19.67.0/24');
    const full = await h2.ensureNetwork(spec('o3')).then(() => undefined, (e: Error) => e.message);
    expect(full).toBe([
      'could not find an available, non-overlapping global IPv4 subnet among the 4 default candidate(s):',
      `  198.19.64.0/24 … 198.19.65.0/24 (2 subnets): overlaps the local network lan (198.19.64.0/23) on host ${os.hostname()} (${h1.vtep}, id ${h1.hostId})`,
      '  198.19.66.0/24: in use by global network o1',
      '  198.19.67.0/24: in use by global network o2',
    ].join('\n'));
    await expect(h2.ensureNetwork(spec('o4', { ipv4: [{ subnet: '198.19.65.128/25' }] })))
      .rejects.toThrow(`subnet 198.19.65.128/25 cannot be a global pool: it overlaps the local network lan (198.19.64.0/23) on host`);
    await expect(h2.ensureNetwork(spec('o4', { ipv4: [{ subnet: '198.19.66.0/25' }] }))).rejects.toThrow('subnet 198.19.66.0/25 cannot be a global pool: it is in use by global network o1');
    // A local network that appears later is published (refreshLocalSubnets) and avoided too.
    local.push({ network: 'lab', subnet: '198.19.70.0/24' });
    await h1.refreshLocalSubnets();
    await expect(h2.ensureNetwork(spec('o5', { ipv4: [{ subnet: '198.19.70.0/24' }] }))).rejects.toThrow(/overlaps the local network lab/);
  });

  it('peers reach every watcher; a host that stops keeping its lease alive has its peers removed everywhere after the TTL', async () => {
    const [a, b, c] = await Promise.all([1, 2, 3].map((n) => sim.inProcessHost(n, { prefix: '/t-peers' })));
    const wa = collector();
    const wb = collector();
    const watchA = a!.watchPeers('net', wa.handler);
    const watchB = b!.watchPeers('net', wb.handler);
    await b!.publishPeer('net', { endpointId: 'eb', ip: '198.19.0.2/24', mac: mac(2) });
    await c!.publishPeer('net', { endpointId: 'ec', ip: '198.19.0.3', mac: mac(3) });
    await waitFor('both peers seen', async () => (wa.view.size === 2 && wb.view.size === 2 ? true : undefined), 2000);
    expect(wa.view.get(`${c!.hostId}/ec`)).toBe('198.19.0.3');
    expect(b!.localNetworks()).toEqual(['net']);
    const [stored] = await storedPeers(direct, 'net', { prefix: '/t-peers', host: c!.hostId });
    expect(stored).toMatchObject({ vtep: c!.vtep, mac: mac(3), ip: '198.19.0.3', lease: c!.status().lease!.id });
    // c goes away without a word (no revoke): its peer stays until its 3 s lease runs out.
    const t0 = Date.now();
    await c!.close();
    await new Promise((r) => setTimeout(r, 1000));
    expect(wa.view.has(`${c!.hostId}/ec`)).toBe(true);
    await waitFor('c\'s peer removed on a and b', async () => (!wa.view.has(`${c!.hostId}/ec`) && !wb.view.has(`${c!.hostId}/ec`) ? true : undefined), 6000);
    expect(Date.now() - t0).toBeLessThan(3000 + 2500);
    // Marked as gone with its host's lease (the watcher keeps its entries a grace), unlike a peer its host deletes.
    expect(wa.batches.at(-1)!.changes).toEqual([{ kind: 'removed', leaseEnded: true, peer: expect.objectContaining({ endpointId: 'ec' }) }]);
    expect((await direct.range(`/t-peers/v1/hosts/${c!.hostId}`, { prefix: false })).kvs).toHaveLength(0);
    await b!.removePeer('net', 'eb');
    await waitFor('b\'s peer removed', async () => (wa.view.size === 0 ? true : undefined), 2000);
    expect(wa.batches.at(-1)!.changes).toEqual([{ kind: 'removed', peer: expect.objectContaining({ endpointId: 'eb' }) }]);
    expect(watchA.stats()).toMatchObject({ lists: 1, resyncs: 0, state: 'watching' });
    await watchA.close();
    await watchB.close();
  });

  it('a peer watch started ahead (a first join here) is what the watch takes over: one list, and nothing published after it is missed', async () => {
    const [a, b] = await Promise.all([1, 2].map((n) => sim.inProcessHost(n, { prefix: '/t-prefetch' })));
    await a!.publishPeer('pf', { endpointId: 'e1', ip: '198.19.0.21', mac: mac(21) });
    const lists = peerLists(b!, '/t-prefetch/v1/peers/pf/');
    b!.prefetchPeers('pf');
    b!.prefetchPeers('pf');
    expect(lists).toHaveLength(1);
    await lists[0];
    // Published after the list was read: the watch started ahead sees it as an event.
    await a!.publishPeer('pf', { endpointId: 'e2', ip: '198.19.0.22', mac: mac(22) });
    const wb = collector();
    const watch = b!.watchPeers('pf', wb.handler);
    await waitFor('both peers seen', async () => (wb.view.size === 2 ? true : undefined), 2000);
    expect(wb.batches[0]!.changes.map((c) => c.peer.endpointId)).toContain('e1');
    expect(lists).toHaveLength(1);
    await watch.close();
  });

  it('a network that appears: the other hosts watch its peers ahead (their first join lists nothing), and stop when no join comes', async () => {
    const [a, b] = await Promise.all([1, 2].map((n) => sim.inProcessHost(n, { prefix: '/t-appear' })));
    await networksWatched(b!);
    const lists = peerLists(b!, '/t-appear/v1/peers/ap/');
    const streams = peerStreams(b!);
    await a!.ensureNetwork(spec('ap'));
    await waitFor('b lists the peers of the network that appeared', async () => (lists.length === 1 ? true : undefined), 2000);
    await a!.publishPeer('ap', { endpointId: 'e1', ip: '198.19.0.31', mac: mac(31) });
    await waitFor('the event reached b\'s watch', async () => (streams.some((st) => st.events > 0) ? true : undefined), 2000);
    const wb = collector();
    const watch = b!.watchPeers('ap', wb.handler);
    await waitFor('the peer seen', async () => (wb.view.size === 1 ? true : undefined), 2000);
    expect(wb.batches[0]!.changes.map((c) => c.peer.endpointId)).toEqual(['e1']);
    expect(lists).toHaveLength(1);
    // Watched here already: no second watch ahead of it.
    const before = lists.length;
    b!.prefetchPeers('ap');
    expect(lists).toHaveLength(before);
    await watch.close();
    // Another network no join comes to: its watch ahead ends after ~2 s.
    await a!.ensureNetwork(spec('ap2'));
    await waitFor('b watches ap2 ahead', async () => (streams.some((st) => st.prefix === '/t-appear/v1/peers/ap2/') ? true : undefined), 2000);
    const ahead = () => streams.filter((st) => st.prefix === '/t-appear/v1/peers/ap2/').map((st) => st.closed);
    await waitFor('b\'s watch ahead of ap2 ended', async () => (ahead().every((closed) => closed) ? true : undefined), 6000);
    expect(ahead()).toEqual([true]);
  });

  it('a network that appears: the addresses of the endpoints other hosts make meanwhile are learnt by the watch ahead, before any join here chooses one', async () => {
    const [a, b] = await Promise.all([1, 2].map((n) => sim.inProcessHost(n, { prefix: '/t-learn' })));
    await networksWatched(b!);
    const lists = peerLists(b!, '/t-learn/v1/peers/ln/');
    const streams = peerStreams(b!);
    const net = await a!.ensureNetwork(spec('ln', { ipv4: [{ subnet: '198.19.40.0/27' }] }));
    const pool = net.ipv4[0]!.poolId;
    await waitFor('b watches the network ahead', async () => (lists.length === 1 ? true : undefined), 2000);
    await lists[0];
    // b read its view of the pool when the network appeared: all of it free but the gateway.
    await new Promise((r) => setTimeout(r, 200));
    // All at once: the view read ahead is kept 2 s unless a join uses it.
    const taken = await Promise.all(Array.from({ length: 28 }, async (_, i) => {
      const ip = (await a!.ipam.requestAddress(pool, { kind: 'endpoint', owner: `e${i}` }))!;
      await a!.publishPeer('ln', { endpointId: `e${i}`, ip, mac: mac(40 + i) });
      return ip.split('/')[0]!;
    }));
    await waitFor('b\'s watch ahead saw them', async () => (streams.reduce((n, st) => n + st.events, 0) >= 28 ? true : undefined), 3000);
    // The stream's events reach the view a moment later (the watch hands them over in batches).
    const view = () => (b as unknown as { ipam: { heldView(id: string): { taken: Set<string> } | undefined } }).ipam.heldView(canonicalPool(pool));
    await waitFor('b\'s view learnt them', async () => (taken.every((ip) => view()?.taken.has(ip)) ? true : undefined), 1000);
    const chosen = (await b!.reserveAddress(pool)).split('/')[0]!;
    expect(taken).not.toContain(chosen);
    b!.forgetAddress(pool, chosen);
  });

  it('a lost lease (revoked in etcd): the host registers again and puts back its peers and addresses, except one taken meanwhile', async () => {
    const [a, b] = await Promise.all([1, 2].map((n) => sim.inProcessHost(n, { prefix: '/t-lost' })));
    const net = await a!.ensureNetwork(spec('lost'));
    const pool = net.ipv4[0]!;
    const [keep, taken] = [await a!.ipam.requestAddress(pool.poolId, { kind: 'endpoint', owner: 'ea' }), await a!.ipam.requestAddress(pool.poolId, { kind: 'endpoint', owner: 'eb' })];
    await a!.publishPeer('lost', { endpointId: 'ea', ip: keep!, mac: mac(10) });
    await a!.publishPeer('lost', { endpointId: 'eb', ip: taken!, mac: mac(11) });
    const wb = collector();
    const watch = b!.watchPeers('lost', wb.handler);
    await waitFor('peers seen', async () => (wb.view.size === 2 ? true : undefined), 2000);
    const oldLease = a!.status().lease!.id;
    // While the lease is gone another owner gets one of the addresses (written here as one step).
    const addrKey = (ip: string) => `/t-lost/v1/ipam/addresses/${pool.subnet.replace('/', '_')}/${ip.split('/')[0]}`;
    await direct.txn('steal', [], [{ put: addrKey(taken!), value: { owner: 'thief', kind: 'endpoint', host: b!.hostId } }]);
    await direct.leaseRevoke(oldLease);
    await waitFor('peers removed by the revoke', async () => (wb.view.size === 0 ? true : undefined), 2000);
    await waitFor('peer back', async () => (wb.view.size === 1 ? true : undefined), 3000);
    const newLease = a!.status().lease!.id;
    expect(newLease).not.toBe(oldLease);
    expect([...wb.view.keys()]).toEqual([`${a!.hostId}/ea`]);
    expect((await direct.get(addrKey(keep!))).kv?.lease).toBe(newLease);
    expect(JSON.parse((await direct.get(addrKey(taken!))).kv!.value.toString())).toMatchObject({ owner: 'thief' });
    expect((await direct.get(`/t-lost/v1/hosts/${a!.hostId}`)).kv?.lease).toBe(newLease);
    expect(a!.status().conflicts).toEqual([
      expect.stringMatching(/^address 198\.19\.\d+\.\d+ of pool 198\.19\.\d+\.0\/24: held by endpoint thief on host /),
      'endpoint eb of network lost: not published again, its address ' + taken!.split('/')[0] + ' is held by another owner',
    ]);
    await new Promise((r) => setTimeout(r, 500));
    expect(wb.view.size).toBe(1);
    await watch.close();
  });

  it('fail fast: with etcd frozen (SIGSTOP) every global call fails within 2 s as unavailable; it works again once etcd runs', async () => {
    const a = await sim.inProcessHost(1, { prefix: '/t-frozen' });
    const net = await a.ensureNetwork(spec('fz'));
    sim.etcd.freeze();
    try {
      await expectUnavailableFast(a.ensureNetwork(spec('fz2')));
      await expectUnavailableFast(a.ipam.requestAddress(net.ipv4[0]!.poolId, { kind: 'endpoint', owner: 'x' }));
      await expectUnavailableFast(a.publishPeer('fz', { endpointId: 'x', ip: '198.19.0.9', mac: mac(9) }));
      await expectUnavailableFast(a.hosts());
      expect(a.status().state).toBe('unavailable');
    } finally {
      sim.etcd.thaw();
    }
    await waitFor('calls work again', async () => a.publishPeer('fz', { endpointId: 'x', ip: '198.19.0.9', mac: mac(9) }), 3000);
    expect(a.status().state).toBe('connected');
  });

  it('etcd stopped then restarted: calls fail fast meanwhile, the watch backs off (no hot loop), and what is published after the return arrives within 2 s', async () => {
    const [a, b] = await Promise.all([1, 2].map((n) => sim.inProcessHost(n, { prefix: '/t-restart' })));
    const wa = collector();
    const watch = a!.watchPeers('rs', wa.handler);
    await b!.publishPeer('rs', { endpointId: 'before', ip: '198.19.0.2', mac: mac(2) });
    await waitFor('first peer', async () => (wa.view.size === 1 ? true : undefined), 2000);
    await sim.etcd.stop();
    const listsBefore = watch.stats().lists;
    await expectUnavailableFast(b!.publishPeer('rs', { endpointId: 'during', ip: '198.19.0.3', mac: mac(3) }));
    await new Promise((r) => setTimeout(r, 4000));
    // Backoff 100 ms doubling to 1 s: about 6 tries in 4 s, never a loop.
    const listsDown = watch.stats().lists - listsBefore;
    expect(listsDown).toBeGreaterThanOrEqual(2);
    expect(listsDown).toBeLessThanOrEqual(9);
    await sim.etcd.start();
    const back = Date.now();
    await waitFor('publish after the return', async () => b!.publishPeer('rs', { endpointId: 'after', ip: '198.19.0.4', mac: mac(4) }), 2000);
    await waitFor('peer published after the return seen by a', async () => (wa.view.has(`${b!.hostId}/after`) ? true : undefined), 2000);
    expect(Date.now() - back).toBeLessThan(2000);
    expect(wa.view.has(`${b!.hostId}/before`)).toBe(true);
    // The outage lost no lease (etcd extends leases when it starts): both hosts are still registered.
    expect((await a!.hosts()).map((h) => h.id).sort()).toEqual([a!.hostId, b!.hostId].sort());
    await watch.close();
  });

  it('compaction of the revision the watch resumes from: it re-lists once, hands over the difference, and goes on watching', async () => {
    const [a, b] = await Promise.all([1, 2].map((n) => sim.inProcessHost(n, { prefix: '/t-compact' })));
    await b!.publishPeer('cp', { endpointId: 'old', ip: '198.19.0.2', mac: mac(2) });
    const wa = collector();
    let injected = false;
    const watch = a!.watchPeers('cp', wa.handler, {
      afterList: async () => {
        if (injected) return;
        injected = true;
        // Between the list and the watch: history moves on and is compacted past the list's revision.
        await b!.publishPeer('cp', { endpointId: 'new', ip: '198.19.0.3', mac: mac(3) });
        await b!.removePeer('cp', 'old');
        await sim.etcd.compact();
      },
    });
    await waitFor('resync', async () => (wa.batches.length >= 2 ? true : undefined), 3000);
    expect(wa.batches[0]).toMatchObject({ resync: false, changes: [{ kind: 'added', peer: { endpointId: 'old' } }] });
    expect(wa.batches[1]!.resync).toBe(true);
    expect(wa.batches[1]!.changes.map((c) => `${c.kind} ${c.peer.endpointId}`)).toEqual(['added new', 'removed old']);
    expect([...wa.batches[1]!.peers.keys()]).toEqual([`${b!.hostId}/new`]);
    await new Promise((r) => setTimeout(r, 1000));
    expect(watch.stats()).toMatchObject({ lists: 2, resyncs: 1, state: 'watching' });
    await b!.publishPeer('cp', { endpointId: 'later', ip: '198.19.0.4', mac: mac(4) });
    await waitFor('later seen', async () => (wa.view.has(`${b!.hostId}/later`) ? true : undefined), 2000);
    expect(wa.batches.at(-1)!.resync).toBe(false);
    expect(watch.stats().lists).toBe(2);
    await watch.close();
  });

  it('endpoint join: the reserved addresses and the peer in one transaction on the host\'s lease; a lost race or a held --ip leaves no key; 3 hosts × 20 concurrent joins get distinct addresses', async () => {
    // The other hosts start after the network exists: it is in their first list, so they read its pool at their first reserve (not ahead, when it appears).
    const a = await sim.inProcessHost(1, { prefix: '/t-join' });
    const net = await a.ensureNetwork(spec('ovj'));
    const hosts = [a, ...(await Promise.all([2, 3].map((n) => sim.inProcessHost(n, { prefix: '/t-join' }))))];
    const b = hosts[1]!;
    await Promise.all(hosts.slice(1).map((h) => h.ensureNetwork(spec('ovj'))));
    const poolId = net.ipv4[0]!.poolId;
    const keys = async (under: string) => (await direct.range(`/t-join/v1/${under}`)).kvs;
    const join = (h: typeof a, id: string, address: string) =>
      h.joinEndpoint('ovj', { endpointId: id, ip: address, mac: mac(Number(address.split('/')[0]!.split('.')[3])) }, [{ poolId, address, owner: `endpoint:${id}` }]);
    // Both hosts choose from views read before either claims: the same first address.
    const [ra, rb] = [await a.reserveAddress(poolId), await b.reserveAddress(poolId)];
    expect(rb).toBe(ra);
    await join(a, 'ea', ra);
    const raced = await join(b, 'eb', rb).then(() => undefined, (e: unknown) => e as { code?: string; message?: string });
    expect(raced).toMatchObject({ code: 'ERR_ADDRESS_RACED' });
    b.forgetAddress(poolId, rb);
    const peerKeys = async () => (await storedPeers(direct, 'ovj', { prefix: '/t-join' })).map((p) => p.key);
    expect(await peerKeys()).toEqual([`/t-join/v1/peers/ovj/${a.hostId}/ea`]);
    const held = await keys(`ipam/addresses/${poolId.replace('/', '_')}/${ra.split('/')[0]}`);
    expect(JSON.parse(held[0]!.value.toString())).toMatchObject({ owner: 'endpoint:ea', host: a.hostId });
    expect(held[0]!.lease).toBe(a.status().lease!.id);
    // Asked for by address (--ip) and held by another endpoint: refused naming the holder, and no peer key.
    const given = await b.reserveAddress(poolId, ra.split('/')[0]);
    await expect(join(b, 'eb2', given)).rejects.toThrow(`address ${ra.split('/')[0]} is in use by endpoint ea on host ${os.hostname()} (${a.vtep}, id ${a.hostId})`);
    b.forgetAddress(poolId, given);
    expect(await peerKeys()).toEqual([`/t-join/v1/peers/ovj/${a.hostId}/ea`]);
    // 20 joins at once per host, each choosing again when another host took its address first.
    const connect = async (h: typeof a, id: string): Promise<string> => {
      for (;;) {
        const address = await h.reserveAddress(poolId);
        try {
          await join(h, id, address);
          return address;
        } catch (err) {
          h.forgetAddress(poolId, address);
          if ((err as { code?: string }).code !== 'ERR_ADDRESS_RACED') throw err;
        }
      }
    };
    const got = await Promise.all(hosts.flatMap((h, i) => Array.from({ length: 20 }, (_, j) => connect(h, `h${i}e${j}`))));
    expect(new Set([ra, ...got]).size).toBe(61);
    const peers = await storedPeers(direct, 'ovj', { prefix: '/t-join' });
    expect(peers).toHaveLength(61);
    const addresses = (await keys(`ipam/addresses/${poolId.replace('/', '_')}/`)).filter((kv) => JSON.parse(kv.value.toString()).kind === 'endpoint');
    expect(addresses).toHaveLength(61);
    // Each endpoint's peer names the address it holds, and both sit on its host's lease.
    const leaseOf = new Map(hosts.map((h) => [h.hostId, h.status().lease!.id]));
    const byIp = new Map(addresses.map((kv) => [kv.key.split('/').pop()!, kv]));
    for (const p of peers) {
      expect(p.lease).toBe(leaseOf.get(p.host));
      const addr = byIp.get(p.ip)!;
      expect(JSON.parse(addr.value.toString())).toMatchObject({ owner: `endpoint:${p.endpointId}`, host: p.host });
      expect(addr.lease).toBe(leaseOf.get(p.host));
    }
  });

  it('the network cache: a network made, then removed, on another host is seen through the watch; it serves nothing while etcd is away', async () => {
    const [a, b] = await Promise.all([1, 2].map((n) => sim.inProcessHost(n, { prefix: '/t-ncache' })));
    expect(await b!.getNetwork('ovn', { cached: true })).toBeUndefined();
    const net = await a!.ensureNetwork(spec('ovn'));
    expect(await waitFor('b sees ovn', async () => b!.getNetwork('ovn', { cached: true }), 2000)).toEqual(net);
    expect(await a!.removeNetwork('ovn')).toEqual({ deleted: true, holders: [], engines: [] });
    await waitFor('b sees ovn gone', async () => ((await b!.getNetwork('ovn', { cached: true })) === undefined ? true : undefined), 2000);
    // etcd stopped: not served from memory (the read fails fast instead); back, the cache is live again.
    await a!.ensureNetwork(spec('ovn2'));
    await waitFor('b sees ovn2', async () => b!.getNetwork('ovn2', { cached: true }), 2000);
    await sim.etcd.stop();
    try {
      await waitFor('b fails ovn2', async () => b!.getNetwork('ovn2', { cached: true }).then(() => undefined, () => true), 5000);
    } finally {
      await sim.etcd.start();
    }
    expect(await waitFor('b serves ovn2 again', async () => b!.getNetwork('ovn2', { cached: true }).catch(() => undefined), 5000)).toMatchObject({ name: 'ovn2' });
  });

  it('leaveNetwork: a network stays while a host or an endpoint address holds it; the last one out deletes it, its VNI, pools and addresses', async () => {
    const [a, b] = await Promise.all([1, 2].map((n) => sim.inProcessHost(n, { prefix: '/t-leave' })));
    const net = await a!.ensureNetwork(spec('lv'));
    await b!.ensureNetwork(spec('lv'));
    const addr = await b!.ipam.requestAddress(net.ipv4[0]!.poolId, { kind: 'endpoint', owner: 'eb' });
    expect(await a!.leaveNetwork('lv')).toEqual({ deleted: false });
    expect(await b!.leaveNetwork('lv')).toEqual({ deleted: false });
    expect(await a!.getNetwork('lv')).toEqual(net);
    await b!.ipam.releaseAddress(net.ipv4[0]!.poolId, addr, 'eb');
    expect(await b!.leaveNetwork('lv')).toEqual({ deleted: true });
    expect((await direct.range('/t-leave/v1/')).kvs.map((kv) => kv.key).filter((k) => !k.startsWith('/t-leave/v1/hosts/'))).toEqual([]);
  });

  it('removeNetwork: refused while a live host\'s Docker engine has the network (its engine network named, nothing deleted); a host whose lease ran out holds nothing', async () => {
    const [a, b] = await Promise.all([1, 2].map((n) => sim.inProcessHost(n, { prefix: '/t-rm' })));
    await a!.ensureNetwork(spec('rmd'));
    await b!.ensureNetwork(spec('rmd', { dockerNetwork: 'd0c4e1' }));
    const member = await direct.range(`/t-rm/v1/members/rmd/${b!.hostId}`, { prefix: false });
    expect(JSON.parse(member.kvs[0]!.value.toString())).toMatchObject({ dockerNetwork: 'd0c4e1' });
    // Spare addresses come and go on their own (b stocks the network it saw appear, for 2 s): not counted.
    const kept = async () => (await direct.range('/t-rm/v1/')).kvs
      .filter((kv) => !kv.key.startsWith('/t-rm/v1/hosts/') && !/"kind":"spare"/.test(kv.value.toString())).map((kv) => kv.key).sort();
    const before = await kept();
    expect(await a!.removeNetwork('rmd')).toEqual({ deleted: false, holders: [], engines: [{ host: b!.hostId, dockerNetwork: 'd0c4e1' }] });
    expect(await kept()).toEqual(before);
    // b goes away without a word: once its lease (3 s) is gone its engine no longer holds the network.
    await b!.close();
    await waitFor('b\'s host record gone', async () => ((await direct.range(`/t-rm/v1/hosts/${b!.hostId}`, { prefix: false })).kvs.length === 0 ? true : undefined), 6000);
    expect(await a!.removeNetwork('rmd')).toEqual({ deleted: true, holders: [], engines: [] });
    expect((await direct.range('/t-rm/v1/')).kvs.map((kv) => kv.key).filter((k) => !k.startsWith('/t-rm/v1/hosts/'))).toEqual([]);
  });

  it('a restart whose record sits on another lease: an ended earlier run\'s record on this machine is taken over; a live other process\'s is refused, naming it', async () => {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-take-'));
    try {
      const hostId = '00c0ffee00c0ffee';
      fs.writeFileSync(path.join(stateDir, 'cluster.json'), `${JSON.stringify({ hostId })}\n`);
      const key = `/t-take/v1/hosts/${hostId}`;
      const other = await direct.leaseGrant(30);
      const put = (pid: number) => direct.txn('a record of another run', [], [{
        put: key, value: { id: hostId, hostname: os.hostname(), vtep: '198.19.255.99', pid, started: 'earlier', version: 'x', localSubnets: [] }, lease: other,
      }]);
      // An earlier run that ended (its pid exits before the record is read) and whose lease is still alive.
      await put(spawnSync('true').pid!);
      const h = await sim.inProcessHost(7, { prefix: '/t-take', stateDir });
      expect(h.status()).toMatchObject({ state: 'connected', hostId });
      const kv = (await direct.range(key, { prefix: false })).kvs[0]!;
      expect(JSON.parse(kv.value.toString())).toMatchObject({ pid: process.pid, vtep: '198.19.255.107' });
      expect(kv.lease).toBe(h.status().lease!.id);
      await h.close();
      // A live process (pid 1) holding the record on its own lease: refused, the record left as it was.
      await put(1);
      const again = await sim.inProcessHost(7, { prefix: '/t-take', stateDir });
      expect(again.status()).toMatchObject({ state: 'unavailable', error: expect.stringContaining(`host id ${hostId} is registered by another live daemon (pid 1 on ${os.hostname()}`) });
      expect(JSON.parse((await direct.range(key, { prefix: false })).kvs[0]!.value.toString())).toMatchObject({ pid: 1 });
      await again.close();
    } finally {
      fs.rmSync(stateDir, { recursive: true, force: true });
    }
  });

  it('a copied state dir (the same host id and saved lease) does not take over a live daemon\'s record; a record whose pid a later process took is taken over', async () => {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-copy-'));
    try {
      const hostId = '00c0ffee00c0ff11';
      const key = `/t-copy/v1/hosts/${hostId}`;
      const lease = await direct.leaseGrant(30);
      // The copy holds what the live daemon's state dir holds: its host id and the lease its record sits on.
      fs.writeFileSync(path.join(stateDir, 'cluster.json'), `${JSON.stringify({ hostId, leaseId: lease })}\n`);
      const put = (pidStart: string) => direct.txn('the live daemon\'s record', [], [{
        put: key, value: { id: hostId, hostname: os.hostname(), vtep: '198.19.255.98', pid: 1, pidStart, started: new Date().toISOString(), version: 'x', localSubnets: [] }, lease,
      }]);
      // pid 1 runs, and is the very process the record names (its start time): a live other daemon.
      const pid1 = processStartTime(1)!;
      await put(pid1);
      const copy = await sim.inProcessHost(8, { prefix: '/t-copy', stateDir, leaseTtl: 30 });
      expect(copy.status()).toMatchObject({ state: 'unavailable', error: expect.stringContaining(`host id ${hostId} is registered by another live daemon (pid 1 on ${os.hostname()}, VTEP 198.19.255.98)`) });
      const kv = (await direct.range(key, { prefix: false })).kvs[0]!;
      expect(JSON.parse(kv.value.toString())).toMatchObject({ pid: 1, vtep: '198.19.255.98' });
      expect(kv.lease).toBe(lease);
      await copy.close();
      // A record whose process started at another time than pid 1 did: pid 1 is not that daemon, which has ended.
      await put(String(Number(pid1) + 1));
      const restarted = await sim.inProcessHost(8, { prefix: '/t-copy', stateDir, leaseTtl: 30 });
      expect(restarted.status()).toMatchObject({ state: 'connected', hostId });
      const mine = (await direct.range(key, { prefix: false })).kvs[0]!;
      expect(JSON.parse(mine.value.toString())).toMatchObject({ pid: process.pid, vtep: '198.19.255.108' });
      expect(mine.lease).toBe(lease);
      await restarted.close();
    } finally {
      fs.rmSync(stateDir, { recursive: true, force: true });
    }
  });

  it('a host id whose record another machine\'s daemon holds: refused while that daemon keeps its lease; registered once it has run out (the refused daemon does not keep it alive)', async () => {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-moved-'));
    try {
      const hostId = '00c0ffee00c0ff22';
      const key = `/t-moved/v1/hosts/${hostId}`;
      const lease = await direct.leaseGrant(3);
      fs.writeFileSync(path.join(stateDir, 'cluster.json'), `${JSON.stringify({ hostId, leaseId: lease })}\n`);
      await direct.txn('a record from another machine', [], [{
        put: key, value: { id: hostId, hostname: 'elsewhere', vtep: '198.19.255.97', pid: 1, started: new Date().toISOString(), version: 'x', localSubnets: [] }, lease,
      }]);
      const h = await sim.inProcessHost(9, { prefix: '/t-moved', stateDir });
      expect(h.status()).toMatchObject({ state: 'unavailable', error: expect.stringContaining(`host id ${hostId} is registered by another live daemon (pid 1 on elsewhere, VTEP 198.19.255.97)`) });
      // Nobody keeps the other lease alive now: it runs out within its 3 s, and the host registers on a lease of its own.
      await waitFor('registered', async () => (h.status().state === 'connected' ? true : undefined), 10_000);
      const kv = (await direct.range(key, { prefix: false })).kvs[0]!;
      expect(JSON.parse(kv.value.toString())).toMatchObject({ pid: process.pid, vtep: '198.19.255.109' });
      expect(kv.lease).not.toBe(lease);
      await h.close();
    } finally {
      fs.rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
