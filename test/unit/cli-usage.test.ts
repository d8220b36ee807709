// Usage errors of the real `cnmkit` command, without a daemon: written for people (what is wrong,
// the usage, where to read more), exit code 2, and the command split of run/exec.
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
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
/** Runs argv, as another user when given one; its exit code and output. */
function spawnAsync(argv: string[], user: { uid?: number; gid?: number }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(argv[0]!, argv.slice(1), { ...user, encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      if (err && code === null) reject(err);
      else resolve({ code, stdout, stderr });
    });
  });
}
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
      [['network', 'ls', '--format', '-x'], 'flag needs an argument: --format (a value that starts with \'-\' is written --format=VALUE)\nUsage: cnmkit network ls [OPTIONS]\nSee \'cnmkit network ls --help\'.\n'],
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
    // An option where the group's command goes is not taken for a command name.
    const early = await cnmkit('cluster', '--socket', '/run/x.sock');
    expect(early).toMatchObject({ code: 2, stdout: '', stderr: 'cnmkit: "cnmkit cluster" takes a command (hosts, status) before its options: cnmkit cluster COMMAND --socket …\nSee \'cnmkit cluster --help\'.\n' });
  });

  it('takes --socket before the command too, as docker takes -H (the command uses it); without a value it is a usage error (exit 2)', async () => {
    for (const args of [['--socket', '/nonexistent/before.sock', 'network', 'ls'], ['--socket=/nonexistent/before.sock', 'cluster', 'hosts']]) {
      const r = await cnmkit(...args);
      expect([args, r.code, r.stderr]).toEqual([args, 1, 'Error: cannot reach the cnmkit daemon at /nonexistent/before.sock (ENOENT): is `cnmkit daemon` running?\n']);
    }
    expect(await cnmkit('--socket')).toMatchObject({ code: 2, stdout: '', stderr: 'cnmkit: flag needs an argument: --socket\nSee \'cnmkit --help\'.\n' });
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

  it('gives every numeric flag\'s own check a negative value, written --flag -5 as --flag=-5', async () => {
    // Run as nobody when root: the checks come before the daemon's root check, and a value that
    // slipped through would then stop there (exit 1) instead of starting a daemon on this host.
    const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const cluster = ['--cluster-store', 'etcd://198.18.0.1:2379', '--advertise-addr', '198.18.0.2'];
    const where = ['--socket', '/nonexistent/api.sock', '--state-dir', '/nonexistent/state', '--plugin-dir', '/nonexistent/plugins', '--run-dir', '/nonexistent/run'];
    // Other bad values (abc, 0) reach the same checks; their unit tests are beside each check.
    const flags: [string[], string, string[], string][] = [
      [['lab', 'check'], '--timeout', ['-5', 'abc', '0', '9'], 'expected a whole number of milliseconds, at least 10, got '],
      [['daemon', ...where], '--proxy-max-connections', ['-5'], 'expected a whole number, at least 1, got '],
      [['daemon', ...where], '--proxy-max-connections-per-port', ['-5'], 'expected a whole number, at least 1, got '],
      [['daemon', ...where], '--proxy-max-ports', ['-5'], 'expected a whole number, at least 1, got '],
      [['daemon', ...where], '--proxy-idle-timeout', ['-5', '-1s'], 'expected a duration such as 30s, 5m, 1h or 0, got '],
      [['daemon', ...where], '--proxy-udp-idle-timeout', ['-5'], 'expected a duration such as 30s, 5m, 1h or 0, got '],
      [['daemon', ...where], '--ready-fd', ['-5'], 'expected a file descriptor number of 3 or more, got '],
      [['daemon', ...where, ...cluster], '--cluster-lease-ttl', ['-5'], 'expected whole seconds from 2 to 3600, got '],
    ];
    const cases = flags.flatMap(([cmd, flag, values, why]) => values.flatMap((value) => {
      const args = cmd[0] === 'lab' ? ['lab1'] : [];
      const want = { code: 2, stdout: '', stderr: `cnmkit: ${flag}: ${why}${JSON.stringify(value)}\n` };
      return [[[...cmd, flag, value, ...args], want], [[...cmd, `${flag}=${value}`, ...args], want]] as const;
    }));
    const results = await Promise.all(cases.map(([args]) => spawnAsync([process.execPath, CLI, ...args], asUser)));
    results.forEach((r, i) => expect([cases[i]![0], r]).toEqual([cases[i]![0], cases[i]![1]]));
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
