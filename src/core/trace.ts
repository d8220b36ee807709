// CNMKIT_TRACE_CONNECT=1: the stages of each connect, logged with its end (`connectStages`): per
// stage the wall ms since the connect began and the CPU ms (user + system) the process used
// meanwhile, so that waiting (etcd) is told from work (JS, and the kernel's time in netlink requests,
// which are synchronous). Marks are found through the async context of the connect: work it started
// in the background marks into it too, until the connect ends. Off: a mark is one test of a constant.
// Limits: CPU is the whole process's (a timer or watch running meanwhile counts); tracing itself
// costs (async context on every promise), so traced connects are slower than untraced ones.
import { AsyncLocalStorage } from 'node:async_hooks';
import { performance } from 'node:perf_hooks';

const ON = process.env.CNMKIT_TRACE_CONNECT === '1';

interface Trace {
  t0: number;
  cpu0: NodeJS.CpuUsage;
  stages: string[];
  done: boolean;
}

const current = ON ? new AsyncLocalStorage<Trace>() : undefined;

const round = (ms: number): number => Math.round(ms * 100) / 100;

/** Marks a stage of the connect under way (nothing when tracing is off or outside a connect). */
export function mark(stage: string): void {
  const t = current?.getStore();
  if (t && !t.done) markIn(t, stage);
}

function markIn(t: Trace, stage: string): void {
  const cpu = process.cpuUsage(t.cpu0);
  t.stages.push(`${stage} ${round(performance.now() - t.t0)}/${round((cpu.user + cpu.system) / 1000)}`);
}

/** Runs fn as a traced connect; report gets its stages (`stage wall/cpu`, ms) once it settled. Without tracing: fn alone. */
export async function traced<T>(fn: () => Promise<T>, report: (stages: string[]) => void): Promise<T> {
  if (!current) return fn();
  const t: Trace = { t0: performance.now(), cpu0: process.cpuUsage(), stages: [], done: false };
  try {
    return await current.run(t, fn);
  } finally {
    markIn(t, 'end');
    t.done = true;
    report(t.stages);
  }
}
