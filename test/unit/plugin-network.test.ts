// The NetworkDriver route layer of the Docker plugin API over a fake backend, through fastify
// inject: capabilities, Err replies (never 404 for a real error), teardown calls that answer
// success for unknown ids, EndpointOperInfo, and CreateEndpoint replies that never echo.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { ConflictError, NotFoundError } from '../../src/errors.js';
import { openStore, type Store } from '../../src/store/index.js';
import { Ipam } from '../../src/ipam/index.js';
import { buildDockerPluginApi, interfaceReply, type DockerNetworkBackend } from '../../src/api/docker/index.js';
import { PLUGIN_CONTENT_TYPE, type CreateEndpointReply, type JoinReply } from '../../plugin-spec/index.js';

const NET = 'a'.repeat(64);
const EP = 'b'.repeat(64);

class FakeBackend implements DockerNetworkBackend {
  calls: [string, unknown][] = [];
  fail: Partial<Record<string, Error>> = {};
  endpointReply: CreateEndpointReply = {};
  joinReply: JoinReply = { InterfaceName: { SrcName: 'cnk-bbbbbbbbbb', DstPrefix: 'eth' }, Gateway: '198.18.60.1' };

  private record(name: string, req: unknown): void {
    this.calls.push([name, req]);
    const err = this.fail[name];
    if (err) throw err;
  }
  createNetwork(req: unknown) { this.record('createNetwork', req); }
  deleteNetwork(req: unknown) { this.record('deleteNetwork', req); }
  createEndpoint(req: unknown) { this.record('createEndpoint', req); return this.endpointReply; }
  deleteEndpoint(req: unknown) { this.record('deleteEndpoint', req); }
  async join(req: unknown) { this.record('join', req); return this.joinReply; }
  leave(req: unknown) { this.record('leave', req); }
  programExternalConnectivity(req: unknown) { this.record('programExternalConnectivity', req); }
  revokeExternalConnectivity(req: unknown) { this.record('revokeExternalConnectivity', req); }
}

let backend: FakeBackend;
let app: FastifyInstance;

async function call(path: string, body?: unknown) {
  const res = await app.inject({ method: 'POST', url: path, payload: body === undefined ? '' : `${JSON.stringify(body)}\n` });
  return { status: res.statusCode, type: res.headers['content-type'], body: res.json() as Record<string, any> };
}

