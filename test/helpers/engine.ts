// The real Docker engine (Debian's docker.io) without touching the host, for e2e tests and
// benchmarks alike (no test-runner imports): dockerd runs in a given network namespace and in a
// private mount namespace whose /run and /etc/docker are fresh tmpfs, so the engine sees no plugin
// but those in the folder bound at its /run/docker/plugins, and leaves no files behind. Storage is
// vfs, and data, exec root, socket, pidfile and cgroup parent are private. Stopping kills, by pid,
// dockerd and every process left in its mount namespace, then removes cgroups and files.
// Limits: one engine per Dockerd; images come only from `docker import` (no registry here); stop
// the engine before the plugins it uses (it calls them while it shuts down); a process killed
// outright leaves dockerd and its namespace holder running.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { check, run, type RunResult } from './exec.js';

export const DOCKERD = '/usr/sbin/dockerd';
/** The CLI of the same package (another `docker` may come first in PATH). */
export const DOCKER = '/usr/bin/docker';
export const BUSYBOX = '/bin/busybox';
export const BUSYBOX_IMAGE = 'cnmkit-busybox';
/** The engine's own search path; dockerd needs containerd, runc and docker-proxy from it. */
const ENGINE_PATH = '/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin';
const APPLETS = ['sh', 'ash', 'ping', 'ping6', 'ip', 'nc', 'wget', 'httpd', 'sleep', 'cat', 'echo', 'true', 'false', 'ls', 'ps', 'kill',
  'hostname', 'ifconfig', 'route', 'arp', 'netstat', 'nslookup', 'grep', 'sed', 'awk', 'head', 'tail', 'wc', 'env', 'id', 'mkdir', 'rm',
  'touch', 'printf', 'seq', 'date', 'timeout', 'tr', 'cut'];
function mountNsOf(pid: number): string | undefined {
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

/** Pids of the processes whose mount namespace is `ns` (as readlink shows it: mnt:[N]). */
function pidsInMountNs(ns: string): number[] {
  return fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number).filter((pid) => mountNsOf(pid) === ns);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pids: number[], ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  let left = pids.filter(alive);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 25));
    left = left.filter(alive);
  }
  return left;
}

/** GET /_ping on the engine's socket: true once the API answers. */
function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath, path: '/_ping', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
  });
}

/** Directories named `name` under the cgroup hierarchies (depth-limited), deepest first. */
function cgroupDirs(name: string): string[] {
  const found: string[] = [];
  const walk = (dir: string, depth: number): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const sub = path.join(dir, e.name);
      if (e.name === name) found.push(sub);
      else if (depth < 4) walk(sub, depth + 1);
    }
  };
  walk('/sys/fs/cgroup', 0);
  const all: string[] = [];
  const below = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) below(path.join(dir, e.name));
    all.push(dir);
  };
  for (const dir of found) below(dir);
  return all;
}

export interface DockerdOptions {
  /** More dockerd flags, e.g. ['--userland-proxy=false']. */
  args?: string[];
  /** The folder the engine sees as /run/docker/plugins (default: a new empty one). */
  pluginDir?: string;
  /** dockerd's --log-level (default info). */
  logLevel?: string;
}

/** Where the engine runs: a network namespace, by path. */
export interface EngineHost {
  readonly path: string;
}

export class Dockerd {
  readonly dir: string;
  /** Seen by the engine as /run/docker/plugins: serve plugin sockets here. */
  readonly pluginDir: string;
  readonly socket: string;
  readonly logFile: string;
  readonly cgroupParent: string;
  /** Milliseconds from spawning dockerd to its API answering, for the last start. */
  startMs = 0;
  private holder: ChildProcess | undefined;
  private mountNs: string | undefined;
  private proc: ChildProcess | undefined;
  private imageBuilt = false;

