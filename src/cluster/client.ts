// The etcd v3 client over etcd's JSON gateway (POST /v3/…: src/cluster/gateway.ts), set up to
// fail fast: one try per endpoint with a 1 s deadline and a timer on every call, so that a stopped
// or frozen etcd gives ClusterUnavailableError in ~1.5 s instead of a hang. The gateway's JSON:
// bytes are base64, int64 are strings in answers (sent here as strings too), enums are names,
// fields at their default value are left out of answers.
// Limits: values are JSON; revisions are JS numbers (exact below 2^53); lease IDs stay strings.
import { ClusterUnavailableError, CnmkitError } from '../errors.js';
import { Gateway, unreachable, type OpenStream, type StreamHandlers } from './gateway.js';
import type { ClusterConfig } from './options.js';
import { prefixEnd } from './keys.js';
import { storeName } from './outage.js';

export { EtcdError, type OpenStream, type StreamHandlers } from './gateway.js';

export interface KeyValue {
  key: string;
  value: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
  lease: string;
}

export type Compare = {
  key: string;
  /** Compare every key in [key, prefixEnd(key)) (etcd's range compare). */
  prefix?: boolean;
  target: 'version' | 'mod' | 'create' | 'lease' | 'value';
  op: '=' | '<' | '>' | '!=';
  /** For 'value': the stored text (a value put here is its JSON). */
  value: number | string;
};

export type Op =
  | { put: string; value: unknown; lease?: string }
  | { del: string; prefix?: boolean }
  | { get: string; prefix?: boolean; keysOnly?: boolean };

export interface TxnResult {
  succeeded: boolean;
  revision: number;
  /** The kvs of each `get` op, in order. */
  reads: KeyValue[][];
}

export interface ClientOptions {
  /** Budget of one call before it fails as unavailable (default 1500 ms). */
  failFastMs?: number;
  /** Told the outcome of every call, so the cluster can report its state; cause: why etcd was unavailable, without the call's key. */
  onOutcome?: (err: Error | undefined, cause?: string) => void;
  /** Told the step of each call that found the store unavailable (its error does not say it). */
  log?: (step: string, err: Error) => void;
}

/** The gateway's kv as it answers it (fields at their default value left out). */
type JsonKv = { key: string; value?: string; create_revision?: string; mod_revision?: string; version?: string; lease?: string };
type Header = { header?: { revision?: string } };

const TARGETS = { version: 'VERSION', mod: 'MOD', create: 'CREATE', lease: 'LEASE', value: 'VALUE' } as const;
const FIELDS = { version: 'version', mod: 'mod_revision', create: 'create_revision', lease: 'lease', value: 'value' } as const;
const RESULTS = { '=': 'EQUAL', '<': 'LESS', '>': 'GREATER', '!=': 'NOT_EQUAL' } as const;

const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');

/** A range's key and, for a prefix, its range_end, as the gateway takes them. */
export function keyRange(key: string, prefix: boolean | undefined): { key: string; range_end?: string } {
  return { key: b64(key), ...(prefix ? { range_end: b64(prefixEnd(key)) } : {}) };
}

export function toKv(kv: JsonKv): KeyValue {
  return {
    key: Buffer.from(kv.key, 'base64').toString(), value: Buffer.from(kv.value ?? '', 'base64'),
    createRevision: Number(kv.create_revision ?? 0), modRevision: Number(kv.mod_revision ?? 0), version: Number(kv.version ?? 0), lease: kv.lease ?? '0',
  };
}

/** A txn compare in the gateway's JSON. */
export function toCompare(c: Compare): Record<string, string> {
  const value = c.target === 'value' ? b64(String(c.value)) : String(c.value);
  return { ...keyRange(c.key, c.prefix), target: TARGETS[c.target], result: RESULTS[c.op], [FIELDS[c.target]]: value };
}

/** A txn op in the gateway's JSON. */
export function toOp(op: Op): Record<string, unknown> {
  if ('put' in op) return { request_put: { key: b64(op.put), value: b64(JSON.stringify(op.value)), ...(op.lease ? { lease: op.lease } : {}) } };
  if ('del' in op) return { request_delete_range: keyRange(op.del, op.prefix) };
  return { request_range: { ...keyRange(op.get, op.prefix), ...(op.keysOnly ? { keys_only: true } : {}) } };
}

export class StoreClient {
  private readonly failFastMs: number;
  private readonly gateway: Gateway;
  private readonly unavailableListeners = new Set<() => void>();

  /** The store as --cluster-store names it, for the errors. */
  private readonly store: string;

  constructor(config: Pick<ClusterConfig, 'endpoints' | 'tls'>, private readonly opts: ClientOptions = {}) {
    this.failFastMs = opts.failFastMs ?? 1500;
    this.store = storeName(config.endpoints);
    this.gateway = new Gateway(config, Math.min(1000, this.failFastMs));
  }

