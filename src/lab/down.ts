// `cnmkit lab down NAME`: removes everything the lab made and nothing else — the host:IFACE ends
// it made in the namespace `up` ran in, the daemons and etcd (by recorded pid and start time;
// SIGKILL, as their state is thrown away with the run directory), the processes running in its
// nodes (found through their namespaces, and those `up` recorded by pid and start time, which a
// node's namespace no path leads to any more still holds), the namespaces it made (a name
// that was taken when `up` came to it is refused there, never adopted), the nodes' /etc/netns
// files, and the run directory. Works after a crash of `up` or of a
// daemon, and twice in a row (the second time there is nothing to do).
import fs from 'node:fs';
import path from 'node:path';
import { deleteLink, NetlinkHandlePool } from '../netlink/index.js';
import { deleteNamedNetns, netnsExists } from '../netns/index.js';
import { killProcessesInNetns } from '../netns/pids.js';
import { DAEMON_DEFAULTS } from '../defaults.js';
import { ETC_NETNS } from '../sandbox-config/index.js';
import { stopProcess } from './hosts.js';
import { endNodeProcesses } from './node-procs.js';
import { labRoot } from './plan.js';
import type { Progress } from './progress.js';
import { ownedMachineEnds, ownedNamespaces, readState, withLabLock, type LabState } from './state.js';

/**
 * Processes still running inside the namespaces (started by exec lines: servers left in the
 * background) are killed, so that the namespaces are really freed.
 */
export function killProcessesIn(names: string[]): number {
  return killProcessesInNetns(names.map((n) => path.join(DAEMON_DEFAULTS.netnsDir, n)));
}

/** Deletes the named namespaces and their /etc/netns folders; idempotent. */
export function removeNamespaces(names: string[]): void {
  for (const n of names) {
    deleteNamedNetns(n, DAEMON_DEFAULTS.netnsDir);
    fs.rmSync(path.join(ETC_NETNS, n), { recursive: true, force: true });
  }
}

/**
 * The link ends the lab made in the namespace `up` ran in (a name that was there before is never
 * the lab's). Equivalent to: `ip link del IFACE`.
 */
async function removeMachineEnds(s: LabState): Promise<number> {
  const ends = ownedMachineEnds(s);
  if (ends.length === 0 || !s.machineNetns || !netnsExists(s.machineNetns)) return 0;
  const pool = new NetlinkHandlePool();
  try {
    const h = pool.get(s.machineNetns);
    for (const ifname of ends) await deleteLink(h, ifname, { ifExists: true });
  } finally {
    pool.closeAll();
  }
  return ends.length;
}

export interface DownOptions {
  progress: Progress;
  root?: string;
}

/** Takes the lab down; false when there was no such lab (nothing to do). */
export async function labDown(name: string, o: DownOptions): Promise<boolean> {
  const root = o.root ?? labRoot();
  return withLabLock(name, root, () => downLocked(name, root, o));
}

/** labDown, holding the lab's lock. */
async function downLocked(name: string, root: string, o: DownOptions): Promise<boolean> {
  const s = readState(name, root);
  const pr = o.progress;
  if (!s) return false;
  const processes = [...Object.values(s.daemons), ...(s.etcd ? [s.etcd] : [])];
  pr.begin('processes', processes.length);
  await removeMachineEnds(s);
  await Promise.all(processes.map(async (p) => {
    await stopProcess(p, 0);
    pr.step();
  }));
  pr.end();
  const namespaces = ownedNamespaces(s);
  pr.begin('namespaces', namespaces.length);
  endNodeProcesses(s);
  killProcessesIn(namespaces);
  removeNamespaces(namespaces);
  pr.step(namespaces.length);
  pr.end();
  fs.rmSync(path.join(root, name), { recursive: true, force: true });
  pr.summary(`lab ${name} down`);
  return true;
}
