// The etcd v3 client over etcd's JSON gateway (POST /v3/…, HTTP/1.1 keep-alive, Node's own
// http/https), set up to fail fast: one try per endpoint with a 1 s deadline and a timer on every
// call, so that a stopped or frozen etcd gives ClusterUnavailableError in ~1.5 s instead of a hang.
// The gateway's JSON: bytes are base64, int64 are strings in answers (sent here as strings too),
// enums are names, fields at their default value are left out of answers. Streams (watch) are
// one chunked answer of newline-separated {"result": …} or {"error": …} objects.
// Limits: values are JSON; revisions are JS numbers (exact below 2^53); lease IDs stay strings.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
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

/** An error etcd answered with: its gRPC status code and message (e.g. 5 "etcdserver: requested lease not found"). */
export class EtcdError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
    this.name = 'EtcdError';
  }
}

/** A stream opened by StoreClient.stream: each answer object in order, then one end (error, or none when closed by etcd). */
export interface StreamHandlers {
  onResult(result: Record<string, unknown>): void;
  onEnd(err: Error | undefined): void;
}

export interface OpenStream {
  /** Ends the stream; no handler is called afterwards. */
  close(): void;
}

/** The gateway's kv as it answers it (fields at their default value left out). */
type JsonKv = { key: string; value?: string; create_revision?: string; mod_revision?: string; version?: string; lease?: string };
type Header = { header?: { revision?: string } };

/** gRPC codes etcd3 counted as transient (cancelled, unknown, deadline, exhausted, aborted, internal, unavailable): etcd is not there. */
const UNAVAILABLE_CODES = new Set([1, 2, 4, 8, 10, 13, 14]);
const SOCKET_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOENT', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EPIPE', 'ECONNABORTED']);

const TARGETS = { version: 'VERSION', mod: 'MOD', create: 'CREATE', lease: 'LEASE' } as const;
const FIELDS = { version: 'version', mod: 'mod_revision', create: 'create_revision', lease: 'lease' } as const;
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
  return { ...keyRange(c.key, c.prefix), target: TARGETS[c.target], result: RESULTS[c.op], [FIELDS[c.target]]: String(c.value) };
}

/** A txn op in the gateway's JSON. */
export function toOp(op: Op): Record<string, unknown> {
  if ('put' in op) return { request_put: { key: b64(op.put), value: Buffer.from(JSON.stringify(op.value)).toString('base64'), ...(op.lease ? { lease: op.lease } : {}) } };
  if ('del' in op) return { request_delete_range: keyRange(op.del, op.prefix) };
  return { request_range: { ...keyRange(op.get, op.prefix), ...(op.keysOnly ? { keys_only: true } : {}) } };
}

/** etcd's error answer ({error, message, code} for a call, {error: {grpc_code, message}} in a stream) → EtcdError. */
export function toEtcdError(body: unknown): EtcdError | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const o = body as { error?: unknown; message?: unknown; code?: unknown };
  if (typeof o.error === 'object' && o.error !== null) {
    const e = o.error as { grpc_code?: unknown; code?: unknown; message?: unknown };
    return new EtcdError(Number(e.grpc_code ?? e.code ?? 2), String(e.message ?? 'etcd error'));
  }
  if (typeof o.code === 'number') return new EtcdError(o.code, String(o.message ?? o.error ?? 'etcd error'));
  return undefined;
}

interface Endpoint {
  name: string;
  /** The request options of every call to it (host or socket, TLS, agent). */
  base: https.RequestOptions;
  agent: http.Agent;
  /** For streams: connections of their own, not taken from the calls' pool. */
  streamAgent: http.Agent;
  secure: boolean;
}

