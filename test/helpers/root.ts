// Skip policy of the privileged tiers: without root they skip with a printed reason (an error
// under CI=true). As root nothing skips: a gate that cannot run fails the file, unless skips are
// allowed on purpose (CNMKIT_ALLOW_SKIPS=1, set by `scripts/test --allow-skips`). The one skip
// always allowed is a kernel feature the machine lacks (test/helpers/kernel-features.ts).
import { describe } from 'vitest';

export const isRoot = process.getuid?.() === 0;
/** Set on purpose by whoever runs the suite: a gate that cannot run skips instead of failing. */
export const allowSkips = process.env.CNMKIT_ALLOW_SKIPS === '1';
export const ROOT_SKIP_REASON = 'skipped: not root (this tier creates network namespaces and needs root)';

export function describeRoot(name: string, fn: () => void): void {
  if (isRoot) {
    describe(name, fn);
    return;
  }
  if (process.env.CI) throw new Error(`${name}: the privileged tier must run as root under CI`);
  console.warn(`${name}: ${ROOT_SKIP_REASON}`);
  describe.skip(`${name} [${ROOT_SKIP_REASON}]`, fn);
}

/**
 * describe() for privileged tests that need more than root (e.g. the Docker engine): `skipReason`
 * says why they cannot run here, undefined when they can. Without root, as describeRoot. As root a
 * reason fails the file, unless skips are allowed (then it skips, with the reason printed).
 */
export function describeGated(name: string, skipReason: string | undefined, fn: () => void): void {
  if (!isRoot) return describeRoot(name, fn);
  if (skipReason === undefined) {
    describe(name, fn);
    return;
  }
  if (!allowSkips) {
    throw new Error(`${name}: ${skipReason}. As root every test must run: run scripts/setup, or allow skips on purpose with scripts/test --allow-skips (CNMKIT_ALLOW_SKIPS=1)`);
  }
  console.warn(`${name}: ${skipReason} (skips allowed: CNMKIT_ALLOW_SKIPS=1)`);
  describe.skip(`${name} [${skipReason}]`, fn);
}
