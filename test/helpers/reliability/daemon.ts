// A throwaway "host" for the reliability campaigns: a named namespace with its own daemon (under
// nsenter, addresses from 198.18.0.0/15 only, named sandboxes in a private --netns-dir so that
// nothing the campaigns do can touch /run/netns), namespaces standing for other tools' containers
// (for path sandboxes), and the daemon started, SIGKILLed and restarted on the same state.
// No test-runner imports (scripts/soak uses it). Everything is removed by cleanup().
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { check, run } from '../exec.js';
import { jsonRequest } from './http.js';
import type { StateSource } from './state.js';

const repo = path.resolve(import.meta.dirname, '../../..');
const CLI = path.join(repo, 'bin/cnmkit');
const SAFE_ADDRESSES = ['--bip', '198.18.0.1/24', '--default-address-pool', 'base=198.18.128.0/17,size=24'];
const LOG_KEEP = 256 * 1024;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const hosts = new Set<CampaignHost>();

export class CampaignHost {
  /** The hosts made and not yet cleaned up (for a run that is interrupted). */
  static live(): CampaignHost[] {
    return [...hosts];
  }

  /** How the daemon is run: bin/cnmkit, unless told otherwise (the soak runs a private copy of dist/). */
  static cli: string[] = [process.execPath, CLI];

  /** How long a start may take and a health check may wait (the soak, niced on a loaded machine, raises them). */
  static timeouts = { readyMs: 30_000, healthMs: 5_000 };

  readonly dir: string;
  readonly socket: string;
  readonly stateDir: string;
  readonly netnsDir: string;
  readonly pluginDir: string;
  readonly hostNsName: string;
  readonly hostNs: string;
  /** Namespaces of "another tool" (path sandboxes may use them), by path. */
  readonly external: string[] = [];
  /** Links in the host namespace that are not cnmkit's (set by addBaseline). */
  readonly baselineLinks: string[] = ['lo'];
  proc: ChildProcess | undefined;
  private logTail = '';
  /** Lines the daemon logged at level error or worse, all lives counted. */
  errorLines = 0;
  lastErrors: string[] = [];
  /** Times the daemon was started (the first start included). */
  starts = 0;

  private constructor(readonly prefix: string, readonly daemonArgs: string[]) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-rel-'));
    this.socket = path.join(this.dir, 'cnmkit.sock');
    this.stateDir = path.join(this.dir, 'state');
    this.netnsDir = path.join(this.dir, 'netns');
    this.pluginDir = path.join(this.dir, 'plugins');
    this.hostNsName = `${prefix}-host`;
    this.hostNs = `/run/netns/${this.hostNsName}`;
  }

  /** A host namespace (lo up) and `externals` namespaces of another tool; the daemon is not started yet. */
  static async create(opts: { tag: string; externals?: number; daemonArgs?: string[] }): Promise<CampaignHost> {
    const prefix = `rel${opts.tag}-${process.pid % 100000}-${randomBytes(2).toString('hex')}`;
    const h = new CampaignHost(prefix, opts.daemonArgs ?? []);
    hosts.add(h);
    fs.mkdirSync(h.netnsDir);
    await check(['ip', 'netns', 'add', h.hostNsName]);
    await check(['ip', '-n', h.hostNsName, 'link', 'set', 'lo', 'up']);
    for (let i = 0; i < (opts.externals ?? 0); i++) {
      const name = `${prefix}-x${i}`;
      await check(['ip', 'netns', 'add', name]);
      await check(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
      h.external.push(`/run/netns/${name}`);
    }
    return h;
  }

  /** Adds a link of the host's own (not cnmkit's) in its namespace, with `ip`: argv after `ip -n HOST`. */
  async addBaseline(name: string, ipArgs: string[][]): Promise<void> {
    for (const args of ipArgs) await check(['ip', '-n', this.hostNsName, ...args]);
    this.baselineLinks.push(name);
  }

  get source(): StateSource {
    return { stateDir: this.stateDir, hostNs: this.hostNs, netnsDir: this.netnsDir, extraNamespaces: this.external };
  }

  get log(): string {
    return this.logTail;
  }

  get pid(): number | undefined {
    const p = this.proc;
    return p && p.exitCode === null && p.signalCode === null ? p.pid : undefined;
  }

  get alive(): boolean {
    return this.pid !== undefined;
  }

  private keepLog(b: Buffer): void {
    const text = b.toString();
    this.logTail = (this.logTail + text).slice(-LOG_KEEP);
    for (const line of text.split('\n')) {
      const level = /"level":(\d+)/.exec(line)?.[1];
      if (level !== undefined && Number(level) >= 50) {
        this.errorLines += 1;
        this.lastErrors = [...this.lastErrors, line.slice(0, 2000)].slice(-5);
      }
    }
  }

  /** Spawns the daemon; with wait, resolves once its socket answers (throws when it exits or timeouts.readyMs pass). */
  async start(wait = true): Promise<void> {
    const args = [`--net=${this.hostNs}`, '--', ...CampaignHost.cli, 'daemon', '--socket', this.socket, '--state-dir', this.stateDir,
      '--run-dir', path.join(this.dir, 'run'), '--plugin-dir', this.pluginDir, '--netns-dir', this.netnsDir, '--log-level', 'info',
      ...SAFE_ADDRESSES, ...this.daemonArgs];
    const proc = spawn('nsenter', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    this.starts += 1;
    proc.stdout!.on('data', (b: Buffer) => this.keepLog(b));
    proc.stderr!.on('data', (b: Buffer) => this.keepLog(b));
    if (wait) await this.ready();
  }

  /** Waits until the daemon answers GET /v1/version. */
  async ready(timeoutMs = CampaignHost.timeouts.readyMs): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const proc = this.proc;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) throw new Error(`the daemon exited (${proc?.exitCode ?? proc?.signalCode}):\n${this.logTail.slice(-4000)}`);
      const r = await jsonRequest(this.socket, 'GET', '/v1/version', undefined, 2_000);
      if (r.status === 200) return;
      if (Date.now() > deadline) throw new Error(`the daemon did not answer within ${timeoutMs} ms:\n${this.logTail.slice(-4000)}`);
      await sleep(25);
    }
  }

  /** Sends signal and waits for the daemon to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((res) => proc.once('exit', res));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(timer);
  }

  /** The daemon's answer to GET /health (status 0 when none). */
  async health(): Promise<number> {
    return (await jsonRequest(this.socket, 'GET', '/health', undefined, CampaignHost.timeouts.healthMs)).status;
  }

  /**
   * Stops the daemon (SIGTERM), then removes every namespace and mount this host made, whatever the
   * daemon left: the named sandboxes' folder is unmounted and the host and external namespaces go.
   * Returns what had to be removed by force (the campaign counts it as leaks when it should not be).
   */
  async cleanup(): Promise<string[]> {
    hosts.delete(this);
    await this.stop('SIGTERM');
    const forced: string[] = [];
    let left: string[] = [];
    try {
      left = fs.readdirSync(this.netnsDir);
    } catch {
      // Never made.
    }
    for (const name of left) {
      await run(['umount', path.join(this.netnsDir, name)]);
      forced.push(`named namespace ${name}`);
    }
    await run(['umount', '--recursive', this.netnsDir]);
    for (const ns of [this.hostNsName, ...this.external.map((p) => path.basename(p))]) await run(['ip', 'netns', 'del', ns]);
    fs.rmSync(this.dir, { recursive: true, force: true });
    return forced;
  }
}
