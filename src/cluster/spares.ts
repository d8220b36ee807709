// Spare addresses a host holds in the global pools it serves endpoints on (Calico's host-affine
// blocks, with our per-address keys): claimed ahead in ONE create-if-absent transaction per refill,
// under the host's lease, valued {kind: 'spare'}; a connect without --ip takes one with no round
// trip. The stock adapts to the connect rate and the pool's free addresses (stock.ts); it is
// refilled in the background when half gone, trimmed when the host has been idle (to none in a
// tight pool, so that other hosts can fill the pool to its last address), and deleted when the
// host leaves the network or stops cleanly. A pool of a network that just appeared in the cluster
// is stocked ahead (holdAhead(): a first connect here then answers with no round trip, as on the
// host that made the network), and given back when no connect came within the window. A lost
// lease took the keys along: the stock is forgotten. Another host that asks for one of these
// addresses (--ip, wanted.ts) gets it when it is in the ready stock (the stock watches the
// requests while it holds any pool); one handed to a connect is kept.
// Limits: the share is checked against this host's view of the pool at a refill, and against a
// count of the pool's keys (one read per idle stock and idleMs) while idle.
import type { Logger } from 'pino';
import { formatAddress, parseAddressOrCidr } from '../ip/index.js';
import { parseJson, type Compare, type Op, type StoreClient } from './client.js';
import { canonicalPool, randomIn, type AddressView, type EtcdIpam } from './ipam.js';
import type { Keys } from './keys.js';
import { addressValue, type AddressValue } from './owned.js';
import { askForSpare, watchWanted, type AskOutcome, type Wanted } from './wanted.js';
import { idleLimit, MIN_STOCK, wantedStock } from './stock.js';
import type { RangeWatch } from './watch.js';

export interface SpareDeps {
  client: StoreClient;
  keys: Keys;
  hostId: string;
  ipam: EtcdIpam;
  lease(): string;
  logger: Logger;
  /** A stock with no take for this long is trimmed to idleLimit() (default IDLE_MS). */
  idleMs?: number;
}

/** A spare handed out: its address, the revision its key was written at, and the lease generation it belongs to. */
export interface Spare {
  ip: string;
  heldAt: number;
  gen: number;
}

/** Refill rounds when other hosts keep taking the addresses chosen. */
const ROUNDS = 3;
/** Connects per second are counted over this window. */
const RATE_MS = 1000;
/** A stock with no take for this long is idle: checked against the pool's free addresses, every IDLE_MS. */
const IDLE_MS = 1000;

interface Stock {
  ready: Map<string, number>;
  takes: number[];
  busy?: Promise<void>;
  /** Held ahead (holdAhead) and not yet by a connect (hold()): when its window ends, the stock is dropped. */
  ahead?: NodeJS.Timeout;
}

export class Spares {
  private readonly stocks = new Map<string, Stock>();
  /** Spare keys written by this process (a start-up sweep deletes the others of this host). */
  private readonly made = new Set<string>();
  /** Spares of pools dropped while etcd did not answer: deleted at the next drop of the pool. */
  private readonly leftovers = new Map<string, [string, number][]>();
  /** Spares handed to connects whose publish has not settled (`pool ip`): in use, never claimed twice. */
  private readonly out = new Set<string>();
  /** Addresses an endpoint of this host claimed while a refill was choosing them: not stocked when it lands. */
  private readonly claimedAway = new Set<string>();
  /** Bumped when the lease was lost: spares of an older generation no longer exist. */
  private gen = 0;
  /** Checks idle stocks every idleMs while any pool is held. */
  private ticker: NodeJS.Timeout | undefined;
  /** Other hosts' requests for addresses (wanted.ts), watched from the first pool held on. */
  private wanted: RangeWatch<Wanted> | undefined;

  constructor(private readonly d: SpareDeps) {}

