// The IpamDriver half of the Docker plugin API, through fastify inject, over a real Ipam on an
// in-memory store. Requests are sent the way the engine sends them: no Content-Type, JSON plus a
// newline, and 0 bytes for calls without arguments.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { openStore, type Store } from '../../src/store/index.js';
import { Ipam } from '../../src/ipam/index.js';
import { buildDockerPluginApi } from '../../src/api/docker/index.js';
import { PLUGIN_CONTENT_TYPE } from '../../plugin-spec/index.js';

let store: Store;
let ipam: Ipam;
let app: FastifyInstance;

/** POSTs like the engine: body = JSON + "\n", or nothing at all. */
async function call(path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await app.inject({ method: 'POST', url: path, payload: body === undefined ? '' : `${JSON.stringify(body)}\n`, headers });
  return { status: res.statusCode, type: res.headers['content-type'], body: res.body === '' ? undefined : (res.json() as Record<string, any>) };
}

const ok = async (path: string, body?: unknown) => {
  const r = await call(path, body);
  expect({ path, status: r.status, body: r.body }).toMatchObject({ path, status: 200 });
  return r.body!;
};

const GATEWAY = { RequestAddressType: 'com.docker.network.gateway' };
/** What the controller's resolver would say of a network of cnmkit's API and its endpoint. */
const NAMES: Record<string, string> = { 'network:n1': 'network "lab"', 'endpoint:e1': 'sandbox "web" on network "lab"' };

