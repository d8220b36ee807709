// `npm run build`: bundles the CLI and daemon (src/cli/main.ts, everything it imports and the npm
// packages it uses) into dist/ with esbuild, so that `bin/cnmkit` starts without compiling
// TypeScript or resolving hundreds of package files on every run. better-sqlite3 (a native part)
// and netlink's native part stay in node_modules; a module the CLI imports lazily stays a chunk of
// its own, loaded when a command needs it (cluster mode's etcd client is such a chunk).
// The lab's topology validators and the management API's validators and serializers are compiled
// here, not at run time (scripts/build-schemas.ts). The same program is also written as one
// CommonJS module, dist/cnmkit.cjs, which bin/cnmkit runs for `cnmkit daemon`, and the lab commands
// alone as dist/lab.cjs, for `cnmkit lab`: each through dist/code-cache.cjs from a V8 code cache
// (src/cli/code-cache.ts), so each is written inside Node's CommonJS wrapper function and ASCII
// only, as that loader takes them. Node 20 keeps no compiled code for ES modules, and a daemon's
// start is mostly compiling its modules.
// dist/build.json lists what the bundle was made from (the sources, and npm's record of the
// installed packages) and when the build started: bin/cnmkit runs the bundle only while none of
// them is newer (otherwise the sources, through tsx). Source maps are written beside the chunks:
// NODE_OPTIONS=--enable-source-maps maps stack traces back to src/ (off by default: it slows
// every start).
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { build, type Plugin } from 'esbuild';
import { lazyModules } from './build-lazy.js';
import { PRECOMPILED_FROM, precompiledSchemas } from './build-schemas.js';
import { WRAPPER_END, WRAPPER_START } from '../src/cli/code-cache.js';

const root = path.resolve(import.meta.dirname, '..');
const dist = path.join(root, 'dist');
// Built beside dist/ and swapped in whole: a cnmkit started meanwhile finds the old bundle or
// none (then it runs the sources), never half of one.
const out = path.join(root, `.dist-${process.pid}`);
/** Rewritten by npm at every install: stands for all the bundled package files. */
const INSTALLED = 'node_modules/.package-lock.json';

/**
 * The `netlink` package, bundled: what src/netlink imports of it, from its own files, instead of
 * its index (which also loads its genetlink, nl80211 and WireGuard parts) read file by file from
 * node_modules and parsed again as CommonJS by every process (~0.1 s of CPU per start). Its native
 * part stays in node_modules: node-gyp-build is pointed at the package's folder there.
 */