  /** The pools a host now serves endpoints on: stocked in the background (a stock held ahead is kept). */
  hold(poolId: string): void {
    const id = canonicalPool(poolId);
    const s = this.stocks.get(id);
    if (!s) this.stocks.set(id, { ready: new Map(), takes: [] });
    clearTimeout(s?.ahead);
    if (s) s.ahead = undefined;
    this.refill(id);
    this.watchOthers();
  }

  /**
   * The pool of a network that just appeared in the cluster, before any connect here: stocked as
   * an idle host's (4 spares, none in a tight pool), so that a first connect soon after takes its
   * address with no round trip, and neither it nor the hold() that follows it claims more then.
   * Dropped (its keys deleted, and the pool's view) after ms unless hold() came meanwhile; nothing
   * when the pool is stocked already, by a connect.
   */
  holdAhead(poolId: string, ms: number): void {
    const id = canonicalPool(poolId);
    const old = this.stocks.get(id);
    if (old && !old.ahead) return;
    if (old) {
      // Held ahead still when its network appears again: it was removed (its pool's keys, these spares too) and made again.
      void this.drop(id).catch(() => undefined).then(() => this.holdAhead(poolId, ms));
      return;
    }
    const s: Stock = { ready: new Map(), takes: [] };
    s.ahead = setTimeout(() => {
      if (this.stocks.get(id) !== s || !s.ahead) return;
      // The view its refill read goes too, as one read ahead and not used (EtcdIpam.warm).
      this.d.ipam.dropView(id);
      this.drop(id).catch((err: Error) => this.d.logger.debug({ pool: id, err: err.message }, 'cluster: spare addresses held ahead not given back now (deleted at the next drop of the pool, a clean stop, or with the lease)'));
    }, ms);
    s.ahead.unref();
    this.stocks.set(id, s);
    this.refill(id);
    this.watchOthers();
  }

  /** Other hosts' requests for addresses, and the idle check, from the first stock on. */
  private watchOthers(): void {
    this.wanted ??= watchWanted(this.d, (pool, ip) => this.yieldTo(pool, ip));
    if (!this.ticker) {
      const ms = this.d.idleMs ?? IDLE_MS;
      this.ticker = setInterval(() => this.trimIdle(ms), ms);
      this.ticker.unref();
    }
  }

  /** A spare of the pool, or undefined (no stock: the caller claims in etcd); refills when low. */
  take(poolId: string): Spare | undefined {
    const id = canonicalPool(poolId);
    const s = this.stocks.get(id);
    if (!s) return undefined;
    const now = Date.now();
    s.takes.push(now);
    while (s.takes.length > 0 && s.takes[0]! < now - RATE_MS) s.takes.shift();
    const first = s.ready.entries().next();
    if (!first.done) {
      s.ready.delete(first.value[0]);
      this.out.add(`${id} ${first.value[0]}`);
    }
    // After the connect's own work (its answer goes first): a refill's transaction costs ~1 ms to build.
    setImmediate(() => this.refill(id));
    return first.done ? undefined : { ip: first.value[0], heldAt: first.value[1], gen: this.gen };
  }

  /** A spare taken but not used (its connect failed before its publish): back in stock, unless its lease went. */
  giveBack(poolId: string, spare: Spare): void {
    const id = canonicalPool(poolId);
    this.out.delete(`${id} ${spare.ip}`);
    const s = this.stocks.get(id);
    if (s && spare.gen === this.gen) s.ready.set(spare.ip, spare.heldAt);
    else if (spare.gen === this.gen) void this.remove(id, [[spare.ip, spare.heldAt]]).catch(() => undefined);
  }

  /** A spare handed out has settled: its key is the endpoint's now, or was deleted, or it went with the lease. */
  settled(poolId: string, ip: string): void {
    this.out.delete(`${canonicalPool(poolId)} ${ip}`);
  }