describe('Docker IpamDriver API', () => {
  beforeEach(async () => {
    store = openStore(':memory:');
    ipam = new Ipam(store, { environment: { linkRoutes: () => ['172.17.0.0/16'], nameservers: () => [] }, describeOwner: (tag) => NAMES[tag] });
    app = await buildDockerPluginApi({ logger: pino({ level: 'silent' }), ipam, checkReplies: true });
  });
  afterEach(async () => {
    await app.close();
    store.close();
  });

  it('activates with an empty body and no Content-Type, announcing only the IpamDriver', async () => {
    const r = await call('/Plugin.Activate');
    expect(r).toEqual({ status: 200, type: PLUGIN_CONTENT_TYPE, body: { Implements: ['IpamDriver'] } });
  });

  it('answers the argument-less calls sent with 0 bytes', async () => {
    expect(await ok('/IpamDriver.GetCapabilities')).toEqual({ RequiresMACAddress: false, RequiresRequestReplay: true });
    expect(await ok('/IpamDriver.GetDefaultAddressSpaces')).toEqual({ LocalDefaultAddressSpace: 'LocalDefault', GlobalDefaultAddressSpace: 'GlobalDefault' });
  });

  it('reads the body whatever the Content-Type, even an empty header', async () => {
    for (const type of ['application/json', 'text/plain', 'application/vnd.docker.plugins.v1.2+json', '']) {
      const r = await call('/IpamDriver.GetCapabilities', undefined, { 'content-type': type });
      expect({ type, status: r.status }).toEqual({ type, status: 200 });
      const p = await call('/IpamDriver.RequestPool', { AddressSpace: 'LocalDefault', Pool: '198.18.7.0/24' }, { 'content-type': type });
      expect({ type, status: p.status }).toEqual({ type, status: 200 });
    }
  });

  it('gives the same PoolID for the same explicit pool (request replay), and one pool in the Ipam', async () => {
    const req = { AddressSpace: 'LocalDefault', Pool: '198.18.50.0/24', SubPool: '', Options: null, V6: false };
    const a = await ok('/IpamDriver.RequestPool', req);
    const b = await ok('/IpamDriver.RequestPool', req);
    expect(a).toEqual({ PoolID: 'LocalDefault/198.18.50.0/24', Pool: '198.18.50.0/24', Data: {} });
    expect(b).toEqual(a);
    expect(ipam.listPools().map((p) => p.poolId)).toEqual([a.PoolID]);
  });

  it('never gives the same pool twice for Pool "" while it is allocated, skipping the host routes', async () => {
    const req = { AddressSpace: 'LocalDefault', Pool: '', SubPool: '', Options: {}, V6: false };
    const pools: string[] = [];
    for (let i = 0; i < 5; i++) pools.push((await ok('/IpamDriver.RequestPool', req)).Pool);
    expect(pools).toEqual(['172.18.0.0/16', '172.19.0.0/16', '172.20.0.0/16', '172.21.0.0/16', '172.22.0.0/16']);
    await ok('/IpamDriver.ReleasePool', { PoolID: 'LocalDefault/172.19.0.0/16' });
    expect((await ok('/IpamDriver.RequestPool', req)).Pool).toBe('172.19.0.0/16');
  });

  it('gives an IPv6 pool for V6', async () => {
    const r = await ok('/IpamDriver.RequestPool', { AddressSpace: 'LocalDefault', Pool: '', SubPool: '', Options: null, V6: true });
    expect(r.Pool).toMatch(/^fd[0-9a-f:]+\/64$/);
    expect((await ok('/IpamDriver.RequestAddress', { PoolID: r.PoolID, Address: '', Options: GATEWAY })).Address).toMatch(/^fd[0-9a-f:]+::1\/64$/);
  });

  it('allocates the gateway, aux addresses (Options null) and endpoints, and answers their replay alike', async () => {
    const { PoolID } = await ok('/IpamDriver.RequestPool', { AddressSpace: 'LocalDefault', Pool: '198.18.50.0/24', SubPool: '', Options: {}, V6: false });
    const gw = await ok('/IpamDriver.RequestAddress', { PoolID, Address: '', Options: GATEWAY });
    expect(gw).toEqual({ Address: '198.18.50.1/24', Data: {} });
    expect((await ok('/IpamDriver.RequestAddress', { PoolID, Address: '198.18.50.10', Options: null })).Address).toBe('198.18.50.10/24');
    expect((await ok('/IpamDriver.RequestAddress', { PoolID, Address: '', Options: {} })).Address).toBe('198.18.50.2/24');
    expect((await ok('/IpamDriver.RequestAddress', { PoolID, Address: '198.18.50.77', Options: null })).Address).toBe('198.18.50.77/24');
    // The engine's replay at start: the same pool, the gateway and aux addresses asked for explicitly.
    expect((await ok('/IpamDriver.RequestPool', { AddressSpace: 'LocalDefault', Pool: '198.18.50.0/24', SubPool: '', Options: {}, V6: false })).PoolID).toBe(PoolID);
    expect((await ok('/IpamDriver.RequestAddress', { PoolID, Address: '198.18.50.1', Options: GATEWAY })).Address).toBe('198.18.50.1/24');
    expect((await ok('/IpamDriver.RequestAddress', { PoolID, Address: '198.18.50.10', Options: null })).Address).toBe('198.18.50.10/24');
    expect((await ok('/IpamDriver.RequestAddress', { PoolID, Address: '198.18.50.77', Options: null })).Address).toBe('198.18.50.77/24');
    // Owners in the store's "kind:id" style, under a kind of their own that the controller's reconcile leaves alone.
    expect(ipam.listAddresses(PoolID).map((a) => [a.address, a.kind, a.owner]).sort()).toEqual([
      ['198.18.50.1/24', 'gateway', 'docker:LocalDefault/198.18.50.0/24'], ['198.18.50.10/24', 'endpoint', 'docker:explicit'],
      ['198.18.50.2/24', 'endpoint', 'docker:dynamic'], ['198.18.50.77/24', 'endpoint', 'docker:explicit'],
    ]);
  });

  it('refuses --ip on an address that was handed out dynamically or is the gateway, with Err and Error', async () => {
    const { PoolID } = await ok('/IpamDriver.RequestPool', { AddressSpace: 'LocalDefault', Pool: '198.18.51.0/24' });
    await ok('/IpamDriver.RequestAddress', { PoolID, Address: '', Options: GATEWAY });
    await ok('/IpamDriver.RequestAddress', { PoolID, Address: '', Options: null });
    for (const Address of ['198.18.51.2', '198.18.51.1']) {
      const r = await call('/IpamDriver.RequestAddress', { PoolID, Address, Options: null });
      expect(r.status).toBe(409);
      expect(r.type).toBe(PLUGIN_CONTENT_TYPE);
      expect(r.body!.Err).toMatch(new RegExp(`${Address.replace(/\./g, '\\.')} is already allocated`));
      expect(r.body!.Error).toBe(r.body!.Err);
    }
  });

  it('refuses an explicit subnet that overlaps an allocated one', async () => {
    await ok('/IpamDriver.RequestPool', { AddressSpace: 'LocalDefault', Pool: '198.18.52.0/24' });
    const r = await call('/IpamDriver.RequestPool', { AddressSpace: 'LocalDefault', Pool: '198.18.52.128/25' });
    expect(r.status).toBe(409);
    expect(r.body).toEqual({ Err: expect.stringMatching(/overlaps/), Error: expect.stringMatching(/overlaps/) });
  });

  it('releases addresses and pools idempotently, and an unknown pool id is success', async () => {
    const { PoolID } = await ok('/IpamDriver.RequestPool', { AddressSpace: 'LocalDefault', Pool: '198.18.53.0/24' });
    const { Address } = await ok('/IpamDriver.RequestAddress', { PoolID, Address: '', Options: null });
    const plain = (Address as string).split('/')[0];
    expect(await ok('/IpamDriver.ReleaseAddress', { PoolID, Address: plain })).toEqual({});
    expect(await ok('/IpamDriver.ReleaseAddress', { PoolID, Address: plain })).toEqual({});
    expect(ipam.listAddresses(PoolID)).toEqual([]);
    expect(await ok('/IpamDriver.ReleaseAddress', { PoolID: 'LocalDefault/10.99.0.0/16', Address: '10.99.0.5' })).toEqual({});
    expect(await ok('/IpamDriver.ReleasePool', { PoolID })).toEqual({});
    expect(await ok('/IpamDriver.ReleasePool', { PoolID })).toEqual({});
    expect(await ok('/IpamDriver.ReleasePool', { PoolID: 'no-such-pool' })).toEqual({});
    expect(ipam.listPools()).toEqual([]);
  });

  it('releases only what the engine was given: the pools and addresses of a network of cnmkit\'s API are refused, named, and kept', async () => {
    const lab = await ipam.allocateSubnet({ subnet: '198.18.60.0/24', owner: 'network:n1' });
    expect(ipam.requestAddress(lab.poolId, { kind: 'endpoint', owner: 'endpoint:e1' })).toBe('198.18.60.2/24');
    const PoolID = lab.poolId;
    const refused: [string, unknown, string][] = [
      ['ReleaseAddress', { PoolID, Address: '198.18.60.2' }, 'ip: 198.18.60.2 is held by sandbox "web" on network "lab", not by the Docker engine: it stays allocated'],
      ['ReleaseAddress', { PoolID, Address: '198.18.60.1' }, 'ip: 198.18.60.1 is held by the gateway of network "lab", not by the Docker engine: it stays allocated'],
      ['ReleasePool', { PoolID }, `pool ${PoolID} belongs to network "lab", not to the Docker engine, which may not release it`],
      ['RequestAddress', { PoolID, Address: '', Options: null }, `pool ${PoolID} belongs to network "lab", not to the Docker engine, which may not allocate in it`],
    ];
    for (const [path, body, err] of refused) {
      expect({ path, ...(await call(`/IpamDriver.${path}`, body)) }).toMatchObject({ path, status: 403, body: { Err: err, Error: err } });
    }
    for (const [Pool, SubPool, err] of [
      ['198.18.60.0/24', '', 'subnet: 198.18.60.0/24 is already in use by network "lab"'],
      ['198.18.60.0/24', '198.18.60.128/25', 'subnet: 198.18.60.0/24 overlaps 198.18.60.0/24, in use by network "lab"'],
      ['198.18.60.0/25', '', 'subnet: 198.18.60.0/25 overlaps 198.18.60.0/24, in use by network "lab"'],
    ]) {
      expect(await call('/IpamDriver.RequestPool', { AddressSpace: 'LocalDefault', Pool, SubPool, Options: {}, V6: false })).toMatchObject({ status: 409, body: { Err: err } });
    }
    expect(ipam.listPools().map((p) => [p.poolId, p.owner])).toEqual([[PoolID, 'network:n1']]);
    expect(ipam.listAddresses(PoolID).map((a) => a.address).sort()).toEqual(['198.18.60.1/24', '198.18.60.2/24']);
    // A free address of that pool: success without effect (the engine repeats its teardown).
    expect(await ok('/IpamDriver.ReleaseAddress', { PoolID, Address: '198.18.60.77' })).toEqual({});
  });

  it('answers RequestAddress on an unknown pool with an error that is not a 404', async () => {
    const r = await call('/IpamDriver.RequestAddress', { PoolID: 'LocalDefault/10.99.0.0/16', Address: '', Options: null });
    expect(r.status).toBe(500);
    expect(r.body).toEqual({ Err: expect.stringMatching(/pool .* not found/), Error: expect.stringMatching(/pool .* not found/) });
  });

  it('validates requests with the plugin-spec schemas and names the field', async () => {
    const missing = await call('/IpamDriver.RequestAddress', { Address: '' });
    expect(missing.status).toBe(400);
    expect(missing.body!.Err).toMatch(/PoolID/);
    expect(missing.body!.Error).toBe(missing.body!.Err);
    const wrongType = await call('/IpamDriver.RequestPool', { Pool: { subnet: '10.0.0.0/8' } });
    expect(wrongType.status).toBe(400);
    expect(wrongType.body!.Err).toMatch(/^Pool: must be string/);
    const wrongId = await call('/IpamDriver.ReleasePool', { PoolID: 7 });
    expect(wrongId).toMatchObject({ status: 400, body: { Err: 'PoolID: must be string', Error: 'PoolID: must be string' } });
    const coerced = await call('/IpamDriver.RequestPool', { AddressSpace: 'LocalDefault', Pool: '', V6: 'false' });
    expect(coerced).toMatchObject({ status: 400, body: { Err: 'V6: must be boolean' } });
    const wrongBool = await call('/IpamDriver.RequestPool', { V6: 'maybe' });
    expect(wrongBool.status).toBe(400);
    expect(wrongBool.body!.Err).toMatch(/^V6: must be boolean/);
    const notJson = await app.inject({ method: 'POST', url: '/IpamDriver.RequestPool', payload: '{"Pool": ' });
    expect(notJson.statusCode).toBe(400);
    expect(notJson.json()).toEqual({ Err: expect.stringMatching(/not JSON/), Error: expect.stringMatching(/not JSON/) });
    const badSubnet = await call('/IpamDriver.RequestPool', { AddressSpace: 'LocalDefault', Pool: '198.18.50.7/33' });
    expect(badSubnet.status).toBe(400);
    expect(badSubnet.body!.Err).toMatch(/subnet/);
  });

  it('answers 404 with Err for calls it does not implement, including NetworkDriver calls on this socket', async () => {
    for (const path of ['/IpamDriver.Frobnicate', '/NetworkDriver.GetCapabilities']) {
      const r = await call(path);
      expect({ path, status: r.status, type: r.type }).toEqual({ path, status: 404, type: PLUGIN_CONTENT_TYPE });
      expect(r.body!.Err).toMatch(/not implemented/);
    }
  });
});
