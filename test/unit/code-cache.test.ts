// src/cli/code-cache.ts: a CommonJS module written inside Node's wrapper function (as the build
// writes dist/*.cjs) run through it behaves as under Node's own loader (__filename, __dirname,
// require, module.exports, the file's own line numbers in stack traces); a script not so written is
// refused, naming it; V8 flags given are set before the compile, so that a cache is used under
// the flags it was made with; the first
// run writes the V8 code cache and the next one starts from it (or from a fallback cache of another
// kind of run while its own is missing, then writing its own); a cache V8 rejects (made for
// another script) is ignored and replaced; an unwritable cache place costs nothing but the cache.
// Each run is a child process, as the loader runs the script in its own context and writes at exit.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WRAPPER_END, WRAPPER_START } from '../../src/cli/code-cache.js';
import { run } from '../helpers/exec.js';

const repo = path.resolve(import.meta.dirname, '../..');
let dir: string;
let bundle: string;

const SCRIPT = [
  "const os = require('node:os');",
  'function where() { return new Error().stack.split("\\n")[1]; }',
  'module.exports = { where };',
  'console.log(JSON.stringify({ file: __filename, dir: __dirname, eol: os.EOL === "\\n", exported: typeof module.exports.where, at: where() }));',
  '',
].join('\n');

/** Runs the bundle through the loader in a child; its stdout line and whether the cache was used. */
async function load(cacheFile: string, fallback?: string, v8Flags?: string[]): Promise<{ out: Record<string, unknown>; used: boolean }> {
  const code = `import { runWithCodeCache } from ${JSON.stringify(path.join(repo, 'src/cli/code-cache.ts'))};\n`
    + `const r = runWithCodeCache(${JSON.stringify(bundle)}, ${JSON.stringify(cacheFile)}, ${JSON.stringify({ ...(fallback ? { fallback } : {}), ...(v8Flags ? { v8Flags } : {}) })});\n`
    + 'console.error(JSON.stringify({ used: r.used }));\n';
  const r = await run([process.execPath, '--import', 'tsx', '--input-type=module', '-e', code], { timeoutMs: 30_000 });
  expect(r.code, r.stderr).toBe(0);
  return { out: JSON.parse(r.stdout.trim()) as Record<string, unknown>, used: (JSON.parse(r.stderr.trim().split('\n').pop()!) as { used: boolean }).used };
}

