// The e2e tests' reading of a daemon's structured log (test/helpers/daemon.ts logRecords): a test
// polls it while the daemon writes, so a read can end inside a line. Checked on a real pipe too:
// a child writing JSON lines as pino does (synchronous writes), read chunk by chunk.
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { logRecords } from '../helpers/daemon.js';

describe('logRecords', () => {
  it('parses the whole JSON lines and leaves a line still arriving (its first piece) for the next read', () => {
    const whole = '{"level":30,"msg":"ready"}\nnot json\n';
    const piece = '{"level":40,"endpoint":"ab';
    expect(logRecords(whole + piece)).toEqual([{ level: 30, msg: 'ready' }]);
    expect(logRecords(`${whole + piece}cd"}\n`)).toEqual([{ level: 30, msg: 'ready' }, { level: 40, endpoint: 'abcd' }]);
    expect(logRecords('')).toEqual([]);
  });

  it('never throws on what a pipe delivers, read after every chunk, and ends with every line', async () => {
    const child = spawn(process.execPath, ['-e', "const fs = require('fs'); for (let i = 0; i < 300; i++) fs.writeSync(1, JSON.stringify({ i, pad: 'x'.repeat(3000) }) + '\\n');"]);
    let log = '';
    let reads = 0;
    child.stdout.on('data', (d: Buffer) => {
      log += d.toString();
      reads++;
      logRecords(log);
    });
    await new Promise((r) => child.once('close', r));
    expect(reads).toBeGreaterThan(1);
    expect(logRecords(log).map((o) => o.i)).toEqual([...Array(300).keys()]);
  });
});
