// Small helpers shared by the benchmarks: spawning with an argument array (and long-running children
// stopped by pid), a throwaway "host" namespace, process trees and memory read from /proc, and latency statistics.
// Limits: process figures are read from /proc at one instant; RSS counts shared pages once per process.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { check, run, type RunOptions, type RunResult } from '../../test/helpers/exec.js';

export type Ran = RunResult;

/** Runs argv (never a shell string) and collects its output; killed after timeoutMs (default 60 s). */
export function exec(argv: string[], opts: RunOptions = {}): Promise<Ran> {
  return run(argv, { timeoutMs: 60_000, ...opts });
}

/** Like exec, but throws with the command's stderr unless it exits 0; returns stdout. */
export function must(argv: string[], opts: RunOptions = {}): Promise<string> {
  return check(argv, { timeoutMs: 60_000, ...opts });
}

/**
 * Starts argv as a long-running child (nsenter and `ip netns exec` exec in place: the pid is the
 * program's own), stdout and stderr piped, with extraPipes more pipes as fds 3, 4, …
 */
export function startChild(argv: string[], extraPipes = 0): ChildProcess {
  return spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', ...Array.from({ length: 2 + extraPipes }, () => 'pipe' as const)] });
}

/** SIGTERM to the child by its pid, SIGKILL after 3 s; resolves once it has exited. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((res) => child.once('exit', res));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

/** A named network namespace standing for a host, with lo up. `ip netns del` it in a finally. */
export async function addHostNs(name: string): Promise<string> {
  await must(['ip', 'netns', 'add', name]);
  await must(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
  return `/run/netns/${name}`;
}

/** Deletes every named namespace whose name starts with prefix (what a failed run left). */
export async function deleteNsWithPrefix(prefix: string): Promise<number> {
  let names: string[] = [];
  try {
    names = fs.readdirSync('/run/netns').filter((n) => n.startsWith(prefix));
  } catch {
    return 0;
  }
  for (const n of names) await exec(['ip', 'netns', 'del', n]);
  return names.length;
}

interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
}

function procInfo(pid: number): ProcInfo | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const ppid = Number(stat.slice(close + 2).split(' ')[1]);
    return { pid, ppid, comm };
  } catch {
    return undefined;
  }
}

function allProcs(): ProcInfo[] {
  return fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map((e) => procInfo(Number(e))).filter((p): p is ProcInfo => p !== undefined);
}

/** The process pid and all its descendants. */
export function processTree(pid: number): ProcInfo[] {
  const procs = allProcs();
  const out = procs.filter((p) => p.pid === pid);
  for (let i = 0; i < out.length; i++) out.push(...procs.filter((p) => p.ppid === out[i]!.pid));
  return out;
}

/** Direct children of pid whose command name is comm. */
export function childrenNamed(pid: number, comm: string): number[] {
  return allProcs().filter((p) => p.ppid === pid && p.comm === comm).map((p) => p.pid);
}

function statusField(pid: number, field: string): number {
  try {
    const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(`${field}:`));
    return Number(line?.replace(/\D+/g, '') || 0);
  } catch {
    return 0;
  }
}

/** VmRSS of pid in KiB (0 when it is gone). */
export const rssKiB = (pid: number): number => statusField(pid, 'VmRSS');

/** Proportional set size of pid in KiB: shared pages divided among the processes that map them. */
export function pssKiB(pid: number): number {
  try {
    const line = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').split('\n').find((l) => l.startsWith('Pss:'));
    return Number(line?.replace(/\D+/g, '') || 0);
  } catch {
    return 0;
  }
}

export const mib = (kib: number): string => `${(kib / 1024).toFixed(1)} MiB`;

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Milliseconds that fn took, with its result. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await fn();
  return { ms: performance.now() - t, value };
}

/** The q-quantile of xs (nearest rank), NaN when empty. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

export const fmtMs = (ms: number): string => (Number.isNaN(ms) ? '—' : ms >= 100 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(2)} ms`);
/** a/b as a factor; below 0.1 as a fraction (1/400×), so that small ratios keep their digits. */
export function ratio(a: number, b: number): string {
  const r = a / b;
  if (!Number.isFinite(r) || r <= 0) return '—';
  return r >= 0.1 ? `${r.toFixed(2)}×` : `1/${Math.round(1 / r)}×`;
}

let interrupted = false;

/** Turns SIGINT/SIGTERM into an error at the next checkInterrupt(), so that cleanup runs; returns the remover. */
export function catchInterrupt(): () => void {
  const onSignal = (): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.error('\nbench: interrupted; cleaning up (signal again to quit at once and leave things behind)');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

export function checkInterrupt(): void {
  if (interrupted) throw new Error('bench: interrupted');
}
