// A watched key range: list it, remember the header revision, watch from revision + 1 on a stream
// of its own (POST /v3/watch, one HTTP connection), advance on every response. On compaction, a
// lost stream, a failed list, or any call of the client finding etcd unavailable (a frozen etcd
// leaves a stream silent, not broken) it re-lists and hands over the difference (a resync, handed
// over also when nothing changed: a handler puts right at a resync what it made from the range,
// as the overlay's programmer does with the kernel's entries), backing off 100 ms → 1 s so an etcd outage is no hot loop and a returning etcd is seen within a second. Batches are delivered in order,
// one at a time; what arrives meanwhile (a backlog) is merged and delivered as its net effect.
import type { Logger } from 'pino';
import { mark } from '../core/trace.js';
import { keyRange, type OpenStream, type StoreClient } from './client.js';
import { diffMaps, mergeChanges, type Change } from './diff.js';
import type { WatchStats } from './types.js';

export interface RangeBatch<T> {
  resync: boolean;
  revision: number;
  changes: Change<T>[];
  current: ReadonlyMap<string, T>;
}

export interface RangeWatchOptions<T> {
  client: StoreClient;
  prefix: string;
  /** Turns a key, its value and its lease ('0': none) into an entry; undefined skips the key. */
  decode(key: string, value: Buffer, lease: string): T | undefined;
  equal(a: T, b: T): boolean;
  deliver(batch: RangeBatch<T>): void | Promise<void>;
  logger: Logger;
  backoff?: { initialMs: number; maxMs: number };
  /** Fault injection for tests: runs after each list, before the watch that resumes from it. */
  afterList?: (revision: number) => Promise<void>;
}

export interface Listed {
  revision: number;
  kvs: { key: string; value: Buffer; lease: string }[];
}

/** The gateway's watch answer (fields at their default value left out: a put has no type). */
type WatchEvent = { type?: string; kv: { key: string; value?: string; lease?: string } };
type WatchResponse = { header?: { revision?: string }; created?: boolean; canceled?: boolean; compact_revision?: string; cancel_reason?: string; events?: WatchEvent[] };

export class RangeWatch<T> {
  private current = new Map<string, T>();
  private stream: OpenStream | undefined;
  private streamToken: object | undefined;
  private readonly unsubscribe: () => void;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private closed = false;
  private listedOnce = false;
  /** Changes not yet delivered, merged into one batch; and the delivery loop while it runs. */
  private pending: Omit<RangeBatch<T>, 'current'> | undefined;
  private draining: Promise<void> | undefined;
  private readonly counters: WatchStats = { lists: 0, resyncs: 0, events: 0, revision: 0, state: 'listing' };

  /** Where batches go: the options' deliver, or the one that took the watch over (replay()). */
  private deliver: RangeWatchOptions<T>['deliver'];

  constructor(private readonly o: RangeWatchOptions<T>) {
    this.deliver = o.deliver;
    this.unsubscribe = o.client.onUnavailable(() => this.streamToken && this.retry('etcd unavailable to a call'));
    void this.resync(false);
  }

