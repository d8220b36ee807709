// The suite's own rules about skips and verdicts: scripts/test's closing line (which skips are
// allowed, failed suites, the host check, vitest's exit code) and the kernel-feature check that
// is the one skip allowed as root.
import { describe, expect, it } from 'vitest';
import { summarize, type FileResult, type RunContext } from '../../scripts/test-summary.js';
import { kernelLacks, parseKernelConfig } from '../helpers/kernel-features.js';

const root: RunContext = { root: true, ci: false, allowSkips: false, vitestExit: 0 };
const user: RunContext = { root: false, ci: false, allowSkips: false, vitestExit: 0 };

function file(tier: string, statuses: [string, string, { kernelFeature?: string }?][], status = 'passed', message = ''): FileResult {
  return {
    name: `/repo/test/${tier}/x.test.ts`, status, message,
    assertionResults: statuses.map(([fullName, s, meta]) => ({ fullName, status: s, meta: meta ?? {} })),
  };
}

describe('scripts/test closing line', () => {
  it('is ok when everything passed and the host check passed', () => {
    const s = summarize({ testResults: [file('unit', [['a', 'passed']]), file('e2e', [['b', 'passed']])] }, { result: 'passed' }, root);
    expect(s).toMatchObject({ ok: true, line: 'tests: 2 passed, 0 failed, 0 skipped, 0 failed suites, host check passed: ok' });
  });

  it('fails on any skip as root, except a kernel feature the machine lacks, which it names', () => {
    const report = { testResults: [file('netns', [['vlan works', 'skipped', { kernelFeature: '8021q' }], ['vlan again', 'skipped', { kernelFeature: '8021q' }]])] };
    expect(summarize(report, { result: 'passed' }, root)).toMatchObject({ ok: true, line: expect.stringContaining('2 skipped (allowed: kernel lacks 8021q ×2)') });
    const docker = { testResults: [file('e2e', [['engine', 'skipped']]), file('unit', [['u', 'todo']])] };
    const s = summarize(docker, { result: 'passed' }, root);
    expect(s.ok).toBe(false);
    expect(s.line).toBe('tests: 0 passed, 0 failed, 2 skipped, 2 skips not allowed, 0 failed suites, host check passed: FAILED');
    expect(s.details).toEqual(['SKIP NOT ALLOWED: engine', 'SKIP NOT ALLOWED: u']);
    expect(summarize(docker, { result: 'passed' }, { ...root, allowSkips: true })).toMatchObject({ ok: true, line: expect.stringContaining('(allowed: skips allowed (--allow-skips) ×2)') });
  });

  it('allows the privileged tiers to skip without root, but not under CI, and never the unit tier', () => {
    const report = { testResults: [file('netns', [['n', 'skipped']]), file('drivers', [['d', 'skipped']]), file('e2e', [['e', 'skipped']])] };
    expect(summarize(report, { result: 'not root' }, user)).toMatchObject({ ok: true, line: expect.stringContaining('3 skipped (allowed: not root ×3)') });
    expect(summarize(report, { result: 'not root' }, { ...user, ci: true }).ok).toBe(false);
    expect(summarize({ testResults: [file('unit', [['u', 'skipped']])] }, { result: 'not root' }, user).ok).toBe(false);
  });

  it('counts a file that failed outside its tests, a failed host check, a host check that did not run as root, and an unexplained exit code', () => {
    const broken = { testResults: [file('e2e', [], 'failed', 'Error: cannot load\nstack'), file('unit', [['a', 'passed']])] };
    const s = summarize(broken, { result: 'passed' }, { ...root, vitestExit: 1 });
    expect(s).toMatchObject({ ok: false, line: 'tests: 1 passed, 0 failed, 0 skipped, 1 failed suites, host check passed: FAILED' });
    expect(s.details).toEqual(['FAILED SUITE: /repo/test/e2e/x.test.ts: Error: cannot load']);
    const fine = { testResults: [file('unit', [['a', 'passed']])] };
    expect(summarize(fine, { result: 'failed', differences: ['links changed'] }, { ...root, vitestExit: 1 }).line).toBe('tests: 1 passed, 0 failed, 0 skipped, 0 failed suites, host check failed: FAILED');
    expect(summarize(fine, undefined, root).line).toBe('tests: 1 passed, 0 failed, 0 skipped, 0 failed suites, host check not run: FAILED');
    expect(summarize(fine, { result: 'passed' }, { ...root, vitestExit: 1 }).line).toMatch(/vitest exited 1 \(errors outside any test: see above\): FAILED$/);
    expect(summarize(undefined, undefined, root).line).toMatch(/^no vitest report, .*: FAILED$/);
  });

  it('counts failed tests', () => {
    const s = summarize({ testResults: [file('netns', [['a', 'failed'], ['b', 'passed']], 'failed')] }, { result: 'passed' }, { ...root, vitestExit: 1 });
    expect(s).toMatchObject({ ok: false, line: 'tests: 1 passed, 1 failed, 0 skipped, 0 failed suites, host check passed: FAILED' });
  });
});

describe('kernel features', () => {
  const config = parseKernelConfig('CONFIG_VETH=y\n# CONFIG_VLAN_8021Q is not set\nCONFIG_DUMMY=m\n');

  it('has a built-in feature, lacks an unset or unknown one, and a module only when it can be loaded', () => {
    expect(kernelLacks('veth', config)).toBeUndefined();
    expect(kernelLacks('8021q', config)).toBe('CONFIG_VLAN_8021Q is not set in this kernel');
    expect(kernelLacks('sch_netem', config)).toBe('CONFIG_NET_SCH_NETEM is not set in this kernel');
    expect(kernelLacks('dummy', config, () => true)).toBeUndefined();
    expect(kernelLacks('dummy', config, () => false)).toBe('CONFIG_DUMMY=m but the module dummy is not available');
  });

  it('lets the test run when no kernel config is readable', () => {
    expect(kernelLacks('8021q', null)).toBeUndefined();
  });
});
