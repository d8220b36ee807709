// Global IPAM in etcd: pools of global networks and the addresses in them, each claimed by a
// create-if-absent transaction, so two hosts never get the same one however they race. A new
// pool's transaction also checks that no pool appeared since the read (a range compare on every
// pool key), so concurrent pools cannot overlap. The next free address comes from this host's view
// of the pool (read once, O(addresses), and again when other hosts keep taking the addresses it
// tries), searched on from its last claim, or from a random point once another host claimed the
// one it tried: one round trip per address when nothing races. The addresses of other hosts'
// endpoints are learnt from the peer watches too (learnTaken); a new pool is read ahead (warm()).
// A given address that another host holds as a spare is asked of that host (wanted.ts).
// Limits: an address freed by another host is seen only when the view is read again.
import { randomBytes } from 'node:crypto';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../errors.js';
import { formatAddress, parseAddressOrCidr, parsePrefix, type Prefix } from '../ip/index.js';
import type { ParsedDefaultPool } from '../ipam/defaults.js';
import { contentionPause, parseJson, type Compare, type KeyValue, type Op, type StoreClient } from './client.js';
import { describer, type HostRecord } from './hosts.js';
import { decodeCidr, type Keys } from './keys.js';
import { addressValue, holderOf, type AddressValue, type Owned } from './owned.js';
import { addressIn, chooseSubnet, hostSpan, occupied, subnetLayout } from './pools.js';
import type { AddressRequest, GlobalAddress, GlobalIpam, GlobalPool, PoolRequest } from './types.js';
import { keptError, othersSpare, type SpareHooks } from './wanted.js';

export interface PoolRecord extends GlobalPool {
  gateway?: string;
  host: string;
  created: string;
}

export interface IpamDeps {
  client: StoreClient;
  keys: Keys;
  hostId: string;
  /** This host's current lease; throws ClusterUnavailableError while it has none. */
  lease(): string;
  owned: Owned;
  defaults: ParsedDefaultPool[];
}

/** What a new pool must not overlap, read at one revision. */
export interface PoolView {
  revision: number;
  pools: PoolRecord[];
  hosts: HostRecord[];
}

export interface PoolPlan {
  record: PoolRecord;
  ops: Op[];
}

const ATTEMPTS = 24;
/** A view read ahead (warm(): its network just appeared) and not used within this long is dropped. */
const WARM_KEEP_MS = 2000;
/** Addresses found taken by other hosts in one request before the pool's view is read again. */
const MISSES = 3;

/** A pool as this host last read it: its span, the addresses taken then (and since, seen here), the next to try. */
export interface AddressView {
  poolRevision: number;
  subnet: Prefix;
  ipRange?: string;
  first: bigint;
  last: bigint;
  taken: Set<string>;
  next: bigint;
}

/** The pool was made again (another span, perhaps) since this host read it. */
class PoolChangedError extends Error {}

export class EtcdIpam implements GlobalIpam {
  private readonly pending = new Map<string, Set<bigint>>();
  /** Per pool: what this host last read of it, and where its next claim starts. */
  private readonly views = new Map<string, AddressView>();
  /** Views read ahead (warm()) and not used yet: their read, by pool. */
  private readonly warming = new Map<string, Promise<AddressView>>();
  /** This host's stock of spares (spares.ts), set by the cluster; none by default. */
  spares: SpareHooks = { claimOwn: () => false, ask: async () => 'kept' };

  constructor(private readonly d: IpamDeps) {}

  /** This host's view of a pool (canonical id): as last read and kept since, or read now (fresh: always read). */
  async poolView(id: string, fresh = false): Promise<AddressView> {
    const ahead = this.warming.get(id);
    if (this.warming.delete(id) && !fresh) await ahead!.catch(() => undefined);
    return (fresh ? undefined : this.views.get(id)) ?? this.readPoolView(id);
  }

