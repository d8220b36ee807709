// Progress of lab up and down: on a terminal one line per stage counting up in place and ending
// with its time, then the summary with the total time; plain lines elsewhere; nothing when quiet.
import { describe, expect, it } from 'vitest';
import { Progress } from '../../src/lab/progress.js';

function run(opts: { tty: boolean; quiet?: boolean }): string {
  let out = '';
  const p = new Progress({ ...opts, write: (s) => (out += s) });
  p.begin('nodes', 2);
  p.step();
  p.step();
  p.end();
  p.note('warning: x');
  p.summary('lab t up');
  return out;
}

describe('lab progress', () => {
  it('counts up in place on a terminal and closes each stage with its time', () => {
    const out = run({ tty: true });
    expect(out).toContain('\r\x1b[2Knodes 1/2 …');
    expect(out).toMatch(/\r\x1b\[2Knodes 2\/2 \(\d+ ms\)\n/);
    expect(out).toMatch(/warning: x\nlab t up in \d+ ms\n$/);
  });

  it('writes one plain line per stage elsewhere, and nothing when quiet', () => {
    expect(run({ tty: false })).toMatch(/^nodes 2\/2 \(\d+ ms\)\nwarning: x\nlab t up in \d+ ms\n$/);
    expect(run({ tty: true, quiet: true })).toBe('');
  });
});
