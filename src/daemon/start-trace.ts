// CNMKIT_TRACE_START=1: the daemon's start-up stages, each in ms since the process started, logged
// with the ready line (`startStages`), to see where a start's time goes. Off: marks cost nothing.
import { performance } from 'node:perf_hooks';

export class StartTrace {
  private readonly stages: Record<string, number> = {};
  private readonly on = process.env.CNMKIT_TRACE_START === '1';

  mark(stage: string): void {
    if (this.on) this.stages[stage] = Math.round(performance.now());
  }

  /** `{ startStages }` for the ready line, or nothing when tracing is off. */
  fields(): { startStages?: Record<string, number> } {
    return this.on ? { startStages: { ...this.stages } } : {};
  }
}
