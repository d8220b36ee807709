// The real Docker engine in e2e tests: its packages installed when missing (without starting its
// services on the host), describe() that skips with the reason or fails under CI, and a host
// namespace that outlives single tests. The engine itself is test/helpers/engine.ts.
import fs from 'node:fs';
import { describe } from 'vitest';
import { BUSYBOX, DOCKER, DOCKERD } from './engine.js';
import { check, run } from './exec.js';
import { TestNs, uniqueName } from './netns.js';
import { describeRoot, isRoot, ROOT_SKIP_REASON } from './root.js';

export const DOCKER_PACKAGES = ['docker.io', 'busybox-static'] as const;
const POLICY_RC = '/usr/sbin/policy-rc.d';

async function installed(pkg: string): Promise<boolean> {
  const r = await run(['dpkg-query', '-W', '-f=${Status}', pkg]);
  return r.code === 0 && r.stdout.includes('install ok installed');
}

/**
 * Makes sure docker.io and busybox-static are installed (apt-get, without starting the engine's
 * services on the host). Returns why the Docker tests cannot run, or undefined when they can.
 */
export async function dockerSkipReason(): Promise<string | undefined> {
  if (!isRoot) return ROOT_SKIP_REASON;
  const missing: string[] = [];
  for (const pkg of DOCKER_PACKAGES) if (!(await installed(pkg))) missing.push(pkg);
  if (missing.length > 0) {
    // Installing docker.io would start dockerd (and docker0, iptables rules) on the host: forbid it.
    const guard = !fs.existsSync(POLICY_RC);
    if (guard) fs.writeFileSync(POLICY_RC, '#!/bin/sh\n# cnmkit tests: do not start services while installing\nexit 101\n', { mode: 0o755 });
    try {
      await run(['apt-get', 'update', '-qq'], { timeoutMs: 300_000 });
      const r = await run(['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-qq', '--no-install-recommends',
        '-o', 'DPkg::Lock::Timeout=120', ...missing], { timeoutMs: 600_000 });
      if (r.code !== 0) return `skipped: the Docker tests need ${missing.join(', ')}, and apt-get could not install them: ${r.stderr.trim().split('\n').at(-1) ?? ''}`;
    } finally {
      if (guard) fs.rmSync(POLICY_RC, { force: true });
    }
  }
  for (const file of [DOCKERD, DOCKER, BUSYBOX]) if (!fs.existsSync(file)) return `skipped: ${file} is missing after installing ${DOCKER_PACKAGES.join(', ')}`;
  return undefined;
}

/** describe() for tests of the real engine: skipped with the reason when it cannot run, an error under CI. */
export function describeDocker(name: string, skipReason: string | undefined, fn: () => void): void {
  if (!isRoot) return describeRoot(name, fn);
  if (skipReason === undefined) {
    describe(name, fn);
    return;
  }
  if (process.env.CI) throw new Error(`${name}: ${skipReason} (under CI the Docker tests must run)`);
  console.warn(`${name}: ${skipReason}`);
  describe.skip(`${name} [${skipReason}]`, fn);
}

/** A network namespace that outlives single tests (unlike makeNs); delete it in afterAll. */
export async function makeHostNs(tag = 'dockerhost'): Promise<TestNs> {
  const ns = new TestNs(uniqueName(tag));
  await check(['ip', 'netns', 'add', ns.name]);
  await check(['ip', '-n', ns.name, 'link', 'set', 'lo', 'up']);
  return ns;
}

export { BUSYBOX_IMAGE, Dockerd, type DockerdOptions } from './engine.js';
