// The etcd v3 client (npm etcd3) set up to fail fast: one try per endpoint with a 1 s deadline,
// no circuit breaker (it would refuse calls for 5 s after etcd is back), and a timer on every
// call, so that a stopped or frozen etcd gives ClusterUnavailableError in ~1.5 s instead of a hang.
// Limits: values are JSON; revisions are JS numbers (exact below 2^53).
import fs from 'node:fs';
import { CompareResult, CompareTarget, Etcd3, isRecoverableError, type IOptions, type IRequestOp } from 'etcd3';
import { ClusterUnavailableError, CnmkitError } from '../errors.js';
import type { ClusterConfig } from './options.js';
import { prefixEnd } from './keys.js';

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
  target: 'version' | 'mod' | 'create' | 'lease';
  op: '=' | '<' | '>' | '!=';
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
  /** Told the outcome of every call, so the cluster can report its state. */
  onOutcome?: (err: Error | undefined) => void;
}

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;
type RawKv = { key: Buffer; value: Buffer; create_revision: string; mod_revision: string; version: string; lease: string };

/** Tries a call once per endpoint (a new one each time), passing on anything not recoverable. */
function tryEachEndpoint(attempts: number): Policy {
  const policy = {
    async execute<T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
      const signal = new AbortController().signal;
      for (let i = 1; ; i++) {
        try {
          return await fn({ signal });
        } catch (err) {
          if (i >= attempts || !isRecoverableError(err as Error)) throw err;
        }
      }
    },
    onSuccess: () => ({ dispose: () => undefined }),
    onFailure: () => ({ dispose: () => undefined }),
  };
  return policy as unknown as Policy;
}

const TARGETS = { version: CompareTarget.Version, mod: CompareTarget.Mod, create: CompareTarget.Create, lease: CompareTarget.Lease } as const;
const FIELDS = { version: 'version', mod: 'mod_revision', create: 'create_revision', lease: 'lease' } as const;
const RESULTS = { '=': CompareResult.Equal, '<': CompareResult.Less, '>': CompareResult.Greater, '!=': CompareResult.NotEqual } as const;

function toKv(kv: RawKv): KeyValue {
  return {
    key: kv.key.toString(), value: kv.value, createRevision: Number(kv.create_revision), modRevision: Number(kv.mod_revision),
    version: Number(kv.version), lease: kv.lease,
  };
}

function toOp(op: Op): IRequestOp {
  if ('put' in op) return { request_put: { key: Buffer.from(op.put), value: Buffer.from(JSON.stringify(op.value)), ...(op.lease ? { lease: op.lease } : {}) } };
  if ('del' in op) return { request_delete_range: { key: Buffer.from(op.del), ...(op.prefix ? { range_end: prefixEnd(op.del) } : {}) } };
  return { request_range: { key: Buffer.from(op.get), ...(op.prefix ? { range_end: prefixEnd(op.get) } : {}), ...(op.keysOnly ? { keys_only: true } : {}) } };
}

export class StoreClient {
  readonly etcd: Etcd3;
  private readonly failFastMs: number;