describe('runWithCodeCache', () => {
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-code-cache-'));
    bundle = path.join(dir, 'bundle.cjs');
    fs.writeFileSync(bundle, `${WRAPPER_START}${SCRIPT}${WRAPPER_END}`);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('runs the script as CommonJS, writes the cache on the first run and starts from it on the next', async () => {
    const cache = path.join(dir, 'cache', 'x.bin');
    const first = await load(cache);
    expect(first.used).toBe(false);
    // where() is on the file's line 3 (the wrapper is line 1).
    expect(first.out).toEqual({ file: bundle, dir, eol: true, exported: 'function', at: expect.stringContaining(`${bundle}:3:`) });
    expect(fs.statSync(cache).size).toBeGreaterThan(0);
    expect(fs.readdirSync(path.dirname(cache))).toEqual(['x.bin']);
    const second = await load(cache);
    expect(second.used).toBe(true);
    expect(second.out).toEqual(first.out);
  });

  it('starts from the fallback cache while its own is missing, then writes its own and starts from that', async () => {
    const plain = path.join(dir, 'plain.bin');
    const cluster = path.join(dir, 'cluster.bin');
    expect((await load(plain)).used).toBe(false);
    const plainBytes = fs.readFileSync(plain);
    expect(await load(cluster, plain)).toEqual({ used: true, out: expect.objectContaining({ exported: 'function' }) });
    expect(fs.statSync(cluster).size).toBeGreaterThan(0);
    expect((await load(cluster, path.join(dir, 'missing.bin'))).used).toBe(true);
    // The fallback itself is only read.
    expect(fs.readFileSync(plain).equals(plainBytes)).toBe(true);
  });

  it('writes the cache again later, with the code first run after the first write, in a run killed before its exit', async () => {
    // big() is compiled only when called, after the first write; the run is then killed with
    // SIGKILL (as a lab stops its daemons), so only a later timed write can hold big() too.
    const body = Array.from({ length: 200 }, (_, i) => `  x = (x * ${i + 3} + ${i}) % 1000003;`).join('\n');
    fs.writeFileSync(bundle, `${WRAPPER_START}function big(x) {\n${body}\n  return x;\n}\nsetTimeout(() => big(1), 400);\nsetTimeout(() => undefined, 60_000);${WRAPPER_END}`);
    const cache = path.join(dir, 'x.bin');
    const code = `import { runWithCodeCache } from ${JSON.stringify(path.join(repo, 'src/cli/code-cache.ts'))};\n`
      + `runWithCodeCache(${JSON.stringify(bundle)}, ${JSON.stringify(cache)}, { writeAtMs: [100, 800] });\n`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const size = (): number => (fs.existsSync(cache) ? fs.statSync(cache).size : 0);
    const sizes: number[] = [];
    try {
      for (let i = 0; i < 500 && new Set(sizes.filter((x) => x > 0)).size < 2; i++) {
        await new Promise((r) => setTimeout(r, 20));
        sizes.push(size());
      }
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    const written = [...new Set(sizes.filter((x) => x > 0))];
    expect(written).toHaveLength(2);
    expect(written[1]).toBeGreaterThan(written[0]!);
  });

  it('a run that started from its own cache and compiled code it lacked writes the larger cache at exit; one that compiled nothing new leaves it', async () => {
    // big() runs only when BIG is set: the first run makes the cache without it.
    const body = Array.from({ length: 200 }, (_, i) => `  x = (x * ${i + 3} + ${i}) % 1000003;`).join('\n');
    fs.writeFileSync(bundle, `${WRAPPER_START}function big(x) {\n${body}\n  return x;\n}\nif (process.env.BIG) big(1);\nconsole.log('{}');${WRAPPER_END}`);
    const cache = path.join(dir, 'x.bin');
    const withBig = async (big: boolean) => {
      const code = `import { runWithCodeCache } from ${JSON.stringify(path.join(repo, 'src/cli/code-cache.ts'))};\n`
        + `const r = runWithCodeCache(${JSON.stringify(bundle)}, ${JSON.stringify(cache)});\nconsole.error(JSON.stringify({ used: r.used }));\n`;
      const r = await run([process.execPath, '--import', 'tsx', '--input-type=module', '-e', code], { timeoutMs: 30_000, env: { ...process.env, BIG: big ? '1' : '' } });
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stderr.trim().split('\n').pop()!) as { used: boolean }).used;
    };
    expect(await withBig(false)).toBe(false);
    const made = fs.readFileSync(cache);
    expect(await withBig(false)).toBe(true);
    expect(fs.readFileSync(cache).equals(made)).toBe(true);
    expect(await withBig(true)).toBe(true);
    const grown = fs.readFileSync(cache);
    expect(grown.length).toBeGreaterThan(made.length);
    // The grown cache is taken, and a run that needs nothing more keeps it as it is.
    expect(await withBig(false)).toBe(true);
    expect(fs.readFileSync(cache).equals(grown)).toBe(true);
  });

  it('refuses a script that is not inside the wrapper function, naming it, and runs none of it', async () => {
    fs.writeFileSync(bundle, 'globalThis.ran = true;\n');
    const code = `import { runWithCodeCache } from ${JSON.stringify(path.join(repo, 'src/cli/code-cache.ts'))};\n`
      + `try { runWithCodeCache(${JSON.stringify(bundle)}, ${JSON.stringify(path.join(dir, 'x.bin'))}); } catch (err) { console.log(JSON.stringify({ message: err.message, ran: globalThis.ran === true })); }\n`;
    const r = await run([process.execPath, '--import', 'tsx', '--input-type=module', '-e', code], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toEqual({ message: `${bundle}: not a CommonJS module inside its wrapper function (npm run build writes them so)`, ran: false });
    expect(fs.existsSync(path.join(dir, 'x.bin'))).toBe(false);
  });

  it('sets the V8 flags it is given before the compile: the cache made under them is taken under them, not without', async () => {
    const cache = path.join(dir, 'x.bin');
    expect((await load(cache, undefined, ['--max-opt=1'])).used).toBe(false);
    const made = fs.readFileSync(cache);
    expect((await load(cache, undefined, ['--max-opt=1'])).used).toBe(true);
    expect(fs.readFileSync(cache).equals(made)).toBe(true);
    // Without the flags V8 refuses that cache (the run then makes its own).
    expect((await load(cache)).used).toBe(false);
  });

  it('ignores a cache V8 rejects and replaces it', async () => {
    const cache = path.join(dir, 'x.bin');
    fs.writeFileSync(cache, 'not a code cache');
    expect((await load(cache)).used).toBe(false);
    expect(fs.readFileSync(cache, 'utf8')).not.toBe('not a code cache');
    expect((await load(cache)).used).toBe(true);
  });

  it('runs the script when the cache cannot be written', async () => {
    fs.writeFileSync(path.join(dir, 'file'), '');
    const cache = path.join(dir, 'file', 'x.bin');
    expect(await load(cache)).toEqual({ used: false, out: expect.objectContaining({ exported: 'function' }) });
    expect(fs.readdirSync(dir).sort()).toEqual(['bundle.cjs', 'file']);
  });
});
