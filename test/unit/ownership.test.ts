// Ownership across front ends, without root: one controller and one IPAM on an in-memory store,
// served both as the management API and as the Docker plugin (cnmkit-bridge and cnmkit-ipam),
// with a fake "bridge" driver. What the engine created stays the engine's, what cnmkit's API
// created stays cnmkit's; every new network's subnets pass one overlap check whoever asked; and
// conflicts name their holders by name (the daemon's resolver, over the same store).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { openStore, type Store } from '../../src/store/index.js';
import { Ipam } from '../../src/ipam/index.js';
import { Controller } from '../../src/controller/controller.js';
import { DriverRegistry, type Driver, type DriverContext } from '../../src/contract/driver.js';
import { endpointNames, ownerNames } from '../../src/controller/owner-names.js';
import { createNullDriver } from '../../drivers/null/index.js';
import { buildManagementApi } from '../../src/api/management.js';
import { buildDockerPluginApi } from '../../src/api/docker/index.js';
import { driverBackend } from '../../src/api/docker/driver-backend.js';
import { PortAllocator } from '../../src/portmap/allocator.js';
import { parsePublish } from '../../src/portmap/index.js';
import { bornInSandbox, FakeKernel } from './fake-kernel.js';

const logger = pino({ level: 'silent' });
const D1 = '1d'.repeat(32);
const D2 = '2d'.repeat(32);
const D3 = '3d'.repeat(32);
const E1 = 'e1'.repeat(32);
const dockerName = (id: string) => `docker-${id.slice(0, 12)}`;

/** Stands in for drivers/bridge under its name (the plugin creates 'bridge' networks); records what it is asked. */
function fakeBridge(calls: string[]): Driver<Record<string, never>> {
  return {
    name: 'bridge', scope: 'local', usesIpam: true,
    parse: () => ({}),
    async createNetwork(net) { calls.push(`createNetwork ${net.name}`); },
    async deleteNetwork(net) { calls.push(`deleteNetwork ${net.name}`); },
    async createEndpoint(_net, _config, ep) { calls.push(`createEndpoint ${ep.name}`); return { driverData: { containerIfname: 'c0' } }; },
    async deleteEndpoint(_net, _config, ep) { calls.push(`deleteEndpoint ${ep.name}`); },
    // The plugin's check for endpoints the engine forgot finds none gone.
    async goneEndpoints() { return []; },
    async join(_net, _config, _ep, placement) {
      return placement.kind === 'detached' ? { info: { src: { name: 'c0', where: 'host' }, dstPrefix: 'eth', routes: [], noGateway: false, ipv6Enabled: false } } : bornInSandbox('eth0');
    },
    async leave() {},
    async check() {
      return [];
    },
  };
}

let store: Store;
let ipam: Ipam;
let controller: Controller;
let api: FastifyInstance;
let plugin: FastifyInstance;
let calls: string[];

async function engine(call: string, body: unknown) {
  const r = await plugin.inject({ method: 'POST', url: `/${call}`, payload: `${JSON.stringify(body)}\n` });
  return { status: r.statusCode, body: r.json() as Record<string, any> };
}

/** CreateNetwork as the engine sends it after its IPAM assigned the subnet. */
const createNetwork = (id: string, pool: string, gateway: string) =>
  engine('NetworkDriver.CreateNetwork', {
    NetworkID: id, Options: { 'com.docker.network.generic': {}, 'com.docker.network.enable_ipv6': false },
    IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: pool, Gateway: gateway }], IPv6Data: [],
  });

const rest = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) =>
  api.inject({ method, url, ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) });

const names = () => controller.listNetworks().map((n) => n.name).sort();
const subnetsInIpam = () => ipam.listPools().map((p) => p.pool).sort();

