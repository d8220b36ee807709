// What users tripped on, through the real CLI against a real daemon in a namespace that stands for
// the host: exec without `--`, exit codes 127/126 for commands that cannot run, the host port a
// `run -p` chose (stderr) and `cnmkit port`, `rm` of several objects carrying on past a failure,
// a sandbox that a running `cnmkit run` uses (refused, or forced and reported by the run), and a
// run stopped by a signal before its command started (its sandbox still removed).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { adoptNs, makeNs, uniqueName } from '../helpers/netns.js';
import { CLI, TestDaemon } from '../helpers/daemon.js';
import { HoldingRelay } from '../helpers/etcd-relay.js';
import { check, run, type RunResult } from '../helpers/exec.js';

let daemon: TestDaemon;

/** The CLI with --socket right after the command's words (options must precede SANDBOX/CMD). */
function cli(words: string[], rest: string[] = []): Promise<RunResult> {
  return run([process.execPath, CLI, ...words, '--socket', daemon.socket, ...rest]);
}

async function netnsNames(): Promise<string[]> {
  const out = await check(['ip', '-j', 'netns', 'list']);
  return (out.trim() ? (JSON.parse(out) as { name: string }[]) : []).map((n) => n.name);
}

/** TCP ports listening in the daemon's namespace, read with ss. */
async function listening(): Promise<number[]> {
  const out = await daemon.host.sh(['ss', '-Hltn']);
  return out.trim().split('\n').filter(Boolean).map((l) => Number(l.trim().split(/\s+/)[3]!.split(':').pop()));
}

