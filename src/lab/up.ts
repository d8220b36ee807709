// `cnmkit lab up FILE`: reads and checks the file, then converges the machine to it — the
// underlay and the hosts' namespaces and daemons (and etcd), what a changed file removed, then
// networks, nodes, links, each node's settings and hosts file, and the new nodes' exec lines,
// all through the daemons' API. The state is written before each stage, so that `down` finds
// everything whatever happens; a second `up` of the same file changes nothing.
import fs from 'node:fs';
import path from 'node:path';
import { ApiError } from '../client/index.js';
import { DAEMON_DEFAULTS } from '../defaults.js';
import { ConflictError, InvalidArgumentError } from '../errors.js';
import { netnsExists } from '../netns/index.js';
import {
  configureNodes, ensureLinks, ensureMachineSandbox, ensureNetworks, ensureNodes, execNode, HostApi, hostsEntries, type Iface, type LinkEnds,
} from './apply.js';
import { diffPlans, execLostWith, type LabChanges } from './changes.js';
import { daemonAnswers, ensureNamespace, startDaemon, startEtcd, stopProcess } from './hosts.js';
import { mapLimit } from './limit.js';
import { MACHINE, type LabTopology } from './model.js';
import { recordNodeProcesses, settleNodeProcesses } from './node-procs.js';
import { labNamespaces, labRoot, planLab, type LabPlan } from './plan.js';
import type { Progress } from './progress.js';
import { isAlive, machineEndsOf, ownedMachineEnds, ownedNamespaces, readState, withLabLock, writeState, type LabState } from './state.js';
import { loadTopology } from './topology.js';
import type { LabLinks } from './underlay.js';

export interface UpOptions {
  progress: Progress;
  root?: string;
  /** The lab's name instead of the file's (two labs from one file). */
  name?: string;
}

const LAB_NAME_RE = /^[A-Za-z][A-Za-z0-9_-]{0,15}$/;

/** API calls in flight per lab (the daemons serialise their work; this overlaps the round trips). */
const CONCURRENCY = 16;

/** A path to the namespace this process runs in that stays valid after it exits. */
export function machineNetnsPath(): string {
  const self = fs.statSync('/proc/self/ns/net').ino;
  const inode = (p: string): number | undefined => {
    try {
      return fs.statSync(p).ino;
    } catch {
      return undefined;
    }
  };
  const named = fs.existsSync('/run/netns') ? fs.readdirSync('/run/netns').map((n) => path.join('/run/netns', n)) : [];
  return ['/proc/1/ns/net', ...named].find((p) => inode(p) === self) ?? `/proc/${process.pid}/ns/net`;
}

/**
 * Refuses, before anything is made, a namespace or host:IFACE end of the plan that exists and is
 * not this lab's: another lab's node (names are LAB-NODE), a namespace or interface made by hand.
 * `up` never adopts one, so `down` never deletes one.
 */
async function refuseTaken(plan: LabPlan, prev: LabState | undefined, links: Links): Promise<void> {
  const owned = new Set(prev ? ownedNamespaces(prev) : []);
  const namespaces = labNamespaces(plan).filter((n) => !owned.has(n) && netnsExists(path.join(DAEMON_DEFAULTS.netnsDir, n)));
  if (namespaces.length > 0) {
    throw new ConflictError(`lab ${plan.name}: namespace${namespaces.length > 1 ? 's' : ''} ${namespaces.join(', ')} exist${namespaces.length > 1 ? '' : 's'} and ${namespaces.length > 1 ? 'are' : 'is'} not this lab's (another lab's node, or made by hand); nothing was changed`);
  }
  const mine = new Set(prev ? ownedMachineEnds(prev) : []);
  const wanted = machineEndsOf(plan).filter((n) => !mine.has(n));
  const ends = wanted.length > 0 ? await (await links.get()).present(wanted) : [];
  if (ends.length > 0) {
    throw new ConflictError(`lab ${plan.name}: host:${ends.join(', host:')}: this namespace has ${ends.length > 1 ? 'interfaces' : 'an interface'} of that name already; a host: end is a new interface the lab makes (and deletes at down); nothing was changed`, { field: 'links' });
  }
}