  /** Reads ahead the view of a pool this host has none of yet; its claims start at a random address (other hosts claim from the start meanwhile, unseen here). */
  async warm(poolId: string): Promise<void> {
    const id = canonicalPool(poolId);
    if (this.views.has(id) || this.warming.has(id)) return;
    const read = this.readPoolView(id).then((view) => Object.assign(view, { next: randomIn(view) }));
    this.warming.set(id, read);
    const drop = (view?: AddressView) => this.warming.delete(id) && view !== undefined && this.views.get(id) === view && this.views.delete(id);
    setTimeout(() => this.warming.get(id) === read && void read.then(drop, () => drop()), WARM_KEEP_MS).unref();
    await read;
  }

  /** The view as held now, without reading. */
  heldView(id: string): AddressView | undefined {
    return this.views.get(id);
  }

  dropView(id: string): void {
    this.views.delete(id);
  }

  /** An address another host's endpoint holds (its peer record, from a watch): taken in the view of the pool that spans it. */
  learnTaken(ip: string): void {
    let a;
    try {
      a = parseAddressOrCidr('ip', ip);
    } catch {
      return;
    }
    for (const view of this.views.values()) {
      if (view.subnet.family === a.family && a.value >= view.first && a.value <= view.last) view.taken.add(formatAddress(a.family, a.value));
    }
  }

  /** Addresses of the pool that a request or a reservation of this host is claiming: no other picks them. */
  pendingOf(id: string): Set<bigint> {
    const pending = this.pending.get(id) ?? new Set<bigint>();
    this.pending.set(id, pending);
    return pending;
  }

  /** Pools and host records at one revision (one round trip). */
  async readView(extra: Op[] = []): Promise<PoolView & { extra: KeyValue[][] }> {
    const res = await this.d.client.txn('read pools', [], [{ get: this.d.keys.pools(), prefix: true }, { get: this.d.keys.hosts(), prefix: true }, ...extra]);
    const [pools = [], hosts = [], ...rest] = res.reads;
    return { revision: res.revision, pools: pools.map((kv) => parseJson<PoolRecord>(kv)), hosts: hosts.map((kv) => parseJson<HostRecord>(kv)), extra: rest };
  }

  /** The compare that fails a transaction if any pool was created or changed after the view. */
  poolGuard(view: PoolView): Compare {
    return { key: this.d.keys.pools(), prefix: true, target: 'mod', op: '<', value: view.revision + 1 };
  }

  /** A new pool and its gateway as transaction ops; `also` holds pools planned for the same transaction. */
  planPool(view: PoolView, req: PoolRequest & { gateway?: string }, also: PoolRecord[] = []): PoolPlan {
    const taken = occupied([...view.pools, ...also], view.hosts);
    const prefix = chooseSubnet({ ...(req.subnet !== undefined ? { subnet: req.subnet } : {}), v6: req.v6 ?? false }, taken, this.d.defaults);
    const { range, gateway } = subnetLayout(prefix, req.ipRange, req.gateway);
    const record: PoolRecord = {
      poolId: prefix.text, subnet: prefix.text, ...(req.ipRange !== undefined ? { ipRange: range.text } : {}), family: prefix.family,
      owner: req.owner, gateway: `${gateway}/${prefix.bits}`, host: this.d.hostId, created: new Date().toISOString(),
    };
    const gatewayValue = addressValue('gateway', req.owner, this.d.hostId);
    return {
      record,
      ops: [{ put: this.d.keys.pool(record.poolId), value: record }, { put: this.d.keys.address(record.poolId, gateway), value: gatewayValue }],
    };
  }

  async requestPool(req: PoolRequest): Promise<GlobalPool> {
    checkOwner(req.owner);
    for (let i = 0; i < ATTEMPTS; i++) {
      const view = await this.readView();
      const wanted = req.subnet === undefined ? undefined : parsePrefix('subnet', req.subnet).text;
      const mine = view.pools.find((p) => p.owner === req.owner && (wanted === undefined ? p.family === (req.v6 ? 6 : 4) : p.subnet === wanted));
      if (mine) return publicPool(mine);
      const plan = this.planPool(view, req);
      const res = await this.d.client.txn('allocate a pool', [this.poolGuard(view)], plan.ops);
      if (res.succeeded) return publicPool(plan.record);
      await contentionPause(i);
    }
    throw new ConflictError(`pool for ${req.owner}: gave up after ${ATTEMPTS} attempts (other hosts kept creating pools)`, { field: 'subnet' });
  }

