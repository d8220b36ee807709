// Addresses of this host's new endpoints on global networks, in two steps so that a connect makes
// one etcd transaction: reserve() chooses an address from this host's view of the pool (no round
// trip once the view is read) and holds it here; the transaction that publishes the endpoint's
// peer claims it (ops(): create-if-absent on the host's lease, guarded by the pool's revision) and
// settle() reads its outcome. An address another host claimed in between fails that transaction,
// which then reads the pool's keys: the view learns them all, and AddressRacedError tells the
// caller to choose again; a given address (--ip) is refused naming its holder instead, unless it is
// another host's spare: that host is asked to give it up (askHolders(), wanted.ts), and the next
// round claims it. Without --ip, a spare of this host's stock comes
// first (spares.ts): already claimed, its connect publishes later (publisher.ts) or, mixed with a
// claimed address, rewrites it in the join's transaction. Limits: reservations are memory only.
import { mark } from '../core/trace.js';
import { AddressRacedError, ConflictError, NotFoundError } from '../errors.js';
import { formatAddress, parseAddressOrCidr } from '../ip/index.js';
import { parseJson, type Compare, type KeyValue, type Op, type TxnResult } from './client.js';
import { canonicalPool, randomIn, type AddressView, type EtcdIpam } from './ipam.js';
import { addressIn } from './pools.js';
import type { Keys } from './keys.js';
import { endpointAddress, holderOf, type AddressValue, type Owned } from './owned.js';
import type { Spare, Spares } from './spares.js';
import { keptError, othersSpare } from './wanted.js';

export interface ReserveDeps {
  ipam: EtcdIpam;
  keys: Keys;
  hostId: string;
  owned: Owned;
  spares: Spares;
  /** Names a host in an error, as `cluster hosts` shows it (hosts.ts). */
  describeHost(hostId: string): Promise<string>;
}

/** One address a join claims: its pool, the address and the owner; heldAt when the owner (or this host's stock: spare) holds it already. */
export interface Claim {
  poolId: string;
  ip: string;
  owner: string;
  heldAt?: number;
  spare?: Spare;
  /** A given address found to be another host's spare (its key at revision heldAt): asked for once (askHolders()). */
  wanted?: { heldAt: number; holder: AddressValue; asked?: true };
}

export class Reservations {
  /** Reserved addresses by `pool ip`: whether the caller asked for that one (else it was chosen here). */
  private readonly asked = new Map<string, boolean>();
  /** Reserved spares by `pool ip` (given back to the stock when their endpoint is not made). */
  private readonly spareOf = new Map<string, Spare>();

  constructor(private readonly d: ReserveDeps) {}

  /** "addr/len": the given address (checked to be in the pool), else a spare (unless told not to), else the next free one in this host's view. */
  async reserve(poolId: string, address?: string, spares = true): Promise<string> {
    const id = canonicalPool(poolId);
    let view = await this.d.ipam.poolView(id);
    mark('pool view');
    const pending = this.d.ipam.pendingOf(id);
    if (address !== undefined && address !== '') {
      const ip = addressIn(view.subnet, address);
      pending.add(parseAddressOrCidr('ip', ip).value);
      this.asked.set(`${id} ${ip}`, true);
      return `${ip}/${view.subnet.bits}`;
    }
    const spare = spares ? this.d.spares.take(id) : undefined;
    if (spare) {
      this.asked.set(`${id} ${spare.ip}`, false);
      this.spareOf.set(`${id} ${spare.ip}`, spare);
      return `${spare.ip}/${view.subnet.bits}`;
    }
    for (let i = 0; ; i++) {
      const a = nextFree(view, pending);
      if (a !== undefined) {
        pending.add(a);
        view.next = a >= view.last ? view.first : a + 1n;
        const ip = formatAddress(view.subnet.family, a);
        this.asked.set(`${id} ${ip}`, false);
        return `${ip}/${view.subnet.bits}`;
      }
      if (i > 0) throw await this.d.ipam.fullError(id, view.ipRange);
      // Every address looked taken in a view that may be stale: read it again once.
      view = await this.d.ipam.poolView(id, true);
    }
  }

  /** Drops a reservation (claimed, or its endpoint not made: a spare goes back to the stock); idempotent. */
  forget(poolId: string, address: string): void {
    const id = canonicalPool(poolId);
    const ip = address.split('/')[0]!;
    const spare = this.spareOf.get(`${id} ${ip}`);
    this.spareOf.delete(`${id} ${ip}`);
    if (spare) this.d.spares.giveBack(id, spare);
    this.asked.delete(`${id} ${ip}`);
    this.d.ipam.pendingOf(id).delete(parseAddressOrCidr('ip', ip).value);
  }

  claim(poolId: string, address: string, owner: string): Claim {
    const id = canonicalPool(poolId);
    const ip = address.split('/')[0]!;
    const spare = this.spareOf.get(`${id} ${ip}`);
    return { poolId: id, ip, owner, ...(spare ? { heldAt: spare.heldAt, spare } : {}) };
  }

  /** Spare claims handed to the publish queue: reservations done (the stock no longer has them). */
  published(claims: Claim[]): void {
    for (const c of claims) {
      this.spareOf.delete(`${c.poolId} ${c.ip}`);
      this.forget(c.poolId, c.ip);
    }
  }

