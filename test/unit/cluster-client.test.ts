// The etcd client's JSON mapping and its failure handling, against a stand-in for etcd's JSON
// gateway on a unix socket (the answers copied in shape from etcd 3.4's gateway; the same calls
// against a real etcd: test/e2e/cluster-client.test.ts). Checks the JSON each call sends (base64
// keys, int64 as strings, enum names), how answers with fields left out read, which failures are
// "cluster store unavailable" (and fast) and which are etcd's own errors, and stream framing.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EtcdError, StoreClient, toCompare, toKv, toOp } from '../../src/cluster/client.js';
import { ClusterUnavailableError } from '../../src/errors.js';
import { makeTls } from '../helpers/cluster.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const HEADER = { cluster_id: '1', member_id: '2', revision: '7', raft_term: '2' };

type Handler = (path: string, body: Record<string, unknown>, res: http.ServerResponse) => void;

let dir: string;
let server: http.Server;
let handler: Handler;
const seen: { path: string; body: Record<string, unknown> }[] = [];
const clients: StoreClient[] = [];

function client(o: { failFastMs?: number; endpoints?: string[]; outcomes?: (Error | undefined)[] } = {}): StoreClient {
  const c = new StoreClient({ endpoints: o.endpoints ?? [`unix://${path.join(dir, 'gw.sock')}`] }, {
    ...(o.failFastMs !== undefined ? { failFastMs: o.failFastMs } : {}), onOutcome: (err) => o.outcomes?.push(err),
  });
  clients.push(c);
  return c;
}

function answer(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-gw-'));
  server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      const body = JSON.parse(text) as Record<string, unknown>;
      seen.push({ path: req.url!, body });
      handler(req.url!, body, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(path.join(dir, 'gw.sock'), resolve));
});

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  seen.length = 0;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('JSON sent', () => {
  it('compares: target and result as enum names, the value as a string in the target\'s field, keys and range ends in base64', () => {
    expect(toCompare({ key: '/a/b', target: 'version', op: '=', value: 0 })).toEqual({ key: b64('/a/b'), target: 'VERSION', result: 'EQUAL', version: '0' });
    expect(toCompare({ key: '/a/', prefix: true, target: 'mod', op: '<', value: 12 }))
      .toEqual({ key: b64('/a/'), range_end: b64('/a0'), target: 'MOD', result: 'LESS', mod_revision: '12' });
    expect(toCompare({ key: '/k', target: 'create', op: '>', value: 3 })).toEqual({ key: b64('/k'), target: 'CREATE', result: 'GREATER', create_revision: '3' });
    expect(toCompare({ key: '/k', target: 'lease', op: '!=', value: '7668682709604220168' }))
      .toEqual({ key: b64('/k'), target: 'LEASE', result: 'NOT_EQUAL', lease: '7668682709604220168' });
  });

  it('ops: put (value as JSON, lease ID as given), delete and get of a key or a prefix, keys only', () => {
    expect(toOp({ put: '/k', value: { a: 1 }, lease: '7668682709604220168' }))
      .toEqual({ request_put: { key: b64('/k'), value: b64('{"a":1}'), lease: '7668682709604220168' } });
    expect(toOp({ put: '/k', value: 'x' })).toEqual({ request_put: { key: b64('/k'), value: b64('"x"') } });
    expect(toOp({ del: '/p/', prefix: true })).toEqual({ request_delete_range: { key: b64('/p/'), range_end: b64('/p0') } });
    expect(toOp({ get: '/k' })).toEqual({ request_range: { key: b64('/k') } });
    expect(toOp({ get: '/p/', prefix: true, keysOnly: true })).toEqual({ request_range: { key: b64('/p/'), range_end: b64('/p0'), keys_only: true } });
  });

  it('a key past ASCII goes as its UTF-8 bytes in base64 and reads back the same', () => {
    const key = '/t/é☃';
    expect(toOp({ get: key })).toEqual({ request_range: { key: Buffer.from(key, 'utf8').toString('base64') } });
    expect(toKv({ key: Buffer.from(key, 'utf8').toString('base64') }).key).toBe(key);
  });
});

