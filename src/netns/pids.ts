// The processes inside a network namespace, found as `ip netns pids` finds them (their
// /proc/PID/ns/net is the same inode), and ending them; a process's start time, which tells it
// from a later one that took its pid, and ending processes recorded so (pid and start time),
// wherever they run now. Pure /proc reads: no native addon.
// Limits: sees only what this process may stat in /proc (root sees all); pids reused meanwhile
// are not an issue as the inode, or the start time, is read just before the signal.
import fs from 'node:fs';

/** A process's start time (clock ticks after boot, field 22 of /proc/PID/stat); undefined when there is none. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** One process for the machine's uptime: its pid and its start time (processStartTime). */
export interface ProcessId {
  pid: number;
  /** Field 22 of /proc/PID/stat: with the pid, names one process for the machine's uptime. */
  startTime: string;
}

/** Whether the recorded process still runs: its pid has the same start time (not a later process that took the pid). */
export function stillRuns(p: ProcessId): boolean {
  return processStartTime(p.pid) === p.startTime;
}

/** The inode of a namespace file, or undefined when it is gone. */
function inodeOf(nsPath: string): number | undefined {
  try {
    return fs.statSync(nsPath).ino;
  } catch {
    return undefined;
  }
}

/**
 * SIGKILLs every process (but this one) whose network namespace is one of nsPaths, as a
 * container's other processes end with it. Returns how many were signalled. Equivalent to:
 * `ip netns pids NAME | xargs kill -9`.
 */
export function killProcessesInNetns(nsPaths: string[]): number {
  const inodes = new Set(nsPaths.map(inodeOf).filter((i): i is number => i !== undefined));
  if (inodes.size === 0) return 0;
  let killed = 0;
  for (const pid of allPids()) {
    if (pid === process.pid) continue;
    try {
      if (!inodes.has(fs.statSync(`/proc/${pid}/ns/net`).ino)) continue;
      process.kill(pid, 'SIGKILL');
      killed++;
    } catch {
      // gone meanwhile, or not ours to see
    }
  }
  return killed;
}

/** Pids of the processes in /proc. */
function allPids(): number[] {
  return fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number);
}

/** A namespace file's identity (device and inode: a file left where one was unmounted is on another filesystem). */
function nsKey(p: string): string {
  const st = fs.statSync(p);
  return `${st.dev}:${st.ino}`;
}

/**
 * For each of nsPaths, the processes (but this one and those of except) all of whose threads run
 * in that namespace, with their start times ([] for a path that is no file); one pass over /proc.
 * A process with a thread elsewhere is one that entered the namespace for a moment (a daemon's
 * setns to configure it), not one started there. Equivalent to: `ip netns pids NAME`, less those.
 */
export function processesInNetns(nsPaths: string[], except: number[] = []): ProcessId[][] {
  const out = nsPaths.map((): ProcessId[] => []);
  const index = new Map<string, number[]>();
  for (const [i, p] of nsPaths.entries()) {
    try {
      const k = nsKey(p);
      index.set(k, [...(index.get(k) ?? []), i]);
    } catch {
      // no such file: no process
    }
  }
  if (index.size === 0) return out;
  const skip = new Set([process.pid, ...except]);
  for (const pid of allPids()) {
    if (skip.has(pid)) continue;
    try {
      const k = nsKey(`/proc/${pid}/ns/net`);
      const at = index.get(k);
      if (!at || !fs.readdirSync(`/proc/${pid}/task`).every((t) => nsKey(`/proc/${pid}/task/${t}/ns/net`) === k)) continue;
      const startTime = processStartTime(pid);
      if (startTime !== undefined) for (const i of at) out[i]!.push({ pid, startTime });
    } catch {
      // gone meanwhile, or not ours to see
    }
  }
  return out;
}

/**
 * SIGKILLs each recorded process that still runs (but this one): its pid with the same start
 * time, wherever it runs now; a pid that another process took since is left alone. Returns how
 * many were signalled.
 */
export function killRecorded(processes: ProcessId[]): number {
  let killed = 0;
  for (const p of processes) {
    if (p.pid === process.pid || !stillRuns(p)) continue;
    try {
      process.kill(p.pid, 'SIGKILL');
      killed++;
    } catch {
      // gone meanwhile
    }
  }
  return killed;
}
