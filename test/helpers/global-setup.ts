// Global set-up of the privileged tiers: snapshot the host before, compare after, and fail the
// run on any difference (the suite must never change the real host's network).
import type { TestProject } from 'vitest/node';
import { randomBytes } from 'node:crypto';
import { diffSnapshots, takeSnapshot, type Snapshot } from './host-snapshot.js';
import { acquireKernelLock } from './kernel-lock.js';

let before: Snapshot | undefined;
let prefix = '';
let release: (() => void) | undefined;

export async function setup(project: TestProject): Promise<void> {
  const runId = process.env.CNMKIT_TEST_RUN ?? randomBytes(2).toString('hex');
  process.env.CNMKIT_TEST_RUN = runId;
  prefix = `ct${runId}-`;
  project.provide('cnmkitTestRun', runId);
  if (process.getuid?.() !== 0) return;
  release = await acquireKernelLock({ onWait: (owner) => console.log(`waiting for another privileged run (pid ${owner}) to end`) });
  before = await takeSnapshot(prefix);
}

export async function teardown(): Promise<void> {
  if (!before) return;
  const after = await takeSnapshot(prefix);
  release?.();
  const diff = diffSnapshots(before, after);
  if (diff.length > 0) {
    const msg = `HOST NETWORK CHANGED by the test suite:\n${diff.join('\n')}`;
    console.error(msg);
    process.exitCode = 1;
    throw new Error(msg);
  }
  console.log('host-unchanged check: passed (links, addresses, routes, rules, iptables, ip6tables, nftables)');
}

declare module 'vitest' {
  export interface ProvidedContext {
    cnmkitTestRun: string;
  }
}
