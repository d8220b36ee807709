// The real Docker engine in e2e tests: whether it can run here (its packages are scripts/setup's
// to install: test collection installs nothing), describe() that skips with the reason only when
// skips are allowed (test/helpers/root.ts), and a host namespace that outlives single tests. The
// engine itself is test/helpers/engine.ts.
import fs from 'node:fs';
import { BUSYBOX, DOCKER, DOCKERD } from './engine.js';
import { check, run } from './exec.js';
import { TestNs, uniqueName } from './netns.js';
import { describeGated, isRoot, ROOT_SKIP_REASON } from './root.js';

export const DOCKER_PACKAGES = ['docker.io', 'busybox-static'] as const;

async function installed(pkg: string): Promise<boolean> {
  const r = await run(['dpkg-query', '-W', '-f=${Status}', pkg]).catch(() => ({ code: 127, stdout: '' }));
  return r.code === 0 && r.stdout.includes('install ok installed');
}

/** Why the Docker tests cannot run here (root, docker.io and busybox-static needed), or undefined when they can. */
export async function dockerSkipReason(): Promise<string | undefined> {
  if (!isRoot) return ROOT_SKIP_REASON;
  const missing: string[] = [];
  for (const pkg of DOCKER_PACKAGES) if (!(await installed(pkg))) missing.push(pkg);
  if (missing.length > 0) return `the Docker tests need the Debian packages ${missing.join(', ')} (scripts/setup installs them)`;
  for (const file of [DOCKERD, DOCKER, BUSYBOX]) if (!fs.existsSync(file)) return `the Docker tests need ${file}, missing though ${DOCKER_PACKAGES.join(', ')} are installed`;
  return undefined;
}

/** describe() for tests of the real engine: as root, a reason to skip fails the file unless skips are allowed. */
export function describeDocker(name: string, skipReason: string | undefined, fn: () => void): void {
  describeGated(name, skipReason, fn);
}

/** A network namespace that outlives single tests (unlike makeNs); delete it in afterAll. */
export async function makeHostNs(tag = 'dockerhost'): Promise<TestNs> {
  const ns = new TestNs(uniqueName(tag));
  await check(['ip', 'netns', 'add', ns.name]);
  await check(['ip', '-n', ns.name, 'link', 'set', 'lo', 'up']);
  return ns;
}

export { BUSYBOX_IMAGE, Dockerd, type DockerdOptions } from './engine.js';
