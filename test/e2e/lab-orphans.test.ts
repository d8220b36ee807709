// cnmkit lab, a node's background processes do not outlive it (LB7, from a review): a node whose
// exec line left a sleeper running has its namespace file unmounted, or deleted with `ip netns
// del`; the namespace lives on, held by the sleeper, where no path leads. `up` makes the node
// again (a second sleeper, in a second namespace) and ends the first; `down` ends the second,
// orphaned the same way. The sleepers are found here independently, through /proc (their
// namespace's inode, their pid and start time), and the lab host's daemon is seen to live on.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { makeNs, type TestNs } from '../helpers/netns.js';
import { check } from '../helpers/exec.js';
import { etcNetnsWith, LabRunner, labName, namespacesWith, netState, pidAlive } from '../helpers/lab.js';

let machine: TestNs;
let labs: LabRunner;
let dir: string;
/** Every sleeper seen, ended after the test whatever it found (a failing run leaks none). */
let seen: Proc[] = [];

interface Proc { pid: number; start: string }

/** Field 22 of /proc/PID/stat (start time), or undefined when the pid runs no process. */
function startOf(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Whether the process still runs: its pid, with the same start time, and not a zombie. */
const stillRuns = (p: Proc): boolean => pidAlive(p.pid) && startOf(p.pid) === p.start;

/** The `sleep 6170` processes whose network namespace is the one of inode ino. */
function sleepersIn(ino: number): Proc[] {
  const out: Proc[] = [];
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number)) {
    try {
      if (fs.statSync(`/proc/${pid}/ns/net`).ino !== ino) continue;
      if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8') !== 'sleep\x006170\x00') continue;
      out.push({ pid, start: startOf(pid)! });
    } catch {
      // ended meanwhile
    }
  }
  return out;
}

/** Polls test() until it holds, at most ms; false when it never did. */
async function within(ms: number, test: () => boolean): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!test()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/**
 * The node's sleepers, found through its namespace while its file is mounted (waited for: the
 * shell's child that becomes `sleep` may not have exec'd it yet when the line's shell ended).
 */
async function nodeSleepers(ns: string): Promise<Proc[]> {
  const ino = fs.statSync(`/run/netns/${ns}`).ino;
  await within(5000, () => sleepersIn(ino).length > 0);
  const found = sleepersIn(ino);
  expect(found).toHaveLength(1);
  seen.push(...found);
  return found;
}

describeRoot('cnmkit lab: a node\'s background processes end with it', () => {
  beforeEach(async () => {
    machine = await makeNs('machine');
    labs = new LabRunner(machine);
    dir = fs.mkdtempSync(path.join(labs.root, '..', 'cnmkit-lab-file-'));
  });
  afterEach(async () => {
    await labs.cleanup();
    for (const p of seen.filter(stillRuns)) process.kill(p.pid, 'SIGKILL');
    seen = [];
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const orphan: Array<[string, (ns: string) => Promise<unknown>]> = [
    ['unmounted', (ns) => check(['umount', `/run/netns/${ns}`])],
    ['deleted with ip netns del', (ns) => check(['ip', 'netns', 'del', ns])],
  ];
  it.each(orphan)('a node whose namespace file is %s while an exec line\'s sleeper holds it: up ends that sleeper as it makes the node again, down ends the next one', async (_how, cut) => {
    const name = labName('orph');
    const ns = `${name}-a`;
    const f = path.join(dir, 'orphans.yml');
    fs.writeFileSync(f, `name: ${name}\nnodes:\n  a:\n    exec: ["sleep 6170 >/dev/null 2>&1 &"]\n  b: {}\n`);
    const before = await netState(machine);
    await labs.ok(['up', f]);
    const daemon = labs.state(name).daemons.local!.pid;
    const first = await nodeSleepers(ns);
    await cut(ns);
    expect(first.every(stillRuns)).toBe(true);
    await labs.ok(['up', f]);
    const second = await nodeSleepers(ns);
    expect(second[0]!.pid).not.toBe(first[0]!.pid);
    // SIGKILLed: gone once the kernel has run its exit, at once on an idle machine.
    await within(5000, () => !first.some(stillRuns));
    expect(first.filter(stillRuns)).toEqual([]);
    expect(pidAlive(daemon)).toBe(true);
    expect((await labs.lab(['check', name])).code).toBe(0);
    await cut(ns);
    await labs.ok(['down', name]);
    await within(5000, () => !second.some(stillRuns));
    expect(second.filter(stillRuns)).toEqual([]);
    expect(await namespacesWith(`${name}-`)).toEqual([]);
    expect(fs.existsSync(`/run/netns/${ns}`)).toBe(false);
    expect(etcNetnsWith(`${name}-`)).toEqual([]);
    expect(await netState(machine)).toBe(before);
  });
});
