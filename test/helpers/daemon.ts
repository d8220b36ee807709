// Runs a real `cnmkit daemon` inside a throwaway namespace that stands for the host (under
// nsenter, so the named namespaces it mounts stay visible), and the real CLI against it. At
// cleanup the sandboxes a test made with sandbox() are removed through the CLI (the harness then
// checks their namespaces are gone: netns.ts), and a namespace of an unnamed sandbox (sb-<hex>)
// left in /run/netns after the daemon stopped is a leak that fails the test.
// Limits: the leak check assumes no other daemon makes unnamed sandboxes meanwhile (e2e files run
// one at a time).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run, type RunResult } from './exec.js';
import { adoptNs, uniqueName, type TestNs } from './netns.js';

const repo = path.resolve(import.meta.dirname, '../..');
export const CLI = path.join(repo, 'bin/cnmkit');

/**
 * Extra node flags for every daemon a test or benchmark starts, from CNMKIT_TEST_NODE_ARGS
 * (space-separated), e.g. `--cpu-prof --cpu-prof-dir=DIR` to profile them (node refuses
 * --cpu-prof in NODE_OPTIONS). A profile is written when the daemon exits on SIGTERM.
 */
function nodeArgs(): string[] {
  return (process.env.CNMKIT_TEST_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
}

/** Test daemons hand out addresses only from the benchmarking range 198.18.0.0/15. */
export const SAFE_ADDRESSES = ['--bip', '198.18.0.1/24', '--default-address-pool', 'base=198.18.128.0/17,size=24'];

const UNNAMED_SANDBOX = /^sb-[0-9a-f]{12}$/;

function unnamedSandboxNamespaces(): string[] {
  try {
    return fs.readdirSync('/run/netns').filter((n) => UNNAMED_SANDBOX.test(n));
  } catch {
    return [];
  }
}

/**
 * A daemon's structured log (pino: one JSON object a line) as read so far from its pipe, parsed;
 * other lines are skipped. Only whole lines: a read can end inside a line (a burst of lines fills
 * the pipe), and that line's first piece is not JSON yet (it comes whole with a later read).
 */
export function logRecords(log: string): Record<string, unknown>[] {
  return log.slice(0, log.lastIndexOf('\n') + 1).split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** H: anything with the namespace's path (a TestNs, or a simulated host of test/helpers/cluster.ts). */
export class TestDaemon<H extends Pick<TestNs, 'path'> = TestNs> {
  readonly dir: string;
  readonly socket: string;
  readonly stateDir: string;
  proc: ChildProcess | undefined;
  log = '';
  /** Sandboxes made by sandbox(), removed through the CLI at cleanup. */
  private readonly made: string[] = [];
  /** Unnamed sandboxes' namespaces there before this daemon first started (not its leaks). */
  private unnamedBefore: Set<string> | undefined;

  constructor(readonly host: H, readonly extraArgs: string[] = []) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-test-'));
    this.socket = path.join(this.dir, 'cnmkit.sock');
    this.stateDir = path.join(this.dir, 'state');
  }

  /** The daemon's structured log so far, parsed (logRecords). */
  records(): Record<string, unknown>[] {
    return logRecords(this.log);
  }

  /**
   * Starts the daemon and waits until its socket answers: polled with the CLI every 100 ms, or
   * (readyFd) told by the daemon on a pipe (--ready-fd), which takes no CPU from its start (a
   * benchmark timing the start: each CLI poll is a node process on the same cores).
   */
  async start(o: { readyFd?: boolean } = {}): Promise<void> {
    this.unnamedBefore ??= new Set(unnamedSandboxNamespaces());
    const args = ['--net=' + this.host.path, '--', process.execPath, ...nodeArgs(), CLI, 'daemon', '--socket', this.socket, '--state-dir', this.stateDir,
      '--run-dir', path.join(this.dir, 'run'), '--plugin-dir', path.join(this.dir, 'plugins'), '--log-level', 'info', ...SAFE_ADDRESSES, ...this.extraArgs,
      ...(o.readyFd ? ['--ready-fd', '3'] : [])];
    const proc = spawn('nsenter', args, { stdio: ['ignore', 'pipe', 'pipe', ...(o.readyFd ? ['pipe' as const] : [])] });
    this.proc = proc;
    proc.stdout!.on('data', (d: Buffer) => (this.log += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    if (o.readyFd) return this.readyOn(proc);
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`daemon exited ${proc.exitCode ?? proc.signalCode}:\n${this.log}`);
      const r = await this.cmd(['network', 'ls', '-q']);
      if (r.code === 0) return;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`daemon did not answer within 20 s:\n${this.log}`);
  }

  /** Until the daemon writes "ready" on its fd 3 (or exits, or 20 s pass). */
  private readyOn(proc: ChildProcess): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`daemon did not answer within 20 s:\n${this.log}`)), 20_000);
      proc.stdio[3]!.on('data', (d: Buffer) => {
        if (!d.toString().includes('ready')) return;
        clearTimeout(timer);
        resolve();
      });
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`daemon exited ${code ?? signal}:\n${this.log}`));
      });
    });
  }

  /** Stops the daemon with the given signal and waits for it to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((res) => proc.once('exit', res));
    proc.kill(signal);
    await exited;
  }

  /** Runs the CLI with --socket pointing at this daemon (placed before any `--`). */
  cmd(args: string[]): Promise<RunResult> {
    const dd = args.indexOf('--');
    const withSock = dd >= 0 ? [...args.slice(0, dd), '--socket', this.socket, ...args.slice(dd)] : [...args, '--socket', this.socket];
    return run([process.execPath, CLI, ...withSock]);
  }

  /** Creates a named sandbox through the CLI; cleanup removes it through the CLI if the test did not. */
  async sandbox(name = uniqueName('sb')): Promise<string> {
    adoptNs(name);
    const r = await this.cmd(['sandbox', 'create', '--name', name]);
    if (r.code !== 0 || r.stderr !== '') throw new Error(`cnmkit sandbox create ${name} exited ${r.code}: ${r.stderr}`);
    this.made.push(name);
    return name;
  }

  /**
   * Removes the sandboxes of sandbox() through the CLI, stops the daemon and removes its files.
   * Throws when the CLI could not remove one, or when the daemon left a namespace of an unnamed
   * sandbox (the harness removes it first).
   */
  async cleanup(): Promise<void> {
    const problems = await this.removeMade();
    await this.stop('SIGTERM');
    fs.rmSync(this.dir, { recursive: true, force: true });
    const leaked = unnamedSandboxNamespaces().filter((n) => !this.unnamedBefore?.has(n));
    for (const name of leaked) await run(['ip', 'netns', 'del', name]);
    if (leaked.length > 0) problems.push(`the daemon left namespaces of unnamed sandboxes in /run/netns (removed now): ${leaked.join(', ')}`);
    if (problems.length > 0) throw new Error(problems.join('\n'));
  }

  private async removeMade(): Promise<string[]> {
    const made = this.made.splice(0);
    if (made.length === 0 || !this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return [];
    const ls = await this.cmd(['sandbox', 'ls', '--format', 'json']);
    if (ls.code !== 0) return [`cnmkit sandbox ls exited ${ls.code}: ${ls.stderr}`];
    const held = new Set((JSON.parse(ls.stdout) as { name: string }[]).map((s) => s.name));
    const problems: string[] = [];
    for (const name of made.filter((n) => held.has(n))) {
      const r = await this.cmd(['sandbox', 'rm', name]);
      if (r.code !== 0) problems.push(`cnmkit sandbox rm ${name} exited ${r.code}: ${r.stderr}`);
    }
    return problems;
  }
}
