// Cluster mode without etcd: the key layout, the resync diff, the flag parser, the choice of a
// global subnet and its explanations, the comparison of network settings, peer validation, which keys are a host's leftovers, and
// the management routes with and without a cluster, and that no etcd code loads without it.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import Fastify from 'fastify';
import { decodeCidr, encodeCidr, Keys, prefixEnd } from '../../src/cluster/keys.js';
import fc from 'fast-check';
import { diffMaps, mergeChanges, sameJson } from '../../src/cluster/diff.js';
import { interfaceWith, parseClusterFlags, parseStoreUrl, resolveAdvertise } from '../../src/cluster/options.js';
import { addressIn, chooseSubnet, hostSpan, occupied, subnetLayout } from '../../src/cluster/pools.js';
import { differences, freeVni } from '../../src/cluster/networks.js';
import { checkPeer } from '../../src/cluster/peers.js';
import { findLeftovers } from '../../src/cluster/confirm.js';
import type { KeyValue, StoreClient } from '../../src/cluster/client.js';
import { Owned } from '../../src/cluster/owned.js';
import { checkDefaultPool } from '../../src/ipam/defaults.js';
import { parsePrefix } from '../../src/ip/index.js';
import { registerClusterRoutes } from '../../src/api/cluster.js';
import { errorHandler } from '../../src/api/errors.js';
import { ClusterUnavailableError } from '../../src/errors.js';
import type { Cluster, GlobalNetwork, GlobalNetworkSpec } from '../../src/cluster/types.js';
import { check } from '../helpers/exec.js';

describe('key layout', () => {
  const k = new Keys('/cnmkit');
  it('puts every key under PREFIX/v1/ with one segment per name or id', () => {
    expect(k.host('0a1b2c3d4e5f6071')).toBe('/cnmkit/v1/hosts/0a1b2c3d4e5f6071');
    expect(k.network('ov1')).toBe('/cnmkit/v1/networks/ov1');
    expect(k.member('ov1', 'h1')).toBe('/cnmkit/v1/members/ov1/h1');
    expect(k.vni(4096)).toBe('/cnmkit/v1/vni/4096');
    expect(k.pool('198.19.0.0/24')).toBe('/cnmkit/v1/ipam/pools/198.19.0.0_24');
    expect(k.address('198.19.0.0/24', '198.19.0.2')).toBe('/cnmkit/v1/ipam/addresses/198.19.0.0_24/198.19.0.2');
    expect(k.address('fd00:1::/64', 'fd00:1::2')).toBe('/cnmkit/v1/ipam/addresses/fd00:1::_64/fd00:1::2');
    expect(k.peer('ov1', 'h1', 'ep1')).toBe('/cnmkit/v1/peers/ov1/h1/ep1');
    expect(new Keys('/lab/a').hosts()).toBe('/lab/a/v1/hosts/');
  });
  it('keeps one network\'s prefix from matching another\'s ("ov" vs "ov1")', () => {
    expect(k.peer('ov1', 'h', 'e').startsWith(k.peers('ov'))).toBe(false);
    expect(k.split(k.peers('ov1'), k.peer('ov1', 'h', 'e'))).toEqual(['h', 'e']);
  });
  it('refuses names that would break the layout', () => {
    expect(() => k.network('a/b')).toThrow(/network: "a\/b" cannot be a key segment/);
    expect(() => k.peer('n', '', 'e')).toThrow(/host id/);
    expect(() => encodeCidr('198.19.0.0')).toThrow(/not a CIDR/);
  });
  it('encodes a CIDR as one segment and back', () => {
    for (const c of ['198.19.0.0/24', 'fd12:3456::/64', '::/0']) expect(decodeCidr(encodeCidr(c))).toBe(c);
  });
  it('computes the range end of a prefix as etcd does', () => {
    expect(prefixEnd('/a/').toString()).toBe('/a0');
    expect(prefixEnd('/cnmkit/v1/peers/ov1/').toString()).toBe('/cnmkit/v1/peers/ov10');
  });
});

