// A lab's record in its run directory (state.json): the plan it was brought up with, the
// processes it started (daemons, etcd) and those seen running in its nodes, with their start
// times so that a reused pid is never taken for them, and the phase. Written before each thing is made, so `down` finds everything
// after a crash of `up`. Written atomically (rename).
import fs from 'node:fs';
import path from 'node:path';
import { ConflictError, NotFoundError } from '../errors.js';
import { processStartTime, stillRuns, type ProcessId } from '../netns/pids.js';
import { MACHINE } from './model.js';
import { labNamespaces, labRoot, type LabPlan } from './plan.js';

export interface ProcessRecord extends ProcessId {
  /** A string its command line must contain (the daemon's socket, etcd's data dir). */
  marker: string;
}

export interface LabState {
  version: 1;
  name: string;
  /** The topology file, absolute. */
  file: string;
  phase: 'creating' | 'up' | 'failed';
  plan: LabPlan;
  daemons: Record<string, ProcessRecord>;
  etcd?: ProcessRecord;
  /** The namespace `lab up` ran in (host:IFACE ends are there): a path that stays valid. */
  machineNetns?: string;
  /** Names of the sandboxes' interfaces and addresses as the daemons reported them, by node. */
  interfaces: Record<string, Array<{ ifname: string; network?: string; link?: string; ipv4?: string; ipv6?: string; mac?: string }>>;
  /** Nodes whose exec lines have all run (exec runs once per node, when it is made). */
  execDone: string[];
  /** Namespaces of an earlier plan (nodes or hosts a changed file dropped) not removed yet. */
  leftovers: string[];
  /**
   * The namespaces this lab made, or is about to make (each found free first): the only ones `down`
   * deletes. Absent in a state written before it was kept: then the plan's, as then.
   */
  owned?: string[];
  /** The host:IFACE ends this lab made (a name that was there already is refused, never taken). */
  machineEnds?: string[];
  /**
   * By node: the processes seen in its namespace while its file was mounted (exec lines' servers),
   * ended with it even once no path leads to its namespace. Absent in a state written before.
   */
  nodeProcesses?: Record<string, ProcessId[]>;
  created: string;
  updated: string;
}

export const statePath = (dir: string): string => path.join(dir, 'state.json');

export function readState(name: string, root = labRoot()): LabState | undefined {
  try {
    return JSON.parse(fs.readFileSync(statePath(path.join(root, name)), 'utf8')) as LabState;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export function mustReadState(name: string, root = labRoot()): LabState {
  const s = readState(name, root);
  if (!s) throw new NotFoundError('lab', name);
  return s;
}

export function writeState(s: LabState): void {
  s.updated = new Date().toISOString();
  fs.mkdirSync(s.plan.dir, { recursive: true, mode: 0o700 });
  const file = statePath(s.plan.dir);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(s, null, 1)}\n`, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** The namespaces `down` may delete: those the lab made (or, for an older state, its plans'). */
export function ownedNamespaces(s: LabState): string[] {
  return s.owned ?? [...new Set([...labNamespaces(s.plan), ...(s.leftovers ?? [])])];
}

/** The host:IFACE ends of the plan's links. */
export function machineEndsOf(p: LabPlan): string[] {
  return p.links.flatMap((l) => l.spec.ends.filter((e) => e.node === MACHINE).map((e) => e.ifname));
}

/** The host:IFACE ends `down` may delete: those the lab made (or, for an older state, its plan's). */
export function ownedMachineEnds(s: LabState): string[] {
  return s.machineEnds ?? machineEndsOf(s.plan);
}

/** Names of the labs that have a run directory. */
export function listLabs(root = labRoot()): string[] {
  try {
    return fs.readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory() && fs.existsSync(statePath(path.join(root, d.name)))).map((d) => d.name).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Whether the recorded process is still the one the lab started. */
export function isAlive(p: ProcessRecord | undefined): boolean {
  if (!p || !stillRuns(p)) return false;
  try {
    return fs.readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').includes(p.marker);
  } catch {
    return false;
  }
}

/**
 * Runs fn holding the lab's lock (ROOT/.NAME.lock: the pid and start time of the `lab` command
 * holding it), so that an `up` and a `down` of one lab never interleave; one left by a command
 * that died is taken over. Refused, naming the holder, while another command holds it.
 */
export async function withLabLock<T>(name: string, root: string, fn: () => Promise<T>): Promise<T> {
  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  const file = path.join(root, `.${name}.lock`);
  const me: ProcessRecord = { pid: process.pid, startTime: processStartTime(process.pid) ?? '', marker: 'lab' };
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(file, JSON.stringify(me), { flag: 'wx', mode: 0o600 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
      let holder: ProcessRecord | undefined;
      try {
        holder = JSON.parse(fs.readFileSync(file, 'utf8')) as ProcessRecord;
      } catch {
        holder = undefined;
      }
      if (holder && isAlive(holder)) throw new ConflictError(`lab ${name}: another cnmkit lab command (pid ${holder.pid}) is changing it; try again once it has ended`);
      fs.rmSync(file, { force: true });
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(file, { force: true });
  }
}
