// Gate for the privileged tiers: without root they skip with a printed reason; under CI
// (CI=true) a missing root is an error, so the privileged tier can never pass by skipping.
import { describe } from 'vitest';

export const isRoot = process.getuid?.() === 0;
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