describe('answers read', () => {
  it('a kv with its default fields left out: empty value, revisions and version 0, lease "0"', () => {
    expect(toKv({ key: b64('/k') })).toEqual({ key: '/k', value: Buffer.alloc(0), createRevision: 0, modRevision: 0, version: 0, lease: '0' });
    expect(toKv({ key: b64('/k'), value: b64('{}'), create_revision: '5', mod_revision: '9', version: '3', lease: '7668682709604220168' }))
      .toEqual({ key: '/k', value: Buffer.from('{}'), createRevision: 5, modRevision: 9, version: 3, lease: '7668682709604220168' });
  });

  it('range, count, txn, leases and compaction send their endpoint and body, and read int64 strings and left-out fields', async () => {
    handler = (p, _body, res) => {
      if (p === '/v3/kv/range') answer(res, 200, { header: HEADER, kvs: [{ key: b64('/p/a'), create_revision: '3', mod_revision: '4', version: '2', value: b64('1') }], count: '1' });
      else if (p === '/v3/kv/txn') answer(res, 200, { header: HEADER, responses: [{ response_put: { header: { revision: '7' } } }, { response_range: { header: { revision: '6' } } }] });
      else if (p === '/v3/lease/grant') answer(res, 200, { header: HEADER, ID: '7668682709604220168', TTL: '5' });
      else if (p === '/v3/lease/timetolive') answer(res, 200, { header: HEADER, ID: '12345', TTL: '-1' });
      else answer(res, 200, { header: HEADER });
    };
    const c = client();
    expect(await c.range('/p/')).toEqual({ revision: 7, kvs: [{ key: '/p/a', value: Buffer.from('1'), createRevision: 3, modRevision: 4, version: 2, lease: '0' }] });
    expect(seen.pop()).toEqual({ path: '/v3/kv/range', body: { key: b64('/p/'), range_end: b64('/p0') } });
    expect(await c.count('/p/')).toBe(1);
    expect(seen.pop()!.body).toEqual({ key: b64('/p/'), range_end: b64('/p0'), count_only: true });
    // succeeded left out (false); a get op with no kvs reads as an empty list.
    expect(await c.txn('t', [{ key: '/k', target: 'version', op: '=', value: 0 }], [{ put: '/k', value: 1 }], [{ get: '/k' }]))
      .toEqual({ succeeded: false, revision: 7, reads: [[]] });
    expect(seen.pop()).toEqual({
      path: '/v3/kv/txn',
      body: { compare: [{ key: b64('/k'), target: 'VERSION', result: 'EQUAL', version: '0' }], success: [{ request_put: { key: b64('/k'), value: b64('1') } }], failure: [{ request_range: { key: b64('/k') } }] },
    });
    expect(await c.leaseGrant(5)).toBe('7668682709604220168');
    expect(seen.pop()!.body).toEqual({ TTL: '5' });
    expect(await c.leaseTtl('12345')).toEqual({ ttl: -1, grantedTtl: 0 });
    expect(seen.pop()!.body).toEqual({ ID: '12345' });
    await c.leaseRevoke('12345');
    expect(seen.pop()).toEqual({ path: '/v3/lease/revoke', body: { ID: '12345' } });
    await c.compact(42);
    expect(seen.pop()).toEqual({ path: '/v3/kv/compaction', body: { revision: '42', physical: true } });
  });

  it('a stream\'s single answer (lease keep-alive) is unwrapped from its result', async () => {
    handler = (_p, _b, res) => answer(res, 200, { result: { header: HEADER, ID: '1', TTL: '5' } });
    expect(await client().post('/v3/lease/keepalive', { ID: '1' })).toEqual({ header: HEADER, ID: '1', TTL: '5' });
  });
});

