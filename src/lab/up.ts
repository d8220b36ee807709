// `cnmkit lab up FILE`: reads and checks the file, then converges the machine to it — the
// underlay and the hosts' namespaces and daemons (and etcd), what a changed file removed, then
// networks, nodes, links, each node's settings and hosts file, and the new nodes' exec lines,
// all through the daemons' API. The state is written before each stage, so that `down` finds
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
import { labNamespaces, planLab, type LabPlan } from './plan.js';
import type { Progress } from './progress.js';
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
 * The underlay, then etcd, then each host in turn: its namespace (and underlay leg), and its
 * daemon started at once (recorded in the state as soon as all run, so that `down` finds them;
 * `down` also kills whatever runs in the lab's namespaces). Then waits for all of them: nothing
 * waits in series. A daemon needs only its namespace (and, on an underlay, its eth0): it starts
 * before the next host is made, before a new namespace's loopback is brought up, and before
 * netlink is loaded when there is no underlay, so that its start overlaps this command's own work.
 */
async function upHosts(state: LabState, links: Links, pr: Progress): Promise<Map<string, HostApi>> {
  const p = state.plan;
  pr.begin('hosts', p.hosts.length);
  const fresh: string[] = [];
  if (p.underlay && ensureNamespace(p.underlay.ns, p.underlay.nsPath)) {
    // Before etcd: it listens on 127.0.0.1 there too.
    await (await links.get()).loopbackUp(p.underlay.nsPath);
    await (await links.get()).underlayBridge(p.underlay);
  }
  const waits: Promise<void>[] = [];
  // Marked handled at once: a start that fails while later hosts are still being made is thrown by the Promise.all below.
  const wait = (ready: Promise<void>): void => {
    ready.catch(() => undefined);
    waits.push(ready);
  };
  if (p.etcd?.managed && !isAlive(state.etcd)) {
    const etcd = startEtcd(p.underlay!.nsPath, p.etcd);
    state.etcd = etcd.record;
    wait(etcd.ready);
  }
  for (const [i, h] of p.hosts.entries()) {
    if (ensureNamespace(h.ns, h.nsPath)) {
      fresh.push(h.nsPath);
      if (p.underlay) await (await links.get()).underlayLeg(h, i + 1, p.underlay);
    } else if (await daemonAnswers(h, state.daemons[h.name])) {
      pr.step();
      continue;
    }
    await stopProcess(state.daemons[h.name]);
    const d = startDaemon(h);
    state.daemons[h.name] = d.record;
    wait(d.ready.then(() => pr.step()));
  }
  writeState(state);
  for (const ns of fresh) await (await links.get()).loopbackUp(ns);
  await Promise.all(waits);
  const apis = new Map(p.hosts.map((h) => [h.name, new HostApi(h)]));
  await Promise.all([...apis.values()].map(async (a) => {
    await a.refresh();
    if (p.etcd) await a.clusterConnected();
  }));
  pr.end(p.etcd ? `(etcd ${p.etcd.url})` : '');
  return apis;
}

/** Removes what the changed file no longer has; each removal is idempotent. */
async function removeChanged(state: LabState, prev: LabPlan, c: LabChanges, apis: Map<string, HostApi>, pr: Progress): Promise<void> {
  const count = c.detach.length + c.removedLinks.length + c.removedNodes.length + c.removedNetworks.length + c.removedHosts.length;
  if (count === 0) return;
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

async function upNodes(state: LabState, apis: Map<string, HostApi>, pr: Progress): Promise<Set<string>> {
  const p = state.plan;
  pr.begin('networks', p.networks.reduce((n, x) => n + x.hosts.length, 0));
  // Every host at once: none of its networks depends on another's, nor on another host's.
  await perHost(apis, p.networks, (n) => n.hosts, (api, nets) => ensureNetworks(api, nets, (n) => pr.step(n)));
  pr.end();
  pr.begin('nodes', p.nodes.length);
  const created = new Set<string>();
  await perHost(apis, p.nodes, (n) => [n.host], (api, nodes) => ensureNodes(api, nodes, (n, made, ifaces) => {
    if (made) created.add(n.name);
    state.interfaces[n.name] = ifaces;
    pr.step();
  }));
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
    const apis = await upHosts(state, links, pr);
    if (prev && changes) await removeChanged(state, prev.plan, changes, apis, pr);
    const created = await upNodes(state, apis, pr);
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
