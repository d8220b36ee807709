// The bundle's schemas compiled at build time (scripts/build-schemas.ts) against the run-time
// compile the sources do: the lab's topology validators give the same verdicts and the same ajv
// errors (so `lab` prints the same messages), and the management API answers the same requests
// with the same status and body (request validation errors and response serialization alike).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { parse } from 'yaml';
import { labValidatorsCode, managementSchemasCode } from '../../scripts/build-schemas.js';
import { validatorFor, type LabFormat } from '../../src/lab/schema-validators.js';
import { buildManagementApi } from '../../src/api/management.js';
import { NotFoundError } from '../../src/errors.js';
import type { Precompiled } from '../../src/api/precompiled.js';

const root = path.resolve(import.meta.dirname, '../..');
let dir: string;

/** Imports generated code from a temporary file; its helpers are required from the project. */
async function load<T>(name: string, code: string): Promise<T> {
  const file = path.join(dir, name);
  fs.writeFileSync(file, code.replace('createRequire(import.meta.url)', `createRequire(${JSON.stringify(path.join(root, 'package.json'))})`));
  return (await import(file)) as T;
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-precompiled-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('lab topology validators', () => {
  const examples = fs.readdirSync(path.join(root, 'examples/labs')).map((f) => parse(fs.readFileSync(path.join(root, 'examples/labs', f), 'utf8')) as unknown);
  const broken: unknown[] = [
    {}, 'text', [], null, 5, { name: 'Bad' }, { name: 'x', bogus: true },
    { name: 'x', nodes: { a: { bogus: 1, networks: 'lan' } } },
    { name: 'x', nodes: { a: { networks: [{ lan: { ip: 'zzz' } }, 7, { name: 'lan', ip: '198.19.1.5' }] } } },
    { name: 'x', networks: { lan: { driver: 'wat', subnet: '1.2.3', internal: 'no' } }, hosts: { h1: { firewall: 'pf' } } },
    { name: 'x', links: [{ endpoints: ['a:eth1'] }, { endpoints: ['a:eth1', 'b:eth1'], rate: 'fast', delay: '10', loss: '5', addresses: ['x', 1] }] },
    { name: 'x', nodes: { a: { routes: [{ dst: 'nowhere' }], exec: [1], env: { A: [] }, sysctls: 3 } }, expect: [{ from: 'a' }, { from: 'a', to: 'b', port: 'http' }] },
    { name: 'x', topology: { nodes: { a: { kind: 'ceos' }, b: { kind: 'linux', 'network-mode': 'host' } }, links: [{ endpoints: ['a:e1', 'mgmt-net:x'] }] } },
    { name: 'x', mgmt: { network: 5, 'ipv4-subnet': 'z' }, topology: { kinds: { linux: { bogus: 1 } }, nodes: { 'A!': {} } } },
  ];

  it('give the same verdicts and errors as ajv compiling the schemas at run time', async () => {
    const pre = await load<{ validatorFor: typeof validatorFor }>('lab.mjs', labValidatorsCode());
    let failures = 0;
    for (const format of ['cnmkit', 'containerlab'] as LabFormat[]) {
      for (const data of [...examples, ...broken]) {
        const run = validatorFor(format);
        const ahead = pre.validatorFor(format);
        const ok = run(data);
        expect(ahead(data), JSON.stringify(data)).toBe(ok);
        expect(ahead.errors ?? null, JSON.stringify(data)).toEqual(run.errors ?? null);
        if (!ok) failures++;
      }
    }
    // The corpus exercises the error paths of both layouts (a test that compared only passes would prove little).
    expect(failures).toBeGreaterThan(20);
  });
});

describe('management API validators and serializers', () => {
  const endpoint = { id: 'e1', networkId: 'n1', sandboxId: 's1', name: 'ep', ifname: 'eth0', ipv4: '198.18.0.2/24', ports: [{ p: 1 }], driverData: { secret: 1 }, state: 'ready', created: 'now' };
  const network = { id: 'n1', name: 'lan', driver: 'bridge', scope: 'local', internal: true, enableIPv6: false, options: { a: 'b' }, labels: {}, config: { secret: 1 }, ipv4: [{ subnet: '198.18.0.0/24', gateway: '198.18.0.1', extra: 1 }], ipv6: [], state: 'ready', created: 'now' };
  const sandbox = { id: 's1', name: 'sb', kind: 'named', netnsPath: '/run/netns/sb', labels: { k: 'v' }, state: 'ready', created: 'now', extra: true };
  const link = { id: 'l1', name: 'a-b', ends: [{ sandboxId: 's1', ifname: 'eth1', address: '198.18.1.1/30', macAddress: 'aa:bb' }], mtu: 1500, state: 'ready', secret: 2 };
  const refOf = (ref: string): never => {
    if (ref === 'x') throw new NotFoundError('network', ref);
    return undefined as never;
  };
  const controller = {
    listSandboxes: () => [sandbox], sandbox: (ref: string) => (ref === 'sb' ? sandbox : refOf(ref)), endpointsOf: () => [endpoint],
    listNetworksWithGlobal: async () => ({ networks: [network], warnings: [] }), describeGlobal: async () => ({ vni: 4096, port: 4789, hosts: [{ id: 'h', hostname: 'h1', endpoints: 2, more: 1 }] }),
    networkOrGlobal: async (ref: string) => (ref === 'lan' ? network : refOf(ref)), check: async () => [{ network: 'lan', id: 'n1', driver: 'bridge', items: [{ object: 'o', what: 'w', expected: 'e', found: 'f', x: 1 }] }],
    pruneNetworks: async () => ({ removed: ['a'], skipped: [{ name: 'b', reason: 'r', x: 1 }] }),
  };
  const links = { list: () => [link], get: (ref: string) => (ref === 'a-b' ? link : refOf(ref)) };
  const cluster = { status: () => ({ state: 'connected', hostId: 'h', lease: { id: '1', ttl: 15, other: 1 } }), hosts: async () => [{ id: 'h', hostname: 'h1', vtep: '198.18.0.1', pid: 1, state: 'alive', secret: 1 }] };
  const health = async () => ({ status: 'ok' as const, checks: { store: { status: 'ok' as const, ms: 1 } } });
  const build = (precompiled?: Precompiled): Promise<FastifyInstance> => buildManagementApi({
    controller: controller as never, logger: pino({ level: 'silent' }), reloadFirewall: async () => ({ backend: 'none', removedOwners: [], notes: ['n'] }),
    health: health as never, cluster: cluster as never, links: links as never, netlink: {} as never, ...(precompiled ? { precompiled } : {}),
  });

  const bodies: unknown[] = [
    undefined, {}, [], 'text', { name: 5 }, { name: '' }, { name: 'n'.repeat(65) }, { name: 'ok', bogus: 1 }, { name: 'ok', subnet: 5, labels: { a: 1 } },
    { sandbox: '' }, { sandbox: 's', ifname: 'x'.repeat(16), ports: [1] }, { sandbox: 's', ip: '' }, { ends: [] }, { name: 'l', ends: [{ sandbox: 's' }, {}] },
    { sysctls: { a: 1 }, routes: [{}], hosts: 'h' }, { netns: '', host: 'yes' }, { driver: '' },
  ];
  const urls = [
    '/v1/version', '/v1/networks', '/v1/networks/lan', '/v1/networks/x', '/v1/networks/lan/check', '/v1/check', '/v1/sandboxes', '/v1/sandboxes/sb',
    '/v1/sandboxes/x', '/v1/links', '/v1/links/a-b', '/v1/links/x', '/v1/cluster', '/v1/cluster/hosts', '/health',
  ];

  it('answer every request as the run-time compile does: same status, same body', async () => {
    const pre = await load<{ PRECOMPILED: Precompiled }>('api.mjs', await managementSchemasCode());
    expect(Object.keys(pre.PRECOMPILED.validators).length).toBeGreaterThan(15);
    const [run, ahead] = await Promise.all([build(), build(pre.PRECOMPILED)]);
    const requests: Array<{ method: 'GET' | 'POST' | 'DELETE'; url: string; payload?: string }> = [
      ...urls.map((url) => ({ method: 'GET' as const, url })),
      ...['/v1/networks', '/v1/sandboxes', '/v1/links', '/v1/networks/lan/connect', '/v1/networks/lan/disconnect', '/v1/sandboxes/sb/config', '/v1/networks/prune', '/v1/firewall/reload']
        .flatMap((url) => bodies.map((b) => ({ method: 'POST' as const, url, ...(b === undefined ? {} : { payload: JSON.stringify(b) }) }))),
      ...['/v1/sandboxes/sb?force=maybe', '/v1/sandboxes/sb?bogus=1', '/v1/networks/x'].map((url) => ({ method: 'DELETE' as const, url })),
    ];
    const statuses = new Map<number, number>();
    for (const r of requests) {
      const req = { ...r, headers: { 'content-type': 'application/json' } };
      const [a, b] = await Promise.all([run.inject(req), ahead.inject(req)]);
      expect({ status: b.statusCode, body: b.body }, `${r.method} ${r.url} ${r.payload ?? ''}`).toEqual({ status: a.statusCode, body: a.body });
      statuses.set(a.statusCode, (statuses.get(a.statusCode) ?? 0) + 1);
    }
    // Both paths were exercised: answers serialized from records, and many refusals by the validators.
    expect(statuses.get(200)).toBeGreaterThan(10);
    expect(statuses.get(400)).toBeGreaterThan(40);
    await Promise.all([run.close(), ahead.close()]);
  });
});
