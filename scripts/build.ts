// `npm run build`: bundles the CLI and daemon (src/cli/main.ts and everything it imports) into
// dist/ with esbuild, so that `bin/cnmkit` starts without compiling TypeScript on every run.
// npm packages stay outside the bundle (loaded from node_modules); a module the CLI imports lazily
// stays a chunk of its own, loaded when a command needs it. dist/build.json lists the sources the
// bundle was made from and when the build started: bin/cnmkit runs the bundle only while none of
// them is newer (otherwise the sources, through tsx). esbuild is the one tsx itself runs on.
// Source maps are written beside the chunks: NODE_OPTIONS=--enable-source-maps maps stack traces
// back to src/ (off by default: it slows every start).
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');
const dist = path.join(root, 'dist');
// Built beside dist/ and swapped in whole: a cnmkit started meanwhile finds the old bundle or
// none (then it runs the sources), never half of one.
const out = path.join(root, `.dist-${process.pid}`);

const started = Date.now();
try {
  const result = await build({
    absWorkingDir: root,
    entryPoints: { cnmkit: 'src/cli/main.ts' },
    outdir: out,
    chunkNames: 'chunks/[name]-[hash]',
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    sourcemap: 'linked',
    metafile: true,
    logLevel: 'warning',
  });
  const inputs = Object.keys(result.metafile.inputs).sort();
  fs.writeFileSync(path.join(out, 'build.json'), `${JSON.stringify({ started, inputs }, null, 1)}\n`);
  const old = `${out}-old`;
  if (fs.existsSync(dist)) fs.renameSync(dist, old);
  fs.renameSync(out, dist);
  fs.rmSync(old, { recursive: true, force: true });
  const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
  console.log(`build: dist/cnmkit.js from ${inputs.length} sources, ${Object.keys(result.metafile.outputs).length} files, ${Math.round(bytes / 1024)} KiB in ${Date.now() - started} ms`);
} finally {
  fs.rmSync(out, { recursive: true, force: true });
}