  /**
   * An endpoint of this host asks for an address that is one of this host's spares (--ip, a
   * restart's replay): false while a connect holds it (in use); else it leaves the stock (and a
   * refill in flight will not stock it) and the caller rewrites its key.
   */
  claimOwn(poolId: string, ip: string): boolean {
    const id = canonicalPool(poolId);
    if (this.out.has(`${id} ${ip}`)) return false;
    this.stocks.get(id)?.ready.delete(ip);
    if (this.d.ipam.pendingOf(id).has(parseAddressOrCidr('ip', ip).value)) this.claimedAway.add(`${id} ${ip}`);
    return true;
  }

  /**
   * Another host asks for this address (wanted.ts): given up when it is in the ready stock (its
   * key deleted if still as the stock wrote it, and the address left taken in this host's view:
   * the asker claims it); one handed to a connect (its publish makes it the endpoint's), or not
   * held here, is kept. True when given up.
   */
  yieldTo(poolId: string, ip: string): boolean {
    const id = canonicalPool(poolId);
    const s = this.stocks.get(id);
    const at = s?.ready.get(ip);
    if (!s || at === undefined) return false;
    s.ready.delete(ip);
    this.d.logger.debug({ pool: id, ip }, 'cluster: spare address given up to another host that asked for it');
    void this.remove(id, [[ip, at]], false).catch((err: Error) => {
      this.leftovers.set(id, [...(this.leftovers.get(id) ?? []), [ip, at]]);
      this.d.logger.debug({ pool: id, ip, err: err.message }, 'cluster: spare address asked for not deleted now');
    });
    return true;
  }

  /** Asks the host that holds `ip` of the pool as a spare (its key written at heldAt) to give it up: see wanted.ts. */
  ask(poolId: string, ip: string, heldAt: number): Promise<AskOutcome> {
    return askForSpare(this.d, canonicalPool(poolId), ip, heldAt);
  }

  /** Spares handed out and not used (their endpoint went before its publish): deleted, each only if still as the stock wrote it. */
  async discard(spares: { poolId: string; ip: string; heldAt: number }[]): Promise<void> {
    const byPool = new Map<string, [string, number][]>();
    for (const s of spares) {
      const id = canonicalPool(s.poolId);
      byPool.set(id, [...(byPool.get(id) ?? []), [s.ip, s.heldAt]]);
    }
    await Promise.all([...byPool].map(([id, list]) => this.remove(id, list)));
  }

  /** The host no longer serves the pool: its spares are deleted (throws when etcd does not answer: call again). */
  async drop(poolId: string): Promise<void> {
    const id = canonicalPool(poolId);
    const s = this.stocks.get(id);
    this.stocks.delete(id);
    clearTimeout(s?.ahead);
    await s?.busy;
    const spares = [...(s?.ready ?? []), ...(this.leftovers.get(id) ?? [])];
    this.leftovers.delete(id);
    try {
      await this.remove(id, spares);
    } catch (err) {
      this.leftovers.set(id, spares);
      throw err;
    }
  }

  /** Every stock deleted (a clean stop). */
  async dropAll(): Promise<void> {
    clearInterval(this.ticker);
    this.ticker = undefined;
    const wanted = this.wanted;
    this.wanted = undefined;
    await Promise.all([wanted?.close(), ...[...new Set([...this.stocks.keys(), ...this.leftovers.keys()])].map((id) => this.drop(id))]);
  }

  /** The lease was lost: etcd deleted the spare keys with it. */
  lost(): void {
    this.gen++;
    for (const s of this.stocks.values()) s.ready.clear();
    this.leftovers.clear();
    this.made.clear();
  }

  /** Deletes this host's spare keys that this process did not write (left by a run that ended without its clean stop). */
  async sweep(): Promise<number> {
    const { kvs } = await this.d.client.range(`${this.d.keys.root}ipam/addresses/`);
    const mine = kvs.filter((kv) => {
      const v = parseJson<AddressValue>(kv);
      return v.kind === 'spare' && v.host === this.d.hostId && !this.made.has(kv.key);
    });
    for (const kv of mine) await this.d.client.txn('delete a leftover spare address', [{ key: kv.key, target: 'mod', op: '=', value: kv.modRevision }], [{ del: kv.key }]);
    return mine.length;
  }

