// What `lab up` asks of the hosts' daemons, each step converging: networks, sandboxes and their
// connections, links, each node's settings (sysctls, routes, hosts file) and exec lines. What
// exists already is read from the daemons and left alone; only what is missing is made, sent in
// batches (POST /v1/batch: many items per request, a few requests in flight per host).
import { spawn } from 'node:child_process';
import type net from 'node:net';
import { ApiError, Client } from '../client/index.js';
import { CnmkitError } from '../errors.js';
import { mapLimit } from './limit.js';
import { netnsExists } from '../netns/index.js';
import { MACHINE } from './model.js';
import type { HostPlan, LabPlan, LinkPlan, NetworkPlan, NodePlan } from './plan.js';
import type { LabState } from './state.js';

export type Iface = LabState['interfaces'][string][number];

interface Endpoint { networkId: string; ifname?: string; ipv4?: string; ipv6?: string; macAddress?: string }
interface Sandbox { id: string; name: string; netnsPath: string; endpoints: Endpoint[] }
interface Network { id: string; name: string }
interface Link { name: string; ends: Array<{ sandboxId: string; ifname: string; address?: string; macAddress?: string }> }

/** One host's daemon, with what it has now. */
export class HostApi {
  readonly client: Client;
  networks = new Map<string, Network>();
  sandboxes = new Map<string, Sandbox>();
  links = new Map<string, Link>();

  constructor(readonly host: HostPlan) {
    this.client = new Client(host.socket);
  }

  async refresh(): Promise<void> {
    const [nets, sbs, links] = await Promise.all([
      this.client.request<Network[]>('GET', '/v1/networks'),
      this.client.request<Sandbox[]>('GET', '/v1/sandboxes'),
      this.client.request<Link[]>('GET', '/v1/links'),
    ]);
    this.networks = new Map(nets.map((n) => [n.name, n]));
    this.sandboxes = new Map(sbs.map((s) => [s.name, s]));
    this.links = new Map(links.map((l) => [l.name, l]));
  }

  /**
   * Waits until the daemon is registered in etcd: started together with etcd, its first attempt
   * may have found etcd not yet listening (it then tries again by itself). Gives up with stop's
   * error once stop rejects (the lab's etcd exited).
   */
  async clusterConnected(stop?: Promise<never>, timeoutMs = 30_000): Promise<void> {
    let stopped = false;
    stop?.catch(() => (stopped = true));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await Promise.race([this.client.request<{ state: string; error?: string }>('GET', '/v1/cluster'), ...(stop ? [stop] : [])]);
      if (s.state === 'connected') return;
      if (Date.now() > deadline) throw new CnmkitError('ERR_LAB_DAEMON', 'internal', `host ${this.host.name}: the daemon did not reach etcd within ${timeoutMs / 1000} s (${s.state}${s.error ? `: ${s.error}` : ''})`);
      await new Promise((r) => setTimeout(r, 50));
      if (stopped) await stop;
    }
  }

  networkName(id: string): string | undefined {
    for (const n of this.networks.values()) if (n.id === id) return n.name;
    return undefined;
  }
}

function lab(err: unknown, what: string): never {
  if (err instanceof ApiError) {
    const message = err.message.startsWith(`${what}:`) ? err.message : `${what}: ${err.message}`;
    throw new CnmkitError('ERR_LAB_UP', err.status >= 500 || err.status === 0 ? 'internal' : 'bad-request', message, { cause: err });
  }
  throw err;
}

/** Items per batch request at most, and batch requests in flight per host (the daemon does them in turn). */
const BATCH_ITEMS = 16;
const BATCH_BYTES = 256 * 1024;
const BATCHES_IN_FLIGHT = 2;

type BatchKind = 'networks' | 'sandboxes' | 'links' | 'configs';
interface BatchAnswer { networks: Network[]; sandboxes: Sandbox[]; links: Link[] }