describe('Docker NetworkDriver API', () => {
  beforeEach(async () => {
    backend = new FakeBackend();
    app = await buildDockerPluginApi({ logger: pino({ level: 'silent' }), network: backend, checkReplies: true });
  });
  afterEach(async () => {
    await app.close();
  });

  it('activates as a NetworkDriver and reports local scope, both from empty bodies', async () => {
    expect(await call('/Plugin.Activate')).toEqual({ status: 200, type: PLUGIN_CONTENT_TYPE, body: { Implements: ['NetworkDriver'] } });
    expect((await call('/NetworkDriver.GetCapabilities')).body).toEqual({ Scope: 'local', ConnectivityScope: 'local' });
  });

  it('passes CreateNetwork to the backend as the engine sent it, unknown keys included, and answers {}', async () => {
    const req = {
      NetworkID: NET, Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': {} },
      IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: '198.18.60.0/24', Gateway: '198.18.60.1/24' }], IPv6Data: null, Future: 'x',
    };
    expect(await call('/NetworkDriver.CreateNetwork', req)).toEqual({ status: 200, type: PLUGIN_CONTENT_TYPE, body: {} });
    expect(backend.calls).toEqual([['createNetwork', req]]);
  });

  it('answers a backend error with Err only (no Error key), never with 404', async () => {
    backend.fail.createNetwork = new ConflictError('bridge name taken');
    expect(await call('/NetworkDriver.CreateNetwork', { NetworkID: NET })).toMatchObject({ status: 409, body: { Err: 'bridge name taken' } });
    expect((await call('/NetworkDriver.CreateNetwork', { NetworkID: NET })).body).not.toHaveProperty('Error');
    backend.fail.join = new NotFoundError('endpoint', EP);
    expect(await call('/NetworkDriver.Join', { NetworkID: NET, EndpointID: EP, SandboxKey: '/x', Options: {} })).toMatchObject({ status: 500, body: { Err: expect.stringMatching(/not found/) } });
    backend.fail.programExternalConnectivity = new NotFoundError('endpoint', EP);
    expect((await call('/NetworkDriver.ProgramExternalConnectivity', { NetworkID: NET, EndpointID: EP, Options: null })).status).toBe(500);
  });

  it('answers teardown calls on unknown ids with success, and reports other teardown failures', async () => {
    for (const name of ['deleteNetwork', 'deleteEndpoint', 'leave', 'revokeExternalConnectivity']) backend.fail[name] = new NotFoundError('object', 'x');
    expect(await call('/NetworkDriver.DeleteNetwork', { NetworkID: NET })).toMatchObject({ status: 200, body: {} });
    for (const path of ['DeleteEndpoint', 'Leave', 'RevokeExternalConnectivity']) {
      expect({ path, ...(await call(`/NetworkDriver.${path}`, { NetworkID: NET, EndpointID: EP })) }).toMatchObject({ path, status: 200, body: {} });
    }
    expect(backend.calls.map(([n]) => n)).toEqual(['deleteNetwork', 'deleteEndpoint', 'leave', 'revokeExternalConnectivity']);
    backend.fail.deleteEndpoint = new Error('netlink: EBUSY');
    expect(await call('/NetworkDriver.DeleteEndpoint', { NetworkID: NET, EndpointID: EP })).toMatchObject({ status: 500, body: { Err: 'netlink: EBUSY' } });
  });

  it('always answers EndpointOperInfo with a Value', async () => {
    expect((await call('/NetworkDriver.EndpointOperInfo', { NetworkID: NET, EndpointID: EP })).body).toEqual({ Value: {} });
    const withInfo = Object.assign(backend, { endpointOperInfo: (req: { EndpointID: string }) => {
      if (req.EndpointID !== EP) throw new NotFoundError('endpoint', req.EndpointID);
      return { hostIfName: 'cnk-bbbbbbbbbb' };
    } });
    await app.close();
    app = await buildDockerPluginApi({ logger: pino({ level: 'silent' }), network: withInfo, checkReplies: true });
    expect((await call('/NetworkDriver.EndpointOperInfo', { NetworkID: NET, EndpointID: EP })).body).toEqual({ Value: { hostIfName: 'cnk-bbbbbbbbbb' } });
    expect((await call('/NetworkDriver.EndpointOperInfo', { NetworkID: NET, EndpointID: 'c'.repeat(64) })).body).toEqual({ Value: {} });
  });

  it('never echoes an Interface field the engine set, and sends Interface null when nothing is left', async () => {
    const sent = { Address: '198.18.60.2/24', AddressIPv6: '', MacAddress: '' };
    backend.endpointReply = { Interface: { Address: '198.18.60.2/24', MacAddress: '02:42:c6:12:3c:02' } };
    expect((await call('/NetworkDriver.CreateEndpoint', { NetworkID: NET, EndpointID: EP, Interface: sent, Options: {} })).body)
      .toEqual({ Interface: { MacAddress: '02:42:c6:12:3c:02' } });
    backend.endpointReply = {};
    expect((await call('/NetworkDriver.CreateEndpoint', { NetworkID: NET, EndpointID: EP, Interface: sent, Options: null })).body).toEqual({ Interface: null });
    expect(interfaceReply({ Address: '10.0.0.2/24', MacAddress: 'aa:bb:cc:dd:ee:ff' }, { Address: '10.0.0.9/24', MacAddress: 'aa:bb:cc:dd:ee:ff' })).toBeNull();
    expect(interfaceReply(null, { AddressIPv6: 'fd00::2/64' })).toEqual({ AddressIPv6: 'fd00::2/64' });
  });

  it('passes Join replies through, and refuses one that breaks the spec (checkReplies)', async () => {
    const join = { NetworkID: NET, EndpointID: EP, SandboxKey: '/var/run/docker/netns/0123456789ab', Options: { 'com.docker.network.portmap': [], 'com.docker.network.endpoint.exposedports': [] } };
    expect((await call('/NetworkDriver.Join', join)).body).toEqual({ InterfaceName: { SrcName: 'cnk-bbbbbbbbbb', DstPrefix: 'eth' }, Gateway: '198.18.60.1' });
    backend.joinReply = { InterfaceName: { SrcName: 'a-name-longer-than-ifnamsiz', DstPrefix: 'eth' } };
    const bad = await call('/NetworkDriver.Join', join);
    expect(bad.status).toBe(500);
    expect(bad.body.Err).toMatch(/does not match .*JoinReply/);
  });

  it('answers the swarm and discovery calls a local driver does not implement', async () => {
    expect((await call('/NetworkDriver.DiscoverNew', { DiscoveryType: 1, DiscoveryData: { Address: '198.18.0.2', self: true } })).body).toEqual({});
    expect((await call('/NetworkDriver.DiscoverDelete', { DiscoveryType: 1, DiscoveryData: null })).body).toEqual({});
    expect((await call('/NetworkDriver.FreeNetwork', { NetworkID: NET })).body).toEqual({});
    const alloc = await call('/NetworkDriver.AllocateNetwork', { NetworkID: NET, Options: null, IPv4Data: [], IPv6Data: [] });
    expect(alloc.status).toBe(400);
    expect(alloc.body.Err).toMatch(/local-scope driver/);
  });

  it('validates requests and names the missing field', async () => {
    const r = await call('/NetworkDriver.Join', { NetworkID: NET });
    expect(r.status).toBe(400);
    expect(r.body).toEqual({ Err: expect.stringMatching(/EndpointID/) });
    const empty = await call('/NetworkDriver.CreateNetwork');
    expect(empty.status).toBe(400);
    expect(empty.body.Err).toMatch(/NetworkID/);
    expect(backend.calls).toEqual([]);
  });

  it('refuses wrong types and malformed ids of known fields with 400 and Err "<field>: <reason>", before the backend', async () => {
    const bad: [string, unknown, RegExp][] = [
      ['CreateNetwork', { NetworkID: 0 }, /^NetworkID: must be string$/],
      ['CreateNetwork', { NetworkID: 'net1' }, /^NetworkID: must match pattern/],
      ['CreateNetwork', { NetworkID: NET.toUpperCase() }, /^NetworkID: must match pattern/],
      ['CreateNetwork', { NetworkID: NET, Options: { 'com.docker.network.enable_ipv6': 'true' } }, /^Options\.com\.docker\.network\.enable_ipv6: must be boolean$/],
      ['CreateNetwork', { NetworkID: NET, IPv4Data: [{ Pool: 24 }] }, /^IPv4Data\.0\.Pool: must be string$/],
      ['DeleteNetwork', { NetworkID: [NET] }, /^NetworkID: must be string$/],
      ['CreateEndpoint', { NetworkID: NET, EndpointID: EP, Interface: { Address: 5 } }, /^Interface\.Address: must be string$/],
      ['Join', { NetworkID: NET, EndpointID: EP, SandboxKey: 7 }, /^SandboxKey: must be string$/],
      ['ProgramExternalConnectivity', { NetworkID: NET, EndpointID: EP, Options: { 'com.docker.network.portmap': [{ Proto: '6', Port: 80 }] } }, /portmap\.0\.Proto: must be integer$/],
      ['Leave', { NetworkID: NET, EndpointID: true }, /^EndpointID: must be string$/],
    ];
    for (const [path, body, err] of bad) {
      const r = await call(`/NetworkDriver.${path}`, body);
      expect({ path, body, status: r.status, keys: Object.keys(r.body) }).toEqual({ path, body, status: 400, keys: ['Err'] });
      expect({ path, body, err: r.body.Err }).toEqual({ path, body, err: expect.stringMatching(err) });
    }
    expect(backend.calls).toEqual([]);
    // What the real engine sends passes: unknown keys, nulls, Options keys of its own.
    const engine = { NetworkID: NET, EndpointID: EP, Options: { 'com.docker.network.portmap': null, 'com.docker.network.endpoint.exposedports': [{ Proto: 6, Port: 80 }], 'com.docker.network.endpoint.dnsservers': ['198.18.0.53'] }, Future: { x: 1 } };
    expect((await call('/NetworkDriver.ProgramExternalConnectivity', engine)).status).toBe(200);
  });

  it('serves both subsystems from one app when given both', async () => {
    let store: Store | undefined;
    try {
      store = openStore(':memory:');
      const both = await buildDockerPluginApi({ logger: pino({ level: 'silent' }), network: backend, ipam: new Ipam(store, { environment: { linkRoutes: () => [], nameservers: () => [] } }) });
      const res = await both.inject({ method: 'POST', url: '/Plugin.Activate' });
      expect(res.json()).toEqual({ Implements: ['IpamDriver', 'NetworkDriver'] });
      await both.close();
    } finally {
      store?.close();
    }
  });
});