  async releasePool(poolId: string, owner: string): Promise<void> {
    const id = canonicalPool(poolId);
    const { kv } = await this.d.client.get(this.d.keys.pool(id));
    if (!kv) return;
    const pool = parseJson<PoolRecord>(kv);
    if (pool.owner !== owner) throw new ConflictError(`pool ${id} belongs to global network ${pool.owner}, not ${owner}`, { field: 'pool' });
    await this.d.client.txn('release a pool', [{ key: kv.key, target: 'mod', op: '=', value: kv.modRevision }], [{ del: kv.key }, { del: this.d.keys.addresses(id), prefix: true }]);
    this.views.delete(id);
  }

  async requestAddress(poolId: string, req: AddressRequest): Promise<string> {
    checkOwner(req.owner);
    const id = canonicalPool(poolId);
    if (req.address !== undefined && req.address !== '') return this.claim(id, req, req.address);
    for (let i = 0; i < 2; i++) {
      const view = this.views.get(id) ?? (await this.readPoolView(id));
      const got = await this.claimNextFree(id, view, req);
      if (got !== undefined) return got;
      // Every address looked taken in a view that may be stale (or the pool changed): re-read once.
      this.views.delete(id);
    }
    const pool = await this.readPoolView(id);
    throw await this.fullError(id, pool.ipRange);
  }

  /**
   * The error of a pool with no free address left: it names the spare addresses other hosts hold
   * there (spares.ts), which a host deletes when it leaves the network or stops. One read of the
   * pool's address values; the plain message when that read fails.
   */
  async fullError(id: string, ipRange?: string): Promise<ConflictError> {
    let held = '';
    try {
      const { kvs } = await this.d.client.range(this.d.keys.addresses(id));
      const byHost = new Map<string, number>();
      for (const kv of kvs) {
        const v = parseJson<AddressValue>(kv);
        if (v.kind === 'spare' && v.host !== undefined && v.host !== this.d.hostId) byHost.set(v.host, (byHost.get(v.host) ?? 0) + 1);
      }
      if (byHost.size > 0) held = `; ${(await Promise.all([...byHost].map(async ([h, n]) => `${n} held as spare addresses by ${await describer(this.d.client, this.d.keys)(h)}`))).join(', ')} (deleted when that host leaves the network or stops)`;
    } catch {
      held = '';
    }
    return new ConflictError(`no free address left in pool ${id}${ipRange ? ` (ip-range ${ipRange})` : ''}${held}`, { field: 'ip' });
  }

  /** The pool's record and its taken addresses, read at one revision (one round trip, O(addresses)). */
  private async readPoolView(id: string): Promise<AddressView> {
    const res = await this.d.client.txn('read a pool', [], [{ get: this.d.keys.pool(id) }, { get: this.d.keys.addresses(id), prefix: true, keysOnly: true }]);
    const [poolKv] = res.reads[0] ?? [];
    if (!poolKv) {
      this.views.delete(id);
      throw new NotFoundError('pool', id);
    }
    return this.keepView(id, parseJson<PoolRecord>(poolKv), poolKv.modRevision, this.addressesOf(id, res.reads[1] ?? []));
  }

  /** The addresses of the pool's address keys (read with keysOnly). */
  addressesOf(id: string, kvs: KeyValue[]): string[] {
    const prefix = this.d.keys.addresses(id);
    return kvs.map((kv) => kv.key.slice(prefix.length));
  }

  /**
   * A pool this host has just made (in the transaction of revision `revision`), with its gateway:
   * its view is known without reading it, so the first address in it costs no extra round trip.
   */
  madePool(record: PoolRecord, revision: number): void {
    this.keepView(record.poolId, record, revision, record.gateway ? [record.gateway.split('/')[0]!] : []);
  }

  private keepView(id: string, pool: PoolRecord, revision: number, taken: string[]): AddressView {
    const subnet = parsePrefix('pool', pool.subnet);
    const { first, last } = hostSpan(subnet, pool.ipRange ? parsePrefix('ip-range', pool.ipRange) : subnet);
    const view: AddressView = { poolRevision: revision, subnet, ...(pool.ipRange ? { ipRange: pool.ipRange } : {}), first, last, taken: new Set(taken), next: first };
    this.views.set(id, view);
    return view;
  }