  /** sweep(), logged: false when it failed (to be tried again). */
  async sweepLogged(): Promise<boolean> {
    try {
      const n = await this.sweep();
      if (n > 0) this.d.logger.info({ deleted: n }, 'cluster: deleted spare addresses a previous run of this host left');
      return true;
    } catch (err) {
      this.d.logger.debug({ err: (err as Error).message }, 'cluster: leftover spare addresses not swept now');
      return false;
    }
  }

  /** Stocks not taken from for ms: each trimmed to idleLimit() of the pool's free addresses, counted in etcd now. */
  private trimIdle(ms: number): void {
    const since = Date.now() - ms;
    for (const [id, s] of this.stocks) {
      if (s.busy || s.ready.size === 0 || (s.takes.at(-1) ?? 0) > since) continue;
      s.busy = this.trim(id, s)
        .catch((err: Error) => this.d.logger.debug({ pool: id, err: err.message }, 'cluster: idle spare addresses not checked now'))
        .finally(() => (s.busy = undefined));
    }
  }

  private async trim(id: string, s: Stock): Promise<void> {
    const view = await this.d.ipam.poolView(id);
    const free = this.free(id, view, await this.d.client.count(this.d.keys.addresses(id)));
    const keep = idleLimit(free);
    if (s.ready.size <= keep || this.stocks.get(id) !== s) return;
    this.d.logger.debug({ pool: id, free, given: s.ready.size - keep }, 'cluster: idle spare addresses given back');
    await this.shrink(id, s, keep);
  }

  /** The pool's free addresses: its span less the keys it holds (taken) and this host's claims in flight. */
  private free(id: string, view: AddressView, taken: number): number {
    return Number(view.last - view.first + 1n) - taken - this.d.ipam.pendingOf(id).size;
  }

  /** The stock cut to keep spares; those over are deleted, or kept as leftovers when etcd does not take that (deleted with the rest when the host leaves the pool or stops). */
  private async shrink(id: string, s: Stock, keep: number): Promise<void> {
    const extra = [...s.ready].slice(keep);
    for (const [ip] of extra) s.ready.delete(ip);
    await this.remove(id, extra).catch((err: unknown) => {
      this.leftovers.set(id, [...(this.leftovers.get(id) ?? []), ...extra]);
      throw err;
    });
  }

  private refill(id: string): void {
    const s = this.stocks.get(id);
    if (!s || s.busy) return;
    s.busy = this.fill(id, s)
      .catch((err: Error) => this.d.logger.debug({ pool: id, err: err.message }, 'cluster: spare addresses not refilled now'))
      .finally(() => (s.busy = undefined));
  }

  private async fill(id: string, s: Stock): Promise<void> {
    for (let round = 0; round < ROUNDS && this.stocks.get(id) === s; round++) {
      const gen = this.gen;
      const view = await this.d.ipam.poolView(id);
      const want = wantedStock(s.takes.length, this.free(id, view, view.taken.size));
      if (s.ready.size > want) return this.shrink(id, s, want);
      if (s.ready.size > want / 2) return;
      // In a tight pool every host's view shows the same few free addresses: each starts from a random one, so they rarely choose alike.
      if (want < MIN_STOCK) view.next = randomIn(view);
      const chosen = this.choose(id, view, want - s.ready.size);
      if (chosen.length === 0) return;
      const done = await this.claim(id, view, chosen).finally(() => {
        for (const a of chosen) this.d.ipam.pendingOf(id).delete(a.value);
      });
      if (typeof done !== 'number') for (const a of chosen) this.claimedAway.delete(`${id} ${a.ip}`);
      if (done === 'gone') return;
      if (typeof done === 'number') {
        const kept = chosen.filter((a) => !this.claimedAway.delete(`${id} ${a.ip}`));
        if (this.stocks.get(id) !== s || gen !== this.gen) return void (await this.remove(id, kept.map((a) => [a.ip, done])));
        for (const a of kept) s.ready.set(a.ip, done);
        return;
      }
    }
  }

