// A restarted host's endpoints checked against etcd in one read, instead of claimed and published
// again one round trip at a time: an endpoint whose peer record and addresses are there, exactly,
// on this host's current lease (a daemon restarted within its TTL adopts it) is only remembered as
// owned; the others are left to the caller to claim and publish. Also names this host's peers on
// the network that no given endpoint has (a crash between a leave's steps). Reads only.
import { parsePrefix } from '../ip/index.js';
import { parseJson, type KeyValue, type StoreClient } from './client.js';
import { sameJson } from './diff.js';
import { canonicalPool } from './ipam.js';
import { addressIn } from './pools.js';
import type { Keys } from './keys.js';
import { endpointAddress, type Owned, type OwnedEntry } from './owned.js';
import { checkPeer } from './peers.js';
import type { OwnEndpoint } from './types.js';

export interface ConfirmDeps {
  client: StoreClient;
  keys: Keys;
  hostId: string;
  vtep: string;
  owned: Owned;
  lease(): string;
}

/** The keys an endpoint needs, each with its value, or undefined when the peer does not parse. */
function keysOf(d: ConfirmDeps, network: string, ep: OwnEndpoint): Map<string, OwnedEntry> | undefined {
  let peer;
  try {
    peer = checkPeer(network, ep.peer, d.hostId, d.vtep);
  } catch {
    return undefined;
  }
  const out = new Map<string, OwnedEntry>([[d.keys.peer(network, d.hostId, peer.endpointId), { kind: 'peer', value: peer }]]);
  for (const a of ep.addresses) {
    const pool = canonicalPool(a.poolId);
    out.set(d.keys.address(pool, addressIn(parsePrefix('pool', pool), a.address)), { kind: 'address', value: endpointAddress(a.owner, d.hostId) });
  }
  return out;
}

/**
 * Which of the network's endpoints etcd holds exactly (peer and addresses on the current lease):
 * those are remembered as owned. `stale`: ids of this host's peers there that none of eps has.
 */
export async function confirmEndpoints(d: ConfirmDeps, network: string, eps: OwnEndpoint[]): Promise<{ confirmed: Set<string>; stale: string[] }> {
  const lease = d.lease();
  const pools = [...new Set(eps.flatMap((e) => e.addresses.map((a) => canonicalPool(a.poolId))))];
  const mine = d.keys.hostPeers(network, d.hostId);
  const res = await d.client.txn(`confirm the endpoints of ${network}`, [], [mine, ...pools.map((p) => d.keys.addresses(p))].map((get) => ({ get, prefix: true })));
  const held = new Map<string, KeyValue>(res.reads.flat().map((kv) => [kv.key, kv]));
  const confirmed = new Set<string>();
  for (const ep of eps) {
    const wanted = keysOf(d, network, ep);
    const exact = wanted !== undefined && [...wanted].every(([key, entry]) => {
      const kv = held.get(key);
      return kv !== undefined && kv.lease === lease && sameJson(parseJson(kv), entry.value);
    });
    if (!exact) continue;
    for (const [key, entry] of wanted) d.owned.set(key, entry);
    confirmed.add(ep.peer.endpointId);
  }
  const given = new Set(eps.map((e) => e.peer.endpointId));
  const stale = res.reads[0]!.map((kv) => kv.key.slice(mine.length)).filter((id) => !given.has(id));
  return { confirmed, stale };
}
