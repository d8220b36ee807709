// The transport of the etcd client (src/cluster/client.ts): POSTs to etcd's JSON gateway with
// Node's own http/https, a keep-alive Agent per endpoint (calls) and connections of their own
// (streams). One try per endpoint, each within the deadline; a failure that says nothing about
// etcd's answer (socket errors, a timeout, HTTP 5xx, etcd's transient gRPC codes) moves on to
// the next endpoint. etcd's error answers become EtcdError. A stream is one chunked answer of
// newline-separated {"result": …} or {"error": …} objects.
// Limits: no request is retried on the same endpoint, except once on a kept-alive connection
// that the server had closed meanwhile; a stream has no deadline once open.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { ClusterUnavailableError } from '../errors.js';
import type { ClusterConfig } from './options.js';

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

/** gRPC codes of a transient failure, as the former client (npm etcd3) counted them: cancelled, unknown, deadline, exhausted, aborted, internal, unavailable. */
const UNAVAILABLE_CODES = new Set([1, 2, 4, 8, 10, 13, 14]);

/**
 * A failure on the way to etcd or back (a socket error, a TLS handshake refused, no answer in
 * time, an answer that is not etcd's): says nothing about etcd's state, the next endpoint may do.
 * Keeps the original's message and code.
 */
export class UnreachableError extends Error {
  readonly code: string | undefined;
  constructor(message: string, cause?: unknown) {
    super(message, { cause });
    this.name = 'UnreachableError';
    const code = (cause as { code?: unknown } | undefined)?.code;
    this.code = typeof code === 'string' ? code : undefined;
  }
}

const unreachableFrom = (err: Error): UnreachableError => (err instanceof UnreachableError ? err : new UnreachableError(err.message, err));

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

/** A try that ran out of time (named by StoreClient.call with what it was for). */
function noAnswer(ep: Endpoint, ms: number): UnreachableError {
  return new UnreachableError(`no answer from ${ep.name} within ${ms} ms`);
}

/** A failure that says etcd is not there (the next endpoint may do): unreachable, or etcd's transient error. */
export function unreachable(err: unknown): boolean {
  if (err instanceof EtcdError) return UNAVAILABLE_CODES.has(err.code);
  return err instanceof UnreachableError || err instanceof ClusterUnavailableError;
}

export class Gateway {
  private readonly endpoints: Endpoint[];
  /** The endpoint that answered last: tried first. */
  private preferred = 0;

  constructor(config: Pick<ClusterConfig, 'endpoints' | 'tls'>, private readonly deadlineMs: number) {
    this.endpoints = config.endpoints.map((e) => endpointOf(e, config.tls));
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
            reject(new UnreachableError(`${ep.name}${path}: HTTP ${status}, not etcd's JSON: ${JSON.stringify(text.slice(0, 200))}`));
            return;
          }
          const err = toEtcdError(body);
          if (err) reject(err);
          else if (res.statusCode !== 200) reject(new UnreachableError(`${ep.name}${path}: HTTP ${res.statusCode} without etcd's error`));
          else resolve(((body as { result?: T }).result ?? body) as T);
        });
      });
      const timer = setTimeout(() => fail(noAnswer(ep, this.deadlineMs)), Math.max(0, deadline - Date.now()));
      function fail(cause: Error): void {
        clearTimeout(timer);
        const err = unreachableFrom(cause);
        if (err.code === 'ECONNRESET' && req.reusedSocket) Object.assign(err, { reused: true });
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
          reject(new UnreachableError(`${ep.name}${path}: HTTP ${res.statusCode}`));
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
              end(new UnreachableError(`${ep.name}${path}: not etcd's JSON: ${JSON.stringify(line.slice(0, 200))}`));
              return;
            }
            const err = toEtcdError(msg);
            if (err) end(err);
            else if (msg.result) h.onResult(msg.result);
          }
        });
        res.on('error', (err) => end(unreachableFrom(err)));
        res.on('end', () => end(undefined));
        res.on('close', () => end(new UnreachableError(`${ep.name}${path}: connection closed`)));
      });
      const timer = setTimeout(() => {
        req.destroy();
        reject(noAnswer(ep, this.deadlineMs));
      }, this.deadlineMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(unreachableFrom(err));
        end(unreachableFrom(err));
      });
      req.end(payload);
    });
  }

  /** Closes the idle kept-alive connections (open streams are their owners' to close). */
  close(): void {
    for (const ep of this.endpoints) ep.agent.destroy();
  }
}
