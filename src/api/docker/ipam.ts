// Docker's IpamDriver over cnmkit's Ipam. The wire does not say who an address is for, so each
// request is classified, with owners in the store's "kind:id" style under the "docker" kind (the
// controller's reconcile leaves those alone): the gateway (Options.RequestAddressType) is held by
// "docker:<PoolID>"; an explicit address (aux, --ip, or the engine's replay at start) by
// "docker:explicit", so asking again for it succeeds; a dynamic one by "docker:dynamic", so --ip
// on it is refused. The engine touches only what it allocated: its pools ("docker:pool") and
// "docker:" addresses; releasing what a network of cnmkit's API holds is refused with an error
// naming the holder (the engine only logs errors of releases, so refusing is safe).
// Limit: two containers given the same --ip are not told apart (the wire cannot say so).
import { CAPABILITIES, DOCKER_ENGINE, LOCAL_ADDRESS_SPACE, type AddressRequest, type Ipam } from '../../ipam/index.js';
import type { IpamDriverCalls, RequestAddressRequest } from '../../../plugin-spec/index.js';
import type { Handlers } from './app.js';

/** RequestAddress's Options.RequestAddressType for a network's gateway. */
export const GATEWAY_REQUEST_TYPE = 'com.docker.network.gateway';
export const EXPLICIT_OWNER = 'docker:explicit';
export const DYNAMIC_OWNER = 'docker:dynamic';
export const gatewayOwner = (poolId: string): string => `docker:${poolId}`;

/** What the Ipam is asked for one RequestAddress. */
export function addressRequestOf(req: RequestAddressRequest): AddressRequest {
  const address = req.Address ? { address: req.Address } : {};
  if (req.Options?.RequestAddressType === GATEWAY_REQUEST_TYPE) return { kind: 'gateway', owner: gatewayOwner(req.PoolID), ...address };
  return { kind: 'endpoint', owner: req.Address ? EXPLICIT_OWNER : DYNAMIC_OWNER, ...address };
}

export function ipamHandlers(ipam: Ipam): Handlers<IpamDriverCalls> {
  return {
    GetCapabilities: () => ({ ...CAPABILITIES }),
    GetDefaultAddressSpaces: () => {
      const spaces = ipam.defaultAddressSpaces();
      return { LocalDefaultAddressSpace: spaces.local, GlobalDefaultAddressSpace: spaces.global };
    },
    RequestPool: async (req, log) => {
      const pool = await ipam.requestPool({
        addressSpace: req.AddressSpace || LOCAL_ADDRESS_SPACE,
        ...(req.Pool ? { pool: req.Pool } : {}),
        ...(req.SubPool ? { subPool: req.SubPool } : {}),
        options: req.Options ?? null,
        ...(req.V6 === undefined ? {} : { v6: req.V6 }),
      });
      log.info({ poolId: pool.poolId, requested: req.Pool || 'any' }, 'pool allocated');
      return { PoolID: pool.poolId, Pool: pool.pool, Data: pool.data };
    },
    ReleasePool: (req, log) => {
      ipam.releasePool(req.PoolID, DOCKER_ENGINE);
      log.info({ poolId: req.PoolID }, 'pool released');
      return {};
    },
    RequestAddress: (req, log) => {
      const ask = addressRequestOf(req);
      const address = ipam.requestAddress(req.PoolID, ask, DOCKER_ENGINE);
      log.debug({ poolId: req.PoolID, address, kind: ask.kind }, 'address allocated');
      return { Address: address, Data: {} };
    },
    ReleaseAddress: (req, log) => {
      ipam.releaseAddress(req.PoolID, req.Address, DOCKER_ENGINE);
      log.debug({ poolId: req.PoolID, address: req.Address }, 'address released');
      return {};
    },
  };
}