function initialState(plan: LabPlan, file: string, prev: LabState | undefined): LabState {
  const now = new Date().toISOString();
  const leftovers = prev ? [...(prev.leftovers ?? []), ...labNamespaces(prev.plan).filter((n) => !labNamespaces(plan).includes(n))] : [];
  return {
    version: 1, name: plan.name, file: path.resolve(file), phase: 'creating', plan, daemons: prev?.daemons ?? {},
    ...(prev?.etcd ? { etcd: prev.etcd } : {}), interfaces: prev?.interfaces ?? {}, leftovers: [...new Set(leftovers)],
    execDone: (prev?.execDone ?? []).filter((n) => plan.nodes.some((x) => x.name === n)),
    // Each found free (refuseTaken) before it is recorded here, and recorded before it is made.
    owned: [...new Set([...(prev ? ownedNamespaces(prev) : []), ...labNamespaces(plan)])],
    machineEnds: prev ? ownedMachineEnds(prev) : [],
    ...(prev?.nodeProcesses ? { nodeProcesses: prev.nodeProcesses } : {}),
    created: prev?.created ?? now, updated: now,
  };
}

/** The lab's netlink part, loaded on first use (underlay.ts). */
class Links {
  private links?: LabLinks;

  async get(): Promise<LabLinks> {
    return (this.links ??= new (await import('./underlay.js')).LabLinks());
  }

  close(): void {
    this.links?.close();
  }
}

/** The hosts being started: each host's API, and when each one (and all) can take requests. */
interface HostsStarting {
  apis: Map<string, HostApi>;
  /** Per host: its daemon answers (and, in a cluster, reached etcd); its views are read. */
  ready: Map<string, Promise<void>>;
  /** Every host and etcd ready; ends the hosts stage. */
  all: Promise<void>;
}

/**
 * The underlay and etcd, then each host: its namespace, and its daemon started at once (recorded
 * in the state as soon as all run, so that `down` finds them; `down` also kills whatever runs in
 * the lab's namespaces); then the hosts' underlay legs and loopbacks, while the daemons start. A
 * daemon needs only its namespace: its VTEP is given as an address (plan.ts), and it reaches etcd
 * (over its leg) a few hundred ms into its start, long after its leg is made — a first try that
 * found no route is tried again by the daemon. Nothing waits in series: each host is ready on its
 * own (the caller starts its networks and nodes then), and all together end the stage.
 */
async function upHosts(state: LabState, links: Links, pr: Progress): Promise<HostsStarting> {
  const p = state.plan;
  pr.begin('hosts', p.hosts.length);
  const fresh: string[] = [];
  if (p.underlay && ensureNamespace(p.underlay.ns, p.underlay.nsPath)) {
    // Before etcd: it listens on 127.0.0.1 there too.
    await (await links.get()).loopbackUp(p.underlay.nsPath);
    await (await links.get()).underlayBridge(p.underlay);
  }
  // Each marked handled at once: a start that fails while later hosts are still being made is thrown through `all`.
  const handled = <T>(x: Promise<T>): Promise<T> => {
    x.catch(() => undefined);
    return x;
  };
  // Rejects if the etcd started here exits; never settles otherwise.
  let etcdFailed: Promise<never> = new Promise<never>(() => undefined);
  if (p.etcd?.managed && !isAlive(state.etcd)) {
    const etcd = startEtcd(p.underlay!.nsPath, p.etcd);
    state.etcd = etcd.record;
    etcdFailed = etcd.failed;
  }
  const daemonReady = new Map<string, Promise<void>>();
  for (const h of p.hosts) {
    if (ensureNamespace(h.ns, h.nsPath)) {
      fresh.push(h.nsPath);
    } else if (await daemonAnswers(h, state.daemons[h.name])) {
      daemonReady.set(h.name, Promise.resolve());
      continue;
    }
    await stopProcess(state.daemons[h.name]);
    const d = startDaemon(h);
    state.daemons[h.name] = d.record;
    daemonReady.set(h.name, handled(d.ready));
  }
  writeState(state);
  // Every host's leg, made or finished (an interrupted up may have left a namespace without one).
  const legs = handled((async () => {
    if (p.underlay) for (const [i, h] of p.hosts.entries()) await (await links.get()).underlayLeg(h, i + 1, p.underlay);
    for (const ns of fresh) await (await links.get()).loopbackUp(ns);
  })());
  const apis = new Map(p.hosts.map((h) => [h.name, new HostApi(h)]));
  const ready = new Map(p.hosts.map((h) => [h.name, handled((async () => {
    await daemonReady.get(h.name);
    await legs;
    pr.step();
    const a = apis.get(h.name)!;
    await a.refresh();
    // Reached from the daemon: etcd serves (a managed one is asked nothing else).
    if (p.etcd) await a.clusterConnected(etcdFailed);
  })())]));
  const all = handled(Promise.all([legs, ...ready.values()]).then(() => pr.end(p.etcd ? `(etcd ${p.etcd.url})` : '')));
  return { apis, ready, all };
}