/**
 * Sends items of one kind in batches (each at most BATCH_ITEMS items and about BATCH_BYTES), a few
 * at once; done(batch, answer) runs after each. A failed item is named by the lab's label for it
 * (label(item), e.g. `node h3`) instead of the daemon's (`sandbox lab-h3`).
 */
async function inBatches<T>(api: HostApi, kind: BatchKind, items: T[], body: (t: T) => unknown, label: (t: T) => string, done: (batch: T[], answer: BatchAnswer) => void): Promise<void> {
  const batches: Array<{ items: T[]; bodies: unknown[] }> = [];
  let bytes = 0;
  for (const item of items) {
    const b = body(item);
    const size = JSON.stringify(b).length;
    let last = batches.at(-1);
    if (!last || last.items.length >= BATCH_ITEMS || bytes + size > BATCH_BYTES) {
      batches.push((last = { items: [], bodies: [] }));
      bytes = 0;
    }
    last.items.push(item);
    last.bodies.push(b);
    bytes += size;
  }
  await mapLimit(batches, BATCHES_IN_FLIGHT, async (b) => {
    let answer: BatchAnswer;
    try {
      answer = await api.client.request<BatchAnswer>('POST', '/v1/batch', { [kind]: b.bodies });
    } catch (err) {
      const i = err instanceof ApiError ? /^\w+\[(\d+)\]/.exec(err.field ?? '')?.[1] : undefined;
      const item = i === undefined ? undefined : b.items[Number(i)];
      if (item === undefined) lab(err, `host ${api.host.name}`);
      const e = err as ApiError;
      // The daemon's message starts with its own name of the item ("sandbox lab-h3: ").
      lab(new ApiError(e.status, e.message.replace(/^\S+ \S+: /, ''), e.code, e.field), label(item));
    }
    done(b.items, answer);
  });
}

/** The host's networks it lacks; step(n) as they are made (or found). */
export async function ensureNetworks(api: HostApi, nets: NetworkPlan[], step: (n: number) => void): Promise<void> {
  const missing = nets.filter((n) => !api.networks.has(n.name));
  step(nets.length - missing.length);
  await inBatches(api, 'networks', missing, (n) => n.body, (n) => `network ${n.name} on host ${api.host.name}`, (batch, answer) => {
    for (const n of answer.networks) api.networks.set(n.name, n);
    step(batch.length);
  });
}

type Attachment = NodePlan['attachments'][number];

/** The sandbox's endpoint on the attachment's network, if it has one. */
function endpointOn(api: HostApi, sb: Sandbox, a: Attachment): Endpoint | undefined {
  return sb.endpoints.find((e) => api.networkName(e.networkId) === a.network);
}

/** The node's interface on the attachment's network (its endpoint's name and addresses, when known). */
function ifaceOf(a: Attachment, ep: Endpoint | undefined): Iface {
  return { ifname: ep?.ifname ?? a.ifname, network: a.network, ...(ep ? pick(ep) : {}) };
}

/** A node whose sandbox exists: the connections it lacks, in order; returns its interfaces. */
async function ensureNode(api: HostApi, node: NodePlan, sb: Sandbox): Promise<Iface[]> {
  const ifaces: Iface[] = [];
  for (const a of node.attachments) {
    let ep = endpointOn(api, sb, a);
    try {
      ep ??= await api.client.request<Endpoint>('POST', `/v1/networks/${encodeURIComponent(a.network)}/connect`, { sandbox: node.sandbox, ...a.body });
    } catch (err) {
      lab(err, `node ${node.name}: network ${a.network}`);
    }
    ifaces.push(ifaceOf(a, ep));
  }
  return ifaces;
}

/**
 * The host's nodes: the new ones made with their connections in batches, those that exist given
 * the connections they lack (those whose namespace is gone made again); done(node, created, ifaces) for each.
 */
