// Sandboxes that `cnmkit run` is using: run labels its sandbox with its pid and that process's
// start time, and the sandbox is in use while that very process lives (a reused pid has another
// start time). Limit: the daemon reads /proc, so a run in another pid namespace is not seen.
import fs from 'node:fs';

export const RUN_PID_LABEL = 'cnmkit.run.pid';
export const RUN_START_LABEL = 'cnmkit.run.start';

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

/** The labels `cnmkit run` gives its sandbox: this process. */
export function runLabels(pid = process.pid): Record<string, string> {
  return { [RUN_PID_LABEL]: String(pid), [RUN_START_LABEL]: processStartTime(pid) ?? '' };
}

/** The pid of the live `cnmkit run` that uses a sandbox with these labels, or undefined. */
export function runnerOf(labels: Readonly<Record<string, string>>): number | undefined {
  const pid = Number(labels[RUN_PID_LABEL]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const start = processStartTime(pid);
  return start !== undefined && start === labels[RUN_START_LABEL] ? pid : undefined;
}