  /**
   * The next address after the last one claimed here that the view does not show taken, claimed
   * by create-if-absent; one round trip when nothing raced. An address found taken by another host
   * joins the view and the search goes on from a random point (hosts then claim apart, instead of
   * all trailing one another); at MISSES of them the view is read again. undefined: none free in view.
   */
  private async claimNextFree(id: string, view: AddressView, req: AddressRequest): Promise<string | undefined> {
    const pending = this.pendingOf(id);
    const size = view.last - view.first + 1n;
    let misses = 0;
    for (let n = 0n, a = view.next; n < size; n++, a = a >= view.last ? view.first : a + 1n) {
      const text = formatAddress(view.subnet.family, a);
      if (view.taken.has(text) || pending.has(a)) continue;
      pending.add(a);
      try {
        const got = await this.tryClaim(id, view.subnet, text, req, view.poolRevision);
        if (got !== undefined) {
          view.taken.add(text);
          view.next = a >= view.last ? view.first : a + 1n;
          return got;
        }
      } catch (err) {
        if (err instanceof PoolChangedError) return undefined;
        throw err;
      } finally {
        pending.delete(a);
      }
      view.taken.add(text);
      if (++misses < MISSES) {
        // Another host claims here too: go on from a random point, so hosts claim apart from then on.
        a = randomIn(view) - 1n;
        n = -1n;
        continue;
      }
      const fresh = await this.readPoolView(id);
      if (fresh.poolRevision !== view.poolRevision) return undefined;
      fresh.next = randomIn(fresh);
      return this.claimNextFree(id, fresh, req);
    }
    return undefined;
  }

  /** Create-if-absent of one address; undefined when another request holds it already. */
  private async tryClaim(poolId: string, subnet: Prefix, ip: string, req: AddressRequest, poolRevision?: number): Promise<string | undefined> {
    const key = this.d.keys.address(poolId, ip);
    const value = addressValue(req.kind, req.owner, this.d.hostId);
    const lease = req.kind === 'endpoint' ? this.d.lease() : undefined;
    const res = await this.d.client.txn(
      'allocate an address',
      [
        poolRevision === undefined ? { key: this.d.keys.pool(poolId), target: 'version', op: '>', value: 0 } : { key: this.d.keys.pool(poolId), target: 'mod', op: '=', value: poolRevision },
        { key, target: 'version', op: '=', value: 0 },
      ],
      [{ put: key, value, ...(lease ? { lease } : {}) }],
      [{ get: this.d.keys.pool(poolId) }, { get: key }],
    );
    if (res.succeeded) {
      if (lease) this.d.owned.set(key, { kind: 'address', value });
      return `${ip}/${subnet.bits}`;
    }
    const poolKv = res.reads[0]?.[0];
    if (!poolKv) {
      this.views.delete(poolId);
      throw new NotFoundError('pool', poolId);
    }
    if (poolRevision !== undefined && poolKv.modRevision !== poolRevision) throw new PoolChangedError();
    const held = res.reads[1]?.[0];
    if (!held) return this.tryClaim(poolId, subnet, ip, req, poolRevision);
    const other = parseJson<AddressValue>(held);
    if (req.kind === 'endpoint' && other.kind === 'spare' && other.host === this.d.hostId && this.spares.claimOwn(poolId, ip)) {
      // This host's spare (a restart's replay of an endpoint whose publish never landed, or one its stock took meanwhile): the endpoint's now.
      const moved = await this.d.client.txn('claim a spare address', [{ key, target: 'mod', op: '=', value: held.modRevision }], [{ put: key, value, lease: lease! }]);
      if (!moved.succeeded) return this.tryClaim(poolId, subnet, ip, req, poolRevision);
      this.d.owned.set(key, { kind: 'address', value });
      return `${ip}/${subnet.bits}`;
    }
    // Gateway and aux addresses belong to the network (any host may replay them); endpoint ones to a host.
    if (other.owner !== req.owner || other.kind !== req.kind || (req.kind === 'endpoint' && other.host !== this.d.hostId)) return undefined;
    if (lease && held.lease !== lease) {
      // A replay after this host's lease changed: move the address onto the current lease.
      await this.d.client.txn('move an address', [{ key, target: 'mod', op: '=', value: held.modRevision }], [{ put: key, value, lease }]);
      this.d.owned.set(key, { kind: 'address', value });
    }
    return `${ip}/${subnet.bits}`;
  }

