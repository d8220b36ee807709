// Peer records: one per endpoint, under peers/NETWORK/HOST/ENDPOINT on the publishing host's
// lease (so they vanish everywhere when the host's lease expires), with the claim of a given MAC
// in the same transaction (macs.ts), and the watch a driver
// programs its static FDB/neighbour entries from, which tells a peer gone with its host's lease
// from one its host deleted.
import net from 'node:net';
import type { Logger } from 'pino';
import { ConflictError, InvalidArgumentError } from '../errors.js';
import { shortId } from '../core/refs.js';
import type { StoreClient } from './client.js';
import { sameJson, type Change } from './diff.js';
import { describeHost } from './hosts.js';
import type { Keys } from './keys.js';
import { MacClaim, removalOps } from './macs.js';
import type { Owned } from './owned.js';
import type { Claim, Reservations } from './reserve.js';
import type { Peer, PeerChange, PeerHandler, PeerSpec, PeerWatch } from './types.js';
import { mark } from '../core/trace.js';
import { RangeWatch, type RangeBatch, type RangeWatchOptions } from './watch.js';

export interface PeerDeps {
  client: StoreClient;
  keys: Keys;
  hostId: string;
  vtep: string;
  lease(): string;
  owned: Owned;
  reservations: Reservations;
  logger: Logger;
}

/** Transactions a join makes at most: the second and third only when an address was this owner's already (a replay), or another host's spare asked for. */
const JOIN_ROUNDS = 3;

/** A peer as the watch holds it: with the lease its key sits on ('0': none). */
interface Held {
  peer: Peer;
  lease: string;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** Validates a peer before it is published. */
export function checkPeer(network: string, spec: PeerSpec, host: string, defaultVtep: string): Peer {
  const ip = typeof spec.ip === 'string' ? spec.ip.split('/')[0]! : '';
  if (!net.isIPv4(ip)) throw new InvalidArgumentError('ip', `${JSON.stringify(spec.ip)} is not an IPv4 address`);
  const ipv6 = spec.ipv6?.split('/')[0];
  if (ipv6 !== undefined && !net.isIPv6(ipv6)) throw new InvalidArgumentError('ipv6', `${JSON.stringify(spec.ipv6)} is not an IPv6 address`);
  const mac = typeof spec.mac === 'string' ? spec.mac.toLowerCase() : '';
  if (!MAC.test(mac)) throw new InvalidArgumentError('mac', `${JSON.stringify(spec.mac)} is not a MAC address (xx:xx:xx:xx:xx:xx)`);
  const vtep = spec.vtep ?? defaultVtep;
  if (!net.isIPv4(vtep)) throw new InvalidArgumentError('vtep', `${JSON.stringify(vtep)} is not an IPv4 address`);
  if (typeof spec.endpointId !== 'string' || spec.endpointId === '') throw new InvalidArgumentError('endpointId', 'is required');
  return { network, host, endpointId: spec.endpointId, ip, ...(ipv6 !== undefined ? { ipv6 } : {}), mac, vtep };
}

export class Peers {
  constructor(private readonly d: PeerDeps) {}

  async publish(network: string, spec: PeerSpec): Promise<Peer> {
    const peer = checkPeer(network, spec, this.d.hostId, this.d.vtep);
    const key = this.d.keys.peer(network, this.d.hostId, peer.endpointId);
    const mac = this.macClaim(peer, spec);
    for (let i = 0; i < JOIN_ROUNDS; i++) {
      const lease = this.d.lease();
      const m = mac.ops(lease);
      const res = await this.d.client.txn(`publish peer ${peer.endpointId}`, m.compare, [{ put: key, value: peer, lease }, ...m.then], m.otherwise);
      if (res.succeeded) {
        mac.claimed();
        this.d.owned.set(key, { kind: 'peer', value: peer });
        return peer;
      }
      await mac.failed(res);
    }
    throw new ConflictError(`endpoint ${shortId(peer.endpointId)}: the claim of its mac address ${peer.mac} kept changing while being published`, { field: 'mac' });
  }

  private macClaim(peer: Peer, spec: PeerSpec): MacClaim {
    return new MacClaim({ ...this.d, describeHost: (id) => describeHost(this.d.client, this.d.keys, id) }, peer, spec.macGiven === true);
  }

  /** Claims the endpoint's reserved addresses and publishes its peer in one transaction (see reserve.ts). */
  async join(network: string, spec: PeerSpec, claims: Claim[]): Promise<Peer> {
    const peer = checkPeer(network, spec, this.d.hostId, this.d.vtep);
    const key = this.d.keys.peer(network, this.d.hostId, peer.endpointId);
    const mac = this.macClaim(peer, spec);
    for (let i = 0; i < JOIN_ROUNDS; i++) {
      const lease = this.d.lease();
      const parts = this.d.reservations.ops(claims, lease);
      const m = mac.ops(lease);
      mark('join txn sending');
      const res = await this.d.client.txn(`join endpoint ${peer.endpointId}`, [...parts.compare, ...m.compare], [...parts.then, { put: key, value: peer, lease }, ...m.then], [...parts.otherwise, ...m.otherwise]);
      mark('join txn answered');
      // The MAC's claim failed it but is this endpoint's own: the next round guards it (the addresses' reads are settled then).
      if (!res.succeeded && (await mac.failed(res))) continue;
      if (await this.d.reservations.settle(claims, res)) {
        mac.claimed();
        this.d.owned.set(key, { kind: 'peer', value: peer });
        return peer;
      }
      await this.d.reservations.askHolders(claims);
    }
    throw new ConflictError(`endpoint ${shortId(peer.endpointId)}: its addresses kept changing while being claimed`, { field: 'ip' });
  }