  private constructor(readonly host: EngineHost, readonly options: DockerdOptions) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-dockerd-'));
    this.pluginDir = options.pluginDir ?? path.join(this.dir, 'plugins');
    this.socket = path.join(this.dir, 'docker.sock');
    this.logFile = path.join(this.dir, 'dockerd.log');
    this.cgroupParent = `cnmkit-engine-${path.basename(this.dir).slice('cnmkit-dockerd-'.length)}`;
    if (options.pluginDir === undefined) fs.mkdirSync(this.pluginDir, { mode: 0o755 });
  }

  /** Starts an engine in `host`'s network namespace and a private mount namespace. */
  static async start(host: EngineHost, options: DockerdOptions = {}): Promise<Dockerd> {
    const d = new Dockerd(host, options);
    try {
      await d.isolateMounts();
      await d.startDaemon();
    } catch (err) {
      await d.cleanup().catch(() => undefined);
      throw err;
    }
    return d;
  }

  /** The engine's pid (dockerd itself), while it runs. */
  get pid(): number | undefined {
    return this.proc?.exitCode === null && this.proc.signalCode === null ? this.proc.pid : undefined;
  }

  log(): string {
    return fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8') : '';
  }

  /** Runs the docker CLI (of the same package) against this engine. */
  docker(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
    return run([DOCKER, '-H', `unix://${this.socket}`, '--config', path.join(this.dir, 'cli'), ...args], { timeoutMs: 60_000, ...opts });
  }

  /** Like docker(), but throws with the CLI's stderr unless it exits 0; returns stdout trimmed. */
  async dockerOk(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
    const r = await this.docker(args, opts);
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout.trim();
  }

  /** `docker inspect` (or `docker network inspect` …) parsed: pass the whole subcommand. */
  async inspect<T = any>(args: string[]): Promise<T[]> {
    return JSON.parse(await this.dockerOk(args)) as T[];
  }

  /** Runs argv inside the engine's mount and network namespaces (to look at what it sees). */
  inNamespaces(argv: string[]): Promise<RunResult> {
    if (!this.holder?.pid) throw new Error('the mount namespace is gone');
    return run(['nsenter', `--mount=/proc/${this.holder.pid}/ns/mnt`, `--net=${this.host.path}`, '--', ...argv]);
  }

  /** Imports the busybox image (sh, ping, ip, nc, wget, httpd, …) once for this engine. */
  async buildImage(): Promise<string> {
    if (this.imageBuilt) return BUSYBOX_IMAGE;
    const rootfs = path.join(this.dir, 'rootfs');
    for (const sub of ['bin', 'tmp', 'etc', 'proc', 'sys', 'dev', 'root', 'var/www']) fs.mkdirSync(path.join(rootfs, sub), { recursive: true });
    fs.chmodSync(path.join(rootfs, 'tmp'), 0o1777);
    fs.copyFileSync(BUSYBOX, path.join(rootfs, 'bin/busybox'));
    fs.chmodSync(path.join(rootfs, 'bin/busybox'), 0o755);
    for (const applet of APPLETS) fs.symlinkSync('busybox', path.join(rootfs, 'bin', applet));
    const tar = path.join(this.dir, 'rootfs.tar');
    await check(['tar', '-C', rootfs, '-cf', tar, '.']);
    await this.dockerOk(['import', '--change', 'CMD ["sh"]', '--change', 'ENV PATH=/bin', tar, BUSYBOX_IMAGE]);
    fs.rmSync(rootfs, { recursive: true, force: true });
    fs.rmSync(tar, { force: true });
    this.imageBuilt = true;
    return BUSYBOX_IMAGE;
  }

  /**
   * Stops the engine and starts it again on the same state (networks and images persist). With
   * crash, dockerd and everything in its mount namespace (containerd, shims, containers) get
   * SIGKILL first, as in a power loss: the engine then finds stale endpoints at start.
   */
  async restart(opts: { crash?: boolean } = {}): Promise<void> {
    await this.stopDaemon(opts.crash ? 'SIGKILL' : 'SIGTERM');
    await this.startDaemon();
  }

  /**
   * Stops everything this harness started and removes its files: containers, dockerd, any process
   * left in the private mount namespace (containerd, shims), the namespace holder, the cgroups.
   * Throws if something could not be removed.
   */
  async cleanup(): Promise<void> {
    const problems: string[] = [];
    if (this.pid !== undefined) {
      const ids = await this.docker(['ps', '-aq']);
      const list = ids.stdout.split('\n').filter(Boolean);
      if (list.length > 0) await this.docker(['rm', '-f', ...list]);
    }
    await this.stopDaemon().catch((err: Error) => problems.push(err.message));
    const holder = this.holder;
    if (holder?.pid !== undefined && alive(holder.pid)) {
      process.kill(holder.pid, 'SIGKILL');
      if ((await waitGone([holder.pid], 5000)).length > 0) problems.push(`mount namespace holder ${holder.pid} did not exit`);
    }
    this.holder = undefined;
    for (const dir of cgroupDirs(this.cgroupParent)) {
      try {
        fs.rmdirSync(dir);
      } catch (err) {
        problems.push(`cgroup ${dir}: ${(err as Error).message}`);
      }
    }
    try {
      fs.rmSync(this.dir, { recursive: true, force: true });
    } catch (err) {
      problems.push(`${this.dir}: ${(err as Error).message}`);
    }
    if (problems.length > 0) throw new Error(`Dockerd cleanup left things behind:\n${problems.join('\n')}`);
  }

  /** A private mount namespace (kept alive by a sleeping holder) with fresh /run and /etc/docker. */
  private async isolateMounts(): Promise<void> {
    const own = mountNsOf(process.pid);
    const holder = spawn('unshare', ['--mount', '--propagation', 'private', 'sleep', 'infinity'], { stdio: 'ignore' });
    this.holder = holder;
    const deadline = Date.now() + 5000;
    while (holder.pid === undefined || mountNsOf(holder.pid) === own || mountNsOf(holder.pid) === undefined) {
      if (holder.exitCode !== null || Date.now() > deadline) throw new Error('unshare --mount did not start');
      await new Promise((res) => setTimeout(res, 10));
    }
    this.mountNs = mountNsOf(holder.pid);
    const inside = (argv: string[]) => check(['nsenter', `--mount=/proc/${holder.pid}/ns/mnt`, '--', ...argv]);
    // -n: no /run/mount/utab, which would land on the host's /run before the tmpfs covers it.
    await inside(['mount', '-n', '-t', 'tmpfs', '-o', 'mode=0755', 'cnmkit-run', '/run']);
    await inside(['mkdir', '-p', '/run/docker/plugins']);
    await inside(['mount', '-n', '--bind', this.pluginDir, '/run/docker/plugins']);
    for (const dir of ['/etc/docker', '/usr/lib/docker']) {
      if (fs.existsSync(dir)) await inside(['mount', '-n', '-t', 'tmpfs', '-o', 'mode=0755', 'cnmkit-docker-config', dir]);
    }
  }

  private async startDaemon(): Promise<void> {
    if (!this.holder?.pid) throw new Error('no mount namespace');
    const d = this.dir;
    const args = [
      `--mount=/proc/${this.holder.pid}/ns/mnt`, `--net=${this.host.path}`, '--', DOCKERD,
      '--data-root', path.join(d, 'data'), '--exec-root', path.join(d, 'exec'), '--pidfile', path.join(d, 'dockerd.pid'),
      '-H', `unix://${this.socket}`, '--storage-driver', 'vfs', '--cgroup-parent', this.cgroupParent, '--log-level', this.options.logLevel ?? 'info',
      ...(this.options.args ?? []),
    ];
    const out = fs.openSync(this.logFile, 'a');
    const started = performance.now();
    // nsenter without --pid execs dockerd in place: the child's pid is dockerd's.
    // The run marker goes along so that the host check sees what the engine leaves (test/helpers/host-snapshot.ts).
    const env = { PATH: ENGINE_PATH, ...(process.env.CNMKIT_TEST_RUN ? { CNMKIT_TEST_RUN: process.env.CNMKIT_TEST_RUN } : {}) };
    const proc = spawn('nsenter', args, { stdio: ['ignore', out, out], env });
    fs.closeSync(out);
    this.proc = proc;
    const deadline = Date.now() + 30_000;
    while (!(await ping(this.socket))) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`dockerd exited (${proc.exitCode ?? proc.signalCode}):\n${this.log().slice(-4000)}`);
      if (Date.now() > deadline) throw new Error(`dockerd did not answer within 30 s:\n${this.log().slice(-4000)}`);
      await new Promise((res) => setTimeout(res, 25));
    }
    this.startMs = Math.round(performance.now() - started);
  }

  /** SIGTERM to dockerd (SIGKILL after 20 s), then SIGKILL to anything left in its mount namespace. */
  private async stopDaemon(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (proc?.pid !== undefined && proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((res) => proc.once('exit', res));
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    if (this.mountNs === undefined) return;
    const holderPid = this.holder?.pid;
    const left = pidsInMountNs(this.mountNs).filter((pid) => pid !== holderPid);
    if (left.length > 0 && signal === 'SIGTERM') console.warn(`dockerd left ${left.length} process(es) in its mount namespace; killing ${left.join(', ')}`);
    for (const pid of left) process.kill(pid, 'SIGKILL');
    const stuck = await waitGone(left, 5000);
    if (stuck.length > 0) throw new Error(`processes left in dockerd's mount namespace: ${stuck.join(', ')}`);
  }
}
