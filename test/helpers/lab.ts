// Labs in tests: `cnmkit lab …` run inside a throwaway namespace that stands for the machine
// (nsenter --net), with its run directory in a temporary folder and a lab name of this test run
// (ctRUN-…), so that the suite's host check sees any namespace a lab leaves behind. Checks read
// the kernel with iproute2, independently of the code under test.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLI } from './daemon.js';
import { check, run, type RunResult } from './exec.js';
import type { TestNs } from './netns.js';

export const EXAMPLES = path.resolve(import.meta.dirname, '../../examples/labs');
const runId = process.env.CNMKIT_TEST_RUN ?? 'local';
let counter = 0;

/** A lab name of this test run (at most 16 characters). */
export function labName(tag: string): string {
  counter += 1;
  return `ct${runId}-${tag}${counter}`.slice(0, 16);
}

export class LabRunner {
  readonly root = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-lab-test-'));

  constructor(readonly machine: TestNs) {}

  /** `cnmkit lab ARGS…` in the machine namespace (env: more variables, e.g. a PATH with stand-ins). */
  lab(args: string[], opts: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<RunResult> {
    return run(['nsenter', `--net=${this.machine.path}`, '--', process.execPath, CLI, 'lab', ...args], {
      env: { ...process.env, CNMKIT_LAB_DIR: this.root, ...opts.env }, timeoutMs: opts.timeoutMs ?? 120_000,
    });
  }

  async ok(args: string[], opts: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<string> {
    const r = await this.lab(args, opts);
    if (r.code !== 0) throw new Error(`cnmkit lab ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  }

  state(name: string): { daemons: Record<string, { pid: number }>; plan: { nodes: { sandbox: string }[]; hosts: { socket: string }[] } } {
    return JSON.parse(fs.readFileSync(path.join(this.root, name, 'state.json'), 'utf8'));
  }

  /** Takes down every lab left in the run directory, then removes it. */
  async cleanup(): Promise<void> {
    for (const d of fs.existsSync(this.root) ? fs.readdirSync(this.root) : []) await this.lab(['down', '-q', d]);
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/** Names in /run/netns that start with prefix. */
export async function namespacesWith(prefix: string): Promise<string[]> {
  const out = await check(['ip', '-j', 'netns', 'list']);
  return (out.trim() ? (JSON.parse(out) as { name: string }[]) : []).map((n) => n.name).filter((n) => n.startsWith(prefix)).sort();
}

/** Links, addresses and routes of a namespace, for a before/after comparison. */
export async function netState(ns: TestNs): Promise<string> {
  const parts = await Promise.all([['-br', 'link'], ['-br', 'addr'], ['route', 'show', 'table', 'all'], ['-6', 'route', 'show', 'table', 'all']].map((a) => check(['ip', '-n', ns.name, ...a])));
  return parts.join('\n---\n');
}

/** /etc/netns folders of lab nodes whose names start with prefix. */
export function etcNetnsWith(prefix: string): string[] {
  return fs.existsSync('/etc/netns') ? fs.readdirSync('/etc/netns').filter((n) => n.startsWith(prefix)) : [];
}

/** Whether pid runs (a zombie waiting for its reaper does not). */
export function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}
