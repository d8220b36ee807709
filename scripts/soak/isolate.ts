// The soak's isolation: it re-executes itself under `unshare --mount --net` (a private mount
// namespace and a fresh network namespace), with private tmpfs mounts on /run/netns, /etc/netns
// (a sandbox's hosts file) and the temp folder, so no namespace, link, rule, file or state folder
// it makes is visible to the host (nor to the other engineers' host-unchanged checks); it needs no
// kernel lock for that. It snapshots its own network namespace before and after
// (test/helpers/host-snapshot.ts). The daemon it runs is a copy of dist/ taken at start, so a
// rebuild meanwhile does not change the code under test.
// Limits: the kernel lock's folder (/run/lock) stays shared, so a part may still take the lock;
// the copy of dist/ is the one file the soak writes outside (beside dist/, gitignored).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { check } from '../../test/helpers/exec.js';
import { takeSnapshot, type Snapshot } from '../../test/helpers/host-snapshot.js';

const ENV = 'CNMKIT_SOAK_ISOLATED';
const repo = path.resolve(import.meta.dirname, '../..');
const TMP = '/tmp';

export const isIsolated = (): boolean => process.env[ENV] === '1';

/** Runs this script again inside new mount and network namespaces; resolves to its exit code. */
export function reexecIsolated(): Promise<number> {
  const argv = ['--mount', '--net', '--propagation', 'private', '--', process.execPath, ...process.execArgv, process.argv[1]!, ...process.argv.slice(2)];
  const child = spawn('unshare', argv, { stdio: 'inherit', env: { ...process.env, [ENV]: '1' } });
  const forward = (sig: NodeJS.Signals): void => void child.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
}

/**
 * Inside the namespaces: private tmpfs mounts, loopback up, and a private copy of the daemon's
 * bundle when dist/ is fresh (otherwise bin/cnmkit, which runs the sources). Returns the command
 * that runs cnmkit and a function that removes the copy.
 */
export async function setUpIsolation(): Promise<{ cli: string[]; removeCopy: () => void }> {
  for (const dir of ['/run/netns', '/etc/netns', TMP]) {
    fs.mkdirSync(dir, { recursive: true });
    await check(['mount', '-t', 'tmpfs', '-o', 'mode=1777,size=512m', `cnmkit-soak-${path.basename(dir)}`, dir]);
  }
  await check(['ip', 'link', 'set', 'lo', 'up']);
  const dist = path.join(repo, 'dist');
  let stale = ['dist/build.json'];
  try {
    const { started, inputs } = JSON.parse(fs.readFileSync(path.join(dist, 'build.json'), 'utf8')) as { started: number; inputs: string[] };
    stale = inputs.filter((f) => fs.statSync(path.join(repo, f)).mtimeMs >= started);
  } catch {
    // No bundle: the sources.
  }
  if (stale.length > 0) {
    console.log(`soak: dist/ is older than ${stale.slice(0, 3).join(', ')}: the daemon runs from the sources (npm run build for the bundle)`);
    return { cli: [process.execPath, path.join(repo, 'bin/cnmkit')], removeCopy: () => undefined };
  }
  // Beside dist/ (gitignored), so the bundle finds the project's node_modules and native addon.
  const copy = path.join(repo, `.dist-soak-${process.pid}`);
  fs.cpSync(dist, copy, { recursive: true });
  return { cli: [process.execPath, path.join(copy, 'cnmkit.js')], removeCopy: () => fs.rmSync(copy, { recursive: true, force: true }) };
}

/** The soak's own network namespace and named-namespace folder, as the host check sees a host. */
export function ownSnapshot(): Promise<Snapshot> {
  return takeSnapshot({ netnsDir: '/run/netns', etcNetnsDir: '/etc/netns', pluginDir: '/run/docker/plugins' });
}
