// scripts/build-lazy.ts: a bundle of fastify and prom-client made with it serves on a unix socket
// without loading Node's http2, dns or zlib, which the same bundle made without it loads at once;
// the parts made lazy still load when used (prom-client's Pushgateway brings zlib).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { build, type Plugin } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lazyModules } from '../../scripts/build-lazy.js';
import { run } from '../helpers/exec.js';

const repo = path.resolve(import.meta.dirname, '../..');
let dir: string;

const PROGRAM = `
const Fastify = require('fastify');
const prom = require('prom-client');
const builtins = () => process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13));
(async () => {
  const registry = new prom.Registry();
  new prom.Counter({ name: 'x_total', help: 'x', registers: [registry] });
  const app = Fastify();
  app.get('/', async () => registry.metrics());
  await app.listen({ path: process.argv[2] });
  const served = (await app.inject({ url: '/' })).body;
  await app.close();
  const before = builtins();
  const pushgateway = typeof prom.Pushgateway;
  console.log(JSON.stringify({ served, before, pushgateway, after: builtins() }));
})();
`;

async function bundle(name: string, plugins: Plugin[]): Promise<string> {
  const file = path.join(dir, `${name}.cjs`);
  await build({ stdin: { contents: PROGRAM, resolveDir: repo, loader: 'js' }, outfile: file, bundle: true, format: 'cjs', platform: 'node', target: 'node20', plugins, logLevel: 'error' });
  return file;
}

async function runBundle(file: string): Promise<{ served: string; before: string[]; pushgateway: string; after: string[] }> {
  const r = await run([process.execPath, file, path.join(dir, `${path.basename(file)}.sock`)], { timeoutMs: 30_000 });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim()) as { served: string; before: string[]; pushgateway: string; after: string[] };
}

describe('lazy package parts in the bundle', () => {
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-build-lazy-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('serves without loading http2, dns or zlib, and loads them when a lazy part is used', async () => {
    const eager = await runBundle(await bundle('eager', []));
    const lazy = await runBundle(await bundle('lazy', [lazyModules]));
    for (const m of ['http2', 'dns', 'zlib']) expect(eager.before).toContain(m);
    expect(lazy.served).toContain('x_total 0');
    expect(lazy.served).toBe(eager.served);
    for (const m of ['http2', 'dns', 'zlib']) expect(lazy.before).not.toContain(m);
    expect(lazy.pushgateway).toBe('function');
    expect(lazy.after).toContain('zlib');
  }, 60_000);
});