/** How many removals a changed file asks for. */
function removals(c: LabChanges): number {
  return c.detach.length + c.removedLinks.length + c.removedNodes.length + c.removedNetworks.length + c.removedHosts.length;
}

/**
 * Removes what the changed file no longer has, and the connections it changed (made again after);
 * each removal is idempotent. The hosts' views are read again after, so that what was removed
 * here is made again, not taken as present.
 */
async function removeChanged(state: LabState, prev: LabPlan, c: LabChanges, apis: Map<string, HostApi>, pr: Progress): Promise<void> {
  const count = removals(c);
  if (count === 0) return;
  pr.begin('changed or removed', count);
  const del = async (host: string, url: string): Promise<void> => {
    await apis.get(host)?.client.request('DELETE', url);
    pr.step();
  };
  for (const d of c.detach) {
    // Already gone (the node or the network removed by hand, or an earlier up got this far) is done.
    await apis.get(d.host)?.client.request('POST', `/v1/networks/${encodeURIComponent(d.network)}/disconnect`, { sandbox: d.sandbox })
      .catch((err: unknown) => {
        if (!(err instanceof ApiError && err.status === 404)) throw err;
      });
    pr.step();
  }
  for (const l of c.removedLinks) await del(l.host, `/v1/links/${encodeURIComponent(l.name)}`);
  for (const n of c.removedNodes) await del(n.host, `/v1/sandboxes/${encodeURIComponent(n.sandbox)}`);
  for (const n of c.removedNetworks) for (const h of n.hosts) await del(h, `/v1/networks/${encodeURIComponent(n.name)}`);
  for (const h of c.removedHosts) {
    await stopProcess(state.daemons[h]);
    delete state.daemons[h];
    pr.step();
  }
  if (!state.plan.etcd?.managed && prev.etcd?.managed) await stopProcess(state.etcd);
  const { killProcessesIn, removeNamespaces } = await import('./down.js');
  const owned = new Set(ownedNamespaces(state));
  const gone = state.leftovers.filter((n) => owned.has(n));
  killProcessesIn(gone);
  removeNamespaces(gone);
  state.owned = [...owned].filter((n) => !gone.includes(n));
  state.leftovers = [];
  state.machineEnds = (state.machineEnds ?? []).filter((n) => machineEndsOf(state.plan).includes(n));
  for (const n of c.removedNodes) delete state.interfaces[n.name];
  writeState(state);
  await Promise.all([...apis.values()].map((a) => a.refresh()));
  pr.end();
}

/** Runs fn once per host, all hosts at once, with the items of that host. */
async function perHost<T>(apis: Map<string, HostApi>, items: T[], hostsOf: (t: T) => string[], fn: (api: HostApi, items: T[]) => Promise<void>): Promise<void> {
  await Promise.all([...apis.entries()].map(([name, api]) => fn(api, items.filter((t) => hostsOf(t).includes(name)))));
}

/**
 * Each host's networks, then its nodes, as soon as that host is ready: no host waits for another
 * (a node joins its own host's networks only; an overlay is made, or joined, on each host). One
 * stage counts both, begun once every host is ready, with what the first ones did meanwhile.
 */
async function upNodes(state: LabState, hosts: HostsStarting, pr: Progress): Promise<Set<string>> {
  const p = state.plan;
  const total = p.networks.reduce((n, x) => n + x.hosts.length, 0) + p.nodes.length;
  let early = 0;
  let live = false;
  let failed = false;
  const step = (n = 1): void => {
    if (live) pr.step(n);
    else early += n;
  };
  const stage = hosts.all.then(() => {
    if (failed) return;
    pr.begin('networks and nodes', total);
    live = true;
    pr.step(early);
  });
  const created = new Set<string>();
  try {
    await Promise.all([stage, ...[...hosts.apis.entries()].map(async ([name, api]) => {
      await hosts.ready.get(name);
      await ensureNetworks(api, p.networks.filter((n) => n.hosts.includes(name)), step);
      await ensureNodes(api, p.nodes.filter((n) => n.host === name), (n, made, ifaces) => {
        if (made) created.add(n.name);
        state.interfaces[n.name] = ifaces;
        step();
      });
    })]);
  } catch (err) {
    // A host that is still starting must not open a stage after the error.
    failed = true;
    throw err;
  }
  pr.end();
  return created;
}

