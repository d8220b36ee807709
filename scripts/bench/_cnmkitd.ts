// A real `cnmkit daemon` for benchmarks: run under `nsenter --net` in a throwaway "host" namespace,
// with its socket, state, run and plugin folders in a temporary directory and addresses only from
// 198.18.0.0/15; driven through the management API with the CLI's own client.
// Limits: sandboxes are named namespaces under /run/netns (as in production); cleanup() removes the
// ones whose names start with the prefix given, in case the daemon could not.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '../../src/client/index.js';
import { deleteNsWithPrefix, processTree, rssKiB, sleep } from './_procs.js';

const repo = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(repo, 'bin/cnmkit');
const SAFE_ADDRESSES = ['--bip', '198.18.0.1/24', '--default-address-pool', 'base=198.18.128.0/17,size=24'];
/** Keep only the end of the daemon's log (enough to explain a failure). */
const LOG_KEEP = 64 * 1024;

export class BenchDaemon {
  readonly dir: string;
  readonly socket: string;
  readonly client: Client;
  private proc: ChildProcess | undefined;
  private logTail = '';
  /** The firewall backend the daemon chose, from its start-up log. */
  firewall = '?';

  constructor(readonly hostNsPath: string, readonly sandboxPrefix: string, readonly extraArgs: string[] = []) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-bench-d-'));
    this.socket = path.join(this.dir, 'cnmkit.sock');
    this.client = new Client(this.socket);
  }

  /** The daemon's node process (nsenter execs it in place, so it is the child we spawned). */
  get pid(): number {
    if (this.proc?.pid === undefined || this.proc.exitCode !== null) throw new Error(`the cnmkit daemon is not running:\n${this.logTail.slice(-4000)}`);
    return this.proc.pid;
  }

  get log(): string {
    return this.logTail;
  }

  async start(): Promise<void> {
    const d = this.dir;
    const args = [`--net=${this.hostNsPath}`, '--', process.execPath, CLI, 'daemon', '--socket', this.socket, '--state-dir', path.join(d, 'state'),
      '--run-dir', path.join(d, 'run'), '--plugin-dir', path.join(d, 'plugins'), '--log-level', 'info', ...SAFE_ADDRESSES, ...this.extraArgs];
    const proc = spawn('nsenter', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    const keep = (b: Buffer): void => {
      this.logTail = (this.logTail + b.toString()).slice(-LOG_KEEP);
      const m = /"firewall":"(\w+)"/.exec(this.logTail);
      if (m && this.firewall === '?') this.firewall = m[1]!;
    };
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`cnmkit daemon exited ${proc.exitCode}:\n${this.logTail.slice(-4000)}`);
      try {
        await this.client.request('GET', '/v1/version');
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`cnmkit daemon did not answer within 30 s:\n${this.logTail.slice(-4000)}`);
        await sleep(50);
      }
    }
  }

  request<T = unknown>(method: string, urlPath: string, body?: unknown): Promise<T> {
    return this.client.request<T>(method, urlPath, body);
  }

  rssKiB(): number {
    return rssKiB(this.pid);
  }

  /** The daemon and every process under it (firewall tools it runs, if any at this instant). */
  processCount(): number {
    return processTree(this.pid).length;
  }

  /** SIGTERM (SIGKILL after 20 s), then removes the temporary folder and any sandbox left behind. */
  async cleanup(): Promise<void> {
    const proc = this.proc;
    if (proc?.pid !== undefined && proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((res) => proc.once('exit', res));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    const left = await deleteNsWithPrefix(this.sandboxPrefix);
    if (left > 0) console.warn(`  (removed ${left} sandbox namespace(s) the daemon left behind)`);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