  /** A given address: claimed, or already this owner's (a replay), or another host's spare once given up when asked (wanted.ts); else refused naming its holder. */
  private async claim(poolId: string, req: AddressRequest, address: string): Promise<string> {
    const { kv } = await this.d.client.get(this.d.keys.pool(poolId));
    if (!kv) throw new NotFoundError('pool', poolId);
    const subnet = parsePrefix('pool', parseJson<PoolRecord>(kv).subnet);
    const ip = addressIn(subnet, address);
    for (let asked = false; ; asked = true) {
      const got = await this.tryClaim(poolId, subnet, ip, req);
      if (got !== undefined) return got;
      const { kv: held } = await this.d.client.get(this.d.keys.address(poolId, ip));
      const other = held ? parseJson<AddressValue>(held) : undefined;
      if (asked || !held || !othersSpare(other, this.d.hostId) || req.kind !== 'endpoint') {
        throw new ConflictError(`address ${ip} is in use${other ? ` by ${await holderOf(other, describer(this.d.client, this.d.keys))}` : ''}`, { field: 'ip' });
      }
      if ((await this.spares.ask(poolId, ip, held.modRevision)) === 'kept') throw await keptError(ip, other, describer(this.d.client, this.d.keys));
    }
  }

  async releaseAddress(poolId: string, address: string, owner: string): Promise<void> {
    const id = canonicalPool(poolId);
    const ip = addressIn(parsePrefix('pool', id), address);
    const key = this.d.keys.address(id, ip);
    const { kv } = await this.d.client.get(key);
    if (!kv) return;
    const held = parseJson<AddressValue>(kv);
    // A spare of this host (an endpoint's publish that never landed): the stock or the publish queue deletes it, not the endpoint.
    if (held.kind === 'spare' && held.host === this.d.hostId) return;
    if (held.owner !== owner) throw new ConflictError(`address ${ip} is held by ${held.kind} ${held.owner}, not ${owner}`, { field: 'ip' });
    await this.d.client.txn('release an address', [{ key, target: 'mod', op: '=', value: kv.modRevision }], [{ del: key }]);
    this.d.owned.delete(key);
    this.views.get(id)?.taken.delete(ip);
  }

  async listPools(): Promise<GlobalPool[]> {
    return (await this.readView()).pools.map(publicPool);
  }

  async listAddresses(poolId: string): Promise<GlobalAddress[]> {
    const id = canonicalPool(poolId);
    const bits = id.split('/')[1];
    const prefix = this.d.keys.addresses(id);
    const { kvs } = await this.d.client.range(prefix);
    return kvs.map((kv) => ({ address: `${kv.key.slice(prefix.length)}/${bits}`, ...parseJson<AddressValue>(kv) }));
  }
}

/** A random address of the view's span. */
export function randomIn(view: AddressView): bigint {
  return view.first + (BigInt(`0x${randomBytes(8).toString('hex')}`) % (view.last - view.first + 1n));
}

function publicPool(p: PoolRecord): GlobalPool {
  return { poolId: p.poolId, subnet: p.subnet, ...(p.ipRange ? { ipRange: p.ipRange } : {}), family: p.family, owner: p.owner, ...(p.gateway ? { gateway: p.gateway } : {}) };
}

function checkOwner(owner: unknown): void {
  if (typeof owner !== 'string' || owner === '') throw new InvalidArgumentError('owner', 'must be a non-empty string');
}

/** A pool id (a CIDR, or a key segment) in canonical form. */
export function canonicalPool(poolId: string): string {
  return parsePrefix('pool', poolId.includes('/') ? poolId : decodeCidr(poolId)).text;
}

