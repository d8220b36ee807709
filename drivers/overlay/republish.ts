// After a restart, a restored overlay network's standing in the cluster store: this host's own
// endpoints that etcd holds exactly on its lease (one read) are left as they are; the others have
// their addresses claimed again and their peer published. This host's peers and endpoint
// addresses that no endpoint has go (a disconnect whose writes were still queued when the daemon
// stopped), as do the peers of the Docker engine's endpoints whose interface vanished. The read is
// retried until the store answers, with the endpoints still here then; each write after it too.
// Limits: an address (or a given MAC) another host took while this one was away is not taken
// back: its endpoint is reported (cluster status, check) and left unpublished.
import type { Logger } from 'pino';
import { dockerAddressOwner, type Cluster, type PeerSpec } from '../../src/cluster/types.js';
import type { EndpointRecord, NetworkRecord } from '../../src/core/model.js';
import { ConflictError } from '../../src/errors.js';
import { macFor, type OverlayEndpointData } from './endpoint.js';
import type { HostNetwork } from './hostnet.js';
import type { PendingWrites } from './pending.js';

/** One network of a restore round: its endpoints restored here, those whose interface vanished, and its state. */
export interface Restoring {
  net: NetworkRecord;
  eps: EndpointRecord[];
  gone: EndpointRecord[];
  s?: HostNetwork;
}

export interface RepublishDeps {
  cluster: Cluster;
  pending: PendingWrites;
  log: Logger;
  hostNetwork(networkId: string): HostNetwork | undefined;
  peerOf(ep: EndpointRecord, mac: string): PeerSpec;
  addressesOf(net: NetworkRecord, ep: EndpointRecord): { poolId: string; address: string }[];
  poolsOf(net: NetworkRecord): string[];
  dropGone(net: NetworkRecord, ep: EndpointRecord): Promise<void>;
}

export async function republishRestored(d: RepublishDeps, { net, eps, gone }: Restoring): Promise<void> {
  const c = d.cluster;
  for (const ep of gone) await d.dropGone(net, ep);
  const ownOf = (ep: EndpointRecord) => {
    const mac = (ep.driverData as Partial<OverlayEndpointData>).mac ?? ep.macAddress ?? macFor(ep.ipv4);
    const owner = ep.dockerId === undefined ? `endpoint:${ep.id}` : dockerAddressOwner(c.hostId);
    return { ep, peer: d.peerOf(ep, mac), addresses: d.addressesOf(net, ep).map((a) => ({ ...a, owner })) };
  };
  await d.pending.run(`restore:${net.name}`, async () => {
    // The network's endpoints here now: those restored that are still here, and those joined since.
    const known = new Set(d.hostNetwork(net.id)?.local);
    const own = eps.filter((ep) => known.has(ep.id)).map(ownOf);
    const { confirmed, stale } = await c.confirmEndpoints(net.name, d.poolsOf(net), own, known);
    if (stale.peers.length + stale.addresses.length > 0) {
      d.log.warn({ network: net.name, endpoints: stale.peers, addresses: stale.addresses.map((a) => a.address) }, 'overlay: removing peers and addresses of this host that no endpoint has');
    }
    const removals = [
      ...stale.peers.map((id) => d.pending.run(`peer:${net.name}:${id}`, () => c.removePeer(net.name, id))),
      ...stale.addresses.map(({ poolId, address, owner }) => d.pending.run(`address:${poolId}:${address}`, () => c.ipam.releaseAddress(poolId, address, owner))),
    ];
    await Promise.all([...removals, ...own.filter((o) => !confirmed.has(o.ep.id)).map((o) => d.pending.run(`peer:${net.name}:${o.ep.id}`, async () => {
      // The lease may have expired while the daemon was away: claim the addresses again, then publish.
      try {
        for (const { poolId, address, owner } of o.addresses) await c.ipam.requestAddress(poolId, { address, kind: 'endpoint', owner });
        await c.publishPeer(net.name, o.peer);
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
        // Another endpoint took the address (or the given MAC) meanwhile: this endpoint is not
        // published (its peer would take the other's traffic), and it is reported until it is disconnected.
        const why = `endpoint ${o.ep.name} of network ${net.name}: its ${err.message}; it is not published: disconnect it and connect it again`;
        d.hostNetwork(net.id)?.lost.set(o.ep.id, why);
        c.reportConflict(why);
      }
    }))]);
  });
}
