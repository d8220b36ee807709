// Store and firewall timings taken while the daemon starts, before its metrics registry (prom-client,
// loaded after the kernel is restored) exists: kept in memory and handed over when it comes, so
// the start's transactions and firewall calls are counted as before. Bounded: a start makes few.
import type { TimingSink } from '../api/instrument.js';

type Observation = (sink: TimingSink) => void;

/** At most this many kept observations (a start makes tens); beyond it, the oldest go. */
const KEEP = 10_000;

export class StartTimings implements TimingSink {
  private sink: TimingSink | undefined;
  private kept: Observation[] = [];

  readonly storeTxSeconds = { observe: (seconds: number) => this.record((s) => s.storeTxSeconds.observe(seconds)) };
  readonly firewallSeconds = {
    observe: (labels: { backend: string; operation: string; result: string }, seconds: number) => this.record((s) => s.firewallSeconds.observe(labels, seconds)),
  };

  /** From now on every timing goes to sink, the kept ones first. */
  attach(sink: TimingSink): void {
    for (const o of this.kept) o(sink);
    this.kept = [];
    this.sink = sink;
  }

  private record(o: Observation): void {
    if (this.sink) return o(this.sink);
    if (this.kept.length >= KEEP) this.kept.shift();
    this.kept.push(o);
  }
}
