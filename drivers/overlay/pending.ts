// Cluster writes that must happen even when etcd does not answer right now: removing a peer or
// an address of an endpoint that is gone, publishing again the peers of endpoints found at
// start, leaving a network. Each runs at once; one that fails is kept (a later one with the same
// key replaces it) and retried every second until it succeeds, so a store outage leaves nothing
// stale once the store is back. Memory only: after a restart, restore publishes what exists and
// removes this host's keys that no endpoint has (the removals this queue held then).
import type { Logger } from 'pino';
import { CnmkitError } from '../../src/errors.js';

const RETRY_MS = 1000;

/** Only a store that did not answer is worth asking again; a refusal (another owner, say) stays one. */
function retryable(err: unknown): boolean {
  return !(err instanceof CnmkitError) || err.errorClass === 'unavailable';
}

export class PendingWrites {
  private readonly tasks = new Map<string, () => Promise<unknown>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly logger: Logger) {}

  /** Runs fn now; on failure keeps it under key for retries. Resolves whether it succeeded now. */
  async run(key: string, fn: () => Promise<unknown>): Promise<boolean> {
    this.tasks.set(key, fn);
    try {
      await fn();
      if (this.tasks.get(key) === fn) this.tasks.delete(key);
      return true;
    } catch (err) {
      if (!retryable(err)) {
        this.tasks.delete(key);
        this.logger.error({ key, err: (err as Error).message }, 'overlay: cluster write refused; not retried');
        return false;
      }
      this.logger.warn({ key, err: (err as Error).message }, 'overlay: cluster write failed; retrying every second');
      this.schedule();
      return false;
    }
  }

  /** Drops a pending write (its object came back, say). */
  cancel(key: string): void {
    this.tasks.delete(key);
  }

  size(): number {
    return this.tasks.size;
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => void this.retry(), RETRY_MS);
    this.timer.unref();
  }

  private async retry(): Promise<void> {
    this.timer = undefined;
    for (const [key, fn] of [...this.tasks]) {
      try {
        await fn();
        if (this.tasks.get(key) === fn) this.tasks.delete(key);
      } catch (err) {
        // Still unavailable: kept for the next round; refused: dropped.
        if (!retryable(err)) this.tasks.delete(key);
      }
    }
    if (this.tasks.size > 0) this.schedule();
  }
}