/** `cnmkit run` in the background, with its stderr collected; resolves once its sandbox is connected. */
async function startRun(args: string[], cmd: string[]): Promise<{ exit: Promise<number>; stderr: () => string; stdout: () => string; stop: () => void }> {
  const child = spawn(process.execPath, [CLI, 'run', '--socket', daemon.socket, ...args, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let out = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
  const deadline = Date.now() + 20_000;
  for (;;) {
    const sbs = JSON.parse((await daemon.cmd(['sandbox', 'ls', '--format', 'json'])).stdout) as { endpoints: unknown[] }[];
    if (sbs.some((s) => s.endpoints.length > 0)) break;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`cnmkit run did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { exit, stderr: () => err, stdout: () => out, stop: () => child.kill('SIGTERM') };
}

describeRoot('the CLI as users meet it', () => {
  beforeEach(async () => {
    daemon = new TestDaemon(await makeNs('host'));
    await daemon.start();
  });
  afterEach(async () => {
    await daemon.cleanup();
  });

  it('runs `exec SANDBOX CMD ARGS…` without `--` (options before SANDBOX), with `--` too', async () => {
    const name = await daemon.sandbox(uniqueName('ex'));
    await check(['ip', '-n', name, 'link', 'add', 'mark0', 'type', 'bridge']);
    const plain = await cli(['exec'], [name, 'ip', '-j', 'link', 'show', 'mark0']);
    expect(plain.stderr).toBe('');
    expect(plain.code).toBe(0);
    expect((JSON.parse(plain.stdout) as { ifname: string }[])[0]!.ifname).toBe('mark0');
    // Everything after SANDBOX belongs to the command, its own options included.
    const shell = await cli(['exec'], [name, 'sh', '-c', 'echo "$0 $1"', '--socket', 'x']);
    expect(shell.stdout).toBe('--socket x\n');
    const dashed = await cli(['exec'], [name, '--', 'ip', 'link', 'show', 'mark0']);
    expect(dashed.code).toBe(0);
    expect((await cli(['exec'], [name, 'sh', '-c', 'exit 5'])).code).toBe(5);
  });

  it('exits 127 when the command does not exist and 126 when it cannot run, for run and exec, and run leaves nothing behind', async () => {
    const name = await daemon.sandbox(uniqueName('nf'));
    const missing = await cli(['exec'], [name, 'no-such-command-x', 'arg']);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toMatch(/"no-such-command-x": executable file not found in \$PATH/);
    const runMissing = await cli(['run', '--network', 'none'], ['no-such-command-x']);
    expect(runMissing.code).toBe(127);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-noexec-'));
    try {
      fs.writeFileSync(path.join(dir, 'script'), '#!/bin/sh\necho hi\n', { mode: 0o644 });
      expect((await cli(['exec'], [name, path.join(dir, 'script')])).code).toBe(126);
      expect((await cli(['run', '--network', 'none'], [dir])).code).toBe(126);
      expect((await cli(['exec'], [name, path.join(dir, 'nothing-here')])).code).toBe(127);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const sbs = JSON.parse((await daemon.cmd(['sandbox', 'ls', '--format', 'json'])).stdout) as { name: string }[];
    expect(sbs.map((s) => s.name)).toEqual([name]);
  });

  it('prints the host port `run -p 80` chose on stderr (stdout stays the command\'s), and `cnmkit port` lists what is published', async () => {
    const name = uniqueName('pp');
    adoptNs(name);
    const r = await startRun(['--name', name, '-p', '80', '-p', '127.0.0.1:9053:53/udp'], ['sh', '-c', 'echo out; sleep 30']);
    let inside: number[] = [];
    try {
      // The run prints its ports once the daemon's answer reaches it, then starts the command: both
      // come after the sandbox is connected (startRun's condition), later still on a loaded machine.
      for (const deadline = Date.now() + 10_000; !(/->53\/udp$/m.test(r.stderr()) && r.stdout() === 'out\n') && Date.now() < deadline;) {
        await new Promise((res) => setTimeout(res, 50));
      }
      const printed = /^0\.0\.0\.0:(\d+)->80\/tcp$/m.exec(r.stderr());
      expect(printed, r.stderr()).not.toBeNull();
      expect(r.stderr()).toMatch(/^127\.0\.0\.1:9053->53\/udp$/m);
      const hostPort = Number(printed![1]);
      expect(await listening()).toContain(hostPort);
      expect(r.stdout()).toBe('out\n');
      const all = await cli(['port'], [name]);
      expect(all.code).toBe(0);
      expect(all.stdout.split('\n').filter(Boolean).sort()).toEqual([`53/udp -> 127.0.0.1:9053`, `80/tcp -> 0.0.0.0:${hostPort}`].sort());
      expect((await cli(['port'], [name, '80'])).stdout).toBe(`0.0.0.0:${hostPort}\n`);
      expect((await cli(['port'], [name, '53/udp'])).stdout).toBe('127.0.0.1:9053\n');
      const json = JSON.parse((await cli(['port', '--format', 'json'], [name, '80/tcp'])).stdout);
      expect(json).toEqual([{ proto: 'tcp', containerPort: 80, hostIP: '0.0.0.0', hostPort, network: 'bridge' }]);
      const none = await cli(['port'], [name, '81']);
      expect(none.code).toBe(1);
      expect(none.stderr).toMatch(/no public port '81\/tcp' published for/);
      expect((await cli(['port'], [name, '80/icmp'])).code).toBe(2);
      // The command's shell and its `sleep` child, seen in the sandbox as `ip netns pids` sees them.
      // The shell forks its `sleep` after the echo: asked until both are there (5 s at most).
      const pids = async (): Promise<number[]> => (await check(['ip', 'netns', 'pids', name])).split('\n').filter(Boolean).map(Number);
      for (const deadline = Date.now() + 5_000; (inside = await pids()).length < 2 && Date.now() < deadline;) await new Promise((res) => setTimeout(res, 50));
      expect(inside.length).toBeGreaterThanOrEqual(2);
    } finally {
      r.stop();
      await r.exit;
    }
    // SIGTERM reached the command through the run, which then removed its sandbox and ended the
    // `sleep` the shell left behind (a container's other processes end with it).
    expect(await netnsNames()).not.toContain(name);
    // Killed: gone, or a zombie until whatever inherited it reaps it.
    const alive = (pid: number): boolean => { try { return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8')); } catch { return false; } };
    expect(inside.filter(alive)).toEqual([]);
    expect(await listening()).not.toContain(Number(/:(\d+)->80\/tcp/.exec(r.stderr())?.[1]));
  });

  it('refuses `sandbox rm` of a sandbox a running `cnmkit run` uses; --force removes it and the run says so when it ends', async () => {
    const name = uniqueName('busy');
    adoptNs(name);
    const r = await startRun(['--name', name, '--network', 'none'], ['sleep', '3']);
    const refused = await cli(['sandbox', 'rm'], [name]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`sandbox ${name} is in use by \`cnmkit run\` \\(pid \\d+\\)`));
    expect(await netnsNames()).toContain(name);
    const forced = await cli(['sandbox', 'rm', '--force'], [name]);
    expect(forced.code).toBe(0);
    expect(await netnsNames()).not.toContain(name);
    expect(await r.exit).toBe(0);
    expect(r.stderr()).toMatch(new RegExp(`sandbox ${name} was removed while the command ran`));
  });

  it('a run stopped (SIGTERM) while its sandbox is being connected removes the sandbox, exits 143 and does not start the command', async () => {
    // The run talks to the daemon through a relay that hands it each answer 2 s late: the signal
    // lands once the daemon has connected the sandbox and before the run has heard so.
    const ports = await listening();
    const relay = new HoldingRelay(path.join(daemon.dir, 'late.sock'), daemon.socket);
    relay.delayMs = 2000;
    await relay.listen();
    const name = uniqueName('stop');
    adoptNs(name);
    const ran = path.join(daemon.dir, 'ran');
    const child = spawn(process.execPath, [CLI, 'run', '--socket', relay.socket, '--name', name, '-p', '80', 'touch', ran], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const exit = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    const sandboxes = async (): Promise<{ name: string; endpoints: unknown[] }[]> => JSON.parse((await daemon.cmd(['sandbox', 'ls', '--format', 'json'])).stdout);
    try {
      for (const deadline = Date.now() + 20_000; !(await sandboxes()).some((s) => s.name === name && s.endpoints.length > 0);) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`cnmkit run did not connect its sandbox: ${err}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect((await listening()).length).toBe(ports.length + 1);
      child.kill('SIGTERM');
      relay.delayMs = 0;
      expect(await exit, err).toEqual({ code: 143, signal: null });
    } finally {
      await relay.close();
    }
    expect(await sandboxes()).toEqual([]);
    expect(await netnsNames()).not.toContain(name);
    expect(await listening()).toEqual(ports);
    expect(fs.existsSync(ran)).toBe(false);
  });

  it('removes every network it can in `network rm a b c`, reports each failure, and exits 1', async () => {
    for (const n of ['rma', 'rmb']) expect((await daemon.cmd(['network', 'create', '-d', 'null', n])).code).toBe(0);
    const r = await cli(['network', 'rm'], ['rma', 'nope', 'none', 'rmb']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('rma\nrmb\n');
    expect(r.stderr).toMatch(/^Error: network "nope" not found$/m);
    expect(r.stderr).toMatch(/^Error: none is a pre-defined network/m);
    const names = (JSON.parse((await daemon.cmd(['network', 'ls', '--format', 'json'])).stdout) as { name: string }[]).map((n) => n.name).sort();
    expect(names).toEqual(['bridge', 'host', 'none']);
    expect((await cli(['network', 'rm'], ['nope'])).code).toBe(1);
  });
});