/** `http://HOST:PORT`, `https://HOST:PORT` or `unix:///PATH` → the options Node's http/https take. */
function endpointOf(url: string, tls: ClusterConfig['tls']): Endpoint {
  if (url.startsWith('unix://')) {
    const socketPath = url.slice('unix://'.length);
    // servername '' (no TLS here): Node would otherwise test the Host header with net.isIP (a costly first regex).
    const base = { socketPath, host: 'localhost', servername: '' };
    return { name: url, base, agent: new http.Agent({ keepAlive: true, maxSockets: 16 }), streamAgent: new http.Agent(), secure: false };
  }
  const m = /^(https?):\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]+)$/.exec(url);
  if (!m) throw new Error(`etcd endpoint ${JSON.stringify(url)}: expected http(s)://HOST:PORT or unix:///PATH`);
  const secure = m[1] === 'https';
  const bracketed = m[2]!.startsWith('[');
  const host = bracketed ? m[2]!.slice(1, -1) : m[2]!;
  const isIp = bracketed || /^[0-9.]+$/.test(host);
  // An IP gets no SNI (servername ''); the certificate is still checked against the host, IP or name.
  const base: https.RequestOptions = { host, port: Number(m[3]), servername: isIp ? '' : host };
  if (!secure) return { name: url, base, agent: new http.Agent({ keepAlive: true, maxSockets: 16 }), streamAgent: new http.Agent(), secure };
  const creds = tls ? {
    ca: fs.readFileSync(tls.cacert),
    ...(tls.cert ? { cert: fs.readFileSync(tls.cert), key: fs.readFileSync(tls.key!) } : {}),
  } : {};
  return { name: url, base: { ...base, ...creds }, agent: new https.Agent({ keepAlive: true, maxSockets: 16, ...creds }), streamAgent: new https.Agent(creds), secure };
}

/** A try that ran out of time: counted as a socket error (unavailable), named by call() with what it was for. */
function noAnswer(ep: Endpoint, ms: number): Error {
  return Object.assign(new Error(`no answer from ${ep.name} within ${ms} ms`), { code: 'ETIMEDOUT' });
}

/** A failure that says nothing about etcd's answer: the next endpoint may do. */
function unreachable(err: unknown): boolean {
  if (err instanceof EtcdError) return UNAVAILABLE_CODES.has(err.code);
  if (err instanceof ClusterUnavailableError) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (SOCKET_ERRORS.has(code) || code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || code === 'ERR_STREAM_PREMATURE_CLOSE');
}

export class StoreClient {
  private readonly failFastMs: number;
  private readonly deadlineMs: number;
  private readonly endpoints: Endpoint[];
  /** The endpoint that answered last: tried first. */
  private preferred = 0;
  private readonly unavailableListeners = new Set<() => void>();

