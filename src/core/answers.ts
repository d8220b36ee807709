// Background work that waits for the answers under way: a connect's peer is sent to the cluster
// store once the connect has answered, not while it makes its veth (the etcd call costs CPU here,
// and wakes etcd and the other hosts on the same cores). `during` wraps an operation whose answer
// goes first; `after` runs a job on the turn of the event loop after the last such operation
// settled (its answer is written by then: the reply's serialisation and write are microtasks of
// its settling), at once on the next turn when none is under way, and at most maxMs late when
// operations keep following each other.
// Limits: one gate per daemon; work that is not deferred through it is not held back.

/** How long a job waits at most while operations keep the gate busy. */
const MAX_WAIT_MS = 10;

export class AnswerGate {
  private busy = 0;
  private jobs: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly maxWaitMs = MAX_WAIT_MS) {}

  /** Runs op; jobs deferred meanwhile (after()) run once it and every other op under way settled. */
  async during<T>(op: () => Promise<T>): Promise<T> {
    this.busy++;
    try {
      return await op();
    } finally {
      if (--this.busy === 0 && this.jobs.length > 0) setImmediate(() => this.run());
    }
  }

  /** Runs job on a later turn of the event loop: after the operations under way settled, or maxWaitMs from now. */
  after(job: () => void): void {
    this.jobs.push(job);
    if (this.busy === 0) {
      if (this.jobs.length === 1) setImmediate(() => this.run());
      return;
    }
    this.timer ??= setTimeout(() => this.run(), this.maxWaitMs).unref();
  }

  private run(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const jobs = this.jobs;
    this.jobs = [];
    for (const job of jobs) job();
  }
}
