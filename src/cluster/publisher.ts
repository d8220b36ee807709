// The per-host publish queue of connects that took spare addresses: the connect answers at once,
// and its peer record (on the lease) and its addresses' keys rewritten from spare to the endpoint
// land here, concurrent connects coalesced into one transaction. Each spare's key is guarded by
// the revision it was written at; a failed guard (the lease was lost meanwhile, the pool made
// again) sends that endpoint through a slower path that reads the keys first. Retried until it
// lands (etcd away: written when it is back); a restart republishes instead (the driver's restore).
import type { Logger } from 'pino';
import { parseJson, type Compare, type Op, type StoreClient } from './client.js';
import { describer } from './hosts.js';
import type { Keys } from './keys.js';
import { endpointAddress, holderOf, type AddressValue, type Owned } from './owned.js';
import type { Peer } from './types.js';

export interface PublishDeps {
  client: StoreClient;
  keys: Keys;
  hostId: string;
  lease(): string;
  owned: Owned;
  logger: Logger;
  /** An address another owner holds now: the peer is not published (as after a lost lease). */
  conflict(what: string): void;
  /** The endpoint's spares are settled: published as its addresses, dropped, or given up. */
  settled(claims: QueuedClaim[]): void;
  /** A cancelled endpoint's spares, handed back to the stock that wrote them: it deletes their keys. */
  discard(spares: (QueuedClaim & { heldAt: number })[]): Promise<void>;
  /** Runs the first send of a queue once the connect that queued it has answered (Cluster.afterAnswers). */
  defer(job: () => void): void;
}

/** One address of a queued endpoint: the spare's key revision, or undefined once unknown. */
export interface QueuedClaim {
  poolId: string;
  ip: string;
  owner: string;
  heldAt?: number;
}

interface Item {
  peer: Peer;
  claims: QueuedClaim[];
  /** The endpoint went before its publish: its spare keys are deleted instead (each if still as written). */
  cancelled?: true;
}

/** Endpoints per transaction: etcd takes at most 128 operations in each part (--max-txn-ops). */
const BATCH = 40;
const RETRY_MS = [50, 100, 200, 500, 1000];
const ROUNDS = 3;

