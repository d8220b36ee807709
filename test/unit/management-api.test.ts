// The management API's observability and guards, without root (`inject`): Prometheus metrics,
// /health, and sandboxes that `cnmkit run` uses; an in-memory store, a fake driver and fakes for the
// firewall, kernel and proxy.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { openStore, DB_FILE, type Store } from '../../src/store/index.js';
import { Ipam } from '../../src/ipam/index.js';
import { Controller } from '../../src/controller/controller.js';
import { DriverRegistry, type Driver } from '../../src/contract/driver.js';
import type { SandboxKernel } from '../../src/controller/sandbox-kernel.js';
import { NoneBackend, type FirewallBackend } from '../../src/firewall/index.js';
import { buildManagementApi, MANAGEMENT_AJV_OPTIONS } from '../../src/api/management.js';
import * as schemas from '../../src/api/schemas.js';
import { Ajv } from 'ajv';
import { DaemonMetrics, type ProxyStats } from '../../src/api/metrics.js';
import { observeController, observeFirewall, observeStore } from '../../src/api/instrument.js';
import { healthChecker, type HealthDeps } from '../../src/api/health.js';
import { runLabels } from '../../src/api/run-label.js';
import { buildDockerPluginApi } from '../../src/api/docker/index.js';
import { bornInSandbox } from './fake-kernel.js';

const logger = pino({ level: 'silent' });

const kernel: SandboxKernel = {
  namedPath: (name) => `/fake/netns/${name}`, createNamed: async () => undefined, deleteNamed: async () => false, release: () => undefined,
  exists: () => true, resolveExisting: (ref) => ref, apply: async (_sb, info) => info.dstName ?? info.src.name,
};

function fakeDriver(failCreate: { on: boolean }): Driver<object> {
  return {
    name: 'fake', scope: 'local', usesIpam: true, parse: () => ({}),
    async createNetwork() {
      if (failCreate.on) throw new Error('createNetwork failed on purpose');
    },
    async deleteNetwork() {}, async createEndpoint() { return {}; }, async deleteEndpoint() {},
    async join() { return bornInSandbox('eth0'); }, async leave() {}, async check() { return []; },
  };
}

