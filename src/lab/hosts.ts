// Simulated hosts: each a named namespace (NAME-HOST) with its own `cnmkit daemon`, started
// detached under nsenter so that it outlives `lab up`; one real etcd on the underlay when the lab
// needs a cluster store. Stopping goes by recorded pid and start time only. The underlay's links
// are underlay.ts's.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { CnmkitError } from '../errors.js';
import { createNamedNetns, netnsExists } from '../netns/index.js';
import { Client } from '../client/index.js';
import { projectPath } from '../paths.js';
import { ETCD_CLIENT_PORT, ETCD_PEER_PORT, type EtcdPlan, type HostPlan } from './plan.js';
import { processStartTime, stillRuns } from '../netns/pids.js';
import { isAlive, type ProcessRecord } from './state.js';

const CLI = projectPath('bin', 'cnmkit');
const READY_TIMEOUT_MS = 30_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A namespace, made unless it exists (up converges); returns whether it is new. Equivalent to: `ip netns add NS`. */
export function ensureNamespace(name: string, nsPath: string): boolean {
  if (netnsExists(nsPath)) return false;
  createNamedNetns(name, path.dirname(nsPath));
  return true;
}

/** A process started detached; ready settles when it says so (or fails when it exits first). */
export interface Started { record: ProcessRecord; ready: Promise<void> }

/** etcd started detached: it serves once the hosts' daemons reach it; failed rejects if it exits. */
export interface StartedEtcd { record: ProcessRecord; failed: Promise<never> }

/**
 * Starts argv detached (it outlives this command) with its output in log. With readyPipe, its fd 3
 * is a pipe it writes a line to once ready (the daemon's --ready-fd 3): exited() turns non-null
 * when it died, readyLine resolves true at that line, false at end of file.
 */
function startDetached(argv: string[], log: string, marker: string, readyPipe = false, env = process.env): { record: ProcessRecord; exited: () => number | null; exit: Promise<number>; readyLine: Promise<boolean> } {
  fs.mkdirSync(path.dirname(log), { recursive: true });
  const out = fs.openSync(log, 'a');
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, env, stdio: ['ignore', out, out, ...(readyPipe ? ['pipe' as const] : [])] });
  fs.closeSync(out);
  child.unref();
  let code: number | null = null;
  let exitWith!: (c: number) => void;
  const exit = new Promise<number>((resolve) => (exitWith = resolve));
  child.on('exit', (c, s) => exitWith((code = c ?? (s ? 128 : 1))));
  child.on('error', () => exitWith((code = 127)));
  const pid = child.pid ?? 0;
  const pipe = child.stdio[3] as Readable | null | undefined;
  // Unreferenced: a wait that gave up (timeout) must not keep this command alive.
  (pipe as { unref?: () => void } | null | undefined)?.unref?.();
  const readyLine = !pipe ? Promise.resolve(false) : new Promise<boolean>((resolve) => {
    let text = '';
    const done = (ok: boolean): void => {
      pipe.destroy();
      resolve(ok);
    };
    pipe.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('\n')) done(text.startsWith('ready'));
    });
    pipe.on('end', () => done(false));
    pipe.on('error', () => done(false));
  });
  return { record: { pid, startTime: processStartTime(pid) ?? '', marker }, exited: () => code, exit, readyLine };
}

function tail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).slice(-8).join('\n');
  } catch {
    return '';
  }
}

/**
 * The daemon's environment: this command's, less NODE_EXTRA_CA_CERTS. Node reads and parses that
 * file at every start (~40 ms here), and a lab's daemon makes no TLS connection (its cluster
 * store, when it has one, is plain etcd:// without --cluster-store-opt).
 */
function daemonEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

/**
 * Starts the host's daemon in its namespace; ready settles once its API answers, which the daemon
 * says on a pipe (--ready-fd 3) rather than being polled.
 */