  constructor(config: Pick<ClusterConfig, 'endpoints' | 'tls'>, private readonly opts: ClientOptions = {}) {
    this.failFastMs = opts.failFastMs ?? 1500;
    this.deadlineMs = Math.min(1000, this.failFastMs);
    this.endpoints = config.endpoints.map((e) => endpointOf(e, config.tls));
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
      const out = err instanceof CnmkitError ? err : unreachable(err)
        ? new ClusterUnavailableError(`${what}: ${(err as Error).message}`, { cause: err })
        : err as Error;
      if (out instanceof ClusterUnavailableError) {
        this.opts.onOutcome?.(out);
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

  /**
   * One POST to the gateway (path under /v3/), tried once per endpoint within the deadline; its
   * JSON answer, or etcd's error as EtcdError. A stream's single answer is unwrapped from its result.
   */
  async post<T>(path: string, body: unknown): Promise<T> {
    const payload = JSON.stringify(body);
    let last: unknown;
    for (let i = 0; i < this.endpoints.length; i++) {
      const index = (this.preferred + i) % this.endpoints.length;
      try {
        const res = await this.postTo<T>(this.endpoints[index]!, path, payload, Date.now() + this.deadlineMs);
        this.preferred = index;
        return res;
      } catch (err) {
        if (!unreachable(err)) throw err;
        last = err;
      }
    }
    throw last;
  }

  private async postTo<T>(ep: Endpoint, path: string, payload: string, deadline: number): Promise<T> {
    try {
      return await this.once<T>(ep, path, payload, deadline);
    } catch (err) {
      // A kept-alive connection that etcd closed meanwhile: once more on a new one.
      if ((err as { reused?: boolean }).reused && Date.now() < deadline) return this.once<T>(ep, path, payload, deadline);
      throw err;
    }
  }

  private once<T>(ep: Endpoint, path: string, payload: string, deadline: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const send = ep.secure ? https.request : http.request;
      const req = send({
        ...ep.base, agent: ep.agent, method: 'POST', path,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', fail);
        res.on('end', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString();
          let body: unknown;
          try {
            body = JSON.parse(text.split('\n', 1)[0]!);
          } catch {
            const status = res.statusCode ?? 0;
            reject(status >= 500 ? new EtcdError(14, `${ep.name}${path}: HTTP ${status}`) : new Error(`${ep.name}${path}: HTTP ${status}, not JSON: ${text.slice(0, 200)}`));
            return;
          }
          const err = toEtcdError(body);
          if (err) reject(err);
          else if (res.statusCode !== 200) reject(new EtcdError(res.statusCode! >= 500 ? 14 : 2, `${ep.name}${path}: HTTP ${res.statusCode}`));
          else resolve(((body as { result?: T }).result ?? body) as T);
        });
      });
      const timer = setTimeout(() => fail(noAnswer(ep, this.deadlineMs)), Math.max(0, deadline - Date.now()));
      function fail(err: Error): void {
        clearTimeout(timer);
        if ((err as NodeJS.ErrnoException).code === 'ECONNRESET' && req.reusedSocket) Object.assign(err, { reused: true });
        req.destroy();
        reject(err);
      }
      req.on('error', fail);
      req.end(payload);
    });
  }

  /**
   * Opens a stream (POST path with body, e.g. /v3/watch) on the first endpoint that answers.
   * Each answer object arrives unwrapped; an {"error": …} object, a broken connection or the
   * end of the answer end it (onEnd). No deadline once it is open (a watch may be silent for hours).
   */
  async stream(path: string, body: unknown, h: StreamHandlers): Promise<OpenStream> {
    const payload = JSON.stringify(body);
    let last: unknown;
    for (let i = 0; i < this.endpoints.length; i++) {
      const index = (this.preferred + i) % this.endpoints.length;
      try {
        return await this.streamTo(this.endpoints[index]!, path, payload, h);
      } catch (err) {
        last = err;
      }
    }
    throw last;
  }

  private streamTo(ep: Endpoint, path: string, payload: string, h: StreamHandlers): Promise<OpenStream> {
    return new Promise((resolve, reject) => {
      let opened = false;
      let ended = false;
      const end = (err: Error | undefined): void => {
        if (ended || !opened) return;
        ended = true;
        req.destroy();
        h.onEnd(err);
      };
      const handle: OpenStream = {
        close: () => {
          ended = true;
          req.destroy();
        },
      };
      const send = ep.secure ? https.request : http.request;
      const req = send({
        ...ep.base, agent: ep.streamAgent, method: 'POST', path,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      }, (res) => {
        clearTimeout(timer);
        if (res.statusCode !== 200) {
          req.destroy();
          reject(new EtcdError(14, `${ep.name}${path}: HTTP ${res.statusCode}`));
          return;
        }
        opened = true;
        resolve(handle);
        let buffered = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffered += chunk;
          let nl: number;
          while (!ended && (nl = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, nl).trim();
            buffered = buffered.slice(nl + 1);
            if (line === '') continue;
            let msg: { result?: Record<string, unknown> };
            try {
              msg = JSON.parse(line) as typeof msg;
            } catch {
              end(new Error(`${ep.name}${path}: not JSON: ${line.slice(0, 200)}`));
              return;
            }
            const err = toEtcdError(msg);
            if (err) end(err);
            else if (msg.result) h.onResult(msg.result);
          }
        });
        res.on('error', (err) => end(err));
        res.on('end', () => end(undefined));
        res.on('close', () => end(new Error(`${ep.name}${path}: connection closed`)));
      });
      const timer = setTimeout(() => {
        req.destroy();
        reject(noAnswer(ep, this.deadlineMs));
      }, this.deadlineMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
        end(err);
      });
      req.end(payload);
    });
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
    for (const ep of this.endpoints) ep.agent.destroy();
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