async function upLinks(state: LabState, apis: Map<string, HostApi>, pr: Progress): Promise<void> {
  const p = state.plan;
  if (p.links.length === 0) return;
  pr.begin('links', p.links.length);
  const machineHosts = new Set(p.links.filter((l) => l.sandboxes.includes(MACHINE)).map((l) => l.host));
  if (machineHosts.size > 0) {
    state.machineNetns = machineNetnsPath();
    writeState(state);
    for (const h of machineHosts) await ensureMachineSandbox(apis.get(h)!, p, state.machineNetns);
  }
  const ends = new Map<string, LinkEnds>();
  const made = new Set(state.machineEnds);
  await perHost(apis, p.links, (l) => [l.host], (api, links) => ensureLinks(api, p, links, (name, e) => {
    ends.set(name, e);
    for (const end of p.links.find((l) => l.name === name)?.spec.ends ?? []) if (end.node === MACHINE) made.add(end.ifname);
    state.machineEnds = [...made];
    pr.step();
  }));
  // In the file's order, whatever order the daemons answered in.
  for (const l of p.links) for (const { node, iface } of ends.get(l.name) ?? []) addIface(state, node, iface);
  pr.end();
}

function addIface(state: LabState, node: string, iface: Iface): void {
  const list = (state.interfaces[node] ??= []).filter((i) => i.ifname !== iface.ifname);
  state.interfaces[node] = [...list, iface];
}

/** Brings the lab of file up (or converges it); returns its state. */
export async function labUp(file: string, o: UpOptions): Promise<LabState> {
  const topo = loadTopology(file, { up: true });
  if (o.name !== undefined) {
    if (!LAB_NAME_RE.test(o.name)) throw new InvalidArgumentError('name', `${JSON.stringify(o.name)} must start with a letter and hold only letters, digits, '_' and '-', at most 16 characters`);
    topo.name = o.name;
  }
  return withLabLock(topo.name, o.root ?? labRoot(), () => upLocked(file, topo, o));
}

/** labUp, holding the lab's lock. */
async function upLocked(file: string, topo: LabTopology, o: UpOptions): Promise<LabState> {
  const pr = o.progress;
  for (const w of topo.warnings) pr.note(`warning: ${w}`);
  const plan = planLab(topo, o.root);
  const prev = readState(topo.name, o.root);
  const changes = prev ? diffPlans(prev.plan, plan) : undefined;
  const links = new Links();
  try {
    await refuseTaken(plan, prev, links);
  } catch (err) {
    links.close();
    throw err;
  }
  const state = initialState(plan, file, prev);
  // A gone node's processes end before it is made again (its namespace lives on, held by them).
  settleNodeProcesses(state);
  writeState(state);
  try {
    const starting = await upHosts(state, links, pr);
    const { apis } = starting;
    if (prev && changes && removals(changes) > 0) {
      // What a changed file removed goes first, on every host, before anything is made again.
      await starting.all;
      await removeChanged(state, prev.plan, changes, apis, pr);
    }
    const created = await upNodes(state, starting, pr);
    await upLinks(state, apis, pr);
    writeState(state);
    pr.begin('settings', plan.nodes.length);
    const hosts = hostsEntries(plan, state.interfaces);
    await perHost(apis, plan.nodes, (n) => [n.host], (api, nodes) => configureNodes(api, nodes, hosts, (n) => pr.step(n)));
    pr.end();
    const remade = new Set(state.execDone.filter((n) => created.has(n)));
    const done = new Set(state.execDone.filter((n) => !created.has(n)));
    state.execDone = [...done];
    const toExec = plan.nodes.filter((n) => !done.has(n.name));
    for (const n of changes?.execChanged ?? []) if (done.has(n)) pr.note(`note: node ${n}: exec changed; it runs once, when a node is made, so it was not run again`);
    for (const [n, made] of execLostWith(plan, remade, done)) {
      pr.note(`note: node ${n}: its link(s) to ${made.join(', ')} were made again with ${made.length > 1 ? 'those nodes' : 'that node'}; what its exec lines set through the old one(s) (routes) is gone, and exec runs once, when a node is made: put such routes under routes: (up sets them every time), or run lab down, then lab up`);
    }
    if (toExec.some((n) => n.exec.length > 0)) pr.begin('exec', toExec.reduce((s, n) => s + n.exec.length, 0));
    await mapLimit(toExec, CONCURRENCY, async (n) => {
      try {
        pr.step(await execNode(n));
      } finally {
        if (n.exec.length > 0) recordNodeProcesses(state, [n]);
      }
      state.execDone.push(n.name);
    });
    pr.end();
    state.phase = 'up';
    writeState(state);
    pr.summary(`lab ${plan.name} up: ${plan.hosts.length} host(s), ${plan.networks.length} network(s), ${plan.nodes.length} node(s), ${plan.links.length} link(s)`);
    return state;
  } catch (err) {
    state.phase = 'failed';
    writeState(state);
    throw err;
  } finally {
    links.close();
  }
}
