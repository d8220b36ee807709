// The daemon's unix sockets without root, on real sockets in a temporary directory: clients that
// send slowly are cut within the timeouts while the API keeps answering, a request being handled
// is never cut, connections are capped, every error (fastify's and node's own included) has the
// one shape {error, code}, and a socket never appears at its path with a mode other than 0660.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { openStore, type Store } from '../../src/store/index.js';
import { Ipam } from '../../src/ipam/index.js';
import { Controller } from '../../src/controller/controller.js';
import { DriverRegistry } from '../../src/contract/driver.js';
import type { SandboxKernel } from '../../src/controller/sandbox-kernel.js';
import { buildManagementApi } from '../../src/api/management.js';
import { buildPluginApp } from '../../src/api/docker/index.js';
import { listenUnix, type SocketLimits } from '../../src/api/socket.js';

const logger = pino({ level: 'silent' });
const LIMITS: SocketLimits = { headersTimeoutMs: 400, requestTimeoutMs: 800, keepAliveTimeoutMs: 300, maxConnections: 64 };

let dir: string;
let store: Store;
let apps: FastifyInstance[];

function controller(): Controller {
  const ipam = new Ipam(store, { environment: { linkRoutes: () => [], nameservers: () => [] } });
  const kernel = { exists: () => true } as unknown as SandboxKernel;
  return new Controller({ store, ipam, drivers: new DriverRegistry(), kernel, logger });
}

async function management(opts: { limits?: SocketLimits; reloadMs?: number } = {}): Promise<string> {
  const api = await buildManagementApi({
    controller: controller(), logger, limits: opts.limits ?? LIMITS,
    reloadFirewall: async () => {
      await new Promise((r) => setTimeout(r, opts.reloadMs ?? 0));
      return { backend: 'none', removedOwners: [], notes: [] };
    },
  });
  apps.push(api);
  const sock = path.join(dir, 'cnmkit.sock');
  await listenUnix(api, sock);
  return sock;
}

interface Raw {
  closedAfterMs: Promise<number>;
  data: () => string;
  socket: net.Socket;
}

/** A raw connection that writes text (maybe a part of a request) and records what comes back. */
function rawConnect(sock: string, text: string): Raw {
  const started = Date.now();
  const socket = net.connect(sock);
  let data = '';
  socket.on('data', (d) => (data += d.toString()));
  socket.on('error', () => undefined);
  const closedAfterMs = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now() - started)));
  if (text) socket.write(text);
  return { closedAfterMs, data: () => data, socket };
}

