// cnmkit-ipam's global pools for the Docker engine's overlays (src/api/docker/ipam-global.ts),
// over a cluster kept in memory: which calls go to the cluster and which to the local IPAM, the
// pool every engine gets for one overlay name, the owner of the engine's addresses, and the
// refusals that name what to change. The wire itself is covered by test/e2e/docker-overlay.test.ts.
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import type { FastifyBaseLogger } from 'fastify';
import { globalIpamHandlers, overlayNameOf } from '../../src/api/docker/ipam-global.js';
import type { Cluster, GlobalNetwork, GlobalPool } from '../../src/cluster/types.js';
import type { Handlers } from '../../src/api/docker/app.js';
import type { IpamDriverCalls } from '../../plugin-spec/index.js';

const log = pino({ level: 'silent' }) as unknown as FastifyBaseLogger;

/** A cluster with pools and addresses in maps; records the address calls. */
function fakeCluster(network?: Partial<GlobalNetwork>) {
  const pools: (GlobalPool & { gateway: string })[] = [];
  const calls: string[] = [];
  let next = 2;
  const cluster = {
    hostId: 'h1',
    getNetwork: async (name: string) => (network?.name === name ? network as GlobalNetwork : undefined),
    ipam: {
      requestPool: async (req: { owner: string; subnet?: string; v6?: boolean }) => {
        const have = pools.find((p) => p.owner === req.owner && (req.subnet === undefined || p.subnet === req.subnet));
        if (have) return have;
        const subnet = req.subnet ?? `198.19.${pools.length}.0/24`;
        const pool = { poolId: subnet, subnet, family: 4 as const, owner: req.owner, gateway: `${subnet.split('.0/')[0]}.1/24` };
        pools.push(pool);
        return pool;
      },
      listPools: async () => pools,
      releasePool: async (id: string, owner: string) => void calls.push(`releasePool ${id} ${owner}`),
      requestAddress: async (id: string, req: { owner: string; address?: string }) => {
        calls.push(`request ${id} ${req.owner} ${req.address ?? ''}`);
        return `${id.split('.0/')[0]}.${req.address ? req.address.split('.')[3] : next++}/24`;
      },
      releaseAddress: async (id: string, address: string, owner: string) => void calls.push(`release ${id} ${address} ${owner}`),
    },
  };
  return { cluster: cluster as unknown as Cluster, calls, pools };
}

const local: Handlers<IpamDriverCalls> = {
  GetCapabilities: () => ({ RequiresMACAddress: false, RequiresRequestReplay: true }),
  GetDefaultAddressSpaces: () => ({ LocalDefaultAddressSpace: 'LocalDefault', GlobalDefaultAddressSpace: 'GlobalDefault' }),
  RequestPool: () => ({ PoolID: 'LocalDefault/10.0.0.0/24', Pool: '10.0.0.0/24', Data: {} }),
  ReleasePool: () => ({}),
  RequestAddress: () => ({ Address: '10.0.0.2/24', Data: {} }),
  ReleaseAddress: () => ({}),
};

const opt = { 'cnmkit.overlay.name': 'mesh' };

describe('cnmkit-ipam global pools (Docker overlays)', () => {
  it('a pool request without the overlay option stays local; with it, every engine gets the same global pool with its gateway as data', async () => {
    const { cluster } = fakeCluster();
    const h = globalIpamHandlers(local, cluster);
    expect((await h.RequestPool({ AddressSpace: 'LocalDefault', Pool: '', SubPool: '', Options: {}, V6: false }, log)).PoolID).toBe('LocalDefault/10.0.0.0/24');
    const a = await h.RequestPool({ AddressSpace: 'LocalDefault', Pool: '', SubPool: '', Options: opt, V6: false }, log);
    const b = await h.RequestPool({ AddressSpace: 'LocalDefault', Pool: '', SubPool: '', Options: opt, V6: false }, log);
    expect(a).toEqual({ PoolID: 'global:mesh:198.19.0.0/24', Pool: '198.19.0.0/24', Data: { 'com.docker.network.gateway': '198.19.0.1/24' } });
    expect(b).toEqual(a);
    expect(await overlayNameOf(cluster, '198.19.0.0/24')).toBe('mesh');
  });

  it('refuses a --subnet other than the overlay\'s, an --ip-range, and a network whose pool is not a global one, naming what to change', async () => {
    const { cluster } = fakeCluster({ name: 'mesh', ipv4: [{ poolId: '198.19.7.0/24', subnet: '198.19.7.0/24', gateway: '198.19.7.1/24' }], ipv6: [] });
    const h = globalIpamHandlers(local, cluster);
    await expect(h.RequestPool({ AddressSpace: 'LocalDefault', Pool: '198.19.9.0/24', SubPool: '', Options: opt, V6: false }, log))
      .rejects.toThrow('overlay network mesh exists in the cluster with subnet 198.19.7.0/24, not 198.19.9.0/24');
    await expect(h.RequestPool({ AddressSpace: 'LocalDefault', Pool: '', SubPool: '198.19.7.0/25', Options: opt, V6: false }, log)).rejects.toThrow('--ip-range');
    expect((await h.RequestPool({ AddressSpace: 'LocalDefault', Pool: '', SubPool: '', Options: opt, V6: false }, log)).Pool).toBe('198.19.7.0/24');
    await expect(overlayNameOf(cluster, '172.18.0.0/16')).rejects.toThrow('add --ipam-driver cnmkit-ipam --ipam-opt cnmkit.overlay.name=NAME');
  });

  it('addresses: the engine\'s are owned by its host, the gateway is the network\'s (never released by an engine, only its own value accepted)', async () => {
    const { cluster, calls } = fakeCluster();
    const h = globalIpamHandlers(local, cluster);
    const { PoolID } = await h.RequestPool({ AddressSpace: 'LocalDefault', Pool: '', SubPool: '', Options: opt, V6: false }, log);
    expect(await h.RequestAddress({ PoolID, Address: '', Options: {} }, log)).toEqual({ Address: '198.19.0.2/24', Data: {} });
    const gw = { RequestAddressType: 'com.docker.network.gateway' };
    expect((await h.RequestAddress({ PoolID, Address: '198.19.0.1', Options: gw }, log)).Address).toBe('198.19.0.1/24');
    await expect(h.RequestAddress({ PoolID, Address: '198.19.0.9', Options: gw }, log)).rejects.toThrow('the gateway of overlay network mesh is 198.19.0.1');
    await h.ReleaseAddress({ PoolID, Address: '198.19.0.1' }, log);
    await h.ReleaseAddress({ PoolID, Address: '198.19.0.2' }, log);
    expect(calls).toEqual(['request 198.19.0.0/24 docker:h1 ', 'release 198.19.0.0/24 198.19.0.2 docker:h1']);
  });

  it('ReleasePool frees a pool only when no overlay of that name exists (a create that failed); the overlay\'s own goes with it', async () => {
    const { cluster, calls } = fakeCluster({ name: 'mesh', ipv4: [{ poolId: '198.19.0.0/24', subnet: '198.19.0.0/24', gateway: '198.19.0.1/24' }], ipv6: [] });
    const h = globalIpamHandlers(local, cluster);
    await h.ReleasePool({ PoolID: 'global:mesh:198.19.0.0/24' }, log);
    await h.ReleasePool({ PoolID: 'global:other:198.19.5.0/24' }, log);
    expect(calls).toEqual(['releasePool 198.19.5.0/24 other']);
  });
});
