// At start-up, before the networks are restored: the Docker engine's endpoints that it handed back
// while the daemon was away (src/contract/handback.ts), on the drivers that tell them, are removed
// whole: their published ports, their interface (the driver's deleteEndpoint), their record, and
// the address the engine took for them from cnmkit-ipam (its ReleaseAddress found no plugin
// either; with the engine's own IPAM there is none here to release). Their ports are therefore not
// published again by the restore that follows.
// Each removal is reported in done (the daemon logs those lines at start). Limits: an endpoint
// whose removal fails keeps its record (state deleting, for the next start) and its address.
import { DOCKER_ENGINE, DOCKER_POOL_OWNER, LOCAL_ADDRESS_SPACE } from '../ipam/index.js';
import type { EndpointRecord, NetworkRecord, SubnetRecord } from '../core/model.js';
import type { ControllerDeps } from './types.js';
import { teardownEndpoint } from './endpoints.js';

export async function dropHandedBack(deps: ControllerDeps, done: string[]): Promise<void> {
  const { store, drivers } = deps;
  for (const driver of drivers.list()) {
    if (!driver.handedBack) continue;
    for (const net of store.networks.listWhere('driver', driver.name)) {
      const eps = store.endpoints.list().filter((e) => e.networkId === net.id && e.dockerId !== undefined && e.sandboxId === undefined && e.state === 'ready');
      if (net.state !== 'ready' || eps.length === 0) continue;
      for (const id of await driver.handedBack(net, net.config, eps)) {
        const ep = eps.find((e) => e.id === id)!;
        const what = `the Docker engine's endpoint ${ep.name} on network ${net.name}`;
        try {
          await teardownEndpoint(deps, ep, undefined);
        } catch (err) {
          done.push(`${what}: handed back by the engine while the daemon was away, and not removed: ${(err as Error).message}`);
          continue;
        }
        const released = releaseEngineAddresses(deps, net, ep);
        done.push(`${what}: removed, ${released.join(', ') || 'no address of cnmkit-ipam'} released (the engine handed its interface back while the daemon was away)`);
      }
    }
  }
}

/** The endpoint's addresses that the engine holds in its cnmkit-ipam pool of the network's subnet, released; returns them. */
function releaseEngineAddresses(deps: ControllerDeps, net: NetworkRecord, ep: EndpointRecord): string[] {
  const released: string[] = [];
  const bare = (cidr: string): string => cidr.split('/')[0]!;
  const pairs: [SubnetRecord[], string | undefined][] = [[net.ipv4, ep.ipv4], [net.ipv6, ep.ipv6]];
  for (const [subnets, address] of pairs) {
    if (!address) continue;
    const pool = deps.ipam.listPools(LOCAL_ADDRESS_SPACE).find((p) => p.owner === DOCKER_POOL_OWNER && subnets.some((s) => s.subnet === p.pool));
    if (!pool) continue;
    const held = deps.ipam.listAddresses(pool.poolId).find((a) => a.kind === 'endpoint' && DOCKER_ENGINE.ownsAddress(a.owner) && bare(a.address) === bare(address));
    if (!held) continue;
    deps.ipam.releaseAddress(pool.poolId, held.address, DOCKER_ENGINE);
    released.push(bare(address));
  }
  return released;
}
