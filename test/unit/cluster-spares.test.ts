// The spare stock's size rule (src/cluster/spares.ts): adaptive to the connect rate within 4…64,
// never more than 1/16 of the pool's free addresses, and none in a pool with fewer than 64 free.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { wantedStock } from '../../src/cluster/spares.js';

describe('spare stock size', () => {
  it('follows the connect rate between 4 and 64 in a roomy pool', () => {
    expect(wantedStock(0, 4000)).toBe(4);
    expect(wantedStock(10, 4000)).toBe(20);
    expect(wantedStock(500, 4000)).toBe(64);
  });

  it('holds at most 1/16 of the free addresses, and nothing below 64 free', () => {
    expect(wantedStock(100, 253)).toBe(15);
    expect(wantedStock(100, 64)).toBe(4);
    expect(wantedStock(100, 63)).toBe(0);
    expect(wantedStock(0, 0)).toBe(0);
    fc.assert(fc.property(fc.nat(1000), fc.nat(1 << 20), (rate, free) => {
      const n = wantedStock(rate, free);
      expect(n === 0 || (n >= 4 && n <= 64)).toBe(true);
      expect(n * 16).toBeLessThanOrEqual(free);
    }));
  });
});