describe('resync diff', () => {
  it('reports added, updated and removed entries in key order, and nothing for equal values', () => {
    const before = new Map([['a', { ip: '1' }], ['b', { ip: '2' }], ['c', { ip: '3' }]]);
    const after = new Map([['b', { ip: '2' }], ['c', { ip: '33' }], ['d', { ip: '4' }]]);
    expect(diffMaps(before, after, sameJson)).toEqual([
      { kind: 'removed', key: 'a', value: { ip: '1' } },
      { kind: 'updated', key: 'c', value: { ip: '33' }, previous: { ip: '3' } },
      { kind: 'added', key: 'd', value: { ip: '4' } },
    ]);
    expect(diffMaps(after, new Map(after), sameJson)).toEqual([]);
  });
  it('merges two lists of changes into their net effect: the diff from the first state to the last', () => {
    // Three states of a small key range; the changes between consecutive ones, merged, must be the diff from the first to the third.
    const state = fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd', 'e'), fc.record({ ip: fc.constantFrom('1', '2', '3') }));
    fc.assert(fc.property(state, state, state, (s0, s1, s2) => {
      const [m0, m1, m2] = [s0, s1, s2].map((s) => new Map(Object.entries(s)));
      const merged = mergeChanges(diffMaps(m0!, m1!, sameJson), diffMaps(m1!, m2!, sameJson), sameJson);
      expect(merged).toEqual(diffMaps(m0!, m2!, sameJson));
    }));
    const one = { ip: '1' };
    expect(mergeChanges([{ kind: 'added', key: 'a', value: one }], [{ kind: 'removed', key: 'a', value: one }], sameJson)).toEqual([]);
  });
  it('compares JSON values structurally, ignoring key order and undefined fields', () => {
    expect(sameJson({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1, d: undefined })).toBe(true);
    expect(sameJson({ a: 1 }, { a: '1' })).toBe(false);
    expect(sameJson([1, 2], { 0: 1, 1: 2 })).toBe(false);
  });
});

