// The AnswerGate (src/core/answers.ts): work deferred with after() runs once the operations under
// way (during()) have settled and their callers' continuations ran (a connect's answer is written
// there), on a later turn when none is under way, and at most maxWaitMs late while operations keep
// it busy; a failed operation releases it as a settled one does.
import { describe, expect, it } from 'vitest';
import { AnswerGate } from '../../src/core/answers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('AnswerGate', () => {
  it('runs a job on a later turn when no operation is under way', async () => {
    const gate = new AnswerGate();
    const order: string[] = [];
    gate.after(() => order.push('job'));
    order.push('sync');
    await Promise.resolve();
    expect(order).toEqual(['sync']);
    await sleep(5);
    expect(order).toEqual(['sync', 'job']);
  });

  it('holds a job until the operation settled and its caller went on (the answer first)', async () => {
    const gate = new AnswerGate(1000);
    const order: string[] = [];
    let finish!: () => void;
    const answered = gate.during(() => new Promise<void>((r) => (finish = r))).then(() => order.push('answer'));
    gate.after(() => order.push('job'));
    await sleep(20);
    expect(order).toEqual([]);
    finish();
    await answered;
    expect(order).toEqual(['answer']);
    await sleep(5);
    expect(order).toEqual(['answer', 'job']);
  });

  it('waits for every operation under way, not the first to settle', async () => {
    const gate = new AnswerGate(1000);
    const order: string[] = [];
    const ends: (() => void)[] = [];
    const a = gate.during(() => new Promise<void>((r) => ends.push(r)));
    const b = gate.during(() => new Promise<void>((r) => ends.push(r)));
    gate.after(() => order.push('job'));
    ends[0]!();
    await a;
    await sleep(20);
    expect(order).toEqual([]);
    ends[1]!();
    await b;
    await sleep(5);
    expect(order).toEqual(['job']);
  });

  it('releases the job after a failed operation too', async () => {
    const gate = new AnswerGate(1000);
    let ran = false;
    const failed = gate.during(() => sleep(5).then(() => Promise.reject(new Error('refused'))));
    gate.after(() => (ran = true));
    await expect(failed).rejects.toThrow('refused');
    await sleep(5);
    expect(ran).toBe(true);
  });

  it('runs a job at most maxWaitMs late while operations keep the gate busy', async () => {
    const gate = new AnswerGate(20);
    let ranAt: number | undefined;
    const t0 = Date.now();
    const busy = gate.during(() => sleep(300));
    gate.after(() => (ranAt = Date.now() - t0));
    await sleep(150);
    expect(ranAt).toBeDefined();
    expect(ranAt!).toBeLessThan(150);
    await busy;
  });
});
