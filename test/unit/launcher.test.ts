// bin/cnmkit runs the bundle of `npm run build` only while it is fresh: a source edited after the
// build started, a source gone, no build at all or CNMKIT_FROM_SOURCE=1 run the TypeScript
// sources through tsx instead; `daemon` runs the CommonJS bundle through the code-cache loader
// (dist/code-cache.cjs), with a cache named after the build. Checked on a copy of the launcher (and
// of bin/package.json, which makes it CommonJS in an ES module project) in a scratch project whose
// "bundle", "loader" and "sources" each say which one ran.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run } from '../helpers/exec.js';

const repo = path.resolve(import.meta.dirname, '../..');
let dir: string;

function write(rel: string, text: string): void {
  fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
  fs.writeFileSync(path.join(dir, rel), text);
}

async function which(env: Record<string, string> = {}, args: string[] = []): Promise<string> {
  const r = await run([process.execPath, path.join(dir, 'bin/cnmkit'), ...args], { env: { ...process.env, CNMKIT_FROM_SOURCE: '', ...env } });
  expect(r.stderr).toBe('');
  return r.stdout.trim();
}

/** Sets a file's modification time, in ms since the epoch. */
const touch = (rel: string, ms: number): void => fs.utimesSync(path.join(dir, rel), ms / 1000, ms / 1000);

describe('bin/cnmkit', () => {
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-launcher-'));
    fs.mkdirSync(path.join(dir, 'bin'));
    fs.copyFileSync(path.join(repo, 'bin/cnmkit'), path.join(dir, 'bin/cnmkit'));
    fs.copyFileSync(path.join(repo, 'bin/package.json'), path.join(dir, 'bin/package.json'));
    fs.symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'));
    write('package.json', '{"type": "module"}\n');
    write('src/cli/main.ts', "const from: string = 'sources';\nconsole.log(from);\n");
    write('src/other.ts', 'export {};\n');
    write('dist/cnmkit.js', "console.log('bundle');\n");
    write('dist/code-cache.cjs', [
      "const path = require('node:path');",
      'const root = path.dirname(__dirname);',
      'exports.runWithCodeCache = (bundle, cache, opts = {}) => {',
      '  console.log(`loader ${path.relative(root, bundle)} ${path.relative(root, cache)}${opts.fallback ? ` from ${path.relative(root, opts.fallback)}` : ""}${opts.v8Flags ? ` with ${opts.v8Flags.join(" ")}` : ""}`);',
      '};',
      '',
    ].join('\n'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const built = (started: number, inputs = ['src/cli/main.ts', 'src/other.ts']): void => write('dist/build.json', JSON.stringify({ started, inputs }));

  it('runs the bundle while every source it was built from is older than the build', async () => {
    const now = Date.now();
    built(now);
    touch('src/cli/main.ts', now - 60_000);
    touch('src/other.ts', now - 60_000);
    expect(await which()).toBe('bundle');
    expect(await which({ CNMKIT_FROM_SOURCE: '1' })).toBe('sources');
  });

  it('runs the daemon from the CommonJS bundle with a code cache named after the build and its role (plain or cluster), and from the sources when stale', async () => {
    const now = Date.now();
    built(now);
    touch('src/cli/main.ts', now - 60_000);
    touch('src/other.ts', now - 60_000);
    expect(await which({}, ['daemon'])).toBe(`loader dist/cnmkit.cjs dist/code-cache/daemon-${now}.bin with --no-flush-bytecode`);
    // Daemons keep the bytecode of code run long ago (the cache written at exit still holds the start's).
    // A cluster daemon keeps a cache of its own: it runs code (etcd, peers) a plain daemon never compiles.
    // (until it has one it starts from the plain daemon's).
    const cluster = `loader dist/cnmkit.cjs dist/code-cache/daemon-cluster-${now}.bin from dist/code-cache/daemon-${now}.bin with --no-flush-bytecode`;
    expect(await which({}, ['daemon', '--cluster-store', 'etcd://198.18.0.1:2379'])).toBe(cluster);
    expect(await which({}, ['daemon', '--cluster-store=etcd://198.18.0.1:2379'])).toBe(cluster);
    // The lab commands from a script of their own (dist/lab.cjs: the lab group alone), without TurboFan.
    expect(await which({}, ['lab', 'up', 'x.yml'])).toBe(`loader dist/lab.cjs dist/code-cache/lab-${now}.bin with --max-opt=1`);
    expect(await which({}, ['lab', 'check', 'x'])).toBe(`loader dist/lab.cjs dist/code-cache/lab-${now}.bin with --max-opt=1`);
    expect(await which({}, ['network'])).toBe('bundle');
    expect(await which({ CNMKIT_FROM_SOURCE: '1' }, ['daemon'])).toBe('sources');
    touch('src/other.ts', now + 1);
    expect(await which({}, ['daemon'])).toBe('sources');
  });

  it('runs the sources when one was changed after the build started, is gone, or nothing was built', async () => {
    const now = Date.now();
    built(now);
    touch('src/cli/main.ts', now - 60_000);
    touch('src/other.ts', now + 1);
    expect(await which()).toBe('sources');
    touch('src/other.ts', now - 60_000);
    built(now, ['src/cli/main.ts', 'src/other.ts', 'src/removed.ts']);
    expect(await which()).toBe('sources');
    fs.rmSync(path.join(dir, 'dist/build.json'));
    expect(await which()).toBe('sources');
  });
});