describe('cluster flags', () => {
  const ifs = {
    eth0: [{ address: '198.19.255.1', family: 'IPv4' }, { address: 'fe80::1', family: 'IPv6' }],
    v6only: [{ address: 'fd00::1', family: 'IPv6' }],
  } as unknown as Parameters<typeof resolveAdvertise>[1];
  it('turns etcd://HOST:PORT lists into the gateway endpoints (https with TLS)', () => {
    expect(parseStoreUrl('etcd://198.19.255.254:2379,etcd2.lab:2379,[fd00::1]:2379', false)).toEqual([
      'http://198.19.255.254:2379', 'http://etcd2.lab:2379', 'http://[fd00::1]:2379',
    ]);
    expect(parseStoreUrl('etcd://h:2379', true)).toEqual(['https://h:2379']);
    expect(parseStoreUrl('unix:///run/etcd.sock:2379', false)).toEqual(['unix:///run/etcd.sock:2379']);
    expect(() => parseStoreUrl('etcd://h:0', false)).toThrow('--cluster-store: expected HOST:PORT, got "h:0"');
    expect(() => parseStoreUrl('consul://h:1', false)).toThrow(/--cluster-store: expected etcd:\/\//);
  });
  it('resolves --advertise-addr: an IPv4 as is, an interface to its first IPv4', () => {
    expect(resolveAdvertise('198.19.255.9', ifs)).toEqual({ vtep: '198.19.255.9' });
    expect(resolveAdvertise('eth0', ifs)).toEqual({ vtep: '198.19.255.1', iface: 'eth0' });
    expect(() => resolveAdvertise('v6only', ifs)).toThrow('--advertise-addr: interface v6only is missing, down or has no IPv4 address in this network namespace, and no earlier run of this host saved one');
    expect(() => resolveAdvertise('eth9', ifs)).toThrow(expect.objectContaining({ name: 'ConflictError', field: 'advertise-addr' }));
    expect(() => resolveAdvertise('127.0.0.1', ifs)).toThrow(/cannot be reached from other hosts/);
    expect(() => resolveAdvertise('lo', { lo: [{ address: '127.0.0.1', family: 'IPv4' }] } as unknown as Parameters<typeof resolveAdvertise>[1])).toThrow('--advertise-addr: interface lo has 127.0.0.1, which cannot be reached from other hosts');
    expect(() => resolveAdvertise('fd00::1', ifs)).toThrow(/must be an IPv4 address/);
  });
  it('an interface without an address yet (a reboot): the address an earlier run saved; the interface\'s own when it has one', () => {
    expect(resolveAdvertise('eth9', ifs, '198.19.255.5')).toEqual({ vtep: '198.19.255.5', iface: 'eth9' });
    expect(resolveAdvertise('v6only', ifs, '198.19.255.5')).toEqual({ vtep: '198.19.255.5', iface: 'v6only' });
    expect(resolveAdvertise('eth0', ifs, '198.19.255.5')).toEqual({ vtep: '198.19.255.1', iface: 'eth0' });
    expect(parseClusterFlags({ store: 'etcd://h:1', advertise: 'eth9' }, ifs, '198.19.255.5')).toMatchObject({ vtep: '198.19.255.5', advertiseInterface: 'eth9' });
  });
  it('takes an advertise address no interface has (a lab adds it later), and finds which interface holds one', () => {
    expect(resolveAdvertise('198.19.255.77', ifs)).toEqual({ vtep: '198.19.255.77' });
    expect(interfaceWith('198.19.255.77', ifs)).toBeUndefined();
    expect(interfaceWith('198.19.255.1', ifs)).toBe('eth0');
    expect(interfaceWith('fd00::1', ifs)).toBeUndefined();
  });
  it('is off without --cluster-store, and other cluster flags alone are refused', () => {
    expect(parseClusterFlags({}, ifs)).toBeUndefined();
    expect(() => parseClusterFlags({ leaseTtl: '5' }, ifs)).toThrow('--cluster-lease-ttl: needs --cluster-store');
  });
  it('parses a whole set, with defaults', () => {
    expect(parseClusterFlags({ store: 'etcd://198.19.255.254:2379', advertise: 'eth0' }, ifs)).toEqual({
      endpoints: ['http://198.19.255.254:2379'], prefix: '/cnmkit', vtep: '198.19.255.1', advertiseInterface: 'eth0', leaseTtl: 15,
    });
    expect(parseClusterFlags({
      store: 'etcd://h:1', advertise: '198.19.255.7', leaseTtl: '4s', storeOpts: ['prefix=/lab/x'], globalPools: ['base=198.19.0.0/17,size=24'],
    }, ifs)).toEqual({ endpoints: ['http://h:1'], prefix: '/lab/x', vtep: '198.19.255.7', leaseTtl: 4, globalPools: [{ base: '198.19.0.0/17', size: 24 }] });
  });
  it('names the option that is wrong', () => {
    const base = { store: 'etcd://h:1', advertise: 'eth0' };
    expect(() => parseClusterFlags({ ...base, storeOpts: ['prefix=cnmkit'] }, ifs)).toThrow('--cluster-store-opt prefix: expected /NAME');
    expect(() => parseClusterFlags({ ...base, storeOpts: ['token=x'] }, ifs)).toThrow('--cluster-store-opt: expected cacert=FILE');
    expect(() => parseClusterFlags({ ...base, storeOpts: ['cert=/etc/hostname'] }, ifs)).toThrow('cert= and key= go together');
    expect(() => parseClusterFlags({ ...base, leaseTtl: '0' }, ifs)).toThrow('--cluster-lease-ttl: expected whole seconds');
    expect(() => parseClusterFlags({ ...base, globalPools: ['base=198.19.0.1/17,size=24'] }, ifs)).toThrow('--default-global-address-pool: base: 198.19.0.1/17 has host bits set');
  });
});

describe('choosing a global subnet', () => {
  const defaults = [checkDefaultPool({ base: '198.19.64.0/22', size: 24 })];
  const pools = [{ poolId: '198.19.66.0/24', subnet: '198.19.66.0/24', family: 4 as const, owner: 'ov1' }];
  const hosts = [{ id: 'h1', hostname: 'alpha', vtep: '198.19.255.1', pid: 1, started: '', version: '', localSubnets: [{ network: 'lan', subnet: '198.19.64.0/23' }, { network: 'bridge', subnet: '172.17.0.0/16' }] }];
  const taken = occupied(pools, hosts);
  it('skips pools in use and every host\'s local networks', () => {
    expect(chooseSubnet({ v6: false }, taken, defaults).text).toBe('198.19.67.0/24');
  });
  it('explains every skipped candidate when none is left, in runs', () => {
    const all = occupied([...pools, { ...pools[0]!, poolId: '198.19.67.0/24', subnet: '198.19.67.0/24', owner: 'ov2' }], hosts);
    expect(() => chooseSubnet({ v6: false }, all, defaults)).toThrow([
      'could not find an available, non-overlapping global IPv4 subnet among the 4 default candidate(s):',
      '  198.19.64.0/24 … 198.19.65.0/24 (2 subnets): overlaps the local network lan (198.19.64.0/23) on host alpha (198.19.255.1, id h1)',
      '  198.19.66.0/24: in use by global network ov1',
      '  198.19.67.0/24: in use by global network ov2',
    ].join('\n'));
  });
  it('refuses a given subnet that overlaps, naming what it overlaps', () => {
    expect(() => chooseSubnet({ subnet: '172.17.5.0/24', v6: false }, taken, defaults)).toThrow('subnet 172.17.5.0/24 cannot be a global pool: it overlaps the local network bridge (172.17.0.0/16) on host alpha (198.19.255.1, id h1)');
    expect(() => chooseSubnet({ subnet: '198.19.66.128/25', v6: false }, taken, defaults)).toThrow('it is in use by global network ov1');
    expect(chooseSubnet({ subnet: '198.19.68.0/24', v6: false }, taken, defaults).text).toBe('198.19.68.0/24');
  });
  it('gives IPv6 a ULA /64 when no IPv6 pool is configured', () => {
    expect(chooseSubnet({ v6: true }, taken, defaults).text).toMatch(/^fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}::\/64$/);
  });
  it('lays out gateway and ip-range like the local IPAM', () => {
    const p = parsePrefix('subnet', '198.19.8.0/24');
    expect(subnetLayout(p, undefined, undefined)).toMatchObject({ gateway: '198.19.8.1' });
    expect(subnetLayout(p, '198.19.8.128/25', undefined)).toMatchObject({ gateway: '198.19.8.128', range: { text: '198.19.8.128/25' } });
    expect(subnetLayout(p, undefined, '198.19.8.254')).toMatchObject({ gateway: '198.19.8.254' });
    expect(() => subnetLayout(p, '198.19.9.0/25', undefined)).toThrow('ip-range 198.19.9.0/25 is not inside subnet 198.19.8.0/24');
    expect(() => subnetLayout(p, undefined, '198.19.9.1')).toThrow('gateway 198.19.9.1 is not inside subnet 198.19.8.0/24');
    expect(hostSpan(p)).toEqual({ first: p.start + 1n, last: p.end - 1n });
    expect(hostSpan(parsePrefix('s', '198.19.8.0/31'))).toEqual({ first: p.start, last: p.start + 1n });
  });
  it('gives IPv6 the first address after the network address as its gateway (the network address is reserved, as the local IPAM does, below /127)', () => {
    const p6 = parsePrefix('subnet', 'fd00:1::/64');
    expect(subnetLayout(p6, undefined, undefined)).toMatchObject({ gateway: 'fd00:1::1' });
    expect(hostSpan(p6)).toEqual({ first: p6.start + 1n, last: p6.end });
    const p127 = parsePrefix('s', 'fd00:2::/127');
    expect(hostSpan(p127)).toEqual({ first: p127.start, last: p127.end });
    expect(() => addressIn(p6, 'fd00:1::')).toThrow('ip: fd00:1:: is the network address of fd00:1::/64');
    expect(addressIn(p6, 'fd00:1::7')).toBe('fd00:1::7');
  });
});