  /** Deletes the peer, with its MAC's claim when that is this endpoint's (the peer read first when this run did not publish it). */
  async remove(network: string, endpointId: string): Promise<void> {
    const key = this.d.keys.peer(network, this.d.hostId, endpointId);
    const known = this.d.owned.get(key);
    const { kv } = known ? { kv: undefined } : await this.d.client.get(key);
    const peer = known?.kind === 'peer' ? known.value : kv ? this.decode(network, this.d.keys.peers(network), key, kv.value) : undefined;
    const ops = removalOps(this.d.keys, key, peer);
    await this.d.client.txn(`remove peer ${endpointId}`, ops.compare, ops.then, ops.otherwise);
    this.d.owned.delete(key);
    const claim = peer ? this.d.owned.get(this.d.keys.mac(network, peer.mac)) : undefined;
    if (peer && claim?.kind === 'mac' && claim.value.endpointId === endpointId) this.d.owned.delete(this.d.keys.mac(network, peer.mac));
  }

  async list(network: string): Promise<Peer[]> {
    const prefix = this.d.keys.peers(network);
    return (await this.d.client.range(prefix)).kvs.flatMap((kv) => {
      const peer = this.decode(network, prefix, kv.key, kv.value);
      return peer ? [peer] : [];
    });
  }

  /**
   * Watches the network's peers (list, then events from the list's revision on), each batch to
   * handler; take() hands the watch to another handler (of a watch started ahead), which gets every
   * peer known so far as its first batch. A removed peer of another host whose lease etcd no
   * longer has (asked once per lease, before the batch is handed on) is marked leaseEnded: it went
   * with its host's lease (expired or revoked), not by a delete of its host.
   */
  watch(network: string, handler: PeerHandler, afterList?: RangeWatchOptions<Held>['afterList']): PeerWatch & { take(handler: PeerHandler): void } {
    const prefix = this.d.keys.peers(network);
    const id = (p: Peer) => `${p.host}/${p.endpointId}`;
    const deliverTo = (to: PeerHandler) => async (batch: RangeBatch<Held>) => {
      const ended = await this.endedLeases(batch.changes);
      // Every peer, keyed by host/endpoint, made only when the handler reads it (a batch of one change must not cost O(peers)).
      let peers: Map<string, Peer> | undefined;
      return to({
        network, resync: batch.resync, revision: batch.revision,
        changes: batch.changes.map((c): PeerChange => {
          if (c.kind === 'updated') return { kind: c.kind, peer: c.value.peer, previous: c.previous.peer };
          if (c.kind === 'removed' && ended.has(c.value.lease)) return { kind: c.kind, peer: c.value.peer, leaseEnded: true };
          return { kind: c.kind, peer: c.value.peer };
        }),
        get peers() {
          peers ??= new Map([...batch.current.values()].map((h) => [id(h.peer), h.peer]));
          return peers;
        },
      });
    };
    const range = new RangeWatch<Held>({
      client: this.d.client, prefix, logger: this.d.logger, equal: (a, b) => sameJson(a.peer, b.peer), ...(afterList ? { afterList } : {}),
      decode: (key, value, lease) => {
        const peer = this.decode(network, prefix, key, value);
        return peer ? { peer, lease } : undefined;
      },
      deliver: deliverTo(handler),
    });
    return { stats: () => range.stats(), close: () => range.close(), take: (to) => range.replay(deliverTo(to)) };
  }

  /**
   * The leases of other hosts' removed peers that etcd no longer has (one lookup per lease, side
   * by side). A lookup that fails counts as ended: the grace of the peer's entries then decides.
   */
  private async endedLeases(changes: Change<Held>[]): Promise<Set<string>> {
    const leases = new Set<string>();
    for (const c of changes) if (c.kind === 'removed' && c.value.peer.host !== this.d.hostId && c.value.lease !== '0') leases.add(c.value.lease);
    const ended = new Set<string>();
    await Promise.all([...leases].map(async (lease) => {
      try {
        if ((await this.d.client.leaseTtl(lease)).ttl <= 0) ended.add(lease);
      } catch (err) {
        this.d.logger.debug({ lease, err: (err as Error).message }, 'watch: a removed peer\'s lease not looked up; taken as ended');
        ended.add(lease);
      }
    }));
    return ended;
  }

  /** A stored peer, or undefined (logged) when its key and value disagree or it does not parse. */
  private decode(network: string, prefix: string, key: string, value: Buffer): Peer | undefined {
    const [host, endpointId, ...rest] = this.d.keys.split(prefix, key) ?? [];
    let peer: Peer | undefined;
    try {
      peer = JSON.parse(value.toString()) as Peer;
    } catch {
      peer = undefined;
    }
    if (peer && rest.length === 0 && peer.host === host && peer.endpointId === endpointId && peer.network === network) return peer;
    this.d.logger.warn({ key }, 'ignored a peer record that does not parse or does not match its key');
    return undefined;
  }
}
