// The admission rules that keep the `netlink` package from mixing up replies: a dump never runs
// beside another request on the same socket, requests keep their order, and in-flight is bounded.
import { describe, expect, it } from 'vitest';
import { RequestGate } from '../../src/netlink/gate.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('RequestGate', () => {
  it('lets ordinary requests overlap up to the bound', async () => {
    const gate = new RequestGate(2);
    const started: number[] = [];
    const done = [deferred(), deferred(), deferred()];
    const runs = done.map((d, i) => gate.run(false, async () => { started.push(i); await d.promise; }));
    await tick();
    expect(started).toEqual([0, 1]);
    done[0]!.resolve();
    await tick();
    expect(started).toEqual([0, 1, 2]);
    done[1]!.resolve();
    done[2]!.resolve();
    await Promise.all(runs);
    expect(gate.active).toBe(0);
  });

  it('starts a dump only when nothing else is in flight, and holds back what queued after it', async () => {
    const gate = new RequestGate();
    const log: string[] = [];
    const first = deferred();
    const dump = deferred();
    const a = gate.run(false, async () => { log.push('a'); await first.promise; log.push('a-done'); });
    const d = gate.run(true, async () => { log.push('dump'); await dump.promise; log.push('dump-done'); });
    const b = gate.run(false, async () => { log.push('b'); });
    await tick();
    expect(log).toEqual(['a']);
    first.resolve();
    await tick();
    expect(log).toEqual(['a', 'a-done', 'dump']);
    expect(gate.waiting).toBe(1);
    dump.resolve();
    await Promise.all([a, d, b]);
    expect(log).toEqual(['a', 'a-done', 'dump', 'dump-done', 'b']);
  });

  it('releases after a failure', async () => {
    const gate = new RequestGate(1);
    await expect(gate.run(true, async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    await expect(gate.run(false, async () => 7)).resolves.toBe(7);
    expect(gate.active).toBe(0);
  });
});

describe('RequestGate.tryAcquire', () => {
  it('admits at once only when nothing waits and the rules allow', async () => {
    const gate = new RequestGate(1);
    expect(gate.tryAcquire(false)).toBe(true);
    expect(gate.tryAcquire(false)).toBe(false);
    expect(gate.tryAcquire(true)).toBe(false);
    const queued = gate.acquire(true);
    gate.release();
    await queued;
    expect(gate.tryAcquire(false)).toBe(false);
    gate.release();
    expect(gate.tryAcquire(true)).toBe(true);
    gate.release();
    expect(gate.active).toBe(0);
  });
});