describe('network settings and VNIs', () => {
  const have: GlobalNetwork = {
    name: 'ov', id: 'x', driver: 'overlay', vni: 4096, internal: false, enableIPv6: false, options: { a: '1' },
    ipv4: [{ poolId: '198.19.0.0/24', subnet: '198.19.0.0/24', gateway: '198.19.0.1/24' }], ipv6: [], createdBy: 'h1', created: '',
  };
  const spec: GlobalNetworkSpec = { name: 'ov', driver: 'overlay', internal: false, enableIPv6: false, options: { a: '1' }, ipv4: [], ipv6: [] };
  it('finds no difference for the same settings (subnets not given match any)', () => {
    expect(differences(spec, have)).toEqual([]);
    expect(differences({ ...spec, ipv4: [{ subnet: '198.19.0.0/24', gateway: '198.19.0.1' }] }, have)).toEqual([]);
  });
  it('compares labels when the request gives any: none given joins whatever the cluster has', () => {
    const labelled = { ...have, labels: { team: 'blue' } };
    expect(differences(spec, labelled)).toEqual([]);
    expect(differences({ ...spec, labels: {} }, labelled)).toEqual([]);
    expect(differences({ ...spec, labels: { team: 'blue' } }, labelled)).toEqual([]);
    expect(differences({ ...spec, labels: { team: 'red' } }, labelled)).toEqual(['labels.team: "red" here, "blue" in the cluster']);
    expect(differences({ ...spec, labels: { tier: 'db' } }, have)).toEqual(['labels.tier: "db" here, unset in the cluster']);
  });
  it('names every difference', () => {
    expect(differences({ ...spec, internal: true, vni: 5000, options: { b: '2' }, ipv4: [{ subnet: '198.19.1.0/24' }] }, have)).toEqual([
      'internal: true here, false in the cluster',
      'vni: 5000 here, 4096 in the cluster',
      'options.a: unset here, "1" in the cluster',
      'options.b: "2" here, unset in the cluster',
      'ipv4[0].subnet: "198.19.1.0/24" here, "198.19.0.0/24" in the cluster',
    ]);
  });
  it('takes the first VNI from 4096 up that is free', () => {
    expect(freeVni(new Set())).toBe(4096);
    expect(freeVni(new Set([4096, 4097, 4099]))).toBe(4098);
  });
});