export class Publisher {
  private queue: Item[] = [];
  private flight: { items: Item[]; done: Promise<void> } | undefined;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly d: PublishDeps) {}

  enqueue(peer: Peer, claims: QueuedClaim[]): void {
    for (const c of claims) this.d.owned.set(this.d.keys.address(c.poolId, c.ip), { kind: 'address', value: this.value(c) });
    this.d.owned.set(this.peerKey(peer), { kind: 'peer', value: peer });
    this.queue.push({ peer, claims });
    // After the connect's answer: building and sending an etcd call costs CPU here, and wakes etcd
    // and the hosts that watch the network, all on the cores the connect is using.
    if (!this.timer && !this.flight && this.queue.length === 1) this.d.defer(() => this.kick());
  }

  /**
   * Waits for an endpoint's publish in flight; one still queued is cancelled: its spare keys are
   * deleted from the queue instead (true: nothing of the endpoint was written).
   */
  async settle(endpointId: string): Promise<boolean> {
    const mine = (i: Item) => i.peer.endpointId === endpointId && !i.cancelled;
    if (this.flight?.items.some(mine)) await this.flight.done;
    const item = this.queue.find(mine);
    if (!item) return false;
    item.cancelled = true;
    this.forget(item);
    return true;
  }

  pending(): number {
    return this.queue.length + (this.flight?.items.length ?? 0);
  }

  /** Waits until the queue is empty, at most ms. */
  async flush(ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (this.pending() > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private kick(): void {
    if (this.flight || this.queue.length === 0 || this.closed) return;
    const items = this.queue.splice(0, BATCH);
    const done = this.send(items).then(
      () => {
        this.failures = 0;
      },
      (err: Error) => {
        this.queue.unshift(...items);
        this.d.logger.warn({ err: err.message, queued: this.queue.length }, 'cluster: publishing endpoints failed; retrying');
        this.failures++;
      },
    ).finally(() => {
      this.flight = undefined;
      if (this.failures === 0) return this.kick();
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.kick();
      }, RETRY_MS[Math.min(this.failures, RETRY_MS.length) - 1]);
      this.timer.unref();
    });
    this.flight = { items, done };
  }

  /** One transaction for the batch; when a guard fails, each endpoint on its own (send1). */
  private async send(all: Item[]): Promise<void> {
    // `all` is what goes back to the queue on a failure: the deletions done leave it.
    for (const it of all.filter((x) => x.cancelled)) {
      await this.d.discard(it.claims.filter((c): c is QueuedClaim & { heldAt: number } => c.heldAt !== undefined));
      all.splice(all.indexOf(it), 1);
    }
    const items = all;
    if (items.length === 0) return;
    const lease = this.d.lease();
    const compare: Compare[] = [];
    const then: Op[] = [];
    for (const it of items) {
      if (it.claims.some((c) => c.heldAt === undefined)) return this.each(items);
      for (const c of it.claims) {
        const key = this.d.keys.address(c.poolId, c.ip);
        compare.push({ key, target: 'mod', op: '=', value: c.heldAt! });
        then.push({ put: key, value: this.value(c), lease });
      }
      then.push({ put: this.peerKey(it.peer), value: it.peer, lease });
    }
    const res = await this.d.client.txn(`publish ${items.length} endpoint(s)`, compare, then);
    if (!res.succeeded) return this.each(items);
    for (const it of items) this.d.settled(it.claims);
  }

  private async each(items: Item[]): Promise<void> {
    for (const [i, it] of items.entries()) {
      try {
        await this.send1(it);
      } catch (err) {
        // The ones done are done: only the rest goes back to the queue.
        items.splice(0, i);
        throw err;
      }
    }
  }

  /** Reads the endpoint's address keys, then claims each as found (its spare, already its own, or free): a few rounds. */
  private async send1(it: Item): Promise<void> {
    const k = this.d.keys;
    for (let round = 0; round < ROUNDS; round++) {
      const lease = this.d.lease();
      const read = await this.d.client.txn('read an endpoint\'s addresses', [], it.claims.flatMap((c): Op[] => [{ get: k.pool(c.poolId), keysOnly: true }, { get: k.address(c.poolId, c.ip) }]));
      const compare: Compare[] = [];
      for (const [i, c] of it.claims.entries()) {
        const [pool] = read.reads[2 * i] ?? [];
        const [held] = read.reads[2 * i + 1] ?? [];
        const key = k.address(c.poolId, c.ip);
        if (!pool) return this.drop(it, `${key}: its pool was deleted before the endpoint's peer was published`);
        if (!held) compare.push({ key: k.pool(c.poolId), target: 'mod', op: '=', value: pool.modRevision }, { key, target: 'version', op: '=', value: 0 });
        else {
          const v = parseJson<AddressValue>(held);
          const mine = v.host === this.d.hostId && (v.kind === 'spare' || (v.kind === 'endpoint' && v.owner === c.owner));
          if (!mine) return this.drop(it, `${key}: held by ${await holderOf(v, describer(this.d.client, this.d.keys))}; the peer of endpoint ${it.peer.endpointId} is not published`);
          compare.push({ key, target: 'mod', op: '=', value: held.modRevision });
        }
      }
      const then: Op[] = [...it.claims.map((c): Op => ({ put: k.address(c.poolId, c.ip), value: this.value(c), lease })), { put: this.peerKey(it.peer), value: it.peer, lease }];
      if ((await this.d.client.txn(`publish endpoint ${it.peer.endpointId}`, compare, then)).succeeded) return this.d.settled(it.claims);
    }
    this.drop(it, `endpoint ${it.peer.endpointId}: its address keys kept changing; its peer is not published`);
  }

  private drop(it: Item, why: string): void {
    this.d.logger.error({ endpoint: it.peer.endpointId }, why);
    this.d.conflict(why);
    this.forget(it);
  }

  private forget(it: Item): void {
    this.d.settled(it.claims);
    this.d.owned.delete(this.peerKey(it.peer));
    for (const c of it.claims) this.d.owned.delete(this.d.keys.address(c.poolId, c.ip));
  }

  private peerKey(p: Peer): string {
    return this.d.keys.peer(p.network, this.d.hostId, p.endpointId);
  }

  private value(c: QueuedClaim): AddressValue {
    return endpointAddress(c.owner, this.d.hostId);
  }
}