const NETLINK_PARTS = ['constants', 'raw', 'structs', 'netlink', 'rt/rt'];
const netlinkPackage: Plugin = {
  name: 'netlink-package',
  setup(b) {
    b.onResolve({ filter: /^netlink$/ }, () => ({ path: 'netlink', namespace: netlinkPackage.name }));
    b.onLoad({ filter: /.*/, namespace: netlinkPackage.name }, () => ({
      resolveDir: root,
      contents: [...NETLINK_PARTS.map((p) => `export * from 'netlink/dist/${p}.js';`),
        "export * as rt from 'netlink/dist/rt/structs.js';", "export * as ifla from 'netlink/dist/rt/ifla.js';"].join('\n'),
    }));
    b.onLoad({ filter: /node_modules[\\/]netlink[\\/]dist[\\/]raw\.js$/ }, (args) => {
      const text = fs.readFileSync(args.path, 'utf8');
      const from = "require('node-gyp-build')(__dirname + '/..')";
      if (!text.includes(from)) throw new Error(`build: ${args.path} no longer loads its binding with ${from}`);
      return { contents: text.replace(from, "require('node-gyp-build')(require('node:path').dirname(require.resolve('netlink/package.json')))"), loader: 'js' };
    });
  },
};

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
    external: ['better-sqlite3', 'node-gyp-build', 'tsx'],
    plugins: [netlinkPackage, lazyModules, precompiledSchemas(root)],
    // Bundled CommonJS packages require Node's own modules (and a few of theirs at run time).
    banner: { js: "import { createRequire as __cnmkitRequire } from 'node:module'; const require = __cnmkitRequire(import.meta.url);" },
    // Blank space out (a third of the bytes every start reads and parses); names stay, and the maps map back.
    minifyWhitespace: true,
    sourcemap: 'linked',
    metafile: true,
    logLevel: 'warning',
  });
  // The same program as one CommonJS module, for a start from a V8 code cache (src/cli/code-cache.ts),
  // and the lab commands alone as another (a quarter of the size: what a `lab up` reads and runs).
  // Each inside Node's wrapper function, on lines of their own (the source maps count them), so that
  // the loader compiles the file as it reads it. import.meta.url stands for the script's own URL.
  // Licence comments go to a file beside it: the script stays ASCII, which V8 reads and scans faster
  // (and the loader reads it as Latin-1: checked below). The loader itself is a plain CommonJS
  // module, required by bin/cnmkit.
  const cjs = { bundle: true, format: 'cjs', platform: 'node', target: 'node20', minifyWhitespace: true, metafile: true, logLevel: 'warning' } as const;
  const scripts = await Promise.all([...([['src/cli/main.ts', 'cnmkit.cjs'], ['src/cli/lab-main.ts', 'lab.cjs']] as const).map(([entry, file]) => build({
    ...cjs,
    absWorkingDir: root,
    entryPoints: [entry],
    outfile: path.join(out, file),
    external: ['better-sqlite3', 'node-gyp-build', 'tsx', 'netlink/package.json'],
    plugins: [netlinkPackage, lazyModules, precompiledSchemas(root)],
    define: { 'import.meta.url': '__cnmkitUrl' },
    banner: { js: `${WRAPPER_START}var __cnmkitUrl = require('node:url').pathToFileURL(__filename).href;` },
    footer: { js: WRAPPER_END.replace(/^\n/, '') },
    legalComments: 'linked',
    sourcemap: 'linked',
  })), build({ ...cjs, absWorkingDir: root, entryPoints: ['src/cli/code-cache.ts'], outfile: path.join(out, 'code-cache.cjs') })]);
  for (const file of ['cnmkit.cjs', 'lab.cjs']) {
    const bytes = fs.readFileSync(path.join(out, file));
    const at = bytes.findIndex((b) => b > 0x7f);
    if (at >= 0) throw new Error(`build: dist/${file} has a byte that is not ASCII at offset ${at} (the code-cache loader reads it as Latin-1)`);
    // Compiled (not run): its value must be the wrapper function, as the loader expects.
    if (typeof new vm.Script(bytes.toString('latin1')).runInThisContext() !== 'function') throw new Error(`build: dist/${file} is not inside the CommonJS wrapper`);
  }
  // Package files stand as INSTALLED; the plugin's own module (namespace:path) is no file.
  const sources = [result, ...scripts].flatMap((r) => Object.keys(r.metafile.inputs));
  const inputs = [...new Set([...sources.filter((f) => !f.startsWith('node_modules/') && !f.startsWith(`${netlinkPackage.name}:`)), ...PRECOMPILED_FROM])].sort();
  inputs.push(INSTALLED);
  fs.writeFileSync(path.join(out, 'build.json'), `${JSON.stringify({ started, inputs }, null, 1)}\n`);
  const old = `${out}-old`;
  if (fs.existsSync(dist)) fs.renameSync(dist, old);
  fs.renameSync(out, dist);
  fs.rmSync(old, { recursive: true, force: true });
  const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
  console.log(`build: dist/cnmkit.js from ${inputs.length - 1} sources and ${Object.keys(result.metafile.inputs).filter((f) => f.startsWith('node_modules/')).length} package files, ${Object.keys(result.metafile.outputs).length} files, ${Math.round(bytes / 1024)} KiB in ${Date.now() - started} ms`);
} finally {
  fs.rmSync(out, { recursive: true, force: true });
}