describe('peers', () => {
  it('validates and normalises a peer', () => {
    expect(checkPeer('n', { endpointId: 'e', ip: '198.19.0.2/24', mac: '02:42:C6:13:00:02' }, 'h', '198.19.255.1')).toEqual({
      network: 'n', host: 'h', endpointId: 'e', ip: '198.19.0.2', mac: '02:42:c6:13:00:02', vtep: '198.19.255.1',
    });
    expect(() => checkPeer('n', { endpointId: 'e', ip: 'x', mac: '02:42:c6:13:00:02' }, 'h', '198.19.255.1')).toThrow('ip: "x" is not an IPv4 address');
    expect(() => checkPeer('n', { endpointId: 'e', ip: '198.19.0.2', mac: '02:42' }, 'h', '198.19.255.1')).toThrow(/mac: "02:42" is not a MAC/);
  });
});

describe('cluster routes of the management API', () => {
  async function app(cluster: Cluster | undefined) {
    const a = Fastify();
    a.setErrorHandler(errorHandler);
    registerClusterRoutes(a, cluster);
    await a.ready();
    return a;
  }
  it('answers 409 ERR_NOT_IN_CLUSTER without a cluster store', async () => {
    const res = await (await app(undefined)).inject({ method: 'GET', url: '/v1/cluster/hosts' });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: 'ERR_NOT_IN_CLUSTER', error: expect.stringContaining('--cluster-store') });
  });
  it('answers 503 ERR_CLUSTER_UNAVAILABLE when etcd does not answer', async () => {
    const down = { hosts: async () => { throw new ClusterUnavailableError('etcd://198.19.255.254:2379 does not answer (no answer from etcd within 1500 ms)'); } } as unknown as Cluster;
    const res = await (await app(down)).inject({ method: 'GET', url: '/v1/cluster/hosts' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ code: 'ERR_CLUSTER_UNAVAILABLE', error: 'cluster store unavailable: etcd://198.19.255.254:2379 does not answer (no answer from etcd within 1500 ms)' });
  });
});

