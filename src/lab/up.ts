// `cnmkit lab up FILE`: reads and checks the file, then converges the machine to it — the
// hosts' namespaces and daemons, the underlay (and etcd), what a changed file removed, then
// networks and nodes (each host as soon as its daemon answers), links, each node's settings and
// hosts file, and the new nodes' exec lines, all through the daemons' API. The state is written before each stage, so that `down` finds
// everything whatever happens; a second `up` of the same file changes nothing.
import fs from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import {
  configureNodes, ensureLinks, ensureMachineSandbox, ensureNetworks, ensureNodes, execNode, HostApi, hostsEntries, type Iface, type LinkEnds,
} from './apply.js';
import { diffPlans, type LabChanges } from './changes.js';
import { daemonAnswers, ensureNamespace, startDaemon, startEtcd, stopProcess } from './hosts.js';
import { mapLimit } from './limit.js';
import { MACHINE } from './model.js';
import { labNamespaces, planLab, type HostPlan, type LabPlan } from './plan.js';
import { Stages, type Progress } from './progress.js';
import { isAlive, readState, writeState, type LabState } from './state.js';
import { loadTopology } from './topology.js';
import type { LabLinks } from './underlay.js';

export interface UpOptions {
  progress: Progress;
  root?: string;
  /** The lab's name instead of the file's (two labs from one file). */
  name?: string;
}

const LAB_NAME_RE = /^[a-z][a-z0-9-]{0,15}$/;

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

