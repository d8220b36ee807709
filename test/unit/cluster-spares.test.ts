// The spare stock's size rules (src/cluster/spares.ts): adaptive to the connect rate within 4…64,
// never more than 1/16 of the pool's free addresses; in a tight pool (fewer than 64 free) 1…3
// while the host connects and none when it is idle, which is also what an idle host trims to.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { idleLimit, wantedStock } from '../../src/cluster/spares.js';

describe('spare stock size', () => {
  it('follows the connect rate between 4 and 64 in a roomy pool', () => {
    expect(wantedStock(0, 4000)).toBe(4);
    expect(wantedStock(10, 4000)).toBe(20);
    expect(wantedStock(500, 4000)).toBe(64);
  });

  it('holds at most 1/16 of the free addresses; in a tight pool only while the host connects', () => {
    expect(wantedStock(100, 253)).toBe(15);
    expect(wantedStock(100, 64)).toBe(4);
    expect(wantedStock(100, 63)).toBe(3);
    expect(wantedStock(1, 20)).toBe(1);
    expect(wantedStock(100, 15)).toBe(0);
    expect(wantedStock(0, 63)).toBe(0);
    expect(wantedStock(0, 0)).toBe(0);
    expect(wantedStock(5, -3)).toBe(0);
    fc.assert(fc.property(fc.nat(1000), fc.nat(1 << 20), (rate, free) => {
      const n = wantedStock(rate, free);
      expect(n).toBeGreaterThanOrEqual(0);
      expect(n).toBeLessThanOrEqual(64);
      expect(n * 16).toBeLessThanOrEqual(free);
      if (rate === 0) expect(n === 0 || n === 4).toBe(true);
    }));
  });

  it('an idle host keeps its share of the free addresses, and nothing in a tight pool', () => {
    expect(idleLimit(4000)).toBe(250);
    expect(idleLimit(64)).toBe(4);
    expect(idleLimit(63)).toBe(0);
    expect(idleLimit(-1)).toBe(0);
    fc.assert(fc.property(fc.integer({ min: -100, max: 1 << 20 }), (free) => {
      const n = idleLimit(free);
      expect(n === 0 || (n >= 4 && n * 16 <= free)).toBe(true);
      expect(wantedStock(0, free)).toBeLessThanOrEqual(Math.max(n, 0));
    }));
  });
});
