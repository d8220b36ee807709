// From a topology to what `lab up` makes, with every name and address decided up front: the
// namespaces (NAME-underlay, NAME-HOST, NAME-NODE in /run/netns), each host's daemon (its folders
// under the lab's run directory and its flags), the underlay addresses, etcd, and each network,
// sandbox and link as the daemons' API takes it. Pure: nothing here touches the machine.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { formatAddress, parsePrefix } from '../ip/index.js';
import { DAEMON_DEFAULTS } from '../defaults.js';
import { MACHINE, type Firewall, type LabTopology, type LinkSpec, type NetworkSpec, type NodeSpec, type RouteSpec } from './model.js';
import { labHasUnderlay, labNeedsClusterStore, networkIfnames } from './validate.js';

/** Where labs keep their run directories (state, daemon sockets, etcd data). */
export function labRoot(): string {
  return process.env.CNMKIT_LAB_DIR ?? path.join(DAEMON_DEFAULTS.runDir, 'labs');
}

/** Every lab host's default bridge and default pools: inside 198.19.0.0/16, apart from the underlays. */
export const HOST_BIP = '198.19.255.1/24';
export const HOST_POOL = 'base=198.19.128.0/17,size=24';
export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;
/** Last address of the underlay: its bridge, where etcd listens too. */
const UNDERLAY_BRIDGE_HOST = -1;

export interface HostPlan {
  name: string;
  /** The host's namespace, NAME-HOST, under /run/netns. */
  ns: string;
  nsPath: string;
  dir: string;
  socket: string;
  log: string;
  /** eth0's address on the underlay (CIDR), when the lab has one. */
  underlayAddress?: string;
  firewall: Firewall;
  daemonArgs: string[];
}

export interface UnderlayPlan {
  ns: string;
  nsPath: string;
  prefix: string;
  /** The underlay bridge's address (CIDR). */
  bridgeAddress: string;
}

export interface EtcdPlan {
  /** etcd://ADDRESS:PORT as the daemons are given it. */
  url: string;
  /** True when the lab runs etcd itself (in the underlay namespace); false for cluster-store. */
  managed: boolean;
  address: string;
  dataDir: string;
  log: string;
}

export interface NetworkPlan {
  name: string;
  /** The hosts whose daemons create it: one, or every host with a node on an overlay. */
  hosts: string[];
  body: Record<string, unknown>;
  spec: NetworkSpec;
}

export interface AttachmentPlan {
  network: string;
  /** The name the interface is expected to get (ethN in order, or the one given). */
  ifname: string;
  /** Connect request: ip, ipv6, ifname. */
  body: Record<string, unknown>;
}

export interface NodePlan {
  name: string;
  host: string;
  /** Sandbox and namespace name, NAME-NODE. */
  sandbox: string;
  kind: 'host' | 'router';
  attachments: AttachmentPlan[];
  sysctls: Record<string, string>;
  routes: RouteSpec[];
  exec: string[];
  env: Record<string, string>;
}

export interface LinkPlan {
  name: string;
  host: string;
  spec: LinkSpec;
  /** Each end's sandbox, or MACHINE. */
  sandboxes: [string, string];
}

export interface LabPlan {
  name: string;
  dir: string;
  topology: LabTopology;
  underlay?: UnderlayPlan;
  etcd?: EtcdPlan;
  hosts: HostPlan[];
  networks: NetworkPlan[];
  nodes: NodePlan[];
  links: LinkPlan[];
}

export const sandboxName = (lab: string, node: string): string => `${lab}-${node}`;

/** The default underlay: a /24 of 198.18.0.0/16 chosen by the lab's name (so two labs rarely meet). */
export function defaultUnderlay(lab: string): string {
  const n = createHash('sha256').update(lab).digest().readUInt16BE(0) % 255;
  return `198.18.${n}.0/24`;
}

/** The i-th address of prefix (negative: from the end, -1 = the last one before broadcast). */
function nth(prefix: string, i: number): string {
  const p = parsePrefix('underlay', prefix);
  const value = i >= 0 ? p.start + BigInt(i) : p.end + BigInt(i);
  return `${formatAddress(4, value)}/${p.bits}`;
}

/**
 * A host daemon's flags. Its VTEP is its underlay address, given as an address rather than as eth0,
 * whose address the daemon would read at its start: so it starts before its leg is made (up.ts).
 */
function daemonArgs(h: { dir: string; socket: string; firewall: Firewall; underlayAddress?: string }, etcd: EtcdPlan | undefined): string[] {
  return [
    'daemon', '--socket', h.socket, '--state-dir', path.join(h.dir, 'state'), '--run-dir', path.join(h.dir, 'run'),
    '--plugin-dir', path.join(h.dir, 'plugins'), '--netns-dir', DAEMON_DEFAULTS.netnsDir, '--firewall-backend', h.firewall,
    '--bip', HOST_BIP, '--default-address-pool', HOST_POOL, '--log-level', 'info', '--docker-plugins', 'false',
    ...(etcd ? ['--cluster-store', etcd.url, '--advertise-addr', h.underlayAddress?.split('/')[0] ?? 'eth0'] : []),
  ];
}

