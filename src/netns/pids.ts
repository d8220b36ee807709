// The processes inside a network namespace, found as `ip netns pids` finds them (their
// /proc/PID/ns/net is the same inode), and ending them; a process's start time, which tells it
// from a later one that took its pid. Pure /proc reads: no native addon.
// Limits: sees only what this process may stat in /proc (root sees all); pids reused meanwhile
// are not an issue as the inode is read just before the signal.
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
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number)) {
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