export async function ensureNodes(api: HostApi, nodes: NodePlan[], done: (node: NodePlan, created: boolean, ifaces: Iface[]) => void): Promise<void> {
  // A node whose namespace is gone (`ip netns del`, a node killed, its file left but unmounted: what
  // `lab check` calls gone) is removed, its addresses and overlay peers with it, and made again
  // below; so are its links (their veths went with it), after.
  for (const n of nodes) {
    const sb = api.sandboxes.get(n.sandbox);
    if (!sb || netnsExists(sb.netnsPath)) continue;
    for (const [name, l] of api.links) {
      if (!l.ends.some((e) => e.sandboxId === sb.id)) continue;
      await api.client.request('DELETE', `/v1/links/${encodeURIComponent(name)}`);
      api.links.delete(name);
    }
    await api.client.request('DELETE', `/v1/sandboxes/${encodeURIComponent(n.sandbox)}`);
    api.sandboxes.delete(n.sandbox);
  }
  const have = nodes.filter((n) => api.sandboxes.has(n.sandbox));
  await mapLimit(have, BATCHES_IN_FLIGHT, async (n) => done(n, false, await ensureNode(api, n, api.sandboxes.get(n.sandbox)!)));
  const body = (n: NodePlan) => ({ name: n.sandbox, labels: { 'cnmkit.lab.node': n.name }, connect: n.attachments.map((a) => ({ network: a.network, ...a.body })) });
  await inBatches(api, 'sandboxes', nodes.filter((n) => !api.sandboxes.has(n.sandbox)), body, (n) => `node ${n.name}`, (batch, answer) => {
    for (const [i, n] of batch.entries()) {
      const sb = answer.sandboxes[i]!;
      api.sandboxes.set(n.sandbox, sb);
      done(n, true, n.attachments.map((a) => ifaceOf(a, endpointOn(api, sb, a))));
    }
  });
}

function pick(ep: { ipv4?: string; ipv6?: string; macAddress?: string }): Omit<Iface, 'ifname'> {
  return { ...(ep.ipv4 ? { ipv4: ep.ipv4 } : {}), ...(ep.ipv6 ? { ipv6: ep.ipv6 } : {}), ...(ep.macAddress ? { mac: ep.macAddress } : {}) };
}

/** The sandbox standing for the namespace `lab up` ran in, for host:IFACE link ends. */
export async function ensureMachineSandbox(api: HostApi, p: LabPlan, machineNetns: string): Promise<void> {
  const name = `${p.name}-machine`;
  const have = api.sandboxes.get(name);
  if (have && have.netnsPath === machineNetns) return;
  if (have) await api.client.request('DELETE', `/v1/sandboxes/${encodeURIComponent(name)}`);
  api.sandboxes.set(name, await api.client.request<Sandbox>('POST', '/v1/sandboxes', { name, netns: machineNetns, labels: { 'cnmkit.lab.machine': 'true' } }));
}

function linkBody(p: LabPlan, l: LinkPlan): Record<string, unknown> {
  const s = l.spec;
  return {
    name: l.name, labels: { 'cnmkit.lab.link': l.name },
    ends: s.ends.map((e, i) => ({ sandbox: l.sandboxes[i] === MACHINE ? `${p.name}-machine` : l.sandboxes[i], ifname: e.ifname, ...(e.address ? { address: e.address } : {}) })),
    ...Object.fromEntries((['mtu', 'rate', 'delay', 'jitter', 'loss'] as const).filter((k) => s[k] !== undefined).map((k) => [k, s[k]])),
  };
}

export type LinkEnds = Array<{ node: string; iface: Iface }>;

function linkEnds(l: LinkPlan, made: Link): LinkEnds {
  return l.spec.ends.flatMap((e, i) => (e.node === MACHINE ? [] : [{
    node: e.node, iface: { ifname: e.ifname, link: l.name, ...(e.address ? { [e.address.includes(':') ? 'ipv6' : 'ipv4']: e.address } : {}), ...(made.ends[i]?.macAddress ? { mac: made.ends[i]!.macAddress } : {}) },
  }]));
}

