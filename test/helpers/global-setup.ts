// Global set-up of the privileged tiers: snapshot the host before, compare after, and fail the
// run on any difference (the suite must never change the real host's network, nor leave a
// namespace, sysctl, plugin socket or process behind). The result also goes, as JSON, to the
// file named by CNMKIT_HOST_CHECK_REPORT (scripts/test reads it for its closing line).
import type { TestProject } from 'vitest/node';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { diffSnapshots, hostTarget, takeSnapshot, type Snapshot } from './host-snapshot.js';
import { acquireKernelLock } from './kernel-lock.js';
import type { HostCheck } from '../../scripts/test-summary.js';

let before: Snapshot | undefined;
let runId = '';
let release: (() => void) | undefined;

function writeResult(result: HostCheck): void {
  const file = process.env.CNMKIT_HOST_CHECK_REPORT;
  if (file) fs.writeFileSync(file, JSON.stringify(result));
}

export async function setup(project: TestProject): Promise<void> {
  runId = process.env.CNMKIT_TEST_RUN ?? randomBytes(2).toString('hex');
  // Set before vitest forks its workers: every process a test starts inherits it (host-snapshot.ts).
  process.env.CNMKIT_TEST_RUN = runId;
  project.provide('cnmkitTestRun', runId);
  if (process.getuid?.() !== 0) {
    writeResult({ result: 'not root' });
    return;
  }
  // `--project unit` alone touches no kernel object: it neither waits for the lock nor checks the host.
  const privileged = project.vitest.projects.some((p) => p.name !== 'unit');
  if (!privileged) return writeResult({ result: 'not needed (unit tier only)' });
  release = await acquireKernelLock({ onWait: (owner) => console.log(`waiting for another privileged run (pid ${owner}) to end`) });
  before = await takeSnapshot(hostTarget(runId));
}

export async function teardown(): Promise<void> {
  if (!before) return;
  const after = await takeSnapshot(hostTarget(runId));
  release?.();
  const diff = diffSnapshots(before, after);
  writeResult({ result: diff.length > 0 ? 'failed' : 'passed', differences: diff });
  if (diff.length > 0) {
    const msg = `HOST CHANGED by the test suite:\n${diff.join('\n')}`;
    console.error(msg);
    process.exitCode = 1;
    throw new Error(msg);
  }
  console.log(`host-unchanged check: passed (${Object.keys(after).join(', ')})`);
}

declare module 'vitest' {
  export interface ProvidedContext {
    cnmkitTestRun: string;
  }
}
