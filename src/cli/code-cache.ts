// Runs a script of `npm run build` (dist/cnmkit.cjs, the whole CLI and daemon in one script, or
// dist/lab.cjs) with a V8 code cache, so that a process starts from the bytecode of an earlier run
// instead of parsing and compiling the bundle's functions again (Node 20 has no compile cache for
// modules; a script compiled through node:vm takes one). bin/cnmkit runs the daemon and the lab
// commands so. Such a script is a CommonJS module already inside Node's module wrapper, a function
// of (exports, require, module, __filename, __dirname), written so by the build, and ASCII only: it
// is read as one flat Latin-1 string and compiled as it is (a wrapper added here meant a second
// copy of the whole text and V8 flattening the two: ~20 ms of a daemon's start, in fresh memory).
// The cache is written by a run that found none (or whose cache V8 rejected: another Node, other
// V8 flags), a few times after the start (WRITE_AT_MS) and at exit, each time with what that run had
// compiled by then; a run that started from its own cache writes it at exit when it compiled more
// (the cache it would write is larger: it never shrinks, as V8 may have flushed old bytecode); it
// is written to a temporary file and renamed, so that a start reads a whole one or none.
// Such a run may start from a fallback cache of another kind of run of the same bundle instead.
// Limits: V8 checks a cache against its own version and flags and the source's length only, not its
// text: the caller names the cache after the build (bin/cnmkit: the build's start time), so that a
// cache never meets another bundle. An unwritable folder only means the next start compiles again.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';

/**
 * When a run that makes the cache writes it, in ms after its start (and at its exit): each write
 * replaces the last with all the code compiled by then. The first comes once a daemon has started
 * (a lab's are stopped with SIGKILL, so exit may never come); the later ones also hold the code that
 * served the first requests (a function first run after the last write is compiled at every start).
 */
export const WRITE_AT_MS = [750, 2500, 6000];

/** How a script of the build begins: Node's CommonJS wrapper, on a line of its own. */
export const WRAPPER_START = '(function (exports, require, module, __filename, __dirname) {\n';
/** How it ends. */
export const WRAPPER_END = '\n})';

export interface CodeCacheRun {
  /** Whether a cache was read and V8 took it. */
  used: boolean;
  /** Writes the cache now if this run makes it (it found none of its own); returns whether it wrote. */
  write(): boolean;
}

function readCache(file: string): Buffer | undefined {
  try {
    return fs.readFileSync(file);
  } catch {
    return undefined;
  }
}

export interface CodeCacheOptions {
  writeAtMs?: number[];
  /**
   * A cache of the same bundle made by a run of another kind, started from while cacheFile is
   * missing: it holds the code both kinds run, so the start is warm, and cacheFile is then written
   * with that and what this run compiled besides.
   */
  fallback?: string;
  /**
   * V8 flags this kind of run sets before the compile (v8.setFlagsFromString). V8 takes a cache
   * only under the flags it was made with, so every run of one cache must give the same ones.
   */
  v8Flags?: string[];
}

/** Loads and runs bundle (a wrapped CommonJS module: see the top of this file) with the code cache in cacheFile. */
export function runWithCodeCache(bundle: string, cacheFile: string, opts: CodeCacheOptions = {}): CodeCacheRun {
  // A rejected own cache is not followed by the fallback: whatever made V8 reject it (another Node,
  // other flags) rejects the other too, and each try costs a whole compile.
  for (const flag of opts.v8Flags ?? []) v8.setFlagsFromString(flag);
  const own = readCache(cacheFile);
  const cachedData = own ?? (opts.fallback !== undefined ? readCache(opts.fallback) : undefined);
  const source = fs.readFileSync(bundle, 'latin1');
  if (!source.startsWith(WRAPPER_START)) throw new Error(`${bundle}: not a CommonJS module inside its wrapper function (npm run build writes them so)`);
  const script = new vm.Script(source, { filename: bundle, ...(cachedData ? { cachedData } : {}) });
  const used = cachedData !== undefined && script.cachedDataRejected !== true;
  const writer = !(used && own !== undefined);
  const save = (data: Buffer): boolean => {
    const tmp = `${cacheFile}.${process.pid}`;
    try {
      fs.mkdirSync(path.dirname(cacheFile), { recursive: true });
      fs.writeFileSync(tmp, data);
      fs.renameSync(tmp, cacheFile);
      return true;
    } catch {
      try {
        fs.rmSync(tmp, { force: true });
      } catch {
        // Its folder is unusable too: there is nothing to remove.
      }
      return false;
    }
  };
  const write = (): boolean => writer && save(script.createCachedData());
  if (writer) {
    for (const ms of opts.writeAtMs ?? WRITE_AT_MS) setTimeout(write, ms).unref();
    process.once('exit', write);
  } else {
    // A run that started from its own cache and compiled more than it held (code that the run
    // which made it never ran, such as a first overlay connect) leaves the larger cache at its exit.
    process.once('exit', () => {
      const data = script.createCachedData();
      if (data.length > own!.length) save(data);
    });
  }
  const module = { exports: {} };
  (script.runInThisContext() as (...args: unknown[]) => void)(module.exports, createRequire(bundle), module, bundle, path.dirname(bundle));
  return { used, write };
}