function initialState(plan: LabPlan, file: string, prev: LabState | undefined): LabState {
  const now = new Date().toISOString();
  const leftovers = prev ? [...(prev.leftovers ?? []), ...labNamespaces(prev.plan).filter((n) => !labNamespaces(plan).includes(n))] : [];
  return {
    version: 1, name: plan.name, file: path.resolve(file), phase: 'creating', plan, daemons: prev?.daemons ?? {},
    ...(prev?.etcd ? { etcd: prev.etcd } : {}), interfaces: prev?.interfaces ?? {}, leftovers: [...new Set(leftovers)],
    execDone: (prev?.execDone ?? []).filter((n) => plan.nodes.some((x) => x.name === n)),
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

/**
 * Starts what each host needs and returns, by host, a promise of its daemon answering (and
 * registered in etcd when the lab has one), with what the daemon has. Nothing waits in series:
 * the daemons start first, as soon as their namespaces exist (they take the longest, and need
 * neither their underlay leg nor loopback to start: they advertise their underlay address, and
 * reach etcd only later); then the underlay, etcd on it, and each host's leg, while they start.
 * The state records each process as soon as it runs (`down` also kills whatever runs in the
 * lab's namespaces).
 */
async function startHosts(state: LabState, links: Links): Promise<Map<string, Promise<HostApi>>> {
  const p = state.plan;
  const underlayFresh = p.underlay !== undefined && ensureNamespace(p.underlay.ns, p.underlay.nsPath);
  const fresh: Array<[HostPlan, number]> = [];
  const daemons = new Map<string, Promise<void>>();
  for (const [i, h] of p.hosts.entries()) {
    if (ensureNamespace(h.ns, h.nsPath)) fresh.push([h, i]);
    else if (await daemonAnswers(h, state.daemons[h.name])) {
      daemons.set(h.name, Promise.resolve());
      continue;
    }
    await stopProcess(state.daemons[h.name]);
    const d = startDaemon(h);
    state.daemons[h.name] = d.record;
    daemons.set(h.name, d.ready);
  }
  writeState(state);
  let etcd: Promise<void> = Promise.resolve();
  if (underlayFresh) {
    // Before etcd: it listens on the bridge's address, and on 127.0.0.1 there too.
    await (await links.get()).loopbackUp(p.underlay!.nsPath);
    await (await links.get()).underlayBridge(p.underlay!);
  }
  if (p.etcd?.managed && !isAlive(state.etcd)) {
    const started = startEtcd(p.underlay!.nsPath, p.etcd);
    state.etcd = started.record;
    writeState(state);
    etcd = started.ready;
  }
  // Marked handled at once: a start that fails while the underlay is still being made is thrown by the host's promise.
  for (const ready of [etcd, ...daemons.values()]) ready.catch(() => undefined);
  for (const [h, i] of fresh) {
    if (p.underlay) await (await links.get()).underlayLeg(h, i + 1, p.underlay);
    await (await links.get()).loopbackUp(h.nsPath);
  }
  return new Map(p.hosts.map((h) => {
    const api = (async () => {
      await Promise.all([daemons.get(h.name)!, etcd]);
      const a = new HostApi(h);
      await a.refresh();
      if (p.etcd) await a.clusterConnected();
      return a;
    })();
    api.catch(() => undefined);
    return [h.name, api];
  }));
}

/** Runs fn for every host at once; the first failure is thrown once all have settled. */
async function eachHost<T>(p: LabPlan, fn: (h: HostPlan) => Promise<T>): Promise<Map<string, T>> {
  const settled = await Promise.allSettled(p.hosts.map(fn));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return new Map(p.hosts.map((h, i) => [h.name, (settled[i] as PromiseFulfilledResult<T>).value]));
}

/** Removes what the changed file no longer has; each removal is idempotent. */
function removals(c: LabChanges | undefined): number {
  return c ? c.detach.length + c.removedLinks.length + c.removedNodes.length + c.removedNetworks.length + c.removedHosts.length : 0;
}

async function removeChanged(state: LabState, prev: LabPlan, c: LabChanges, apis: Map<string, HostApi>, pr: Progress): Promise<void> {
  const count = removals(c);
  pr.begin('removed from the file', count);
  const del = async (host: string, url: string): Promise<void> => {
    await apis.get(host)?.client.request('DELETE', url);
    pr.step();
  };
  for (const d of c.detach) {
    await apis.get(d.host)?.client.request('POST', `/v1/networks/${encodeURIComponent(d.network)}/disconnect`, { sandbox: d.sandbox }).catch(() => undefined);
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
  killProcessesIn(state.leftovers);
  removeNamespaces(state.leftovers);
  state.leftovers = [];
  for (const n of c.removedNodes) delete state.interfaces[n.name];
  writeState(state);
  pr.end();
}

/** Runs fn once per host, all hosts at once, with the items of that host. */
async function perHost<T>(apis: Map<string, HostApi>, items: T[], hostsOf: (t: T) => string[], fn: (api: HostApi, items: T[]) => Promise<void>): Promise<void> {
  await Promise.all([...apis.entries()].map(([name, api]) => fn(api, items.filter((t) => hostsOf(t).includes(name)))));
}

/** The host's networks, then its nodes (the daemon does them in turn); new nodes are added to created. */
async function buildHost(state: LabState, api: HostApi, stages: Stages, created: Set<string>): Promise<void> {
  const p = state.plan;
  const name = api.host.name;
  await ensureNetworks(api, p.networks.filter((n) => n.hosts.includes(name)), (n) => stages.step('networks', n));
  await ensureNodes(api, p.nodes.filter((n) => n.host === name), (n, made, ifaces) => {
    if (made) created.add(n.name);
    state.interfaces[n.name] = ifaces;
    stages.step('nodes');
  });
}

/**
 * The hosts, then their networks and nodes: each host goes on as soon as its daemon answers (its
 * networks and nodes depend on no other host's), unless the changed file removed something,
 * which goes first, once every daemon answers. Returns the hosts' APIs and the nodes made now.
 */
async function upHostsAndNodes(state: LabState, changes: LabChanges | undefined, prev: LabPlan | undefined, links: Links, pr: Progress): Promise<{ apis: Map<string, HostApi>; created: Set<string> }> {
  const p = state.plan;
  const started = await startHosts(state, links);
  const hosts = { name: 'hosts', total: p.hosts.length, note: () => (p.etcd ? `(etcd ${p.etcd.url})` : '') };
  const later = [{ name: 'networks', total: p.networks.reduce((n, x) => n + x.hosts.length, 0) }, { name: 'nodes', total: p.nodes.length }];
  const created = new Set<string>();
  if (prev && changes && removals(changes) > 0) {
    const stages = new Stages(pr, [hosts]);
    const apis = await eachHost(p, async (h) => {
      const api = await started.get(h.name)!;
      stages.step('hosts');
      return api;
    });
    await removeChanged(state, prev, changes, apis, pr);
    const rest = new Stages(pr, later);
    await eachHost(p, (h) => buildHost(state, apis.get(h.name)!, rest, created));
    return { apis, created };
  }
  const stages = new Stages(pr, [hosts, ...later]);
  const apis = await eachHost(p, async (h) => {
    const api = await started.get(h.name)!;
    stages.step('hosts');
    await buildHost(state, api, stages, created);
    return api;
  });
  return { apis, created };
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
  await perHost(apis, p.links, (l) => [l.host], (api, links) => ensureLinks(api, p, links, (name, e) => {
    ends.set(name, e);
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
  const pr = o.progress;
  const topo = loadTopology(file, { up: true });
  if (o.name !== undefined) {
    if (!LAB_NAME_RE.test(o.name)) throw new InvalidArgumentError('name', `${JSON.stringify(o.name)} must start with a lowercase letter and hold only a-z, 0-9 and '-', at most 16 characters`);
    topo.name = o.name;
  }
  for (const w of topo.warnings) pr.note(`warning: ${w}`);
  const plan = planLab(topo, o.root);
  const prev = readState(topo.name, o.root);
  const changes = prev ? diffPlans(prev.plan, plan) : undefined;
  const state = initialState(plan, file, prev);
  writeState(state);
  const links = new Links();
  try {
    const { apis, created } = await upHostsAndNodes(state, changes, prev?.plan, links, pr);
    await upLinks(state, apis, pr);
    writeState(state);
    pr.begin('settings', plan.nodes.length);
    const hosts = hostsEntries(plan, state.interfaces);
    await perHost(apis, plan.nodes, (n) => [n.host], (api, nodes) => configureNodes(api, nodes, hosts, (n) => pr.step(n)));
    pr.end();
    const done = new Set(state.execDone.filter((n) => !created.has(n)));
    state.execDone = [...done];
    const toExec = plan.nodes.filter((n) => !done.has(n.name));
    for (const n of changes?.execChanged ?? []) if (done.has(n)) pr.note(`note: node ${n}: exec changed; it runs once, when a node is made, so it was not run again`);
    if (toExec.some((n) => n.exec.length > 0)) pr.begin('exec', toExec.reduce((s, n) => s + n.exec.length, 0));
    await mapLimit(toExec, CONCURRENCY, async (n) => {
      pr.step(await execNode(n));
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
