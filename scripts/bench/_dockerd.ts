// The real Docker engine (Debian's docker.io 20.10) for benchmarks, never on the host: dockerd runs
// under nsenter in a throwaway network namespace and in a private mount namespace (held by a
// sleeping `unshare`) whose /run and /etc/docker are fresh tmpfs; data, exec root, socket, pidfile
// and cgroup parent are private. Stopping kills, by pid, what is left in that mount namespace,
// then removes the cgroups and the temporary folder. Images come from `docker import` of busybox.
// Limits: one engine per instance; the test suite's harness (test/helpers/dockerd.ts) needs vitest,
// so this is a separate, smaller one.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { exec, must, sleep, type Ran } from './_procs.js';

const DOCKERD = '/usr/sbin/dockerd';
const DOCKER = '/usr/bin/docker';
const BUSYBOX = '/bin/busybox';
export const IMAGE = 'cnmkit-busybox';
/** dockerd finds containerd, runc and docker-proxy on its PATH. */
const ENGINE_PATH = '/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Why the Docker side cannot run here, or undefined when it can. */
export function dockerMissing(): string | undefined {
  const gone = [DOCKERD, DOCKER, BUSYBOX, '/usr/sbin/docker-proxy', '/usr/bin/docker-proxy'].filter((f) => !fs.existsSync(f));
  if (gone.includes(DOCKERD) || gone.includes(DOCKER)) return `${DOCKERD} / ${DOCKER} missing: apt-get install docker.io (scripts/setup does it without starting an engine)`;
  if (gone.includes(BUSYBOX)) return `${BUSYBOX} missing: apt-get install busybox-static`;
  if (gone.includes('/usr/sbin/docker-proxy') && gone.includes('/usr/bin/docker-proxy')) return 'docker-proxy missing (package docker.io)';
  return undefined;
}

const mountNsOf = (pid: number): string | undefined => {
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
};

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

function apiPing(socketPath: string): Promise<boolean> {
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

/** Folders named `name` under /sys/fs/cgroup (a few levels deep) and everything below them, deepest first. */
function cgroupsNamed(name: string): string[] {
  const found: string[] = [];
  const seek = (dir: string, depth: number): void => {
    let entries: fs.Dirent[] = [];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries.filter((x) => x.isDirectory())) {
      const sub = path.join(dir, e.name);
      if (e.name === name) found.push(sub);
      else if (depth < 4) seek(sub, depth + 1);
    }
  };
  seek('/sys/fs/cgroup', 0);
  const ordered: string[] = [];
  const post = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) post(path.join(dir, e.name));
    ordered.push(dir);
  };
  found.forEach(post);
  return ordered;
}

export class BenchDockerd {
  readonly dir: string;
  readonly socket: string;
  readonly cgroupParent: string;
  private holder: ChildProcess | undefined;
  private mountNs: string | undefined;
  private proc: ChildProcess | undefined;