  constructor(config: Pick<ClusterConfig, 'endpoints' | 'tls'>, private readonly opts: ClientOptions = {}) {
    this.failFastMs = opts.failFastMs ?? 1500;
    const deadlineMs = Math.min(1000, this.failFastMs);
    this.etcd = new Etcd3({
      hosts: config.endpoints,
      ...(config.tls ? {
        credentials: {
          rootCertificate: fs.readFileSync(config.tls.cacert),
          ...(config.tls.cert ? { certChain: fs.readFileSync(config.tls.cert), privateKey: fs.readFileSync(config.tls.key!) } : {}),
        },
      } : {}),
      dialTimeout: deadlineMs,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + deadlineMs }),
      faultHandling: { host: () => tryEachEndpoint(1), global: tryEachEndpoint(config.endpoints.length) },
      grpcOptions: {
        'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1000,
        'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 3000,
      },
    });
  }

  /** Runs one etcd call within the budget; transport failures become ClusterUnavailableError. */
  async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ClusterUnavailableError(`${what}: no answer from etcd within ${this.failFastMs} ms`)), this.failFastMs);
    });
    try {
      const result = await Promise.race([fn(), timeout]);
      this.opts.onOutcome?.(undefined);
      return result;
    } catch (err) {
      const out = err instanceof CnmkitError ? err : isUnavailable(err)
        ? new ClusterUnavailableError(`${what}: ${(err as Error).message}`, { cause: err })
        : err as Error;
      if (out instanceof ClusterUnavailableError) this.opts.onOutcome?.(out);
      throw out;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Every key under prefix (or the one key, exact), at one revision. */
  async range(key: string, opts: { prefix?: boolean; keysOnly?: boolean } = { prefix: true }): Promise<{ revision: number; kvs: KeyValue[] }> {
    const res = await this.call(`read ${key}`, () => this.etcd.kv.range({
      key: Buffer.from(key), ...(opts.prefix ? { range_end: prefixEnd(key) } : {}), ...(opts.keysOnly ? { keys_only: true } : {}),
    }));
    return { revision: Number(res.header.revision), kvs: (res.kvs as RawKv[]).map(toKv) };
  }

  /** How many keys are under prefix (etcd counts them: no key is sent). */
  async count(prefix: string): Promise<number> {
    const res = await this.call(`count ${prefix}`, () => this.etcd.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix), count_only: true }));
    return Number(res.count);
  }

  async get(key: string): Promise<{ revision: number; kv?: KeyValue }> {
    const { revision, kvs } = await this.range(key, {});
    return kvs[0] ? { revision, kv: kvs[0] } : { revision };
  }

  /** One transaction: if every compare holds, the `then` ops, else the `otherwise` ops. */
  async txn(what: string, compare: Compare[], then: Op[], otherwise: Op[] = []): Promise<TxnResult> {
    const res = await this.call(what, () => this.etcd.kv.txn({
      compare: compare.map((c) => ({
        key: Buffer.from(c.key), target: TARGETS[c.target], result: RESULTS[c.op], [FIELDS[c.target]]: c.value,
        ...(c.prefix ? { range_end: prefixEnd(c.key) } : {}),
      })),
      success: then.map(toOp),
      failure: otherwise.map(toOp),
    }));
    const reads = res.responses.flatMap((r) => (r.response_range ? [(r.response_range.kvs as RawKv[]).map(toKv)] : []));
    return { succeeded: res.succeeded, revision: Number(res.header.revision), reads };
  }

  async leaseGrant(ttl: number): Promise<string> {
    return (await this.call('grant a lease', () => this.etcd.leaseClient.leaseGrant({ TTL: ttl }))).ID;
  }

  /** Remaining and granted TTL of a lease (ttl <= 0: expired or unknown). */
  async leaseTtl(id: string): Promise<{ ttl: number; grantedTtl: number }> {
    const res = await this.call(`read lease ${id}`, () => this.etcd.leaseClient.leaseTimeToLive({ ID: id }));
    return { ttl: Number(res.TTL), grantedTtl: Number(res.grantedTTL) };
  }

  /** Compacts the history up to revision (tests and benchmarks use it to force a watch to re-list). */
  async compact(revision: number): Promise<void> {
    await this.call('compact', () => this.etcd.kv.compact({ revision, physical: true }));
  }

  close(): void {
    this.etcd.close();
  }
}

/** gRPC's transient failures (unavailable, deadline, cancelled, …) and socket errors: etcd is not there. */
function isUnavailable(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  if (isRecoverableError(err as Error)) return true;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && ['ECONNREFUSED', 'ECONNRESET', 'ENOENT', 'EHOSTUNREACH', 'ETIMEDOUT'].includes(code);
}

/** A random pause before retrying a transaction that lost a race: 5 ms doubling, with jitter, up to 200 ms. */
export function contentionPause(attempt: number): Promise<void> {
  const ms = Math.min(200, 5 * 2 ** attempt) * (0.5 + Math.random());
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function parseJson<T>(kv: KeyValue): T {
  return JSON.parse(kv.value.toString()) as T;
}