describe('loading', () => {
  it('loads no etcd code unless cluster mode is asked for', async () => {
    const out = await check([process.execPath, '--import', 'tsx', path.join(import.meta.dirname, 'cluster-lazy-child.ts')], { timeoutMs: 60_000 });
    const counts = JSON.parse(out.trim().split('\n').pop()!) as { without: number; with: number };
    expect(counts.without).toBe(0);
    expect(counts.with).toBeGreaterThan(0);
  });
});

describe('global addresses given with --ip', () => {
  it('refuses the network and broadcast addresses of an IPv4 subnet, as local IPAM does (not on a /31)', () => {
    const subnet = parsePrefix('subnet', '198.19.50.0/24');
    expect(addressIn(subnet, '198.19.50.7')).toBe('198.19.50.7');
    expect(() => addressIn(subnet, '198.19.50.0')).toThrow('ip: 198.19.50.0 is the network address of 198.19.50.0/24');
    expect(() => addressIn(subnet, '198.19.50.255/24')).toThrow('ip: 198.19.50.255 is the broadcast address of 198.19.50.0/24');
    expect(addressIn(parsePrefix('subnet', '198.19.51.0/31'), '198.19.51.0')).toBe('198.19.51.0');
  });
});

describe('a host\'s leftovers on a network (what a restart removes and check names)', () => {
  const keys = new Keys('/cnmkit');
  const me = 'a'.repeat(32);
  const other = 'b'.repeat(32);
  const pool = '198.19.70.0/24';
  const kv = (key: string, value: unknown): KeyValue => ({ key, value: Buffer.from(JSON.stringify(value)), createRevision: 1, modRevision: 1, version: 1, lease: '1' });
  const addr = (ip: string, value: { owner: string; kind: string; host: string }) => kv(keys.address(pool, ip), value);
  const read = [
    [kv(keys.peer('ovm', me, 'gone'), {}), kv(keys.peer('ovm', me, 'here'), {}), kv(keys.peer('ovm', me, 'mine-now'), {})],
    [
      addr('198.19.70.30', { owner: 'endpoint:gone', kind: 'endpoint', host: me }),
      addr('198.19.70.31', { owner: 'endpoint:here', kind: 'endpoint', host: me }),
      addr('198.19.70.32', { owner: 'endpoint:theirs', kind: 'endpoint', host: other }),
      addr('198.19.70.33', { owner: `spare:${me}`, kind: 'spare', host: me }),
      addr('198.19.70.34', { owner: `docker:${me}`, kind: 'endpoint', host: me }),
      addr('198.19.70.35', { owner: 'endpoint:mine-now', kind: 'endpoint', host: me }),
    ],
  ];
  const asked: unknown[] = [];
  const client = { txn: async (_what: string, _c: unknown, ops: unknown[]) => (asked.push(ops), { succeeded: true, revision: 2, reads: read }) } as unknown as StoreClient;

  it('names this host\'s peers and endpoint addresses that no known endpoint has and this daemon did not write, in one read', async () => {
    const owned = new Owned();
    // Written by this daemon since it started (a connect in flight): never a leftover.
    owned.set(keys.peer('ovm', me, 'mine-now'), { kind: 'peer', value: { endpointId: 'mine-now', ip: '198.19.70.35', mac: '02:00:00:00:00:01', vtep: '198.19.255.2', network: 'ovm', host: me } });
    owned.set(keys.address(pool, '198.19.70.35'), { kind: 'address', value: { owner: 'endpoint:mine-now', kind: 'endpoint', host: me } });
    const found = await findLeftovers({ client, keys, hostId: me, vtep: '198.19.255.2', owned, lease: () => '1' }, 'ovm', [pool], new Set(['here']));
    expect(found).toEqual({ peers: ['gone'], addresses: [{ poolId: pool, address: '198.19.70.30', owner: 'endpoint:gone' }] });
    expect(asked).toEqual([[{ get: keys.hostPeers('ovm', me), prefix: true }, { get: keys.addresses(pool), prefix: true }]]);
  });
});
