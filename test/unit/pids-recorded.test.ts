// Recorded processes (pid and start time, as a lab records its nodes' processes) are ended only
// while the pid still runs the process recorded: a record whose start time is not the running
// process's (its pid taken since by another) ends nothing. And a namespace's processes are listed
// with their start times, never this process. Uses a child `sleep` in this process's namespace.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, expect, it } from 'vitest';
import { killRecorded, processesInNetns, processStartTime } from '../../src/netns/pids.js';

let child: ChildProcess | undefined;

afterEach(() => {
  if (child?.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  child = undefined;
});

/** A child `sleep 60` and its start time, read once it runs. */
async function sleeper(): Promise<{ pid: number; startTime: string }> {
  child = spawn('sleep', ['60'], { stdio: 'ignore' });
  await once(child, 'spawn');
  const pid = child.pid!;
  return { pid, startTime: processStartTime(pid)! };
}

it('a record whose start time is another process\'s ends nothing; the process recorded is ended', async () => {
  const s = await sleeper();
  expect(s.startTime).toMatch(/^\d+$/);
  expect(killRecorded([{ pid: s.pid, startTime: String(Number(s.startTime) - 1) }])).toBe(0);
  expect(processStartTime(s.pid)).toBe(s.startTime);
  const exited = once(child!, 'exit');
  expect(killRecorded([s])).toBe(1);
  expect((await exited)[1]).toBe('SIGKILL');
  // Once gone, its record ends nothing.
  expect(killRecorded([s])).toBe(0);
});

it('lists a namespace\'s processes with their start times, never this one; a missing path lists none', async () => {
  const s = await sleeper();
  const [found, none] = processesInNetns([`/proc/${s.pid}/ns/net`, '/nonexistent/ns']);
  expect(found).toContainEqual(s);
  expect(found!.map((p) => p.pid)).not.toContain(process.pid);
  expect(none).toEqual([]);
  expect(processesInNetns([`/proc/${s.pid}/ns/net`], [s.pid])[0]!.map((p) => p.pid)).not.toContain(s.pid);
});