  constructor(readonly netnsPath: string, readonly args: string[]) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-bench-docker-'));
    this.socket = path.join(this.dir, 'docker.sock');
    this.cgroupParent = `cnmkit-bench-${path.basename(this.dir).slice(-6)}`;
  }

  get pid(): number {
    if (this.proc?.pid === undefined || this.proc.exitCode !== null) throw new Error(`dockerd is not running:\n${this.logTail()}`);
    return this.proc.pid;
  }

  logTail(): string {
    const f = path.join(this.dir, 'dockerd.log');
    return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').slice(-4000) : '';
  }

  docker(args: string[], timeoutMs = 120_000): Promise<Ran> {
    return exec([DOCKER, '-H', `unix://${this.socket}`, '--config', path.join(this.dir, 'cli'), ...args], { timeoutMs });
  }

  async dockerOk(args: string[], timeoutMs = 120_000): Promise<string> {
    const r = await this.docker(args, timeoutMs);
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout.trim();
  }

  async start(): Promise<void> {
    const own = mountNsOf(process.pid);
    const holder = spawn('unshare', ['--mount', '--propagation', 'private', 'sleep', 'infinity'], { stdio: 'ignore' });
    this.holder = holder;
    for (let waited = 0; holder.pid === undefined || mountNsOf(holder.pid) === undefined || mountNsOf(holder.pid) === own; waited += 10) {
      if (holder.exitCode !== null || waited > 5000) throw new Error('unshare --mount did not start');
      await sleep(10);
    }
    this.mountNs = mountNsOf(holder.pid);
    const inside = (argv: string[]): Promise<string> => must(['nsenter', `--mount=/proc/${holder.pid}/ns/mnt`, '--', ...argv]);
    // -n: write no utab on the host's /run before the tmpfs hides it.
    await inside(['mount', '-n', '-t', 'tmpfs', '-o', 'mode=0755', 'cnmkit-bench-run', '/run']);
    for (const dir of ['/etc/docker', '/usr/lib/docker']) if (fs.existsSync(dir)) await inside(['mount', '-n', '-t', 'tmpfs', '-o', 'mode=0755', 'cnmkit-bench-etc', dir]);
    const d = this.dir;
    const out = fs.openSync(path.join(d, 'dockerd.log'), 'a');
    this.proc = spawn('nsenter', [`--mount=/proc/${holder.pid}/ns/mnt`, `--net=${this.netnsPath}`, '--', DOCKERD,
      '--data-root', path.join(d, 'data'), '--exec-root', path.join(d, 'exec'), '--pidfile', path.join(d, 'dockerd.pid'),
      '-H', `unix://${this.socket}`, '--storage-driver', 'vfs', '--cgroup-parent', this.cgroupParent, '--log-level', 'warn', ...this.args,
    ], { stdio: ['ignore', out, out], env: { PATH: ENGINE_PATH } });
    fs.closeSync(out);
    const deadline = Date.now() + 60_000;
    while (!(await apiPing(this.socket))) {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) throw new Error(`dockerd exited (${this.proc.exitCode ?? this.proc.signalCode}):\n${this.logTail()}`);
      if (Date.now() > deadline) throw new Error(`dockerd did not answer within 60 s:\n${this.logTail()}`);
      await sleep(50);
    }
  }

  /** `docker import`s a busybox root (sh, sleep, …) as IMAGE. */
  async buildImage(): Promise<void> {
    const root = path.join(this.dir, 'rootfs');
    for (const sub of ['bin', 'tmp', 'etc', 'proc', 'sys', 'dev']) fs.mkdirSync(path.join(root, sub), { recursive: true });
    fs.copyFileSync(BUSYBOX, path.join(root, 'bin/busybox'));
    fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
    for (const applet of ['sh', 'sleep', 'true']) fs.symlinkSync('busybox', path.join(root, 'bin', applet));
    const tar = path.join(this.dir, 'rootfs.tar');
    await must(['tar', '-C', root, '-cf', tar, '.']);
    await this.dockerOk(['import', '--change', 'ENV PATH=/bin', tar, IMAGE]);
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(tar, { force: true });
  }

  /** Removes containers, stops the engine, kills what is left in its mount namespace, removes cgroups and files. */
  async cleanup(): Promise<void> {
    const problems: string[] = [];
    if (this.proc?.exitCode === null && this.proc.signalCode === null) {
      const ids = (await this.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await this.docker(['rm', '-f', ...ids], 600_000);
      const proc = this.proc;
      const exited = new Promise((res) => proc.once('exit', res));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    }
    const holderPid = this.holder?.pid;
    if (this.mountNs !== undefined) {
      const ns = this.mountNs;
      const left = fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number).filter((pid) => pid !== holderPid && mountNsOf(pid) === ns);
      for (const pid of left) process.kill(pid, 'SIGKILL');
      for (let waited = 0; left.some(alive) && waited < 5000; waited += 25) await sleep(25);
      if (left.some(alive)) problems.push(`processes left in dockerd's mount namespace: ${left.filter(alive).join(', ')}`);
    }
    if (holderPid !== undefined && alive(holderPid)) {
      process.kill(holderPid, 'SIGKILL');
      for (let waited = 0; alive(holderPid) && waited < 5000; waited += 25) await sleep(25);
    }
    for (const dir of cgroupsNamed(this.cgroupParent)) {
      try {
        fs.rmdirSync(dir);
      } catch (err) {
        problems.push(`cgroup ${dir}: ${(err as Error).message}`);
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
    if (problems.length > 0) throw new Error(`Docker cleanup left things behind:\n${problems.join('\n')}`);
  }
}