  stats(): WatchStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.counters.state = 'closed';
    clearTimeout(this.timer);
    this.unsubscribe();
    this.dropStream();
    await this.draining;
  }

  /** Lists the range, delivers the difference from what was known, then watches from there. */
  private async resync(isResync: boolean): Promise<void> {
    if (this.closed) return;
    this.counters.state = 'listing';
    this.counters.lists++;
    let listed: Listed;
    try {
      listed = await this.o.client.range(this.o.prefix);
      mark('listed');
    } catch (err) {
      return this.retry(`list failed: ${(err as Error).message}`);
    }
    if (this.closed) return;
    const next = new Map<string, T>();
    for (const kv of listed.kvs) {
      const value = this.o.decode(kv.key, kv.value, kv.lease);
      if (value !== undefined) next.set(kv.key, value);
    }
    const changes = diffMaps(this.current, next, this.o.equal);
    const first = !this.listedOnce;
    this.listedOnce = true;
    this.current = next;
    this.counters.revision = listed.revision;
    if (isResync) this.counters.resyncs++;
    if (first || isResync || changes.length > 0) this.push({ resync: isResync, revision: listed.revision, changes });
    await this.o.afterList?.(listed.revision);
    await this.watchFrom(listed.revision + 1);
  }

  /**
   * The whole range again, as one batch of additions, to a new deliver (a watch started ahead
   * with none taken over): what was not delivered yet is in it. Before its first list, nothing:
   * that list goes to the new deliver.
   */
  replay(deliver: RangeWatchOptions<T>['deliver']): void {
    this.deliver = deliver;
    if (!this.listedOnce) return;
    this.pending = undefined;
    this.push({ resync: false, revision: this.counters.revision, changes: [...this.current].map(([key, value]) => ({ kind: 'added' as const, key, value })) }, true);
  }

  private retry(reason: string): void {
    if (this.closed) return;
    this.dropStream();
    this.counters.state = 'backoff';
    const { initialMs, maxMs } = this.o.backoff ?? { initialMs: 100, maxMs: 1000 };
    const delay = Math.min(maxMs, initialMs * 2 ** this.failures);
    this.failures++;
    this.o.logger.debug({ prefix: this.o.prefix, reason, delay }, 'watch: re-listing after a pause');
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.resync(true), delay);
  }

  private async watchFrom(revision: number): Promise<void> {
    const create = { create_request: { ...keyRange(this.o.prefix, true), start_revision: String(revision), progress_notify: true } };
    // Answers may arrive before the stream is handed over (with its first bytes): this token, not
    // the stream, says which stream is current.
    const token = {};
    this.streamToken = token;
    let stream: OpenStream;
    try {
      stream = await this.o.client.stream('/v3/watch', create, {
        onResult: (res) => token === this.streamToken && this.onResponse(res as WatchResponse),
        onEnd: (err) => token === this.streamToken && this.retry(err ? `watch stream failed: ${err.message}` : 'watch stream ended'),
      });
    } catch (err) {
      if (token === this.streamToken) this.retry(`watch failed: ${(err as Error).message}`);
      return;
    }
    if (this.closed || token !== this.streamToken) {
      stream.close();
      return;
    }
    this.stream = stream;
    mark('watch stream');
  }

  private onResponse(res: WatchResponse): void {
    if (this.closed) return;
    if (res.canceled || Number(res.compact_revision ?? 0) > 0) {
      // A compacted start revision (or any cancel): the history is gone, re-list.
      this.retry(`watch canceled at compact revision ${res.compact_revision ?? 0}: ${res.cancel_reason || 'no reason given'}`);
      return;
    }
    this.counters.state = 'watching';
    if (!res.created) this.failures = 0;
    const revision = Number(res.header?.revision ?? 0);
    const changes: Change<T>[] = [];
    for (const ev of res.events ?? []) changes.push(...this.apply(ev));
    if (revision > this.counters.revision) this.counters.revision = revision;
    if (changes.length > 0) this.push({ resync: false, revision, changes });
  }

  private apply(ev: WatchEvent): Change<T>[] {
    this.counters.events++;
    const key = Buffer.from(ev.kv.key, 'base64').toString();
    const previous = this.current.get(key);
    if (ev.type === 'DELETE') {
      this.current.delete(key);
      return previous === undefined ? [] : [{ kind: 'removed', key, value: previous }];
    }
    const value = this.o.decode(key, Buffer.from(ev.kv.value ?? '', 'base64'), ev.kv.lease ?? '0');
    if (value === undefined) return [];
    this.current.set(key, value);
    if (previous === undefined) return [{ kind: 'added', key, value }];
    return this.o.equal(previous, value) ? [] : [{ kind: 'updated', key, value, previous }];
  }

  /**
   * Queues changes (this.current already holds them): merged with those not yet delivered. whole:
   * the batch is the whole range (a replay), delivered without waiting for a turn of the loop (no
   * answer of the stream can add to it; a first connect here waits for it to be programmed).
   */
  private push(batch: Omit<RangeBatch<T>, 'current'>, whole = false): void {
    const p = this.pending;
    this.pending = p ? { resync: p.resync || batch.resync, revision: batch.revision, changes: mergeChanges(p.changes, batch.changes, this.o.equal) } : batch;
    this.draining ??= this.drain(whole);
  }

  /**
   * Delivers the pending batch with the range as it is now, until none is left. Each round first
   * lets the event loop run once, so responses already read from the stream join the batch: a
   * backlog of thousands of events is a few batches, not thousands of full re-programmings. now:
   * the first round goes at once (after the caller's synchronous work).
   */
  private async drain(now: boolean): Promise<void> {
    for (let turn = !now; ; turn = true) {
      await (turn ? new Promise((resolve) => setImmediate(resolve)) : Promise.resolve());
      const batch = this.pending;
      if (!batch) break;
      this.pending = undefined;
      try {
        await this.deliver({ ...batch, current: new Map(this.current) });
      } catch (err) {
        this.o.logger.error({ err, prefix: this.o.prefix }, 'watch: the handler failed on a batch');
      }
    }
    this.draining = undefined;
  }

  private dropStream(): void {
    const stream = this.stream;
    this.stream = undefined;
    this.streamToken = undefined;
    stream?.close();
  }
}