  /** Up to n addresses the view shows free, from its next one on; marked pending while claimed. */
  private choose(id: string, view: AddressView, n: number): { ip: string; value: bigint }[] {
    const pending = this.d.ipam.pendingOf(id);
    const out: { ip: string; value: bigint }[] = [];
    const size = view.last - view.first + 1n;
    for (let k = 0n, a = view.next; k < size && out.length < n; k++, a = a >= view.last ? view.first : a + 1n) {
      const ip = formatAddress(view.subnet.family, a);
      if (pending.has(a) || view.taken.has(ip)) continue;
      pending.add(a);
      out.push({ ip, value: a });
      view.next = a >= view.last ? view.first : a + 1n;
    }
    return out;
  }

  /**
   * One transaction claiming them all: the revision it wrote at; 'gone' (pool deleted); 'again'
   * (raced: the view learns which of the chosen keys exist, read with the failure). Only those keys
   * are read, not the pool's every key: in a nearly full pool other hosts' spares keep refills
   * failing, and each read of ~1000 keys cost 8–40 ms of etcd's and this daemon's CPU, taken from
   * the connects.
   */
  private async claim(id: string, view: AddressView, chosen: { ip: string }[]): Promise<number | 'gone' | 'again'> {
    const k = this.d.keys;
    const lease = this.d.lease();
    const value = addressValue('spare', `spare:${this.d.hostId}`, this.d.hostId);
    const compare: Compare[] = [{ key: k.pool(id), target: 'mod', op: '=', value: view.poolRevision }];
    const then: Op[] = [];
    for (const a of chosen) {
      compare.push({ key: k.address(id, a.ip), target: 'version', op: '=', value: 0 });
      then.push({ put: k.address(id, a.ip), value, lease });
    }
    const otherwise: Op[] = [{ get: k.pool(id), keysOnly: true }, ...chosen.map((a): Op => ({ get: k.address(id, a.ip), keysOnly: true }))];
    const res = await this.d.client.txn('claim spare addresses', compare, then, otherwise);
    if (res.succeeded) {
      for (const a of chosen) {
        view.taken.add(a.ip);
        this.made.add(k.address(id, a.ip));
      }
      return res.revision;
    }
    const [pool = [], ...held] = res.reads;
    if (pool[0] === undefined) {
      this.stocks.delete(id);
      this.d.ipam.dropView(id);
      return 'gone';
    }
    if (pool[0].modRevision !== view.poolRevision) this.d.ipam.dropView(id);
    chosen.forEach((a, i) => {
      if (held[i]?.[0] !== undefined) view.taken.add(a.ip);
    });
    view.next = randomIn(view);
    return 'again';
  }

  /** Deletes spare keys (each only if still as written), and frees them in the view (unless told not to). */
  private async remove(id: string, spares: [string, number][], free = true): Promise<void> {
    const k = this.d.keys;
    for (let i = 0; i < spares.length; i += 100) {
      const part = spares.slice(i, i + 100);
      // One transaction per key: a key changed since (taken by a publish) must not fail the others.
      await Promise.all(part.map(([ip, at]) => this.d.client.txn('delete a spare address', [{ key: k.address(id, ip), target: 'mod', op: '=', value: at }], [{ del: k.address(id, ip) }])));
      for (const [ip] of part) {
        if (free) this.d.ipam.heldView(id)?.taken.delete(ip);
        this.made.delete(k.address(id, ip));
      }
    }
  }
}