describe('failures', () => {
  it('etcd\'s own error (e.g. lease not found, HTTP 404) is an EtcdError with its code and message, not "unavailable"', async () => {
    handler = (_p, _b, res) => answer(res, 404, { error: 'etcdserver: requested lease not found', message: 'etcdserver: requested lease not found', code: 5 });
    const outcomes: (Error | undefined)[] = [];
    const err = await client({ outcomes }).leaseRevoke('1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EtcdError);
    expect(err).toMatchObject({ code: 5, message: 'etcdserver: requested lease not found' });
    expect(outcomes).toEqual([]);
  });

  it('compaction (code 11, HTTP 400) is etcd\'s error too', async () => {
    handler = (_p, _b, res) => answer(res, 400, { error: 'etcdserver: mvcc: required revision has been compacted', message: 'etcdserver: mvcc: required revision has been compacted', code: 11 });
    await expect(client().compact(1)).rejects.toMatchObject({ name: 'EtcdError', code: 11, message: 'etcdserver: mvcc: required revision has been compacted' });
  });

  it('etcd unavailable (code 14, HTTP 503) or a 5xx without JSON: "cluster store unavailable", told to onOutcome and to onUnavailable', async () => {
    const outcomes: (Error | undefined)[] = [];
    const c = client({ outcomes });
    let told = 0;
    c.onUnavailable(() => told++);
    handler = (_p, _b, res) => answer(res, 503, { error: 'etcdserver: request timed out', message: 'etcdserver: request timed out', code: 14 });
    // The store and why, never the call's step or key (a user reads it under what they asked for).
    await expect(c.get('/k')).rejects.toThrow(new ClusterUnavailableError(`unix://${path.join(dir, 'gw.sock')} does not answer (etcdserver: request timed out)`));
    handler = (_p, _b, res) => res.writeHead(502).end('bad gateway');
    await expect(c.get('/k')).rejects.toBeInstanceOf(ClusterUnavailableError);
    expect(outcomes.map((e) => e?.name)).toEqual(['ClusterUnavailableError', 'ClusterUnavailableError']);
    expect(told).toBe(2);
  });

  it('no answer: unavailable after the 1 s try deadline (one endpoint), within the call\'s budget, and the next call works', async () => {
    handler = () => undefined;
    const c = client({ failFastMs: 1500 });
    const t0 = Date.now();
    const err = await c.get('/k').catch((e: unknown) => e as Error);
    const took = Date.now() - t0;
    expect(err).toBeInstanceOf(ClusterUnavailableError);
    expect((err as Error).message).toMatch(/^cluster store unavailable: unix:\/\/.*gw\.sock does not answer \(no answer from unix:\/\/.*gw\.sock within 1000 ms\)$/);
    expect(took).toBeGreaterThanOrEqual(950);
    expect(took).toBeLessThan(1500);
    handler = (_p, _b, res) => answer(res, 200, { header: HEADER });
    expect(await c.get('/k')).toEqual({ revision: 7 });
  });

  it('an endpoint not there is skipped for the next one; none there is unavailable at once', async () => {
    handler = (_p, _b, res) => answer(res, 200, { header: HEADER });
    const missing = `unix://${path.join(dir, 'none.sock')}`;
    expect(await client({ endpoints: [missing, `unix://${path.join(dir, 'gw.sock')}`] }).get('/k')).toEqual({ revision: 7 });
    const t0 = Date.now();
    await expect(client({ endpoints: [missing] }).get('/k')).rejects.toThrow(/^cluster store unavailable: unix:\/\/.*none\.sock does not answer \(connect ENOENT/);
    expect(Date.now() - t0).toBeLessThan(500);
  });

  it('a kept-alive connection the server closed meanwhile: the call goes through on a new one', async () => {
    handler = (_p, _b, res) => answer(res, 200, { header: HEADER });
    const c = client();
    expect(await c.get('/a')).toEqual({ revision: 7 });
    server.closeIdleConnections();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await c.get('/b')).toEqual({ revision: 7 });
  });
});

describe('streams', () => {
  it('newline-separated results split anywhere across chunks arrive whole and in order; an error object ends the stream', async () => {
    const lines = [{ result: { created: true } }, { result: { events: [{ kv: { key: b64('/k') } }] } }, { error: { grpc_code: 14, http_code: 503, message: 'etcdserver: no leader' } }];
    const text = lines.map((l) => `${JSON.stringify(l)}\n`).join('');
    handler = (_p, _b, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      // Cut into 7-byte chunks, each flushed on its own.
      let i = 0;
      const next = () => {
        if (i >= text.length) return;
        res.write(text.slice(i, i + 7));
        i += 7;
        setTimeout(next, 1);
      };
      next();
    };
    const results: unknown[] = [];
    const ended = new Promise<Error | undefined>((resolve) => {
      void client().stream('/v3/watch', { create_request: { key: b64('/k') } }, { onResult: (r) => results.push(r), onEnd: resolve });
    });
    const err = await ended;
    expect(results).toEqual([{ created: true }, { events: [{ kv: { key: b64('/k') } }] }]);
    expect(err).toMatchObject({ name: 'EtcdError', code: 14, message: 'etcdserver: no leader' });
    expect(seen.pop()).toEqual({ path: '/v3/watch', body: { create_request: { key: b64('/k') } } });
  });

  it('a stream the server ends is reported once; one closed here is reported never', async () => {
    handler = (_p, _b, res) => {
      res.writeHead(200);
      res.write(`${JSON.stringify({ result: { created: true } })}\n`);
      setTimeout(() => res.end(), 20);
    };
    const ends: (Error | undefined)[] = [];
    await client().stream('/v3/watch', {}, { onResult: () => undefined, onEnd: (e) => ends.push(e) });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(ends).toEqual([undefined]);
    handler = (_p, _b, res) => res.writeHead(200).write(`${JSON.stringify({ result: { created: true } })}\n`);
    const closedEnds: unknown[] = [];
    const s = await client().stream('/v3/watch', {}, { onResult: () => undefined, onEnd: (e) => closedEnds.push(e) });
    s.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(closedEnds).toEqual([]);
  });
});

describe('TLS', () => {
  let tlsServer: https.Server;
  let port: number;
  let good: Awaited<ReturnType<typeof makeTls>>;
  let other: Awaited<ReturnType<typeof makeTls>>;
  const servernames: unknown[] = [];

  beforeAll(async () => {
    fs.mkdirSync(path.join(dir, 'good'));
    fs.mkdirSync(path.join(dir, 'other'));
    [good, other] = await Promise.all([makeTls(path.join(dir, 'good'), '127.0.0.1'), makeTls(path.join(dir, 'other'), '127.0.0.1')]);
    tlsServer = https.createServer({
      cert: fs.readFileSync(good.server.cert), key: fs.readFileSync(good.server.key), ca: fs.readFileSync(good.server.cacert), requestCert: true, rejectUnauthorized: true,
    }, (req, res) => {
      servernames.push((req.socket as unknown as { servername: unknown }).servername);
      req.resume();
      req.on('end', () => answer(res, 200, { header: HEADER }));
    });
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
    port = (tlsServer.address() as AddressInfo).port;
  }, 30_000);

  afterAll(async () => {
    tlsServer.closeAllConnections();
    await new Promise((resolve) => tlsServer.close(resolve));
  });

  const tlsClient = (host: string, files: { cacert: string; cert: string; key: string }) => {
    const c = new StoreClient({ endpoints: [`https://${host}:${port}`], tls: files });
    clients.push(c);
    return c;
  };

  it('reaches a server whose certificate names its IP, with the client certificate; no SNI for an IP', async () => {
    expect(await tlsClient('127.0.0.1', good.client).get('/k')).toEqual({ revision: 7 });
    expect(servernames.pop()).toBe(false);
  });

  it('refuses a server its CA did not sign, and a name the certificate does not hold: unavailable, naming the reason', async () => {
    await expect(tlsClient('127.0.0.1', { ...good.client, cacert: other.client.cacert }).get('/k')).rejects.toThrow(/^cluster store unavailable: etcd:\/\/127\.0\.0\.1:\d+ does not answer \(.*(self.signed|unable to verify|certificate)/i);
    await expect(tlsClient('localhost', good.client).get('/k')).rejects.toThrow(/^cluster store unavailable: etcd:\/\/localhost:\d+ does not answer \(.*localhost/);
  });

  it('without a certificate the server takes (another CA\'s): unavailable', async () => {
    await expect(tlsClient('127.0.0.1', { ...good.client, cert: other.client.cert, key: other.client.key }).get('/k')).rejects.toBeInstanceOf(ClusterUnavailableError);
  });
});