/** A link the daemon has: the same request returns it; one with other settings is made again. */
async function ensureLink(api: HostApi, p: LabPlan, l: LinkPlan): Promise<LinkEnds> {
  const body = linkBody(p, l);
  let made: Link;
  try {
    made = await api.client.request<Link>('POST', '/v1/links', body);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 409)) lab(err, `link ${l.name}`);
    await api.client.request('DELETE', `/v1/links/${encodeURIComponent(l.name)}`);
    made = await api.client.request<Link>('POST', '/v1/links', body).catch((e: unknown) => lab(e, `link ${l.name}`));
  }
  return linkEnds(l, made);
}

/** The host's links: new ones in batches, those it has checked one by one; done(name, ends) for each. */
export async function ensureLinks(api: HostApi, p: LabPlan, links: LinkPlan[], done: (name: string, ends: LinkEnds) => void): Promise<void> {
  await mapLimit(links.filter((l) => api.links.has(l.name)), BATCHES_IN_FLIGHT, async (l) => done(l.name, await ensureLink(api, p, l)));
  await inBatches(api, 'links', links.filter((l) => !api.links.has(l.name)), (l) => linkBody(p, l), (l) => `link ${l.name}`, (batch, answer) => {
    for (const [i, l] of batch.entries()) done(l.name, linkEnds(l, answer.links[i]!));
  });
}

/** Every node's addresses, primary first, as hosts file entries (NODE and NODE.LAB). */
export function hostsEntries(p: LabPlan, interfaces: LabState['interfaces']): Array<{ ip: string; names: string[] }> {
  const out: Array<{ ip: string; names: string[] }> = [];
  for (const n of p.nodes) {
    for (const i of interfaces[n.name] ?? []) {
      for (const a of [i.ipv4, i.ipv6]) if (a) out.push({ ip: a.split('/')[0]!, names: [n.name, `${n.name}.${p.name}`] });
    }
  }
  return out;
}

/** sysctls, routes and the hosts file of the host's nodes, in batches; step(n) as they are done. */
export async function configureNodes(api: HostApi, nodes: NodePlan[], hosts: Array<{ ip: string; names: string[] }>, step: (n: number) => void): Promise<void> {
  const body = (n: NodePlan) => ({ sandbox: n.sandbox, sysctls: n.sysctls, routes: n.routes, hosts });
  await inBatches(api, 'configs', nodes, body, (n) => `node ${n.name}`, (batch) => step(batch.length));
}

/** How long the output of a command that ended may still come (a process it left in the background holds the pipes). */
const OUTPUT_GRACE_MS = 100;

/**
 * Runs argv inside the node (`ip netns exec`, so its hosts file applies), capturing the output.
 * Done when the command exits: a process it left running in the background (a server started
 * with `&`) keeps the output pipes, which are then let go, not waited for.
 */
export function runInNode(sandbox: string, argv: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', sandbox, ...argv], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let output = '';
    let result: { code: number; output: string } | undefined;
    let timer: NodeJS.Timeout | undefined;
    const done = (): void => {
      clearTimeout(timer);
      // Pipes are sockets: let go, they no longer keep this process alive.
      for (const pipe of [child.stdout, child.stderr] as unknown as net.Socket[]) pipe.unref();
      resolve({ ...result!, output });
    };
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', (err) => resolve({ code: 127, output: err.message }));
    child.on('exit', (code, signal) => {
      result = { code: code ?? (signal ? 128 : 1), output };
      timer = setTimeout(done, OUTPUT_GRACE_MS);
    });
    child.on('close', () => result && done());
  });
}

/** The node's exec lines in order, each with sh -c; the first failure stops up with its output. */
export async function execNode(node: NodePlan): Promise<number> {
  for (const [i, line] of node.exec.entries()) {
    const r = await runInNode(node.sandbox, ['sh', '-c', line], node.env);
    if (r.code !== 0) {
      throw new CnmkitError('ERR_LAB_EXEC', 'bad-request', `node ${node.name}: exec[${i}] ${JSON.stringify(line)} exited ${r.code}${r.output.trim() ? `:\n${r.output.trimEnd()}` : ''}`, { field: `nodes.${node.name}.exec[${i}]` });
    }
  }
  return node.exec.length;
}
