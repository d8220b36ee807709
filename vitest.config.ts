// Four tiers: unit (no root, fakes), netns (root, throwaway namespaces), drivers (root: the driver
// conformance suite, one run per fixture), e2e (daemon + real clients inside a namespace that
// stands for the host). The privileged tiers share one global set-up that takes the kernel lock
// and proves the host's network is unchanged afterwards.
import { defineConfig } from 'vitest/config';

const common = { pool: 'forks', testTimeout: 60_000, hookTimeout: 60_000 } as const;

export default defineConfig({
  test: {
    globalSetup: ['test/helpers/global-setup.ts'],
    projects: [
      { test: { ...common, name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { test: { ...common, name: 'netns', include: ['test/netns/**/*.test.ts'] } },
      { test: { ...common, name: 'drivers', include: ['test/drivers/**/*.test.ts'] } },
      { test: { ...common, name: 'e2e', include: ['test/e2e/**/*.test.ts'], fileParallelism: false } },
    ],
  },
});
