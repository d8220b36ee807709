// A restarted host's endpoints checked against etcd in one read, instead of claimed and published
// again one round trip at a time: an endpoint whose peer record, addresses and (for a given MAC)
// MAC claim are there, exactly,
// on this host's current lease (a daemon restarted within its TTL adopts it) is only remembered as
// owned; the others are left to the caller to claim and publish. Also names this host's leftovers
// on the network: its peers, and the endpoint addresses it holds in the network's pools, that no
// endpoint known here has and this daemon did not write (a crash between a leave's steps, or a
// disconnect whose cluster writes were still queued when the daemon stopped). Reads only. Limits:
// a Docker engine's addresses (its IPAM releases them) are never leftovers.
import { parsePrefix } from '../ip/index.js';
import { parseJson, type KeyValue, type StoreClient } from './client.js';
import { sameJson } from './diff.js';
import { canonicalPool } from './ipam.js';
import { addressIn } from './pools.js';
import type { Keys } from './keys.js';
import { endpointAddress, type AddressValue, type Owned, type OwnedEntry } from './owned.js';
import { checkPeer } from './peers.js';
import type { Leftovers, OwnEndpoint } from './types.js';

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
  if (ep.peer.macGiven) out.set(d.keys.mac(network, peer.mac), { kind: 'mac', value: { host: d.hostId, endpointId: peer.endpointId } });
  return out;
}

/** The owner an endpoint's address has when the controller claimed it (a Docker engine's are the host's). */
const ENDPOINT_OWNER = 'endpoint:';

/** One read: this host's peer keys on the network, every address key of each pool, and (macs) the network's MAC claims. */
async function readOwn(d: ConfirmDeps, what: string, network: string, pools: string[], macs = false): Promise<{ peers: KeyValue[]; addresses: KeyValue[][]; macs: KeyValue[] }> {
  const res = await d.client.txn(what, [], [d.keys.hostPeers(network, d.hostId), ...pools.map((p) => d.keys.addresses(p)), ...(macs ? [d.keys.macs(network)] : [])].map((get) => ({ get, prefix: true })));
  return { peers: res.reads[0]!, addresses: res.reads.slice(1, 1 + pools.length), macs: res.reads[1 + pools.length] ?? [] };
}

function leftoversIn(d: ConfirmDeps, network: string, pools: string[], read: { peers: KeyValue[]; addresses: KeyValue[][] }, known: Set<string>): Leftovers {
  const mine = d.keys.hostPeers(network, d.hostId);
  const peers = read.peers.filter((kv) => !d.owned.has(kv.key)).map((kv) => kv.key.slice(mine.length)).filter((id) => !known.has(id));
  const addresses = pools.flatMap((poolId, i) => read.addresses[i]!.flatMap((kv) => {
    const held = parseJson<AddressValue>(kv);
    const leftover = held.host === d.hostId && held.kind === 'endpoint' && held.owner.startsWith(ENDPOINT_OWNER)
      && !known.has(held.owner.slice(ENDPOINT_OWNER.length)) && !d.owned.has(kv.key);
    return leftover ? [{ poolId, address: kv.key.slice(d.keys.addresses(poolId).length), owner: held.owner }] : [];
  }));
  return { peers, addresses };
}

/** This host's leftovers on the network (pools: the network's), given the ids of every endpoint it has there. */
export async function findLeftovers(d: ConfirmDeps, network: string, pools: string[], known: Set<string>): Promise<Leftovers> {
  const canonical = pools.map(canonicalPool);
  return leftoversIn(d, network, canonical, await readOwn(d, `read this host's keys on ${network}`, network, canonical), known);
}

/**
 * Which of the network's endpoints etcd holds exactly (peer and addresses on the current lease):
 * those are remembered as owned. `stale`: this host's leftovers there (pools: the network's),
 * none of eps nor of the ids in known having them.
 */
export async function confirmEndpoints(d: ConfirmDeps, network: string, networkPools: string[], eps: OwnEndpoint[], known: Set<string>): Promise<{ confirmed: Set<string>; stale: Leftovers }> {
  const lease = d.lease();
  const pools = [...new Set([...networkPools, ...eps.flatMap((e) => e.addresses.map((a) => a.poolId))].map(canonicalPool))];
  const read = await readOwn(d, `confirm the endpoints of ${network}`, network, pools, true);
  const held = new Map<string, KeyValue>([...read.peers, ...read.addresses.flat(), ...read.macs].map((kv) => [kv.key, kv]));
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
  const given = new Set([...known, ...eps.map((e) => e.peer.endpointId)]);
  return { confirmed, stale: leftoversIn(d, network, pools, read, given) };
}
