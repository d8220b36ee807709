// What `lab up` asks of the hosts' daemons, each step converging: networks, sandboxes and their
// connections, links, each node's settings (sysctls, routes, hosts file) and exec lines. What
// exists already is read from the daemons and left alone; only what is missing is made.
import { spawn } from 'node:child_process';
import { ApiError, Client } from '../client/index.js';
import { CnmkitError } from '../errors.js';
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
   * may have found etcd not yet listening (it then tries again by itself).
   */
  async clusterConnected(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.client.request<{ state: string; error?: string }>('GET', '/v1/cluster');
      if (s.state === 'connected') return;
      if (Date.now() > deadline) throw new CnmkitError('ERR_LAB_DAEMON', 'internal', `host ${this.host.name}: the daemon did not reach etcd within ${timeoutMs / 1000} s (${s.state}${s.error ? `: ${s.error}` : ''})`);
      await new Promise((r) => setTimeout(r, 50));
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

export async function ensureNetwork(api: HostApi, n: NetworkPlan): Promise<boolean> {
  if (api.networks.has(n.name)) return false;
  try {
    api.networks.set(n.name, await api.client.request<Network>('POST', '/v1/networks', n.body));
  } catch (err) {
    lab(err, `network ${n.name} on host ${api.host.name}`);
  }
  return true;
}

/**
 * The node's sandbox and its connections, in order; returns whether the sandbox was new. A new one
 * is made with its connections in one request; one that exists gets those it lacks.
 */
export async function ensureNode(api: HostApi, node: NodePlan): Promise<{ created: boolean; ifaces: Iface[] }> {
  let sb = api.sandboxes.get(node.sandbox);
  const created = !sb;
  try {
    sb ??= await api.client.request<Sandbox>('POST', '/v1/sandboxes', {
      name: node.sandbox, labels: { 'cnmkit.lab.node': node.name }, connect: node.attachments.map((a) => ({ network: a.network, ...a.body })),
    });
  } catch (err) {
    lab(err, `node ${node.name}`);
  }
  const ifaces: Iface[] = [];
  for (const a of node.attachments) {
    let ep = sb.endpoints.find((e) => api.networkName(e.networkId) === a.network);
    try {
      ep ??= await api.client.request<Endpoint>('POST', `/v1/networks/${encodeURIComponent(a.network)}/connect`, { sandbox: node.sandbox, ...a.body });
    } catch (err) {
      lab(err, `node ${node.name}: network ${a.network}`);
    }
    ifaces.push({ ifname: ep.ifname ?? a.ifname, network: a.network, ...pick(ep) });
  }
  api.sandboxes.set(node.sandbox, sb);
  return { created, ifaces };
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

/** The link; one with the same name but other settings is made again. Returns each node end's interface. */
export async function ensureLink(api: HostApi, p: LabPlan, l: LinkPlan): Promise<Array<{ node: string; iface: Iface }>> {
  const s = l.spec;
  const body = {
    name: l.name, labels: { 'cnmkit.lab.link': l.name },
    ends: s.ends.map((e, i) => ({ sandbox: l.sandboxes[i] === MACHINE ? `${p.name}-machine` : l.sandboxes[i], ifname: e.ifname, ...(e.address ? { address: e.address } : {}) })),
    ...Object.fromEntries((['mtu', 'rate', 'delay', 'jitter', 'loss'] as const).filter((k) => s[k] !== undefined).map((k) => [k, s[k]])),
  };
  let made: Link;
  try {
    made = await api.client.request<Link>('POST', '/v1/links', body);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 409)) lab(err, `link ${l.name}`);
    await api.client.request('DELETE', `/v1/links/${encodeURIComponent(l.name)}`);
    made = await api.client.request<Link>('POST', '/v1/links', body).catch((e: unknown) => lab(e, `link ${l.name}`));
  }
  return s.ends.flatMap((e, i) => (e.node === MACHINE ? [] : [{
    node: e.node, iface: { ifname: e.ifname, link: l.name, ...(e.address ? { [e.address.includes(':') ? 'ipv6' : 'ipv4']: e.address } : {}), ...(made.ends[i]?.macAddress ? { mac: made.ends[i]!.macAddress } : {}) },
  }]));
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

/** sysctls, routes and the hosts file of one node. */
export async function configureNode(api: HostApi, node: NodePlan, hosts: Array<{ ip: string; names: string[] }>): Promise<void> {
  const body = { sysctls: node.sysctls, routes: node.routes, hosts };
  await api.client.request('POST', `/v1/sandboxes/${encodeURIComponent(node.sandbox)}/config`, body).catch((err: unknown) => lab(err, `node ${node.name}`));
}

/** Runs argv inside the node (`ip netns exec`, so its hosts file applies), capturing the output. */
export function runInNode(sandbox: string, argv: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', sandbox, ...argv], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', (err) => resolve({ code: 127, output: err.message }));
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), output }));
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
