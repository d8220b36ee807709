// Runs a real `cnmkit daemon` inside a throwaway namespace that stands for the host (under
// nsenter, so the named namespaces it mounts stay visible), and the real CLI against it.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run, type RunResult } from './exec.js';
import type { TestNs } from './netns.js';

const repo = path.resolve(import.meta.dirname, '../..');
export const CLI = path.join(repo, 'bin/cnmkit');

/** Test daemons hand out addresses only from the benchmarking range 198.18.0.0/15. */
export const SAFE_ADDRESSES = ['--bip', '198.18.0.1/24', '--default-address-pool', 'base=198.18.128.0/17,size=24'];

/** H: anything with the namespace's path (a TestNs, or a simulated host of test/helpers/cluster.ts). */
export class TestDaemon<H extends Pick<TestNs, 'path'> = TestNs> {
  readonly dir: string;
  readonly socket: string;
  readonly stateDir: string;
  proc: ChildProcess | undefined;
  log = '';

  constructor(readonly host: H, readonly extraArgs: string[] = []) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-test-'));
    this.socket = path.join(this.dir, 'cnmkit.sock');
    this.stateDir = path.join(this.dir, 'state');
  }

  /** Starts the daemon and waits until its socket answers. */
  async start(): Promise<void> {
    const args = ['--net=' + this.host.path, '--', process.execPath, CLI, 'daemon', '--socket', this.socket, '--state-dir', this.stateDir,
      '--run-dir', path.join(this.dir, 'run'), '--plugin-dir', path.join(this.dir, 'plugins'), '--log-level', 'info', ...SAFE_ADDRESSES, ...this.extraArgs];
    const proc = spawn('nsenter', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    proc.stdout!.on('data', (d: Buffer) => (this.log += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`daemon exited ${proc.exitCode}:\n${this.log}`);
      const r = await this.cmd(['network', 'ls', '-q']);
      if (r.code === 0) return;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`daemon did not answer within 20 s:\n${this.log}`);
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

  async cleanup(): Promise<void> {
    await this.stop('SIGTERM');
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
