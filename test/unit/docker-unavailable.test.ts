// What the Docker engine is told (the plugin's Err) when the cluster store does not answer during
// one of its calls: the call as the engine's user knows it — the endpoint and network by Docker's
// 12-hex short id, an overlay by its name, an address by its text — then the store and why; never
// the store client's internal step or a 64-hex id. Over fastify inject, with a controller and a
// cluster whose cluster work fails as the store client fails it.
import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { ClusterUnavailableError } from '../../src/errors.js';
import { buildDockerPluginApi } from '../../src/api/docker/index.js';
import { driverBackend } from '../../src/api/docker/driver-backend.js';
import type { Controller } from '../../src/controller/controller.js';
import type { Cluster } from '../../src/cluster/types.js';
import type { Ipam } from '../../src/ipam/index.js';

const NET = 'a'.repeat(64);
const EP = 'b'.repeat(64);
const STORE_DOWN = 'etcd://198.19.255.254:2379 does not answer (connect ECONNREFUSED 198.19.255.254:2379)';
const UNAVAILABLE = `cluster store unavailable: ${STORE_DOWN}`;
const down = (): Promise<never> => Promise.reject(new ClusterUnavailableError(STORE_DOWN));

const net = { id: NET, dockerId: NET, name: 'ov', driver: 'overlay', config: {} };
const controller = {
  dockerNetwork: () => net,
  endpointsOf: () => [],
  pruneGoneDockerEndpoints: async () => 0,
  createDetachedEndpoint: down,
  dockerJoin: down,
  createNetwork: down,
  deleteNetwork: down,
  listNetworks: () => [],
} as unknown as Controller;
const cluster = { hostId: 'h1', getNetwork: down, ipam: { requestPool: down, listPools: down, requestAddress: down, releaseAddress: down, releasePool: down } } as unknown as Cluster;

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function err(path: string, body: unknown): Promise<string> {
  const res = await app!.inject({ method: 'POST', url: path, payload: `${JSON.stringify(body)}\n` });
  expect(res.statusCode).toBeGreaterThanOrEqual(500);
  return (res.json() as { Err: string }).Err;
}

describe('the Docker plugin while the cluster store does not answer', () => {
  it('NetworkDriver calls name the endpoint and network by short id', async () => {
    app = await buildDockerPluginApi({ logger: pino({ level: 'silent' }), network: driverBackend(controller, 'overlay', 'local', async () => 'ov') });
    const said = [
      await err('/NetworkDriver.CreateEndpoint', { NetworkID: NET, EndpointID: EP, Interface: { Address: '198.19.230.5/24' } }),
      await err('/NetworkDriver.Join', { NetworkID: NET, EndpointID: EP, SandboxKey: '/var/run/docker/netns/x' }),
      await err('/NetworkDriver.CreateNetwork', { NetworkID: NET, IPv4Data: [{ Pool: '198.19.230.0/24' }] }),
      await err('/NetworkDriver.DeleteNetwork', { NetworkID: NET }),
    ];
    expect(said).toEqual([
      `create endpoint bbbbbbbbbbbb on network aaaaaaaaaaaa: ${UNAVAILABLE}`,
      `join endpoint bbbbbbbbbbbb of network aaaaaaaaaaaa: ${UNAVAILABLE}`,
      `create network aaaaaaaaaaaa: ${UNAVAILABLE}`,
      `remove network aaaaaaaaaaaa: ${UNAVAILABLE}`,
    ]);
    for (const s of said) expect(s).not.toMatch(/[0-9a-f]{64}/);
  });

  it('IpamDriver calls for an overlay name the overlay and the address', async () => {
    app = await buildDockerPluginApi({ logger: pino({ level: 'silent' }), ipam: {} as Ipam, cluster });
    const pool = 'global:ov:198.19.230.0/24';
    expect(await err('/IpamDriver.RequestPool', { AddressSpace: 'global', Pool: '198.19.230.0/24', Options: { 'cnmkit.overlay.name': 'ov' } }))
      .toBe(`request a pool for overlay network ov: ${UNAVAILABLE}`);
    expect(await err('/IpamDriver.RequestAddress', { PoolID: pool, Address: '198.19.230.9' })).toBe(`request address 198.19.230.9 in overlay network ov: ${UNAVAILABLE}`);
    expect(await err('/IpamDriver.RequestAddress', { PoolID: pool })).toBe(`request an address in overlay network ov: ${UNAVAILABLE}`);
    expect(await err('/IpamDriver.ReleaseAddress', { PoolID: pool, Address: '198.19.230.9' })).toBe(`release address 198.19.230.9 of overlay network ov: ${UNAVAILABLE}`);
    expect(await err('/IpamDriver.ReleasePool', { PoolID: pool })).toBe(`release pool 198.19.230.0/24 of overlay network ov: ${UNAVAILABLE}`);
  });
});