  /**
   * Runs one etcd call within the budget; transport failures become ClusterUnavailableError, which
   * names the store and the transport's reason, never the call (what: its step, for the debug log
   * only): a user reads it under what they asked for (src/errors.ts asked()).
   */
  async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = `no answer from etcd within ${this.failFastMs} ms`;
    const unavailable = (cause: string, err?: unknown) => new ClusterUnavailableError(`${this.store} does not answer (${cause})`, err === undefined ? {} : { cause: err });
    let tooLate: Error | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject((tooLate = unavailable(late))), this.failFastMs);
    });
    try {
      const result = await Promise.race([fn(), timeout]);
      this.opts.onOutcome?.(undefined);
      return result;
    } catch (err) {
      const out = err instanceof CnmkitError ? err : unreachable(err) ? unavailable((err as Error).message, err) : err as Error;
      if (out instanceof ClusterUnavailableError) {
        this.opts.log?.(what, out);
        // The cause alone: the call's step names a key, maybe of another object than the caller's.
        this.opts.onOutcome?.(out, out === tooLate ? late : out === err ? undefined : (err as Error).message);
        for (const fn of this.unavailableListeners) fn();
      }
      throw out;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Told whenever a call finds etcd unavailable (a watch drops its stream, which may hang on a frozen etcd). Returns the unsubscribe. */
  onUnavailable(fn: () => void): () => void {
    this.unavailableListeners.add(fn);
    return () => this.unavailableListeners.delete(fn);
  }

  /** One POST to the gateway (path under /v3/) within the deadline per endpoint; a stream's single answer comes unwrapped. */
  post<T>(path: string, body: unknown): Promise<T> {
    return this.gateway.post<T>(path, body);
  }

  /** Opens a stream (e.g. POST /v3/watch) on the first endpoint that answers. */
  stream(path: string, body: unknown, h: StreamHandlers): Promise<OpenStream> {
    return this.gateway.stream(path, body, h);
  }

  /** Every key under prefix (or the one key, exact), at one revision. */
  async range(key: string, opts: { prefix?: boolean; keysOnly?: boolean } = { prefix: true }): Promise<{ revision: number; kvs: KeyValue[] }> {
    const res = await this.call(`read ${key}`, () => this.post<Header & { kvs?: JsonKv[] }>('/v3/kv/range', {
      ...keyRange(key, opts.prefix), ...(opts.keysOnly ? { keys_only: true } : {}),
    }));
    return { revision: Number(res.header?.revision ?? 0), kvs: (res.kvs ?? []).map(toKv) };
  }

  /** How many keys are under prefix (etcd counts them: no key is sent). */
  async count(prefix: string): Promise<number> {
    const res = await this.call(`count ${prefix}`, () => this.post<{ count?: string }>('/v3/kv/range', { ...keyRange(prefix, true), count_only: true }));
    return Number(res.count ?? 0);
  }

  async get(key: string): Promise<{ revision: number; kv?: KeyValue }> {
    const { revision, kvs } = await this.range(key, {});
    return kvs[0] ? { revision, kv: kvs[0] } : { revision };
  }

  /** One transaction: if every compare holds, the `then` ops, else the `otherwise` ops. */
  async txn(what: string, compare: Compare[], then: Op[], otherwise: Op[] = []): Promise<TxnResult> {
    type Answer = Header & { succeeded?: boolean; responses?: { response_range?: { kvs?: JsonKv[] } }[] };
    const res = await this.call(what, () => this.post<Answer>('/v3/kv/txn', {
      compare: compare.map(toCompare), success: then.map(toOp), failure: otherwise.map(toOp),
    }));
    const reads = (res.responses ?? []).flatMap((r) => (r.response_range ? [(r.response_range.kvs ?? []).map(toKv)] : []));
    return { succeeded: res.succeeded === true, revision: Number(res.header?.revision ?? 0), reads };
  }

  async leaseGrant(ttl: number): Promise<string> {
    return (await this.call('grant a lease', () => this.post<{ ID: string }>('/v3/lease/grant', { TTL: String(ttl) }))).ID;
  }

  /** Remaining and granted TTL of a lease (ttl <= 0: expired or unknown). */
  async leaseTtl(id: string): Promise<{ ttl: number; grantedTtl: number }> {
    const res = await this.call(`read lease ${id}`, () => this.post<{ TTL?: string; grantedTTL?: string }>('/v3/lease/timetolive', { ID: id }));
    return { ttl: Number(res.TTL ?? 0), grantedTtl: Number(res.grantedTTL ?? 0) };
  }

  /** Ends a lease now, deleting its keys (tests use it to take a host's lease away). */
  async leaseRevoke(id: string): Promise<void> {
    await this.call(`revoke lease ${id}`, () => this.post('/v3/lease/revoke', { ID: id }));
  }

  /** Compacts the history up to revision (tests and benchmarks use it to force a watch to re-list). */
  async compact(revision: number): Promise<void> {
    await this.call('compact', () => this.post('/v3/kv/compaction', { revision: String(revision), physical: true }));
  }

  /** Closes the idle kept-alive connections (open streams are their owners' to close). */
  close(): void {
    this.gateway.close();
  }
}

/** A random pause before retrying a transaction that lost a race: 5 ms doubling, with jitter, up to 200 ms. */
export function contentionPause(attempt: number): Promise<void> {
  const ms = Math.min(200, 5 * 2 ** attempt) * (0.5 + Math.random());
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function parseJson<T>(kv: KeyValue): T {
  return JSON.parse(kv.value.toString()) as T;
}
