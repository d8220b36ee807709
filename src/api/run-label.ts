// Sandboxes that `cnmkit run` is using: run labels its sandbox with its pid and that process's
// start time, and the sandbox is in use while that very process lives (a reused pid has another
// start time). Limit: the daemon reads /proc, so a run in another pid namespace is not seen.
import { processStartTime } from '../netns/pids.js';

export const RUN_PID_LABEL = 'cnmkit.run.pid';
export const RUN_START_LABEL = 'cnmkit.run.start';

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