function networkBody(n: NetworkSpec): Record<string, unknown> {
  const body: Record<string, unknown> = { name: n.name, driver: n.driver, internal: n.internal, labels: { 'cnmkit.lab.network': n.name } };
  for (const [k, v] of [['subnet', n.subnet], ['gateway', n.gateway], ['ipRange', n.ipRange], ['subnetV6', n.subnetV6]] as const) if (v) body[k] = v;
  if (n.ipv4 === false) body.enableIPv4 = false;
  if (n.ipv6) body.enableIPv6 = true;
  if (Object.keys(n.options).length > 0) body.options = n.options;
  if (n.driver === 'null') delete body.internal;
  return body;
}

function nodePlan(lab: string, n: NodeSpec): NodePlan {
  const names = networkIfnames(n);
  const attachments = n.networks.map((a, i) => ({
    network: a.network, ifname: names[i]!,
    body: { ...(a.ip ? { ip: a.ip } : {}), ...(a.ipv6 ? { ipv6: a.ipv6 } : {}), ...(a.ifname ? { ifname: a.ifname } : {}) },
  }));
  const forwarding: Record<string, string> = n.kind === 'router' ? { 'net.ipv4.ip_forward': '1', 'net.ipv6.conf.all.forwarding': '1' } : {};
  return {
    name: n.name, host: n.host, sandbox: sandboxName(lab, n.name), kind: n.kind, attachments,
    sysctls: { ...forwarding, ...n.sysctls }, routes: n.routes, exec: n.exec, env: n.env,
  };
}

/** Everything `lab up` will make for topology t, under the run directory root. */
export function planLab(t: LabTopology, root = labRoot()): LabPlan {
  const dir = path.join(root, t.name);
  const etcdWanted = labNeedsClusterStore(t);
  const prefix = t.underlay ?? defaultUnderlay(t.name);
  const underlay = labHasUnderlay(t)
    ? { ns: `${t.name}-underlay`, nsPath: path.join(DAEMON_DEFAULTS.netnsDir, `${t.name}-underlay`), prefix, bridgeAddress: nth(prefix, UNDERLAY_BRIDGE_HOST) }
    : undefined;
  let etcd: EtcdPlan | undefined;
  if (t.clusterStore) {
    etcd = { url: t.clusterStore, managed: false, address: t.clusterStore.replace(/^etcd:\/\//, ''), dataDir: '', log: '' };
  } else if (etcdWanted && underlay) {
    const address = underlay.bridgeAddress.split('/')[0]!;
    etcd = { url: `etcd://${address}:${ETCD_CLIENT_PORT}`, managed: true, address, dataDir: path.join(dir, 'etcd'), log: path.join(dir, 'etcd.log') };
  }
  const hosts = t.hosts.map((h, i): HostPlan => {
    const hdir = path.join(dir, 'hosts', h.name);
    const ns = `${t.name}-${h.name}`;
    const plan = {
      name: h.name, ns, nsPath: path.join(DAEMON_DEFAULTS.netnsDir, ns), dir: hdir, socket: path.join(hdir, 'cnmkit.sock'),
      log: path.join(hdir, 'daemon.log'), firewall: h.firewall, ...(underlay ? { underlayAddress: nth(prefix, i + 1) } : {}),
    };
    return { ...plan, daemonArgs: daemonArgs(plan, etcd) };
  });
  const networks = t.networks.map((n): NetworkPlan => ({
    name: n.name, spec: n, body: networkBody(n),
    hosts: n.host !== undefined ? [n.host] : t.hosts.map((h) => h.name).filter((h) => t.nodes.some((nd) => nd.host === h && nd.networks.some((a) => a.network === n.name))),
  }));
  const nodes = t.nodes.map((n) => nodePlan(t.name, n));
  const hostOf = new Map(t.nodes.map((n) => [n.name, n.host]));
  const links = t.links.map((l): LinkPlan => ({
    name: l.name, spec: l, host: l.ends.map((e) => hostOf.get(e.node)).find((h) => h !== undefined)!,
    sandboxes: l.ends.map((e) => (e.node === MACHINE ? MACHINE : sandboxName(t.name, e.node))) as [string, string],
  }));
  return { name: t.name, dir, topology: t, ...(underlay ? { underlay } : {}), ...(etcd ? { etcd } : {}), hosts, networks, nodes, links };
}

/** Every namespace the lab owns, in the order down removes them (nodes first, underlay last). */
export function labNamespaces(p: LabPlan): string[] {
  return [...p.nodes.map((n) => n.sandbox), ...p.hosts.map((h) => h.ns), ...(p.underlay ? [p.underlay.ns] : [])];
}
