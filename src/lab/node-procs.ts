// The processes of a lab's nodes (servers an exec line left in the background), recorded in the
// lab's state by pid and start time while each node's namespace file is mounted (so the namespace
// is certainly the node's), and ended with the node: when `up` makes a gone node again (its
// namespace, unmounted or deleted by hand, lives on where no path leads, held by them) or finds it
// dropped from the file, and at `down`, besides what `down` finds through the namespaces' paths.
// A namespace's inode alone is never recorded: the kernel gives it to a later namespace.
// Limits: only what ran when `up` last looked (after a node's exec lines, and at each later `up`):
// a process started later (by `lab exec`, or forked later by a recorded one) is not known until
// then, so it outlives a node orphaned before; the lab's daemons and etcd are never taken.
import path from 'node:path';
import { DAEMON_DEFAULTS } from '../defaults.js';
import { netnsExists } from '../netns/index.js';
import { killRecorded, processesInNetns, stillRuns } from '../netns/pids.js';
import type { NodePlan } from './plan.js';
import type { LabState } from './state.js';

const nsPathOf = (n: NodePlan): string => path.join(DAEMON_DEFAULTS.netnsDir, n.sandbox);

/** Pids of the lab's own processes (its daemons and etcd enter the nodes' namespaces for a moment). */
function labPids(s: LabState): number[] {
  return [...Object.values(s.daemons), ...(s.etcd ? [s.etcd] : [])].map((p) => p.pid);
}

/**
 * Records what runs now in the nodes' namespaces (one pass over /proc), with what was recorded
 * for them and still runs. Only while their namespace files are mounted (checked by the caller):
 * then the namespaces are the nodes'.
 */
export function recordNodeProcesses(s: LabState, nodes: NodePlan[]): void {
  const seen = processesInNetns(nodes.map(nsPathOf), labPids(s));
  for (const [i, n] of nodes.entries()) {
    const still = (s.nodeProcesses?.[n.name] ?? []).filter(stillRuns);
    const known = new Set(still.map((p) => `${p.pid}/${p.startTime}`));
    const now = [...still, ...seen[i]!.filter((p) => !known.has(`${p.pid}/${p.startTime}`))];
    if (now.length > 0) (s.nodeProcesses ??= {})[n.name] = now;
    else delete s.nodeProcesses?.[n.name];
  }
}

/**
 * At the start of `up` (the file's namespaces found free or the lab's): records the processes of
 * each node whose namespace is there; ends those recorded for a node whose namespace is gone (it
 * is made again next) or that the file dropped, and forgets them. Returns how many were ended.
 */
export function settleNodeProcesses(s: LabState): number {
  const nodes = s.plan.nodes.filter((n) => netnsExists(nsPathOf(n)));
  recordNodeProcesses(s, nodes);
  const alive = new Set(nodes.map((n) => n.name));
  let ended = 0;
  for (const [name, processes] of Object.entries(s.nodeProcesses ?? {})) {
    if (alive.has(name)) continue;
    ended += killRecorded(processes);
    delete s.nodeProcesses![name];
  }
  return ended;
}

/** At `down`: ends every recorded process of the lab's nodes that still runs. Returns how many. */
export function endNodeProcesses(s: LabState): number {
  return killRecorded(Object.values(s.nodeProcesses ?? {}).flat());
}
