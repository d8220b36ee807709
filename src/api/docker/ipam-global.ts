// cnmkit-ipam's global pools, for the Docker engine's cnmkit-overlay networks: a RequestPool whose
// --ipam-opt names an overlay (cnmkit.overlay.name=NAME) gets that network's pool from the cluster
// (etcd), the same on every engine, and the addresses in it are claimed in etcd, so two engines
// never hand out the same one. The PoolID says so ("global:NAME:SUBNET"); every other call goes to
// the local IPAM. The gateway belongs to the network (sent as the pool's data, so the engine does
// not ask for it); endpoint addresses are owned by this host's engine (dockerAddressOwner), so an
// engine releases only its own. Limit: --gateway must be the pool's first address (the cluster's).
import { asked, InvalidArgumentError } from '../../errors.js';
import { dockerAddressOwner, type Cluster, type GlobalPool } from '../../cluster/types.js';
import type { IpamDriverCalls } from '../../../plugin-spec/index.js';
import type { Handlers } from './app.js';
import { GATEWAY_REQUEST_TYPE } from './ipam.js';

/** The --ipam-opt that ties a Docker network to a cluster overlay network. */
export const OVERLAY_NAME_OPTION = 'cnmkit.overlay.name';
const PREFIX = 'global:';
const GATEWAY_DATA = 'com.docker.network.gateway';

export const globalPoolId = (name: string, subnet: string): string => `${PREFIX}${name}:${subnet}`;

function parsePoolId(id: string): { name: string; subnet: string } | undefined {
  if (!id.startsWith(PREFIX)) return undefined;
  const rest = id.slice(PREFIX.length);
  const colon = rest.indexOf(':');
  return colon > 0 ? { name: rest.slice(0, colon), subnet: rest.slice(colon + 1) } : undefined;
}

const bare = (cidr: string | undefined): string | undefined => cidr?.split('/')[0];

/** The pool of the overlay `name` (family), from the network the cluster has, or held for it before its creation. */
async function poolFor(cluster: Cluster, name: string, subnet: string, v6: boolean): Promise<GlobalPool> {
  const net = await cluster.getNetwork(name);
  const have = net?.[v6 ? 'ipv6' : 'ipv4'][0];
  if (net && !have) throw new InvalidArgumentError('subnet', `overlay network ${name} has no IPv${v6 ? 6 : 4} subnet in the cluster`);
  if (have && subnet !== '' && have.subnet !== subnet) {
    throw new InvalidArgumentError('subnet', `overlay network ${name} exists in the cluster with subnet ${have.subnet}, not ${subnet}`);
  }
  return cluster.ipam.requestPool({ owner: name, v6, subnet: have?.subnet ?? (subnet === '' ? undefined : subnet) });
}

/** The IpamDriver handlers: global pools for overlays, the local ones for the rest. */
export function globalIpamHandlers(local: Handlers<IpamDriverCalls>, cluster: Cluster): Handlers<IpamDriverCalls> {
  const owner = dockerAddressOwner(cluster.hostId);
  const gatewayOf = async (name: string, subnet: string): Promise<string | undefined> =>
    (await cluster.ipam.listPools()).find((p) => p.owner === name && p.subnet === subnet)?.gateway;
  return {
    ...local,
    RequestPool: async (req, log) => {
      const name = req.Options?.[OVERLAY_NAME_OPTION];
      if (name === undefined) return local.RequestPool(req, log);
      if (name === '' || name.includes(':')) throw new InvalidArgumentError(OVERLAY_NAME_OPTION, `${JSON.stringify(name)} is not a network name`);
      if (req.SubPool) throw new InvalidArgumentError('ip-range', `--ip-range is not supported on overlay network ${name}`);
      const pool = await asked(`request a pool for overlay network ${name}`, () => poolFor(cluster, name, req.Pool ?? '', req.V6 ?? false));
      log.info({ network: name, pool: pool.subnet }, 'global pool for an overlay network');
      return { PoolID: globalPoolId(name, pool.subnet), Pool: pool.subnet, Data: pool.gateway ? { [GATEWAY_DATA]: pool.gateway } : {} };
    },
    ReleasePool: async (req, log) => {
      const g = parsePoolId(req.PoolID);
      if (!g) return local.ReleasePool(req, log);
      // The network's pools go with the network (its last host out); a pool held for a create that failed goes now.
      await asked(`release pool ${g.subnet} of overlay network ${g.name}`, async () => {
        if (!(await cluster.getNetwork(g.name))) await cluster.ipam.releasePool(g.subnet, g.name);
      });
      return {};
    },
    RequestAddress: async (req, log) => {
      const g = parsePoolId(req.PoolID);
      if (!g) return local.RequestAddress(req, log);
      if (req.Options?.RequestAddressType === GATEWAY_REQUEST_TYPE) {
        const gateway = await asked(`request the gateway of overlay network ${g.name}`, () => gatewayOf(g.name, g.subnet));
        if (!gateway) throw new InvalidArgumentError('pool', `overlay network ${g.name} has no pool ${g.subnet} in the cluster`);
        if (req.Address && req.Address !== bare(gateway)) {
          throw new InvalidArgumentError('gateway', `the gateway of overlay network ${g.name} is ${bare(gateway)} (chosen by the cluster), not ${req.Address}`);
        }
        return { Address: gateway, Data: {} };
      }
      const address = await asked(`request ${req.Address ? `address ${req.Address}` : 'an address'} in overlay network ${g.name}`,
        () => cluster.ipam.requestAddress(g.subnet, { ...(req.Address ? { address: req.Address } : {}), kind: 'endpoint', owner }));
      log.debug({ network: g.name, address }, 'global address allocated');
      return { Address: address, Data: {} };
    },
    ReleaseAddress: async (req, log) => {
      const g = parsePoolId(req.PoolID);
      if (!g) return local.ReleaseAddress(req, log);
      await asked(`release address ${req.Address} of overlay network ${g.name}`, async () => {
        if (req.Address !== bare(await gatewayOf(g.name, g.subnet))) await cluster.ipam.releaseAddress(g.subnet, req.Address, owner);
      });
      log.debug({ network: g.name, address: req.Address }, 'global address released');
      return {};
    },
  };
}

/** The overlay network a Docker network's IPv4 pool belongs to; refused, naming the flags, when it is not a global pool. */
export async function overlayNameOf(cluster: Cluster, pool: string | undefined): Promise<string> {
  const found = pool ? (await cluster.ipam.listPools()).find((p) => p.subnet === pool) : undefined;
  if (!found) {
    throw new InvalidArgumentError('ipam-driver', `a cnmkit-overlay network takes its addresses from the cluster: add --ipam-driver cnmkit-ipam --ipam-opt ${OVERLAY_NAME_OPTION}=NAME (the same NAME on every engine)`);
  }
  return found.owner;
}
