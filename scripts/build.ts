// `npm run build`: bundles the CLI and daemon (src/cli/main.ts, everything it imports and the npm
// packages it uses) into dist/ with esbuild, so that `bin/cnmkit` starts without compiling
// TypeScript or resolving hundreds of package files on every run. Packages with a native part
// (better-sqlite3, netlink) or loaded only in cluster mode (etcd3) stay in node_modules; a module
// the CLI imports lazily stays a chunk of its own, loaded when a command needs it.
// dist/build.json lists what the bundle was made from (the sources, and npm's record of the
// installed packages) and when the build started: bin/cnmkit runs the bundle only while none of
// them is newer (otherwise the sources, through tsx). Source maps are written beside the chunks:
// NODE_OPTIONS=--enable-source-maps maps stack traces back to src/ (off by default: it slows
// every start).
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');
const dist = path.join(root, 'dist');
// Built beside dist/ and swapped in whole: a cnmkit started meanwhile finds the old bundle or
// none (then it runs the sources), never half of one.
const out = path.join(root, `.dist-${process.pid}`);
/** Rewritten by npm at every install: stands for all the bundled package files. */
const INSTALLED = 'node_modules/.package-lock.json';

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
    external: ['better-sqlite3', 'netlink', 'etcd3', 'tsx'],
    // Bundled CommonJS packages require Node's own modules (and a few of theirs at run time).
    banner: { js: "import { createRequire as __cnmkitRequire } from 'node:module'; const require = __cnmkitRequire(import.meta.url);" },
    sourcemap: 'linked',
    metafile: true,
    logLevel: 'warning',
  });
  const inputs = [...Object.keys(result.metafile.inputs).filter((f) => !f.startsWith('node_modules/')).sort(), INSTALLED];
  fs.writeFileSync(path.join(out, 'build.json'), `${JSON.stringify({ started, inputs }, null, 1)}\n`);
  const old = `${out}-old`;
  if (fs.existsSync(dist)) fs.renameSync(dist, old);
  fs.renameSync(out, dist);
  fs.rmSync(old, { recursive: true, force: true });
  const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
  console.log(`build: dist/cnmkit.js from ${inputs.length - 1} sources and ${Object.keys(result.metafile.inputs).length - inputs.length + 1} package files, ${Object.keys(result.metafile.outputs).length} files, ${Math.round(bytes / 1024)} KiB in ${Date.now() - started} ms`);
} finally {
  fs.rmSync(out, { recursive: true, force: true });
}