export function startDaemon(h: HostPlan): Started {
  fs.mkdirSync(h.dir, { recursive: true, mode: 0o700 });
  const argv = ['nsenter', `--net=${h.nsPath}`, '--', process.execPath, CLI, ...h.daemonArgs, '--ready-fd', '3'];
  const { record, exited, readyLine } = startDetached(argv, h.log, h.socket, true, daemonEnv());
  const failed = (why: string): CnmkitError => new CnmkitError('ERR_LAB_DAEMON', 'internal', `host ${h.name}: the daemon ${why}:\n${tail(h.log)}`);
  const ready = (async () => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), READY_TIMEOUT_MS)));
    const r = await Promise.race([readyLine, timeout]);
    clearTimeout(timer);
    if (r === true) return;
    if (r === 'timeout') throw failed(`did not answer on ${h.socket} within ${READY_TIMEOUT_MS / 1000} s`);
    // End of file without the line: it exited (its exit status may come a moment later).
    for (let i = 0; i < 100 && exited() === null; i++) await sleep(10);
    throw failed(`exited (${exited() ?? 'unknown'}) before it was ready`);
  })();
  return { record, ready };
}

/** Whether the daemon recorded for h is running and answers. */
export async function daemonAnswers(h: HostPlan, p: ProcessRecord | undefined): Promise<boolean> {
  if (!isAlive(p)) return false;
  try {
    await new Client(h.socket).request('GET', '/v1/version');
    return true;
  } catch {
    return false;
  }
}

/**
 * The lab's etcd is one member with no peer to hear from, so its raft timing is short (a 10 ms tick,
 * elections after 50 ms): a new member campaigns after its election timeout, randomised up to twice
 * that, less the 9 ticks etcd skips for a single member — with etcd's defaults (100 ms, 1 s) that
 * left 0.1-1.1 s before it served a request, here 10-60 ms. 5 ticks per election is etcd's minimum.
 */
const ETCD_TIMING = ['--heartbeat-interval', '10', '--election-timeout', '50'];

/**
 * etcd's environment: this command's, with GOMAXPROCS=1. The lab's etcd is one member serving a few
 * hundred requests; with one processor for Go code its scheduler does not spin a second thread
 * looking for work, nor run GC workers on it: ~20% less of its CPU in a 3-host lab up (0.30 -> 0.24 s).
 */
function etcdEnv(): NodeJS.ProcessEnv {
  return { ...process.env, GOMAXPROCS: '1' };
}

function etcdArgv(underlayNs: string, e: EtcdPlan): string[] {
  const client = `http://${e.address}:${ETCD_CLIENT_PORT}`;
  const peer = `http://127.0.0.1:${ETCD_PEER_PORT}`;
  return ['nsenter', `--net=${underlayNs}`, '--', 'etcd', '--name', 'lab', '--data-dir', e.dataDir, '--listen-client-urls', client,
    '--advertise-client-urls', client, '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `lab=${peer}`, ...ETCD_TIMING];
}

/**
 * Starts etcd in the underlay namespace. Nothing asks it whether it serves: the hosts' daemons it
 * was started for say when they reach it (the caller waits for that), which it takes 0.15-0.2 s here
 * to allow, well before they are ready to try. failed rejects, with the end of etcd's log, if it exits.
 */
export function startEtcd(underlayNs: string, e: EtcdPlan): StartedEtcd {
  fs.mkdirSync(e.dataDir, { recursive: true, mode: 0o700 });
  const { record, exit } = startDetached(etcdArgv(underlayNs, e), e.log, e.dataDir, false, etcdEnv());
  const failed = exit.then((code): never => {
    throw new CnmkitError('ERR_LAB_ETCD', 'internal', `etcd exited (${code}):\n${tail(e.log)}`);
  });
  failed.catch(() => undefined);
  return { record, failed };
}

/** Stops the recorded process (SIGTERM, then SIGKILL after graceMs); nothing when it is not ours any more. */
export async function stopProcess(p: ProcessRecord | undefined, graceMs = 3000): Promise<void> {
  if (!isAlive(p)) return;
  process.kill(p!.pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(p) && Date.now() < deadline) await sleep(10);
  if (isAlive(p)) process.kill(p!.pid, 'SIGKILL');
  while (stillRuns(p!) && fs.existsSync(`/proc/${p!.pid}`) && !isZombie(p!.pid)) await sleep(5);
}

function isZombie(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}
