// Usage errors of the real `cnmkit` command, without a daemon: written for people (what is wrong,
// the usage, where to read more), exit code 2, and the command split of run/exec.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from '../helpers/exec.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { validateDaemonOptions } from '../../src/daemon/options.js';
import { DAEMON_DEFAULTS } from '../../src/defaults.js';
import { keyValues, splitCommand, UsageError, type Command } from '../../src/cli/command.js';
import { findExecutable } from '../../src/cli/commands/run.js';

const CLI = path.resolve(import.meta.dirname, '../../bin/cnmkit');
const cnmkit = (...args: string[]) => run([process.execPath, CLI, ...args], { env: { ...process.env, CNMKIT_SOCKET: '/nonexistent/cnmkit.sock' } });

describe('usage errors', () => {
  it('say what is wrong in words, show the usage, and exit 2', async () => {
    const cases: [string[], string][] = [
      [['network', 'rm'], '"cnmkit network rm" requires at least 1 argument.\nUsage: cnmkit network rm [OPTIONS] NETWORK...\nSee \'cnmkit network rm --help\'.\n'],
      [['connect', 'net1'], '"cnmkit connect" requires exactly 2 arguments.\nUsage: cnmkit connect [OPTIONS] NETWORK SANDBOX\nSee \'cnmkit connect --help\'.\n'],
      [['network', 'ls', 'extra'], '"cnmkit network ls" accepts no arguments.\nUsage: cnmkit network ls [OPTIONS]\nSee \'cnmkit network ls --help\'.\n'],
      [['port', 'a', 'b', 'c'], '"cnmkit port" requires at least 1 and at most 2 arguments.\nUsage: cnmkit port [OPTIONS] SANDBOX [PORT[/PROTO]]\nSee \'cnmkit port --help\'.\n'],
      [['network', 'ls', '--bogus'], 'unknown flag: --bogus\nUsage: cnmkit network ls [OPTIONS]\nSee \'cnmkit network ls --help\'.\n'],
      [['network', 'create', '--subnet'], 'flag needs an argument: --subnet\nUsage: cnmkit network create [OPTIONS] NAME\nSee \'cnmkit network create --help\'.\n'],
      [['exec', 'sb1'], '"cnmkit exec" requires a command to run after SANDBOX.\nUsage: cnmkit exec [OPTIONS] SANDBOX CMD [ARG...]\nSee \'cnmkit exec --help\'.\n'],
      [['run', '--network', 'none'], '"cnmkit run" requires a command to run.\nUsage: cnmkit run [OPTIONS] CMD [ARG...]\nSee \'cnmkit run --help\'.\n'],
    ];
    const results = await Promise.all(cases.map(([args]) => cnmkit(...args)));
    results.forEach((r, i) => {
      const [args, stderr] = cases[i]!;
      expect([args, r.code, r.stderr]).toEqual([args, 2, stderr]);
      expect(r.stdout).toBe('');
    });
    const unknown = await cnmkit('network', 'frobnicate');
    expect(unknown).toMatchObject({ code: 2, stderr: 'cnmkit: unknown command "cnmkit network frobnicate"\nSee \'cnmkit network --help\'.\n' });
  });

  it('reads -o KEY without a value as KEY with an empty value, as docker does; an empty key is a usage error (exit 2)', async () => {
    expect(keyValues(['encrypted', 'a=1', 'b=', 'c=x=y'], '--opt', { bareKey: true })).toEqual({ encrypted: '', a: '1', b: '', c: 'x=y' });
    for (const bad of ['=x', '', '=']) expect(() => keyValues([bad], '--opt', { bareKey: true })).toThrow(UsageError);
    expect(() => keyValues(['encrypted'], '--aux-address')).toThrow('--aux-address: expected key=value, got "encrypted"');
    const empty = await cnmkit('network', 'create', '-d', 'overlay', '-o', '=x', 'ov');
    expect(empty).toMatchObject({ code: 2, stdout: '', stderr: 'cnmkit: --opt: expected key or key=value, got "=x"\n' });
    // A bare key passes the parser: the command goes on to ask the daemon (none here).
    const bare = await cnmkit('network', 'create', '-d', 'overlay', '-o', 'encrypted', 'ov');
    expect(bare.code).toBe(1);
    expect(bare.stderr).not.toContain('--opt');
  });

  it('refuses a bad --metrics-addr naming the flag, with exit 2, before creating anything', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-metrics-addr-'));
    try {
      const where = ['--socket', path.join(dir, 'run', 'api.sock'), '--state-dir', path.join(dir, 'state'), '--plugin-dir', path.join(dir, 'plugins'), '--run-dir', path.join(dir, 'run')];
      for (const bad of ['localhost', 'localhost:9323', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:70000', '[::1]']) {
        const r = await cnmkit('daemon', '--metrics-addr', bad, ...where);
        expect([bad, r.code, r.stderr]).toEqual([bad, 2, expect.stringMatching(/^cnmkit: --metrics-addr: expected IP:PORT, e\.g\. 127\.0\.0\.1:9323 or \[::1\]:9323, got "/)]);
      }
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    // The daemon's own entry point makes the same check, once, and hands on what it parsed.
    const opts = { ...DAEMON_DEFAULTS, userlandProxy: true, firewallBackend: 'auto' as const };
    expect(() => validateDaemonOptions({ ...opts, metricsAddr: 'localhost' })).toThrow(InvalidArgumentError);
    expect(() => validateDaemonOptions({ ...opts, metricsAddr: 'localhost' })).toThrow(/^--metrics-addr: expected IP:PORT/);
    expect(validateDaemonOptions({ ...opts, metricsAddr: '[::1]:9323' })).toEqual({ metricsAddr: { host: '::1', port: 9323 } });
    expect(validateDaemonOptions(opts)).toEqual({});
  });

  it('splits run and exec at the command: options first, the command with its own options after', () => {
    const exec = { name: 'exec', usage: 'cnmkit exec [OPTIONS] SANDBOX CMD', options: { socket: { type: 'string' } } } as unknown as Command;
    expect(splitCommand(exec, ['--socket', 's', 'sb', 'ls', '-l', '--socket'], 1)).toEqual({ head: ['--socket', 's', 'sb'], rest: ['ls', '-l', '--socket'] });
    expect(splitCommand(exec, ['--socket=s', 'sb', '--', 'ls'], 1)).toEqual({ head: ['--socket=s', 'sb'], rest: ['ls'] });
    expect(splitCommand(exec, ['sb', '--socket', 's', '--', 'ls'], 1)).toEqual({ head: ['sb', '--socket', 's'], rest: ['ls'] });
    expect(splitCommand(exec, ['sb'], 1)).toEqual({ head: ['sb'], rest: [] });
    const runCmd = { name: 'run', usage: 'cnmkit run [OPTIONS] CMD', options: { publish: { type: 'string', short: 'p' }, keep: { type: 'boolean' } } } as unknown as Command;
    expect(splitCommand(runCmd, ['-p', '80', '--keep', 'httpd', '-p', '8080'], 0)).toEqual({ head: ['-p', '80', '--keep'], rest: ['httpd', '-p', '8080'] });
    expect(splitCommand(runCmd, ['-p80', 'sh'], 0)).toEqual({ head: ['-p80'], rest: ['sh'] });
  });

  it('finds commands like a shell: in PATH, by path, 127 when missing, 126 when not executable', () => {
    expect(findExecutable('sh', '/nonexistent:/bin:/usr/bin')).toEqual({ file: '/bin/sh' });
    expect(findExecutable('/bin/sh')).toEqual({ file: '/bin/sh' });
    expect(findExecutable('no-such-cmd-x', '/bin:/usr/bin')).toMatchObject({ code: 127 });
    expect(findExecutable('/etc/passwd')).toMatchObject({ code: 126 });
    expect(findExecutable('/etc')).toMatchObject({ code: 126 });
    expect(findExecutable('/no/such/file')).toMatchObject({ code: 127 });
  });
});