  /** The transaction's part for the claims: compares, puts on the lease, and reads for settle() when it fails. */
  ops(claims: Claim[], lease: string): { compare: Compare[]; then: Op[]; otherwise: Op[] } {
    const k = this.d.keys;
    const out = { compare: [] as Compare[], then: [] as Op[], otherwise: [] as Op[] };
    for (const c of claims) {
      const view = this.d.ipam.heldView(c.poolId);
      const key = k.address(c.poolId, c.ip);
      out.compare.push(
        view ? { key: k.pool(c.poolId), target: 'mod', op: '=', value: view.poolRevision } : { key: k.pool(c.poolId), target: 'version', op: '>', value: 0 },
        c.heldAt === undefined ? { key, target: 'version', op: '=', value: 0 } : { key, target: 'mod', op: '=', value: c.heldAt },
      );
      out.then.push({ put: key, value: this.value(c), lease });
      // On a failure the pool's every key comes back too: a chosen address taken meanwhile leaves the view up to date in the same round trip.
      out.otherwise.push({ get: k.pool(c.poolId) }, { get: key }, { get: k.addresses(c.poolId), prefix: true, keysOnly: true });
    }
    return out;
  }

  /**
   * The outcome of a transaction made with ops(): true when it claimed them all (the reservations
   * are done); false when it should be made again (an address turned out to be this owner's
   * already); else throws: the pool is gone (NotFoundError), a given address is held
   * (ConflictError), a chosen one was taken meanwhile (AddressRacedError).
   */
  async settle(claims: Claim[], res: TxnResult): Promise<boolean> {
    if (res.succeeded) {
      for (const c of claims) {
        this.d.ipam.heldView(c.poolId)?.taken.add(c.ip);
        this.spareOf.delete(`${c.poolId} ${c.ip}`);
        if (c.spare) this.d.spares.settled(c.poolId, c.ip);
        this.forget(c.poolId, c.ip);
        this.d.owned.set(this.d.keys.address(c.poolId, c.ip), { kind: 'address', value: this.value(c) });
      }
      return true;
    }
    let again = false;
    for (const [i, c] of claims.entries()) {
      const poolKv = res.reads[3 * i]?.[0];
      const held = res.reads[3 * i + 1]?.[0];
      const view = this.d.ipam.heldView(c.poolId);
      if (!poolKv) {
        this.d.ipam.dropView(c.poolId);
        throw new NotFoundError('pool', c.poolId);
      }
      if (view && poolKv.modRevision !== view.poolRevision) {
        // The pool was made again since this host read it: choose from a fresh view.
        this.d.ipam.dropView(c.poolId);
        throw new AddressRacedError(c.ip);
      }
      if (!held) {
        // Free (again): claimed as a new one next time.
        again ||= c.heldAt !== undefined;
        delete c.heldAt;
        continue;
      }
      const other = parseJson<AddressValue>(held);
      if (other.kind === 'spare' && other.host === this.d.hostId && (c.spare !== undefined || this.d.spares.claimOwn(c.poolId, c.ip))) {
        // This host's spare (taken by this connect and rewritten meanwhile, or asked for by --ip): the next round guards its revision.
        again ||= c.heldAt !== held.modRevision;
        c.heldAt = held.modRevision;
        continue;
      }
      if (othersSpare(other, this.d.hostId) && c.wanted === undefined && (this.asked.get(`${c.poolId} ${c.ip}`) ?? true)) {
        // Another host's spare, given by --ip: that host is asked to give it up before the next round.
        c.wanted = { heldAt: held.modRevision, holder: other };
        again = true;
        continue;
      }
      if (other.owner === c.owner && other.kind === 'endpoint' && other.host === this.d.hostId) {
        again ||= c.heldAt !== held.modRevision;
        c.heldAt = held.modRevision;
        continue;
      }
      await this.raced(c, view, other, res.reads[3 * i + 2] ?? []);
    }
    if (!again) throw new ConflictError(`the addresses of ${claims[0]?.owner ?? 'an endpoint'} failed their claim for no reason etcd shows`, { field: 'ip' });
    return false;
  }

  /**
   * The claims settle() found held as other hosts' spares: each holder is asked to give its spare
   * up (wanted.ts), once; refused naming the holder when it keeps it past wanted.ts's bound (a
   * frozen or cut off host: its lease's expiry frees it). Nothing to do for other claims.
   */
  async askHolders(claims: Claim[]): Promise<void> {
    await Promise.all(claims.map(async (c) => {
      const w = c.wanted;
      if (!w || w.asked) return;
      w.asked = true;
      if ((await this.d.spares.ask(c.poolId, c.ip, w.heldAt)) !== 'kept') return;
      this.d.ipam.heldView(c.poolId)?.taken.add(c.ip);
      this.forget(c.poolId, c.ip);
      throw await keptError(c.ip, w.holder, this.d.describeHost);
    }));
  }

  /** A chosen address another owner holds: the view learns the pool's keys (read with the failure); a given one is refused. */
  private async raced(c: Claim, view: AddressView | undefined, other: AddressValue, keys: KeyValue[]): Promise<never> {
    const asked = this.asked.get(`${c.poolId} ${c.ip}`) ?? true;
    view?.taken.add(c.ip);
    for (const ip of this.d.ipam.addressesOf(c.poolId, keys)) view?.taken.add(ip);
    this.forget(c.poolId, c.ip);
    if (asked) throw new ConflictError(`address ${c.ip} is in use by ${await holderOf(other, this.d.describeHost)}`, { field: 'ip' });
    // Another host claims here too: go on from a random point (hosts then claim apart).
    if (view) view.next = randomIn(view);
    throw new AddressRacedError(c.ip);
  }

  private value(c: Claim): AddressValue {
    return endpointAddress(c.owner, this.d.hostId);
  }
}

/** The next address from view.next that the view does not show taken and nothing here is claiming. */
function nextFree(view: AddressView, pending: Set<bigint>): bigint | undefined {
  const size = view.last - view.first + 1n;
  for (let n = 0n, a = view.next; n < size; n++, a = a >= view.last ? view.first : a + 1n) {
    if (!pending.has(a) && !view.taken.has(formatAddress(view.subnet.family, a))) return a;
  }
  return undefined;
}