/** One whole request through node's client; resolves with status, body and how long it took. */
function request(sock: string, method: string, url: string, body?: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: sock, agent: false, method, path: url, headers: { ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}), ...headers } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, ms: Date.now() - started }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** 30 slow clients: silent, headers cut short, body cut short (Content-Length 100, 10 bytes sent). */
function slowClients(sock: string): Raw[] {
  const partialHeaders = 'POST /v1/networks HTTP/1.1\r\nHost: x\r\nContent-Le';
  const partialBody = 'POST /v1/networks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"name":"a';
  return Array.from({ length: 30 }, (_, i) => rawConnect(sock, ['', partialHeaders, partialBody][i % 3]!));
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-sockets-'));
  store = openStore(':memory:');
  apps = [];
});
afterEach(async () => {
  await Promise.all(apps.map((a) => a.close()));
  store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('socket limits', () => {
  it('closes 30 half-sent requests within the timeouts with a 408 in the one error shape, and answers others meanwhile', async () => {
    const sock = await management();
    const slow = slowClients(sock);
    const answered = await request(sock, 'GET', '/v1/version');
    expect(answered.status).toBe(200);
    expect(answered.ms).toBeLessThan(200);
    const closed = await Promise.all(slow.map((s) => s.closedAfterMs));
    // Deadline + one check interval (100 ms here) + slack for a loaded machine.
    for (const ms of closed) expect(ms).toBeLessThan(LIMITS.requestTimeoutMs + 600);
    for (const s of slow) {
      expect(s.data()).toMatch(/^HTTP\/1\.1 408 /);
      expect(JSON.parse(s.data().split('\r\n\r\n')[1]!)).toEqual({ error: expect.stringMatching(/not received in time/), code: 'ERR_REQUEST_TIMEOUT' });
    }
  });

  it('never cuts a request that is being handled, however long it takes', async () => {
    const sock = await management({ reloadMs: 3 * LIMITS.requestTimeoutMs });
    const r = await request(sock, 'POST', '/v1/firewall/reload');
    expect(r.status).toBe(200);
    expect(r.ms).toBeGreaterThanOrEqual(3 * LIMITS.requestTimeoutMs - 50);
    expect(JSON.parse(r.body)).toMatchObject({ backend: 'none' });
  });

  it('closes connections over the cap at once, and serves again once below it', async () => {
    const sock = await management({ limits: { ...LIMITS, headersTimeoutMs: 10_000, requestTimeoutMs: 10_000, maxConnections: 5 } });
    const idle = Array.from({ length: 5 }, () => rawConnect(sock, ''));
    await new Promise((r) => setTimeout(r, 100));
    const over = rawConnect(sock, 'GET /v1/version HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await over.closedAfterMs).toBeLessThan(1000);
    expect(over.data()).toBe('');
    for (const c of idle) c.socket.destroy();
    await Promise.all(idle.map((c) => c.closedAfterMs));
    await new Promise((r) => setTimeout(r, 50));
    expect((await request(sock, 'GET', '/v1/version')).status).toBe(200);
  });

  it('cuts slow clients of a Docker plugin socket too, answering {"Err"}', async () => {
    const app = await buildPluginApp({ logger, handlers: {}, limits: LIMITS });
    apps.push(app);
    const sock = path.join(dir, 'plugin.sock');
    await listenUnix(app, sock);
    const slow = slowClients(sock).slice(0, 6);
    const act = await request(sock, 'POST', '/Plugin.Activate', '');
    expect(JSON.parse(act.body)).toEqual({ Implements: [] });
    for (const ms of await Promise.all(slow.map((s) => s.closedAfterMs))) expect(ms).toBeLessThan(LIMITS.requestTimeoutMs + 600);
    expect(JSON.parse(slow[0]!.data().split('\r\n\r\n')[1]!)).toEqual({ Err: expect.stringMatching(/not received in time/) });
  });
});

describe('one error shape', () => {
  it('answers unknown routes, bad JSON, empty JSON, a huge body, an unknown media type and bad HTTP with {error, code}', async () => {
    const sock = await management();
    const json = { 'content-type': 'application/json' };
    const cases: [string, string, string | undefined, Record<string, string>, number, string][] = [
      ['GET', '/nope', undefined, {}, 404, 'ERR_NOT_FOUND'],
      ['PUT', '/v1/networks', '{}', json, 404, 'ERR_NOT_FOUND'],
      ['POST', '/v1/networks', '{bad', json, 400, 'ERR_INVALID_ARGUMENT'],
      ['POST', '/v1/networks', '', json, 400, 'ERR_INVALID_ARGUMENT'],
      ['POST', '/v1/networks', 'x'.repeat(2 * 1024 * 1024), json, 413, 'ERR_BODY_TOO_LARGE'],
      ['POST', '/v1/networks', '<a/>', { 'content-type': 'application/xml' }, 415, 'ERR_UNSUPPORTED_MEDIA_TYPE'],
      // Refused by fastify's router before any handler (found by the reliability fuzzer).
      ['GET', `/v1/networks/${'a'.repeat(101)}`, undefined, {}, 414, 'ERR_URI_TOO_LONG'],
      ['DELETE', '/v1/sandboxes/%zz', undefined, {}, 400, 'ERR_INVALID_ARGUMENT'],
    ];
    for (const [method, url, body, headers, status, code] of cases) {
      const r = await request(sock, method, url, body, headers);
      expect([method, url, r.status]).toEqual([method, url, status]);
      const parsed = JSON.parse(r.body) as Record<string, unknown>;
      expect(Object.keys(parsed).sort()).toEqual(expect.arrayContaining(['code', 'error']));
      expect(Object.keys(parsed).every((k) => ['error', 'code', 'field'].includes(k))).toBe(true);
      expect(parsed.code).toBe(code);
    }
    const garbage = rawConnect(sock, 'NOT HTTP AT ALL\r\n\r\n');
    await garbage.closedAfterMs;
    expect(garbage.data()).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(garbage.data().split('\r\n\r\n')[1]!)).toEqual({ error: expect.stringMatching(/malformed HTTP/), code: 'ERR_INVALID_ARGUMENT' });
  });
});

describe('bad HTTP after a good request on one connection', () => {
  it('answers the good request first: the refusal of the bad one waits for it (found by the reliability fuzzer)', async () => {
    const sock = await management();
    const c = rawConnect(sock, 'GET /v1/version HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP AT ALL\r\n\r\n');
    await c.closedAfterMs;
    expect(c.data()).toMatch(/^HTTP\/1\.1 200 /);
    expect(c.data()).toMatch(/"version":/);
    expect(c.data()).toMatch(/HTTP\/1\.1 400 [^]*malformed HTTP/);
  });
});

/** A client in a process of its own (as the CLI or a fuzzer is): writes one request and prints what came back before the close. */
const WRITER = `const s = require('node:net').connect(process.argv[1]); const chunks = [];
s.on('data', (d) => chunks.push(d)); s.on('error', () => undefined);
s.on('close', () => process.stdout.write(Buffer.concat(chunks)));
s.write(process.argv[2] + 'x'.repeat(Number(process.argv[3])) + process.argv[4]);`;

function writeFromAnotherProcess(sock: string, head: string, padding: number, tail: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', WRITER, sock, head, String(padding), tail], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', () => resolve(out));
  });
}