/** One sample of a metric in the exposition text (labels given as written, in order). */
function sample(text: string, metric: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${metric} `));
  return line === undefined ? undefined : Number(line.slice(metric.length + 1));
}

let store: Store;
let api: FastifyInstance;
let metrics: DaemonMetrics;
let failCreate: { on: boolean };
let calls: string[];
let proxy: ProxyStats;

async function build(health?: HealthDeps): Promise<void> {
  const ipam = new Ipam(store, { environment: { linkRoutes: () => [], nameservers: () => [] } });
  const drivers = new DriverRegistry();
  drivers.register(fakeDriver(failCreate));
  const controller = new Controller({ store, ipam, drivers, kernel, logger, defaultDriver: 'fake' });
  metrics = new DaemonMetrics();
  observeStore(store, metrics);
  metrics.collectFrom({
    store,
    leases: () => [{ proto: 'tcp', hostPort: 8080, hostPortEnd: 8089 }, { proto: 'udp', hostPort: 53, hostPortEnd: 53 }],
    proxyStats: () => proxy,
  });
  const firewall = observeFirewall(new NoneBackend(logger), metrics);
  api = await buildManagementApi({
    controller: observeController(controller, metrics, { defaultDriver: 'fake', drivers: new Set(drivers.names()) }), logger, metrics,
    reloadFirewall: async () => {
      calls.push('reload');
      await firewall.addNetwork({ id: 'n'.repeat(64), bridge: 'br0', subnets4: [], subnets6: [], icc: true, masquerade: true, internal: false });
      return { backend: 'none', removedOwners: [], notes: [] };
    },
    ...(health ? { health: healthChecker(health) } : {}),
  });
}

beforeEach(() => {
  store = openStore(':memory:');
  failCreate = { on: false };
  calls = [];
  proxy = { tcpConnections: 3, udpFlows: 2, bytesToContainer: 1000, bytesFromContainer: 2500, limitHits: { per_port: 4, total: 1 } };
});
afterEach(() => store.close());

describe('route schemas', () => {
  it('are accepted by ajv\'s meta-schema (the daemon skips that check for speed)', async () => {
    await build();
    const ajv = new Ajv({ ...MANAGEMENT_AJV_OPTIONS, validateSchema: true, strict: false });
    const doc = (await api.inject({ method: 'GET', url: '/openapi.json' })).json() as { paths: Record<string, Record<string, unknown>> };
    const found: unknown[] = Object.values(schemas);
    // Every `schema` object of the OpenAPI document: request bodies, parameters, responses.
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) (k === 'schema' ? found.push(x) : walk(x));
    };
    walk(doc.paths);
    expect(found.length).toBeGreaterThan(30);
    for (const s of found) expect(ajv.validateSchema(s as object), `${JSON.stringify(s)}: ${ajv.errorsText(ajv.errors)}`).toBe(true);
    expect(ajv.validateSchema({ type: 'object', properties: { a: { type: 'nonsense' } } })).toBe(false);
    await api.close();
  });
});

describe('GET /metrics', () => {
  it('counts and times operations per operation and driver, errors per class, and reads gauges at scrape time', async () => {
    await build();
    expect((await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'n1', subnet: '198.18.5.0/24' } })).statusCode).toBe(201);
    failCreate.on = true;
    expect((await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'n2', subnet: '198.18.6.0/24' } })).statusCode).toBe(500);
    expect((await api.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'n3', driver: 'no-such-driver' } })).statusCode).toBe(400);
    expect((await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 's1' } })).statusCode).toBe(201);
    expect((await api.inject({ method: 'POST', url: '/v1/networks/n1/connect', payload: { sandbox: 's1' } })).statusCode).toBe(201);
    expect((await api.inject({ method: 'GET', url: '/no/such/route' })).statusCode).toBe(404);
    expect((await api.inject({ method: 'POST', url: '/v1/firewall/reload' })).statusCode).toBe(200);
    const r = await api.inject({ method: 'GET', url: '/metrics' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const t = r.body;
    expect(sample(t, 'cnmkit_operations_total{operation="network_create",driver="fake",result="ok"}')).toBe(1);
    expect(sample(t, 'cnmkit_operations_total{operation="network_create",driver="fake",result="error"}')).toBe(1);
    expect(sample(t, 'cnmkit_operations_total{operation="network_create",driver="unknown",result="error"}')).toBe(1);
    expect(sample(t, 'cnmkit_operations_total{operation="sandbox_create",driver="",result="ok"}')).toBe(1);
    expect(sample(t, 'cnmkit_operations_total{operation="connect",driver="fake",result="ok"}')).toBe(1);
    expect(sample(t, 'cnmkit_operation_duration_seconds_count{operation="connect",driver="fake"}')).toBe(1);
    expect(sample(t, 'cnmkit_api_errors_total{api="management",class="internal",code="ERR_INTERNAL"}')).toBe(1);
    expect(sample(t, 'cnmkit_api_errors_total{api="management",class="bad-request",code="ERR_INVALID_ARGUMENT"}')).toBe(1);
    expect(sample(t, 'cnmkit_api_errors_total{api="management",class="not-found",code="ERR_NOT_FOUND"}')).toBe(1);
    expect(sample(t, 'cnmkit_objects{kind="network"}')).toBe(store.networks.list().length);
    expect(sample(t, 'cnmkit_objects{kind="sandbox"}')).toBe(1);
    expect(sample(t, 'cnmkit_objects{kind="endpoint"}')).toBe(1);
    expect(sample(t, 'cnmkit_published_ports{proto="tcp"}')).toBe(10);
    expect(sample(t, 'cnmkit_published_ports{proto="udp"}')).toBe(1);
    expect(sample(t, 'cnmkit_proxy_connections{proto="tcp"}')).toBe(3);
    expect(sample(t, 'cnmkit_proxy_connections{proto="udp"}')).toBe(2);
    expect(sample(t, 'cnmkit_proxy_bytes_total{direction="to_container"}')).toBe(1000);
    expect(sample(t, 'cnmkit_proxy_bytes_total{direction="from_container"}')).toBe(2500);
    expect(sample(t, 'cnmkit_proxy_limit_hits_total{limit="per_port"}')).toBe(4);
    expect(sample(t, 'cnmkit_firewall_apply_duration_seconds_count{backend="none",operation="add_network",result="ok"}')).toBe(1);
    expect(sample(t, 'cnmkit_store_transaction_duration_seconds_count')).toBeGreaterThan(0);
    expect(t).toMatch(/^process_open_fds \d+/m);
    // A scrape later reads the sources again: totals follow them, they are not added twice.
    proxy = { ...proxy, bytesToContainer: 1500, tcpConnections: 0 };
    const t2 = (await api.inject({ method: 'GET', url: '/metrics' })).body;
    expect(sample(t2, 'cnmkit_proxy_bytes_total{direction="to_container"}')).toBe(1500);
    expect(sample(t2, 'cnmkit_proxy_connections{proto="tcp"}')).toBe(0);
    expect(calls).toEqual(['reload']);
  });

  it('keeps one registry per daemon: two in one process count apart', async () => {
    await build();
    const first = metrics;
    await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 'a' } });
    const firstStore = store;
    store = openStore(':memory:');
    await build();
    expect(metrics).not.toBe(first);
    const t = (await api.inject({ method: 'GET', url: '/metrics' })).body;
    expect(sample(t, 'cnmkit_operations_total{operation="sandbox_create",driver="",result="ok"}')).toBeUndefined();
    expect(sample(await first.registry.metrics(), 'cnmkit_operations_total{operation="sandbox_create",driver="",result="ok"}')).toBe(1);
    firstStore.close();
  });
});

describe('Docker plugin metrics', () => {
  it('counts and times each call by method, unknown paths under one label, and errors by class', async () => {
    const m = new DaemonMetrics();
    const ipam = new Ipam(store, { environment: { linkRoutes: () => [], nameservers: () => [] } });
    const plugin = await buildDockerPluginApi({ logger, ipam, metrics: m });
    const call = (url: string, payload: string) => plugin.inject({ method: 'POST', url, payload });
    expect((await call('/Plugin.Activate', '')).statusCode).toBe(200);
    expect((await call('/IpamDriver.RequestPool', '{"AddressSpace":"LocalDefault","Pool":"198.18.70.0/24","SubPool":"","Options":{},"V6":false}')).statusCode).toBe(200);
    expect((await call('/IpamDriver.RequestAddress', '{"PoolID":"LocalDefault/198.18.99.0/24","Address":"","Options":{}}')).statusCode).toBe(500);
    expect((await call('/IpamDriver.ReleasePool', '{not json')).statusCode).toBe(400);
    expect((await call('/Nope.Call', '')).statusCode).toBe(404);
    expect((await call('/Other.Call', '')).statusCode).toBe(404);
    const t = await m.registry.metrics();
    expect(sample(t, 'cnmkit_plugin_requests_total{method="Plugin.Activate",result="ok"}')).toBe(1);
    expect(sample(t, 'cnmkit_plugin_requests_total{method="IpamDriver.RequestPool",result="ok"}')).toBe(1);
    expect(sample(t, 'cnmkit_plugin_requests_total{method="IpamDriver.RequestAddress",result="error"}')).toBe(1);
    expect(sample(t, 'cnmkit_plugin_requests_total{method="unknown",result="error"}')).toBe(2);
    expect(sample(t, 'cnmkit_plugin_request_duration_seconds_count{method="IpamDriver.RequestPool"}')).toBe(1);
    expect(sample(t, 'cnmkit_api_errors_total{api="plugin",class="not-found",code="ERR_NOT_FOUND"}')).toBe(1);
    expect(sample(t, 'cnmkit_api_errors_total{api="plugin",class="bad-request",code="ERR_INVALID_ARGUMENT"}')).toBe(1);
    await plugin.close();
  });
});

describe('GET /health', () => {
  const okFirewall: FirewallBackend = new NoneBackend(logger);

  it('answers 200 with every check when the store takes writes, the firewall and the kernel answer', async () => {
    await build({ store, firewall: okFirewall, kernel: async () => ({}) });
    const r = await api.inject({ method: 'GET', url: '/health' });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ status: 'ok', checks: { store: { status: 'ok' }, firewall: { status: 'ok' }, kernel: { status: 'ok' } } });
    expect(store.networks.list()).toEqual([]);
  });

  it('answers 503 naming the failed check: a locked store, a failing firewall, a kernel that does not answer', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-health-'));
    try {
      store.close();
      store = openStore(dir);
      const failing = { listOwners: async () => { throw new Error('nft list table exited 1: nope'); } };
      await build({ store, firewall: failing, kernel: () => new Promise(() => undefined), timeoutMs: 300 });
      const locker = new Database(path.join(dir, DB_FILE));
      locker.exec('BEGIN EXCLUSIVE');
      const r = await api.inject({ method: 'GET', url: '/health' });
      locker.exec('ROLLBACK');
      locker.close();
      expect(r.statusCode).toBe(503);
      const body = r.json();
      expect(body).toMatchObject({ status: 'unavailable', code: 'ERR_UNHEALTHY', checks: { store: { status: 'failed' }, firewall: { status: 'failed' }, kernel: { status: 'failed' } } });
      expect(body.checks.store.error).toMatch(/locked/);
      expect(body.checks.kernel.error).toMatch(/no answer within 300 ms/);
      expect(body.error).toMatch(/^unhealthy: store \(.*\), firewall \(nft list table exited 1: nope\), kernel \(/);
      const again = await api.inject({ method: 'GET', url: '/health' });
      expect(again.json().checks.store).toMatchObject({ status: 'ok' });
    } finally {
      store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('sandboxes that `cnmkit run` uses', () => {
  it('refuses to remove one while its run lives, unless forced; a dead or reused pid does not hold it', async () => {
    await build();
    await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 'used', labels: runLabels(process.pid) } });
    const refused = await api.inject({ method: 'DELETE', url: '/v1/sandboxes/used' });
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toEqual({ code: 'ERR_SANDBOX_IN_USE', error: expect.stringContaining(`sandbox used is in use by \`cnmkit run\` (pid ${process.pid})`) });
    expect(store.sandboxes.getByName('used')).toBeDefined();
    expect((await api.inject({ method: 'DELETE', url: '/v1/sandboxes/used?force=true' })).statusCode).toBe(204);
    expect(store.sandboxes.getByName('used')).toBeUndefined();

    const dead = spawnSync('true');
    await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 'gone', labels: { 'cnmkit.run.pid': String(dead.pid), 'cnmkit.run.start': '1' } } });
    expect((await api.inject({ method: 'DELETE', url: '/v1/sandboxes/gone' })).statusCode).toBe(204);
    await api.inject({ method: 'POST', url: '/v1/sandboxes', payload: { name: 'reused', labels: { ...runLabels(process.pid), 'cnmkit.run.start': '1' } } });
    expect((await api.inject({ method: 'DELETE', url: '/v1/sandboxes/reused' })).statusCode).toBe(204);
    expect((await api.inject({ method: 'DELETE', url: '/v1/sandboxes/x?force=yes' })).json()).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'force' });
  });
});