describe('ownership across the management API and the Docker plugin', () => {
  beforeEach(async () => {
    store = openStore(':memory:');
    ipam = new Ipam(store, {
      environment: { linkRoutes: () => [], nameservers: () => [] },
      defaultPools: [{ base: '198.18.128.0/17', size: 24 }],
      describeOwner: ownerNames(store),
    });
    calls = [];
    const drivers = new DriverRegistry();
    drivers.register(createNullDriver({ logger } as unknown as DriverContext));
    drivers.register(fakeBridge(calls));
    controller = new Controller({ store, ipam, drivers, kernel: new FakeKernel(), logger, defaultDriver: 'bridge', predefined: new Set(['none', 'bridge']) });
    await controller.createNetwork({ name: 'none', driver: 'null' });
    await controller.createNetwork({ name: 'bridge', subnet: '198.18.0.0/24', gateway: '198.18.0.1' });
    api = await buildManagementApi({ controller, logger, reloadFirewall: async () => ({ backend: 'none', removedOwners: [], notes: [] }) });
    plugin = await buildDockerPluginApi({ logger, ipam, network: driverBackend(controller, 'bridge'), checkReplies: true });
  });
  afterEach(async () => {
    await api.close();
    await plugin.close();
    store.close();
  });

  it("refuses to remove the engine's network through cnmkit's API, prune skips it, and the engine's DeleteNetwork removes it", async () => {
    expect(await createNetwork(D1, '198.18.10.0/24', '198.18.10.1/24')).toEqual({ status: 200, body: {} });
    expect((await rest('POST', '/v1/networks', { name: 'spare', subnet: '198.18.11.0/24' })).statusCode).toBe(201);
    for (const ref of [dockerName(D1), D1]) {
      const rm = await rest('DELETE', `/v1/networks/${ref}`);
      expect({ ref, status: rm.statusCode, code: rm.json().code }).toEqual({ ref, status: 403, code: 'ERR_NOT_OWNER' });
      expect(rm.json().error).toContain(`remove it with \`docker network rm ${D1.slice(0, 12)}\``);
    }
    const pruned = await rest('POST', '/v1/networks/prune');
    expect(pruned.json()).toEqual({ removed: ['spare'], skipped: [{ name: dockerName(D1), reason: expect.stringContaining('belongs to the Docker engine') }] });
    expect(names()).toEqual(['bridge', dockerName(D1), 'none']);
    expect(calls).not.toContain(`deleteNetwork ${dockerName(D1)}`);

    expect(await engine('NetworkDriver.DeleteNetwork', { NetworkID: D1 })).toEqual({ status: 200, body: {} });
    expect(names()).toEqual(['bridge', 'none']);
    expect(calls).toContain(`deleteNetwork ${dockerName(D1)}`);
    expect(subnetsInIpam()).toEqual(['198.18.0.0/24']);
  });

  it("keeps the engine's endpoints from cnmkit's API, and cnmkit's networks and endpoints from the engine", async () => {
    await createNetwork(D1, '198.18.10.0/24', '198.18.10.1/24');
    const ep = await engine('NetworkDriver.CreateEndpoint', { NetworkID: D1, EndpointID: E1, Interface: { Address: '198.18.10.2/24', AddressIPv6: '', MacAddress: '' }, Options: {} });
    expect(ep.status).toBe(200);
    await expect(controller.deleteEndpoint(E1)).rejects.toMatchObject({ code: 'ERR_NOT_OWNER', message: expect.stringContaining('docker network disconnect') });
    expect(controller.endpointsOf({ networkId: D1 }).map((e) => e.id)).toEqual([E1]);
    await rest('POST', '/v1/sandboxes', { name: 'web' });
    const join = await rest('POST', `/v1/networks/${dockerName(D1)}/connect`, { sandbox: 'web' });
    expect(join.statusCode).toBe(403);
    expect(join.json().error).toMatch(/belongs to the Docker engine: cnmkit sandboxes cannot join it/);

    const lab = (await rest('POST', '/v1/networks', { name: 'lab', subnet: '198.18.30.0/24' })).json();
    const mine = (await rest('POST', '/v1/networks/lab/connect', { sandbox: 'web' })).json();
    // Ids the engine never made are unknown to it: teardown calls succeed without touching them, others fail.
    expect(await engine('NetworkDriver.DeleteEndpoint', { NetworkID: lab.id, EndpointID: mine.id })).toEqual({ status: 200, body: {} });
    expect(await engine('NetworkDriver.DeleteNetwork', { NetworkID: lab.id })).toEqual({ status: 200, body: {} });
    expect((await engine('NetworkDriver.CreateEndpoint', { NetworkID: lab.id, EndpointID: 'e2'.repeat(32), Interface: null, Options: null })).status).toBe(500);
    expect((await engine('NetworkDriver.Join', { NetworkID: lab.id, EndpointID: mine.id, SandboxKey: '/x', Options: {} })).status).toBe(500);
    const program = await engine('NetworkDriver.ProgramExternalConnectivity', { NetworkID: lab.id, EndpointID: mine.id, Options: { 'com.docker.network.portmap': [{ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8080, HostPortEnd: 8080 }] } });
    expect(program.status).toBe(500);
    expect(names()).toContain('lab');
    expect(controller.endpointsOf({ networkId: lab.id })).toMatchObject([{ id: mine.id, state: 'ready', ports: [] }]);
    expect(calls.filter((c) => c.includes('lab'))).toEqual(['createNetwork lab', 'createEndpoint web-lab']);
  });

  it('checks every new network against every other, whichever front end asks, and names the network in the way with its subnet', async () => {
    for (const pool of ['198.18.0.0/24', '198.18.0.128/25']) {
      const r = await createNetwork(D2, pool, pool.replace(/0\/\d+$/, '1/24'));
      expect({ pool, ...r }).toEqual({ pool, status: 409, body: { Err: `subnet: ${pool} overlaps the subnet 198.18.0.0/24 of network "bridge"` } });
    }
    expect(await createNetwork(D1, '198.18.10.0/24', '198.18.10.1/24')).toMatchObject({ status: 200 });
    const same = await rest('POST', '/v1/networks', { name: 'x', subnet: '198.18.10.0/24' });
    expect({ status: same.statusCode, error: same.json().error }).toEqual({ status: 409, error: `subnet: 198.18.10.0/24 is already in use by network "${dockerName(D1)}"` });
    const part = await rest('POST', '/v1/networks', { name: 'x', subnet: '198.18.10.128/25' });
    expect(part.json().error).toBe(`subnet: 198.18.10.128/25 overlaps 198.18.10.0/24, in use by network "${dockerName(D1)}"`);
    // The engine's IPAM assigned the first of cnmkit's default pools: cnmkit's next default skips it.
    expect(await createNetwork(D3, '198.18.128.0/24', '198.18.128.1/24')).toMatchObject({ status: 200 });
    expect((await rest('POST', '/v1/networks', { name: 'auto' })).json().ipv4).toMatchObject([{ subnet: '198.18.129.0/24' }]);
    // Two of cnmkit's networks on one subnet, through different ip-ranges, would be two bridges with one route.
    expect((await rest('POST', '/v1/networks', { name: 'r1', subnet: '198.18.12.0/24', ipRange: '198.18.12.0/25' })).statusCode).toBe(201);
    const r2 = await rest('POST', '/v1/networks', { name: 'r2', subnet: '198.18.12.0/24', ipRange: '198.18.12.128/25' });
    expect(r2.json().error).toBe('subnet: 198.18.12.0/24 overlaps 198.18.12.0/24, in use by network "r1"');
    expect(names()).toEqual(['auto', 'bridge', dockerName(D1), dockerName(D3), 'none', 'r1']);
    expect(subnetsInIpam()).toEqual(['198.18.0.0/24', '198.18.10.0/24', '198.18.12.0/24', '198.18.128.0/24', '198.18.129.0/24']);
  });

  it('lets a network whose pool came from cnmkit-ipam use that pool, refuses it to others, and lets the engine release it', async () => {
    const { PoolID } = (await engine('IpamDriver.RequestPool', { AddressSpace: 'LocalDefault', Pool: '198.18.20.0/24', SubPool: '', Options: {}, V6: false })).body;
    expect((await engine('IpamDriver.RequestAddress', { PoolID, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } })).body.Address).toBe('198.18.20.1/24');
    expect(await createNetwork(D1, '198.18.20.0/24', '198.18.20.1/24')).toMatchObject({ status: 200 });
    const taken = await rest('POST', '/v1/networks', { name: 'x', subnet: '198.18.20.0/24' });
    expect(taken.json().error).toBe(`subnet: 198.18.20.0/24 is already in use by the Docker engine's network "${dockerName(D1)}"`);
    // The engine's teardown of `docker network rm`.
    expect((await engine('IpamDriver.ReleaseAddress', { PoolID, Address: '198.18.20.1' })).status).toBe(200);
    expect((await engine('IpamDriver.ReleasePool', { PoolID })).status).toBe(200);
    expect((await engine('NetworkDriver.DeleteNetwork', { NetworkID: D1 })).status).toBe(200);
    expect(subnetsInIpam()).toEqual(['198.18.0.0/24']);
    expect(names()).toEqual(['bridge', 'none']);
  });

  it("refuses the engine's IPAM releases of what cnmkit's networks hold, naming the holder, and keeps it allocated", async () => {
    const lab = (await rest('POST', '/v1/networks', { name: 'lab', subnet: '198.18.30.0/24' })).json();
    await rest('POST', '/v1/sandboxes', { name: 'web' });
    await rest('POST', '/v1/networks/lab/connect', { sandbox: 'web' });
    const PoolID = lab.ipv4[0].poolId as string;
    const release = await engine('IpamDriver.ReleaseAddress', { PoolID, Address: '198.18.30.2' });
    expect(release).toEqual({ status: 403, body: { Err: 'ip: 198.18.30.2 is held by sandbox "web" on network "lab", not by the Docker engine: it stays allocated', Error: expect.any(String) } });
    const pool = await engine('IpamDriver.ReleasePool', { PoolID });
    expect(pool.status).toBe(403);
    expect(pool.body.Err).toBe(`pool ${PoolID} belongs to network "lab", not to the Docker engine, which may not release it`);
    expect((await engine('IpamDriver.RequestAddress', { PoolID, Address: '', Options: null })).status).toBe(403);
    const asked = await engine('IpamDriver.RequestPool', { AddressSpace: 'LocalDefault', Pool: '198.18.30.0/24', SubPool: '198.18.30.128/25', Options: {}, V6: false });
    expect(asked.body.Err).toBe('subnet: 198.18.30.0/24 overlaps 198.18.30.0/24, in use by network "lab"');
    expect(ipam.listAddresses(PoolID).map((a) => `${a.address} ${a.kind}`).sort()).toEqual(['198.18.30.1/24 gateway', '198.18.30.2/24 endpoint']);
    // A free address is released without effect, as teardown expects.
    expect(await engine('IpamDriver.ReleaseAddress', { PoolID, Address: '198.18.30.9' })).toEqual({ status: 200, body: {} });
    await rest('POST', '/v1/sandboxes', { name: 'db' });
    expect((await rest('POST', '/v1/networks/lab/connect', { sandbox: 'db' })).json().ipv4).toBe('198.18.30.3/24');
  });

  it('names the holder of an address, a network in use and a host port by name, not by id', async () => {
    await rest('POST', '/v1/networks', { name: 'lab', subnet: '198.18.30.0/24' });
    for (const name of ['web', 'db']) await rest('POST', '/v1/sandboxes', { name });
    const web = (await rest('POST', '/v1/networks/lab/connect', { sandbox: 'web' })).json();
    const taken = await rest('POST', '/v1/networks/lab/connect', { sandbox: 'db', ip: '198.18.30.2' });
    expect(taken.json().error).toBe('ip: 198.18.30.2 is already allocated to sandbox "web" on network "lab"');
    const gateway = await rest('POST', '/v1/networks/lab/connect', { sandbox: 'db', ip: '198.18.30.1' });
    expect(gateway.json().error).toBe('ip: 198.18.30.1 is already allocated to the gateway of network "lab"');
    const inUse = await rest('DELETE', '/v1/networks/lab');
    expect(inUse.json().error).toBe('network lab has active endpoints: sandbox "web" on network "lab"');
    const ports = new PortAllocator({ ephemeralRange: { start: 49153, end: 49200 }, describeOwner: endpointNames(store) });
    ports.allocate(web.id, parsePublish('8080:80'));
    expect(() => ports.allocate('f'.repeat(64), parsePublish('8080:80'))).toThrow(/^port 8080\/tcp on all addresses is already allocated to sandbox "web" on network "lab" \(/);
  });
});
