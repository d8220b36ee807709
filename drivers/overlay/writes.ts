// An overlay endpoint's writes to the cluster store: its peer published (alone, or with its
// reserved addresses in one transaction), its peer removed and its addresses released, each
// removal retried until the store answers (./pending.ts); a publish cancels a removal of the same
// peer still queued. Limits: the cluster must be there when one is called (needCluster).
import type { Cluster, PeerSpec } from '../../src/cluster/types.js';
import type { EndpointRecord, NetworkRecord } from '../../src/core/model.js';
import { isGivenMac } from './endpoint.js';
import { needCluster } from './global.js';
import type { PendingWrites } from './pending.js';

export interface EndpointWrites {
  peerOf(ep: EndpointRecord, mac: string): PeerSpec;
  /** The endpoint's addresses, each with the cluster pool it came from. */
  addressesOf(net: NetworkRecord, ep: EndpointRecord): { poolId: string; address: string }[];
  publish(net: NetworkRecord, ep: EndpointRecord, mac: string): Promise<unknown>;
  /** The endpoint's reserved addresses claimed and its peer published, in one transaction. */
  joinCluster(net: NetworkRecord, ep: EndpointRecord, mac: string, owner: string): Promise<unknown>;
  /** The endpoint's peer goes from the cluster (retried until the store answers). */
  removePeer(net: NetworkRecord, ep: EndpointRecord): Promise<void>;
  /** The endpoint's addresses held by owner are released (each retried until the store answers). */
  releaseAddresses(net: NetworkRecord, ep: EndpointRecord, owner: string): Promise<void>;
  /** Undoes a join's cluster writes (its kernel work failed): the peer, and the addresses it claimed. */
  unpublish(net: NetworkRecord, ep: EndpointRecord, owner: string | undefined): Promise<void>;
}

export function endpointWrites(cluster: () => Cluster | undefined, pending: PendingWrites): EndpointWrites {
  const peerOf = (ep: EndpointRecord, mac: string): PeerSpec => ({ endpointId: ep.id, ip: ep.ipv4 ?? '', ...(ep.ipv6 ? { ipv6: ep.ipv6 } : {}), mac, ...(isGivenMac(ep, mac) ? { macGiven: true } : {}) });
  const addressesOf = (net: NetworkRecord, ep: EndpointRecord): { poolId: string; address: string }[] =>
    ([[net.ipv4[0], ep.ipv4], [net.ipv6[0], ep.ipv6]] as const).flatMap(([sub, a]) => (sub && a ? [{ poolId: sub.poolId, address: a }] : []));
  const removePeer = async (net: NetworkRecord, ep: EndpointRecord): Promise<void> => {
    await pending.run(`peer:${net.name}:${ep.id}`, () => needCluster(cluster()).removePeer(net.name, ep.id));
  };
  const releaseAddresses = async (net: NetworkRecord, ep: EndpointRecord, owner: string): Promise<void> => {
    const c = needCluster(cluster());
    for (const { poolId, address } of addressesOf(net, ep)) await pending.run(`address:${poolId}:${address}`, () => c.ipam.releaseAddress(poolId, address, owner));
  };
  return {
    peerOf,
    addressesOf,
    publish(net, ep, mac) {
      const c = needCluster(cluster());
      pending.cancel(`peer:${net.name}:${ep.id}`);
      return c.publishPeer(net.name, peerOf(ep, mac));
    },
    async joinCluster(net, ep, mac, owner) {
      const c = needCluster(cluster());
      pending.cancel(`peer:${net.name}:${ep.id}`);
      return c.joinEndpoint(net.name, peerOf(ep, mac), addressesOf(net, ep).map((a) => ({ ...a, owner })));
    },
    removePeer,
    releaseAddresses,
    async unpublish(net, ep, owner) {
      await removePeer(net, ep);
      if (owner !== undefined) await releaseAddresses(net, ep, owner);
    },
  };
}
