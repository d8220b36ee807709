// Rollback and best-effort teardown: setup pushes the undo of every completed step and runs
// them in reverse on failure; teardown runs every step and reports all failures together.
import { TeardownError } from '../errors.js';

type Step = () => Promise<unknown> | unknown;

export class Undo {
  private readonly steps: Array<{ name: string; fn: Step }> = [];

  push(name: string, fn: Step): void {
    this.steps.push({ name, fn });
  }

  /** Runs the undo steps in reverse order; returns the failures (never throws). */
  async run(): Promise<Error[]> {
    const failures: Error[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step.fn();
      } catch (err) {
        failures.push(new Error(`undo ${step.name}: ${(err as Error).message}`, { cause: err }));
      }
    }
    return failures;
  }
}

/**
 * Runs fn with an Undo; if fn throws, the completed steps are undone in reverse and the original
 * error is rethrown (undo failures are attached as `undoErrors`, and reported to onUndoFailure).
 */
export async function withRollback<T>(fn: (undo: Undo) => Promise<T>, onUndoFailure?: (errs: Error[]) => void): Promise<T> {
  const undo = new Undo();
  try {
    return await fn(undo);
  } catch (err) {
    const failures = await undo.run();
    if (failures.length > 0) {
      onUndoFailure?.(failures);
      if (err && typeof err === 'object') Object.assign(err, { undoErrors: failures });
    }
    throw err;
  }
}

/** Runs every step even when some fail; throws one TeardownError naming them all. */
export async function bestEffort(what: string, steps: Array<[string, Step]>): Promise<void> {
  const failures: Error[] = [];
  for (const [name, fn] of steps) {
    try {
      await fn();
    } catch (err) {
      failures.push(new Error(`${name}: ${(err as Error).message}`, { cause: err }));
    }
  }
  if (failures.length > 0) throw new TeardownError(failures, what);
}

/** Serialises async work: one mutation of the CNM state at a time. */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(() => fn());
    this.tail = next.catch(() => undefined);
    return next;
  }
}