describe('an answer given before the body is read', () => {
  // The router answers a name over 100 characters (414), an unknown route (404) or media type (415)
  // before reading the body. Closing then, with the client still writing a large body, reset the
  // connection and the client lost the answer (the reliability soak: POST /v1/sandboxes/{ref}/config).
  it('reaches a client still writing a large body, every time', async () => {
    const sock = await management();
    const padding = 900_000;
    const cases: [string, string, number][] = [
      [`/v1/networks/${'a'.repeat(150)}/connect`, 'application/json', 414],
      ['/v1/nope', 'application/json', 404],
      ['/v1/networks', 'application/xml', 415],
    ];
    for (const [url, type, status] of cases) {
      const seen: string[] = [];
      const head = `POST ${url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: ${type}\r\nContent-Length: ${padding + 15}\r\n\r\n{"sandbox": "`;
      for (let i = 0; i < 10; i++) {
        const answer = await writeFromAnotherProcess(sock, head, padding, '"}');
        seen.push(/^HTTP\/1\.1 (\d+)/.exec(answer)?.[1] ?? 'closed without an answer');
      }
      expect([url.slice(0, 30), seen]).toEqual([url.slice(0, 30), Array(10).fill(String(status))]);
    }
  });
});

describe('one error shape on a plugin socket', () => {
  it('answers a path the router refuses with {"Err"}', async () => {
    const app = await buildPluginApp({ logger, handlers: {}, limits: LIMITS });
    apps.push(app);
    const sock = path.join(dir, 'plugin-paths.sock');
    await listenUnix(app, sock);
    for (const url of ['/%zz', '/NetworkDriver.%E0%A4%A']) {
      const r = await request(sock, 'POST', url, '{}');
      expect([url, r.status]).toEqual([url, 400]);
      expect(JSON.parse(r.body)).toEqual({ Err: expect.stringMatching(/^path: /) });
    }
  });
});

describe('socket file', () => {
  it('never shows the socket at its path with a mode other than 0660, and removes it on close', async () => {
    const sock = path.join(dir, 'watched.sock');
    const stop = path.join(os.tmpdir(), `cnmkit-poll-stop-${process.pid}`);
    // Another process stats the path as fast as it can until told to stop, counting each mode seen.
    const poller = `const fs=require('fs');const seen={};for(let i=0;;i++){
      if(i%1000===0&&fs.existsSync(${JSON.stringify(stop)}))break;
      try{const m=(fs.lstatSync(${JSON.stringify(sock)}).mode&0o777).toString(8);seen[m]=(seen[m]||0)+1}catch{}}
      process.stdout.write(JSON.stringify(seen))`;
    const child = spawn(process.execPath, ['-e', poller], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((r) => child.on('close', r));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 40; i += 1) {
      const api = await buildManagementApi({ controller: controller(), logger, reloadFirewall: async () => ({ backend: 'none', removedOwners: [], notes: [] }) });
      await listenUnix(api, sock);
      expect(fs.statSync(sock).mode & 0o777).toBe(0o660);
      expect((await request(sock, 'GET', '/v1/version')).status).toBe(200);
      await api.close();
      expect(fs.existsSync(sock)).toBe(false);
    }
    fs.writeFileSync(stop, '');
    await exited;
    fs.rmSync(stop);
    const seen = JSON.parse(out) as Record<string, number>;
    expect(seen['660']).toBeGreaterThan(0);
    expect(Object.keys(seen)).toEqual(['660']);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
