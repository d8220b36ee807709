// The controller and the management API without root: an in-memory store, IPAM with a fake host,
// a fake sandbox kernel and a fake driver that can fail on demand — requests through `inject`.
import { beforeEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { openStore, type Store } from '../../src/store/index.js';
import { Ipam } from '../../src/ipam/index.js';
import { Controller } from '../../src/controller/controller.js';
import { DriverRegistry, type CheckItem, type Driver, type DriverContext } from '../../src/contract/driver.js';
import { createNullDriver } from '../../drivers/null/index.js';
import { createHostDriver } from '../../drivers/host/index.js';
import { buildManagementApi } from '../../src/api/management.js';
import { bornInSandbox, FakeKernel } from './fake-kernel.js';
import { LinkService } from '../../src/links/index.js';
import { NetlinkHandlePool } from '../../src/netlink/index.js';

const logger = pino({ level: 'silent' });

/** A driver with addresses that records its calls, fails where told and reports the drift it is given. */
function fakeDriver(calls: string[], failOn: Set<string>, drift: Map<string, CheckItem[]>): Driver<{ opt?: string }> {
  const step = (name: string) => {
    calls.push(name);
    if (failOn.has(name)) throw new Error(`${name} failed on purpose`);
  };
  return {
    name: 'fake', scope: 'local', usesIpam: true,
    parse: (input) => ({ ...(input.options.opt ? { opt: input.options.opt } : {}) }),
    async createNetwork() { step('createNetwork'); },
    async deleteNetwork() { step('deleteNetwork'); },
    async createEndpoint() { step('createEndpoint'); return { driverData: { made: true } }; },
    async deleteEndpoint() { step('deleteEndpoint'); },
    async join() { step('join'); return bornInSandbox('eth0'); },
    async leave() { step('leave'); },
    async check(net, _config, endpoints) {
      step('check');
      return [...(drift.get(net.name) ?? []), ...endpoints.flatMap(({ ep, sb }) => drift.get(`${ep.name}@${sb?.name ?? '-'}`) ?? [])];
    },
  };
}

describe('controller and management API', () => {
  let store: Store;
  let ipam: Ipam;
  let kernel: FakeKernel;
  let api: FastifyInstance;
  let calls: string[];
  let failOn: Set<string>;
  let drift: Map<string, CheckItem[]>;
  let drivers: DriverRegistry;

  beforeEach(async () => {
    store = openStore(':memory:');
    ipam = new Ipam(store, { environment: { linkRoutes: () => ['172.17.0.0/16'], nameservers: () => [] } });
    kernel = new FakeKernel();
    calls = [];
    failOn = new Set();
    drift = new Map();
    const ctx = { logger } as unknown as DriverContext;
    drivers = new DriverRegistry();
    drivers.register(createNullDriver(ctx));
    drivers.register(createHostDriver(ctx));
    drivers.register(fakeDriver(calls, failOn, drift));
    const controller = new Controller({ store, ipam, drivers, kernel, logger, defaultDriver: 'fake', predefined: new Set(['none']) });
    await controller.createNetwork({ name: 'none', driver: 'null' });
    const netlink = new NetlinkHandlePool();
    const links = new LinkService({ store, netlink, sandbox: (ref) => controller.sandbox(ref), exists: (p) => kernel.exists(p), logger });
    api = await buildManagementApi({ controller, logger, reloadFirewall: async () => ({ backend: 'none', removedOwners: [], notes: [] }), links, netlink });
  });

  it('creates a network on the first default pool that no host route overlaps', async () => {
    const r = await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'n1' } });
    expect(r.statusCode).toBe(201);
    expect(r.json()).toMatchObject({ name: 'n1', driver: 'fake', state: 'ready', ipv4: [{ subnet: '172.18.0.0/16', gateway: '172.18.0.1/16' }] });
    const ls = await api.inject({ method: 'GET', url: '/v1/networks' });
    expect(ls.json().map((n: { name: string }) => n.name).sort()).toEqual(['n1', 'none']);
  });

  it('answers bad input with 400 naming the field, unknown objects with 404, duplicates with 409', async () => {
    const badName = await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'bad name' } });
    expect(badName.statusCode).toBe(400);
    expect(badName.json()).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'name' });
    const extra = await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'x', bogus: 1 } });
    expect(extra.statusCode).toBe(400);
    const subnet = await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'x', subnet: '10.0.0.0/33' } });
    expect(subnet.statusCode).toBe(400);
    expect(subnet.json().error).toMatch(/^subnet: /);
    expect((await api.inject({ method: 'GET', url: '/v1/networks/nope' })).statusCode).toBe(404);
    await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'dup' } });
    const dup = await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'dup' } });
    expect(dup.statusCode).toBe(409);
    expect((await api.inject({ method: 'DELETE', url: '/v1/networks/none' })).statusCode).toBe(403);
    expect(store.networks.list().map((n) => n.name).sort()).toEqual(['dup', 'none']);
  });

  it('rolls back a network whose driver fails: no record, no pool', async () => {
    failOn.add('createNetwork');
    const r = await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'broken', subnet: '10.9.0.0/24' } });
    expect(r.statusCode).toBe(500);
    expect(r.json().error).toMatch(/createNetwork failed on purpose/);
    expect(store.networks.getByName('broken')).toBeUndefined();
    expect(ipam.listPools().map((p) => p.pool)).not.toContain('10.9.0.0/24');
  });

  it('records a new network with its pool in one transaction before its driver runs, and marks it ready in one more', async () => {
    let txs = 0;
    store.onTxTimed = () => void (txs += 1);
    const seen: Array<{ txs: number; state?: string; pools: string[] }> = [];
    const driver = drivers.get('fake')!;
    const create = driver.createNetwork.bind(driver);
    driver.createNetwork = async (net, config) => {
      seen.push({ txs, state: store.networks.getByName('counted')?.state, pools: ipam.listPools().map((p) => p.pool) });
      return create(net, config);
    };
    const r = await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'counted', subnet: '10.7.0.0/24' } });
    expect(r.statusCode).toBe(201);
    expect(seen).toEqual([{ txs: 1, state: 'creating', pools: expect.arrayContaining(['10.7.0.0/24']) }]);
    expect(txs).toBe(2);
  });

  it('refuses ports on an internal network before the driver is asked anything, naming the field and why', async () => {
    drivers.register({ ...fakeDriver(calls, failOn, drift), name: 'pub', async publish(_n, _c, _e, ports) { calls.push('publish'); return ports; } });
    await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'sealed', driver: 'pub', internal: true, subnet: '10.9.0.0/24' } });
    await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 's1' } });
    calls.length = 0;
    const refused = await api.inject({ method: 'POST', url: '/v1/networks/sealed/connect', payload: { sandbox: 's1', ports: ['8080:80'] } });
    expect([refused.statusCode, refused.json()]).toEqual([400, expect.objectContaining({ field: 'ports', error: 'ports: network sealed is internal: it cannot publish ports' })]);
    expect(calls).toEqual([]);
    const net = await api.inject({ method: 'GET', url: '/v1/networks/sealed' });
    expect(net.json().endpoints).toEqual([]);
    // Nothing taken: the next connect gets the network's first address.
    const ep = await api.inject({ method: 'POST', url: '/v1/networks/sealed/connect', payload: { sandbox: 's1' } });
    expect(ep.json().ipv4).toBe('10.9.0.2/24');
  });

  it('connects and disconnects sandboxes; a failing join is undone whole and its address freed', async () => {
    await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'n', subnet: '10.8.0.0/24' } });
    const sb = await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 's1' } });
    expect(sb.statusCode).toBe(201);
    expect(kernel.namespaces.has('s1')).toBe(true);
    const ep = await api.inject({ method: 'POST', url: '/v1/networks/n/connect', payload: { sandbox: 's1' } });
    expect(ep.json()).toMatchObject({ ipv4: '10.8.0.2/24', ifname: 'eth0', state: 'ready' });
    await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 's2' } });
    failOn.add('join');
    const bad = await api.inject({ method: 'POST', url: '/v1/networks/n/connect', payload: { sandbox: 's2' } });
    expect(bad.statusCode).toBe(500);
    expect(calls.slice(-3)).toEqual(['createEndpoint', 'join', 'deleteEndpoint']);
    failOn.clear();
    const again = await api.inject({ method: 'POST', url: '/v1/networks/n/connect', payload: { sandbox: 's2', ip: '10.8.0.3' } });
    expect(again.json().ipv4).toBe('10.8.0.3/24');
    const inUse = await api.inject({ method: 'DELETE', url: '/v1/networks/n' });
    expect(inUse.statusCode).toBe(409);
    expect((await api.inject({ method: 'POST', url: '/v1/networks/n/disconnect', payload: { sandbox: 's1' } })).statusCode).toBe(204);
    expect((await api.inject({ method: 'DELETE', url: '/v1/sandboxes/s2' })).statusCode).toBe(204);
    expect(kernel.namespaces.has('s2')).toBe(false);
    expect((await api.inject({ method: 'DELETE', url: '/v1/sandboxes/s2' })).statusCode).toBe(204);
    expect((await api.inject({ method: 'DELETE', url: '/v1/networks/n' })).statusCode).toBe(204);
    expect(store.endpoints.list()).toEqual([]);
  });

  it('makes a network without IPv4 when asked: no pool, no gateway, endpoints without an address; IPv4 fields refused by name', async () => {
    const r = await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'l2', enableIPv4: false } });
    expect(r.statusCode).toBe(201);
    expect(r.json()).toMatchObject({ name: 'l2', ipv4: [], ipv6: [] });
    expect(ipam.listPools()).toEqual([]);
    await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 's1' } });
    const ep = await api.inject({ method: 'POST', url: '/v1/networks/l2/connect', payload: { sandbox: 's1' } });
    expect(ep.statusCode).toBe(201);
    expect(ep.json()).toMatchObject({ ifname: 'eth0', state: 'ready' });
    expect(ep.json().ipv4).toBeUndefined();
    const fixed = await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 's2', connect: [{ network: 'l2', ip: '10.8.0.3' }] } });
    expect([fixed.statusCode, fixed.json().error]).toEqual([400, 'network l2: ip: network l2 has no IPv4 subnet']);
    for (const [field, value] of [['subnet', '10.7.0.0/24'], ['gateway', '10.7.0.1'], ['ipRange', '10.7.0.0/25'], ['auxAddresses', { a: '10.7.0.9' }]] as const) {
      const bad = await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'x', enableIPv4: false, [field]: value } });
      expect([field, bad.statusCode, bad.json()]).toEqual([field, 400, expect.objectContaining({ field, error: `${field}: a network without IPv4 (enableIPv4 false) takes no ${field}` })]);
    }
    expect(store.networks.list().map((n) => n.name).sort()).toEqual(['l2', 'none']);
  });

  it('refuses --ipv6 on a network without IPv6, and a malformed or IPv4 one, naming the field ipv6; nothing is recorded', async () => {
    await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'n4', subnet: '10.8.0.0/24' } });
    const n6 = await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'n6', subnet: '10.9.0.0/24', enableIPv6: true, subnetV6: 'fd00:8::/64' } });
    expect(n6.statusCode).toBe(201);
    await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 's1' } });
    const connect = (network: string, ipv6: string) => api.inject({ method: 'POST', url: `/v1/networks/${network}/connect`, payload: { sandbox: 's1', ipv6 } });
    const none = await connect('n4', 'fd00:8::5');
    expect([none.statusCode, none.json()]).toEqual([400, expect.objectContaining({ field: 'ipv6', error: 'ipv6: network n4 has no IPv6 subnet (it was created without --ipv6)' })]);
    const bad = await connect('n6', 'fd00::zz');
    expect([bad.statusCode, bad.json().field]).toEqual([400, 'ipv6']);
    expect(bad.json().error).toMatch(/^ipv6: /);
    const v4 = await connect('n6', '10.9.0.5');
    expect([v4.statusCode, v4.json()]).toEqual([400, expect.objectContaining({ field: 'ipv6', error: 'ipv6: expected an IPv6 address, got "10.9.0.5"' })]);
    expect(store.endpoints.list()).toEqual([]);
    expect(calls).not.toContain('createEndpoint');
    const ok = await connect('n6', 'fd00:8::5');
    expect(ok.json()).toMatchObject({ ipv6: 'fd00:8::5/64', state: 'ready' });
  });

  it('makes a sandbox with its connections in one request, in order; if one fails, none is left, and the error names the network and field', async () => {
    await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'a', subnet: '10.8.0.0/24' } });
    await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'b', subnet: '10.9.0.0/24' } });
    const ok = await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 's1', connect: [{ network: 'b', ip: '10.9.0.7' }, { network: 'a' }] } });
    expect(ok.statusCode).toBe(201);
    // Listed by creation time, then id: two connects within one clock tick come in either order.
    expect(ok.json().endpoints.map((e: { ipv4: string }) => e.ipv4).sort()).toEqual(['10.8.0.2/24', '10.9.0.7/24']);
    expect(calls.filter((c) => c === 'join').length).toBe(2);
    expect(store.endpoints.list().length).toBe(2);
    const taken = await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 's2', connect: [{ network: 'a' }, { network: 'b', ip: '10.9.0.7' }] } });
    expect(taken.statusCode).toBe(409);
    expect(taken.json()).toMatchObject({ field: 'connect[1].ip' });
    expect(taken.json().error).toMatch(/^network b: /);
    const missing = await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 's3', connect: [{ network: 'nope' }] } });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error).toMatch(/^network nope: /);
    expect(store.sandboxes.list().map((s) => s.name)).toEqual(['s1']);
    expect([...kernel.namespaces]).toEqual(['s1']);
    expect(store.endpoints.list().length).toBe(2);
    expect((await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 's4', connect: [{ network: 'a', bogus: 1 }] } })).statusCode).toBe(400);
  });

  it('tells the driver where the endpoint is placed and applies its JoinInfo (extras after it); a failing apply leaves and frees the address', async () => {
    const placements: string[] = [];
    const multi: Driver = {
      ...fakeDriver(calls, failOn, drift), name: 'multi',
      async createEndpoint(_n, _c, _e, placement) { placements.push(`create ${placement.kind}`); return {}; },
      async join(_n, _c, ep, placement) {
        placements.push(`join ${placement.kind === 'sandbox' ? `${placement.sandbox.name} peers=${placement.peers.length}` : 'detached'}`);
        const leg = { src: { name: 'gw0', where: 'host' as const }, dstName: 'gw0', routes: [], noGateway: false, ipv6Enabled: false };
        return { info: { ...bornInSandbox('eth7').info!, ...(ep.ipv4 ? { ipv4: ep.ipv4 } : {}) }, extra: [leg], macAddress: '02:00:00:00:00:07' };
      },
      async leave() { calls.push('leave'); },
    };
    drivers.register(multi);
    await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'm', driver: 'multi', subnet: '10.7.0.0/24' } });
    await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 'sm' } });
    const ep = await api.inject({ method: 'POST', url: '/v1/networks/m/connect', payload: { sandbox: 'sm' } });
    expect(ep.json()).toMatchObject({ ifname: 'eth7', macAddress: '02:00:00:00:00:07', ipv4: '10.7.0.2/24' });
    expect(placements).toEqual(['create sandbox', 'join sm peers=0']);
    expect(kernel.applied.map((i) => [i.src.name, i.ipv4])).toEqual([['eth7', '10.7.0.2/24'], ['gw0', undefined]]);
    await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 'sm2' } });
    kernel.failApply = true;
    calls.length = 0;
    const bad = await api.inject({ method: 'POST', url: '/v1/networks/m/connect', payload: { sandbox: 'sm2' } });
    expect(bad.statusCode).toBe(500);
    expect(bad.json().error).toMatch(/apply failed on purpose/);
    expect(calls).toEqual(['leave', 'deleteEndpoint']);
    expect(store.endpoints.list().map((e) => e.ipv4)).toEqual(['10.7.0.2/24']);
    expect(ipam.listAddresses(store.networks.getByName('m')!.ipv4[0]!.poolId).filter((a) => a.kind === 'endpoint')).toHaveLength(1);
  });

  it('tells the drivers of a sandbox being removed before its namespace goes, then leaves each endpoint', async () => {
    drivers.register({ ...fakeDriver(calls, failOn, drift), name: 'watching', leaving: (_n, _c, ep) => calls.push(`leaving ${ep.name}`) });
    for (const name of ['w1', 'w2']) await api.inject({ method: 'POST', url: '/v1/networks', payload: { name, driver: 'watching' } });
    await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 'sw', connect: [{ network: 'w1' }, { network: 'w2' }] } });
    const deleteNamed = kernel.deleteNamed.bind(kernel);
    kernel.deleteNamed = (name) => (calls.push(`namespace ${name}`), deleteNamed(name));
    calls.length = 0;
    expect((await api.inject({ method: 'DELETE', url: '/v1/sandboxes/sw' })).statusCode).toBe(204);
    expect(calls).toEqual(['leaving sw-w1', 'leaving sw-w2', 'namespace sw', 'leave', 'deleteEndpoint', 'leave', 'deleteEndpoint']);
  });

  it('gives endpoints unique names when sandbox and network names are long', async () => {
    await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'nz', subnet: '10.6.0.0/24' } });
    // Cut at 64 characters, SANDBOX-NETWORK would be the same for both.
    const names = ['x'.repeat(62), `${'x'.repeat(62)}-n`];
    for (const name of names) {
      expect((await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name } })).statusCode).toBe(201);
      const ep = await api.inject({ method: 'POST', url: '/v1/networks/nz/connect', payload: { sandbox: name } });
      expect(ep.statusCode).toBe(201);
      expect(ep.json().name.length).toBeLessThanOrEqual(64);
    }
    const eps = store.endpoints.list();
    expect(eps).toHaveLength(2);
    expect(new Set(eps.map((e) => e.name)).size).toBe(2);
    for (const ep of eps) expect(ep.name).toMatch(new RegExp(`^x{51}-${ep.id.slice(0, 12)}$`));
    await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 'short' } });
    expect((await api.inject({ method: 'POST', url: '/v1/networks/nz/connect', payload: { sandbox: 'short' } })).json().name).toBe('short-nz');
  });

  it('refuses ports on a driver that cannot publish, before changing anything', async () => {
    await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'n' } });
    await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 's' } });
    const bad = await api.inject({ method: 'POST', url: '/v1/networks/n/connect', payload: { sandbox: 's', ports: ['80:80'] } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ field: 'ports' });
    const spec = await api.inject({ method: 'POST', url: '/v1/networks/n/connect', payload: { sandbox: 's', ports: ['99999:80'] } });
    expect(spec.json().field).toMatch(/^ports\[0\]/);
    expect(store.endpoints.list()).toEqual([]);
  });

  it('reconciles records a crash left half done, and releases their addresses', async () => {
    await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'n', subnet: '10.7.0.0/24' } });
    await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 's' } });
    const ep = (await api.inject({ method: 'POST', url: '/v1/networks/n/connect', payload: { sandbox: 's' } })).json();
    store.endpoints.put({ ...store.endpoints.get(ep.id)!, state: 'creating' });
    const net = store.networks.getByName('n')!;
    const controller = new Controller({ store, ipam, drivers: new DriverRegistry(), kernel, logger });
    const done = await controller.reconcile();
    expect(done.join('\n')).toMatch(/interrupted while creating/);
    expect(store.endpoints.list()).toEqual([]);
    expect(ipam.listAddresses(net.ipv4[0]!.poolId).map((a) => a.kind)).toEqual(['gateway']);
  });

  it('checks one network or all through its driver: each difference as the driver reports it, and a namespace gone', async () => {
    await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'n', subnet: '10.9.0.0/24' } });
    await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 's' } });
    const ep = (await api.inject({ method: 'POST', url: '/v1/networks/n/connect', payload: { sandbox: 's' } })).json();
    const clean = await api.inject({ method: 'GET', url: '/v1/networks/n/check' });
    expect(clean.statusCode).toBe(200);
    expect(clean.json()).toMatchObject({ network: 'n', driver: 'fake', items: [] });
    const device = { object: 'network n', what: 'device', expected: 'bridge b', found: 'missing' };
    const address = { object: `endpoint ${ep.name} of sandbox s`, what: 'address', expected: '10.9.0.2/24 on eth0', found: 'eth0 has no address' };
    drift.set('n', [device]);
    drift.set(`${ep.name}@s`, [address]);
    expect((await api.inject({ method: 'GET', url: '/v1/networks/n/check' })).json().items).toEqual([device, address]);
    kernel.namespaces.delete('s');
    const all = (await api.inject({ method: 'GET', url: '/v1/check' })).json();
    expect(all.map((c: { network: string }) => c.network).sort()).toEqual(['n', 'none']);
    const n = all.find((c: { network: string }) => c.network === 'n');
    // The sandbox's namespace is gone: the driver checks the endpoint without it (host side only).
    expect(n.items).toEqual([{ object: `endpoint ${ep.name} of sandbox s`, what: 'namespace', expected: 'namespace /fake/netns/s', found: 'missing' }, device]);
    expect(all.find((c: { network: string }) => c.network === 'none').items).toEqual([]);
    expect((await api.inject({ method: 'GET', url: '/v1/networks/nope/check' })).statusCode).toBe(404);
  });

  it('reports a network a crash left half made, and a driver whose check fails, without stopping', async () => {
    await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'n', subnet: '10.10.0.0/24' } });
    store.networks.put({ ...store.networks.getByName('n')!, state: 'creating' });
    failOn.add('check');
    const items = (await api.inject({ method: 'GET', url: '/v1/networks/n/check' })).json().items;
    expect(items).toEqual([
      { object: 'network n', what: 'state', expected: 'ready', found: 'creating' },
      { object: 'network n', what: 'check', expected: "the fake driver's kernel state readable", found: 'check failed on purpose' },
    ]);
  });

  it('describes in its OpenAPI document every route it serves (fastify\'s own table), HEAD copies and the document itself aside', async () => {
    const served: string[] = [];
    const stack: string[] = [];
    for (const line of api.printRoutes({ commonPrefix: false }).split('\n')) {
      const m = /^([│ ]*)[├└]── (\S+)(?: \(([A-Z, ]+)\))?$/.exec(line);
      if (!m) continue;
      const depth = m[1]!.length / 4;
      stack.length = depth;
      stack.push(m[2]!);
      const url = stack.join('').replace(/:(\w+)/g, '{$1}');
      for (const method of m[3]?.split(', ') ?? []) if (method !== 'HEAD' && url !== '/openapi.json') served.push(`${method} ${url}`);
    }
    const doc = (await api.inject({ method: 'GET', url: '/openapi.json' })).json() as { paths: Record<string, Record<string, unknown>> };
    const described = Object.entries(doc.paths).flatMap(([url, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${url}`));
    expect(served.length).toBeGreaterThan(15);
    expect(described.sort()).toEqual(served.sort());
  });

  it('publishes an OpenAPI document of its routes', async () => {
    const doc = (await api.inject({ method: 'GET', url: '/openapi.json' })).json();
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/networks', '/v1/sandboxes', '/v1/networks/{ref}/connect', '/v1/firewall/reload', '/v1/networks/{ref}/check', '/v1/check']));
  });
});
