// The checks a schema cannot make: references between hosts, networks, nodes and links; addresses
// inside their subnets; each network's driver and options (the driver's own parse step, and a
// macvlan parent the host has); interface names that would collide inside a node; links across
// hosts; for `up`, a cluster store the lab can start. All problems are gathered and thrown
// together, each with the line of the field it is about.
import fs from 'node:fs';
import path from 'node:path';
import { PREDEFINED_NETWORKS } from '../defaults.js';
import { LabFileError, type LabFileProblem } from '../errors.js';
import { NETWORK_PARSERS } from '../daemon/network-parse.js';
import { contains, covers, formatAddress, parseAddress, parseAddressOrCidr, parsePrefix, type Address, type Prefix } from '../ip/index.js';
import { checkShaping, needsNetem, netemAvailable } from '../links/shape.js';
import { IMPLICIT_HOST, MACHINE, type LabTopology, type NetworkSpec, type NodeSpec, type Origins } from './model.js';
import type { FieldPath, LabSource } from './source.js';

/** Names a node cannot have: they name the lab's own namespaces or the machine end of a link. */
export const RESERVED_NODE_NAMES = ['underlay', 'etcd', 'machine', MACHINE];

interface Ctx {
  topo: LabTopology;
  origins: Origins;
  src: LabSource;
  problems: LabFileProblem[];
  /** Fixed addresses given so far, `NETWORK ADDRESS` → the node that has it. */
  fixed?: Map<string, string>;
}

function at(c: Ctx, key: string, sub: FieldPath, reason: string): void {
  const base = c.origins.get(key) ?? [];
  c.problems.push(c.src.problem([...base, ...sub], reason));
}

/** Runs parse and turns its InvalidArgumentError into a problem; undefined when it failed. */
function tryParse<T>(c: Ctx, key: string, sub: FieldPath, parse: () => T): T | undefined {
  try {
    return parse();
  } catch (err) {
    const field = (err as { field?: string }).field;
    const msg = (err as Error).message;
    at(c, key, sub, field && msg.startsWith(`${field}: `) ? msg.slice(field.length + 2) : msg);
    return undefined;
  }
}

/** Whether the lab has an underlay: several hosts, or a cluster store (etcd lives on it). */
export function labHasUnderlay(t: LabTopology): boolean {
  return t.hosts.length > 1 || labNeedsClusterStore(t);
}

export function labNeedsClusterStore(t: LabTopology): boolean {
  return t.clusterStore !== undefined || t.networks.some((n) => n.driver === 'overlay');
}

/** Where a driver's error field sits in the file: `options.KEY`, an option key, or the MTU. */
function optionPath(n: NetworkSpec, field: string | undefined): FieldPath {
  const key = field?.replace(/^options\./, '');
  if (key === undefined || !(key in n.options)) return ['driver'];
  return key === 'com.docker.network.driver.mtu' ? ['mtu'] : ['options', key];
}

/** The driver's own parse step, as the daemon will run it; then a macvlan parent the host must have. */
function checkDriver(c: Ctx, n: NetworkSpec): void {
  const key = `network:${n.name}`;
  const parse = NETWORK_PARSERS[n.driver];
  if (!parse) return at(c, key, ['driver'], `unknown driver ${JSON.stringify(n.driver)} (drivers: ${Object.keys(NETWORK_PARSERS).join(', ')})`);
  try {
    parse({ name: n.name, options: n.options, internal: n.internal, enableIPv6: n.ipv6 });
  } catch (err) {
    const field = (err as { field?: string }).field;
    const msg = (err as Error).message;
    return at(c, key, optionPath(n, field), `${n.driver} driver: ${field && msg.startsWith(`${field}: `) ? msg.slice(field.length + 2) : msg}`);
  }
  const parent = n.options.parent;
  if (n.driver !== 'macvlan' || !parent) return;
  const has = labHasUnderlay(c.topo) ? ['eth0'] : [];
  if (has.includes(parent.split('.')[0]!)) return;
  const host = n.host === undefined || n.host === IMPLICIT_HOST ? 'the lab\'s host' : `host ${n.host}`;
  at(c, key, ['options', 'parent'], has.length > 0
    ? `${host} has no interface ${JSON.stringify(parent)}: a lab host has eth0 (its underlay leg); leave parent out and the driver makes a bridge of its own`
    : `${host} has no interface ${JSON.stringify(parent)}: this lab's hosts have no interface but lo (eth0, the underlay leg, exists with several hosts or an overlay); leave parent out and the driver makes a bridge of its own`);
}

/** `etcd` on PATH, when the lab must start one (an overlay network and no cluster-store given). */
function checkClusterStore(c: Ctx): void {
  if (c.topo.clusterStore !== undefined || !labNeedsClusterStore(c.topo)) return;
  const dirs = (process.env.PATH ?? '').split(':').filter(Boolean);
  const found = dirs.some((d) => {
    try {
      fs.accessSync(path.join(d, 'etcd'), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
  if (found) return;
  const overlay = c.topo.networks.find((n) => n.driver === 'overlay')!;
  at(c, `network:${overlay.name}`, ['driver'], 'an overlay network needs a cluster store: the lab starts etcd for it, and there is no etcd in PATH (Debian: etcd-server); install it, or give cluster-store: etcd://ADDRESS:PORT');
}

function checkHosts(c: Ctx): void {
  const names = c.topo.hosts.map((h) => h.name);
  const many = names.length > 1;
  for (const n of c.topo.networks) {
    if (n.driver === 'overlay') {
      if (n.host !== undefined) at(c, `network:${n.name}`, ['host'], 'an overlay network spans every host: it has no host');
      continue;
    }
    if (n.host === undefined) at(c, `network:${n.name}`, [], `host is required: a ${n.driver} network belongs to one host and the lab has several (${names.join(', ')})`);
    else if (!names.includes(n.host)) at(c, `network:${n.name}`, ['host'], `no host ${JSON.stringify(n.host)} (hosts: ${names.join(', ')})`);
  }
  for (const n of c.topo.nodes) {
    if (n.host === '' && many) at(c, `node:${n.name}`, [], `host is required: the lab has several hosts (${names.join(', ')})`);
    else if (!names.includes(n.host)) at(c, `node:${n.name}`, ['host'], `no host ${JSON.stringify(n.host)} (hosts: ${names.join(', ')})`);
    if (RESERVED_NODE_NAMES.includes(n.name) || names.includes(n.name)) {
      at(c, `node:${n.name}`, [], `a node cannot be named ${JSON.stringify(n.name)}: the name is taken by ${names.includes(n.name) ? 'a host' : 'the lab itself'}`);
    }
  }
}

function checkNetworks(c: Ctx): Map<string, Prefix> {
  const subnets = new Map<string, Prefix>();
  for (const n of c.topo.networks) {
    const key = `network:${n.name}`;
    // Every host's daemon has these already: up would take its network for the file's.
    if (PREDEFINED_NETWORKS.has(n.name)) at(c, key, [], `${n.name} is the name of a network every host's daemon has (${[...PREDEFINED_NETWORKS.keys()].sort().join(', ')}): give the lab's network another name`);
    if (n.driver === 'null' && (n.subnet || n.subnetV6)) at(c, key, ['subnet'], 'a null network has no addresses');
    const p = n.subnet ? tryParse(c, key, ['subnet'], () => parsePrefix('subnet', n.subnet)) : undefined;
    if (p && p.family !== 4) at(c, key, ['subnet'], 'must be an IPv4 prefix (IPv6 goes in subnet-v6)');
    if (p) subnets.set(n.name, p);
    if (n.gateway && !p) at(c, key, ['gateway'], 'needs a subnet');
    if (n.gateway && p) {
      const g = tryParse(c, key, ['gateway'], () => parseAddress('gateway', n.gateway));
      if (g && !contains(p, g)) at(c, key, ['gateway'], `${n.gateway} is not inside subnet ${p.text}`);
    }
    if (n.ipRange) {
      const r = tryParse(c, key, ['ip-range'], () => parsePrefix('ip-range', n.ipRange));
      if (r && !p) at(c, key, ['ip-range'], 'needs a subnet');
      else if (r && p && !covers(p, r)) at(c, key, ['ip-range'], `${r.text} is not inside subnet ${p.text}`);
    }
    if (n.subnetV6) {
      const v6 = tryParse(c, key, ['subnet-v6'], () => parsePrefix('subnet-v6', n.subnetV6));
      if (v6 && v6.family !== 6) at(c, key, ['subnet-v6'], 'must be an IPv6 prefix');
    }
    checkDriver(c, n);
  }
  return subnets;
}

/** Interface names ethN the node's networks take, in order (those without a name given). */
export function networkIfnames(node: NodeSpec): string[] {
  let i = 0;
  return node.networks.map((a) => a.ifname ?? `eth${i++}`);
}

/**
 * A node's fixed IPv4 address inside its network's subnet: not the subnet's network or broadcast
 * address, not the network's gateway (given, else the subnet's first address, as the daemon
 * chooses it), and no other node's on that network.
 */
function checkFixed(c: Ctx, key: string, field: FieldPath, node: string, net: NetworkSpec, sub: Prefix, ip: Address): void {
  const text = formatAddress(ip.family, ip.value);
  const edges = sub.family === 4 && sub.bits < 31;
  if (edges && ip.value === sub.start) return at(c, key, field, `${text} is the network address of ${sub.text}`);
  if (edges && ip.value === sub.end) return at(c, key, field, `${text} is the broadcast address of ${sub.text}`);
  const gateway = net.gateway ?? (edges && net.driver !== 'null' ? formatAddress(4, sub.start + 1n) : undefined);
  if (text === gateway) return at(c, key, field, `${text} is network ${net.name}'s gateway${net.gateway ? '' : ' (the subnet\'s first address, unless gateway is given)'}`);
  c.fixed ??= new Map();
  const other = c.fixed.get(`${net.name} ${text}`);
  if (other) return at(c, key, field, `${text} on network ${net.name} is node ${other}'s already`);
  c.fixed.set(`${net.name} ${text}`, node);
}

function checkNode(c: Ctx, node: NodeSpec, networks: Map<string, NetworkSpec>, subnets: Map<string, Prefix>): void {
  const key = `node:${node.name}`;
  const seen = new Set<string>();
  node.networks.forEach((a, i) => {
    const net = networks.get(a.network);
    if (!net) return at(c, key, ['networks', i], `no network ${JSON.stringify(a.network)} (networks: ${[...networks.keys()].join(', ') || 'none'})`);
    if (seen.has(a.network)) at(c, key, ['networks', i], `network ${a.network} is listed twice`);
    seen.add(a.network);
    if (net.host !== undefined && node.host !== '' && net.host !== node.host) at(c, key, ['networks', i], `network ${a.network} is on host ${net.host}, the node on host ${node.host}`);
    if (a.ip) {
      const ip = tryParse(c, key, ['networks', i, a.network, 'ip'], () => parseAddress('ip', a.ip));
      const sub = subnets.get(a.network);
      if (ip && !sub) at(c, key, ['networks', i, a.network, 'ip'], `network ${a.network} needs a subnet for a fixed address`);
      else if (ip && sub && !contains(sub, ip)) at(c, key, ['networks', i, a.network, 'ip'], `${a.ip} is not inside ${a.network}'s subnet ${sub.text}`);
      else if (ip && sub) checkFixed(c, key, ['networks', i, a.network, 'ip'], node.name, net, sub, ip);
    }
    if (a.ipv6 && !net.ipv6) at(c, key, ['networks', i, a.network, 'ipv6'], `network ${a.network} has no IPv6`);
  });
  for (const [k] of Object.entries(node.sysctls)) {
    if (!k.startsWith('net.')) at(c, key, ['sysctls', k], 'only net.* settings can be set (they are the ones that belong to the node\'s namespace)');
  }
  node.routes.forEach((r, i) => {
    if (r.dst !== 'default') tryParse(c, key, ['routes', i, 'dst'], () => parsePrefix('dst', r.dst));
    if (r.via) tryParse(c, key, ['routes', i, 'via'], () => parseAddress('via', r.via));
    if (!r.via && !r.dev) at(c, key, ['routes', i], 'a route needs via or dev');
  });
}

/** The link's shaping as the daemon checks it; with `up`, netem's options only where the kernel has netem. */
function checkLinkShaping(c: Ctx, key: string, l: LabTopology['links'][number], up: boolean): void {
  const shaping = Object.fromEntries((['rate', 'delay', 'jitter', 'loss'] as const).filter((k) => l[k] !== undefined).map((k) => [k, l[k]]));
  try {
    checkShaping(shaping);
  } catch (err) {
    const field = (err as { field?: string }).field ?? 'rate';
    return at(c, key, [field], (err as Error).message.replace(`${field}: `, ''));
  }
  if (up && needsNetem(shaping) && !netemAvailable()) {
    at(c, key, [l.delay !== undefined ? 'delay' : 'loss'], 'delay, jitter and loss need the netem qdisc (kernel module sch_netem), which this kernel does not have; rate alone works (tbf)');
  }
}

function checkLinks(c: Ctx, nodes: Map<string, NodeSpec>, up: boolean): void {
  const names = new Map<string, Set<string>>([...nodes.values()].map((n) => [n.name, new Set(networkIfnames(n))]));
  c.topo.links.forEach((l, i) => {
    const key = `link:${i}`;
    if (l.ends.every((e) => e.node === MACHINE)) return at(c, key, ['endpoints'], 'a link needs at least one node end');
    checkLinkShaping(c, key, l, up);
    const hosts = new Set<string>();
    l.ends.forEach((e, j) => {
      if (e.ifname === 'lo') at(c, key, ['endpoints', j], 'lo is the loopback interface every namespace has; a link end is a new interface: name it otherwise');
      if (e.address) {
        const a = tryParse(c, key, ['addresses', j], () => parseAddressOrCidr('address', e.address));
        if (a && a.bits === undefined) at(c, key, ['addresses', j], `${e.address} needs a prefix length, e.g. ${e.address}/30`);
      }
      if (e.node === MACHINE) return;
      const node = nodes.get(e.node);
      if (!node) return at(c, key, ['endpoints', j], `no node ${JSON.stringify(e.node)}`);
      if (node.host !== '') hosts.add(node.host);
      const taken = names.get(e.node)!;
      if (taken.has(e.ifname)) at(c, key, ['endpoints', j], `node ${e.node} already has an interface ${e.ifname} (its networks take ${networkIfnames(node).join(', ') || 'none'}; links use other names)`);
      taken.add(e.ifname);
    });
    if (hosts.size > 1) at(c, key, ['endpoints'], `the ends are on different hosts (${[...hosts].join(', ')}): a link joins two nodes of one host; join nodes across hosts with an overlay network`);
  });
}

function checkExpect(c: Ctx, nodes: Map<string, NodeSpec>): void {
  c.topo.expect.forEach((e, i) => {
    const key = `expect:${i}`;
    if (!nodes.has(e.from)) at(c, key, ['from'], `no node ${JSON.stringify(e.from)}`);
    if (!nodes.has(e.to)) tryParse(c, key, ['to'], () => {
      try {
        return parseAddress('to', e.to);
      } catch {
        throw new Error(`no node ${JSON.stringify(e.to)}, and not an address`);
      }
    });
  });
}

function checkUnderlay(c: Ctx): void {
  if (!c.topo.underlay) return;
  const p = tryParse(c, 'underlay', [], () => parsePrefix('underlay', c.topo.underlay));
  if (!p) return;
  const room = 2 ** (32 - p.bits) - 2;
  if (p.family !== 4) at(c, 'underlay', [], 'must be an IPv4 prefix');
  else if (room < c.topo.hosts.length + 2) at(c, 'underlay', [], `${p.text} has room for ${room} addresses; the lab needs ${c.topo.hosts.length + 2} (hosts, the underlay bridge and etcd)`);
}

/** Throws a LabFileError listing every problem in topo; `up` adds what the machine must have. */
export function validateTopology(topo: LabTopology, origins: Origins, src: LabSource, opts: { up?: boolean } = {}): void {
  const c: Ctx = { topo, origins, src, problems: [] };
  checkHosts(c);
  if (opts.up) checkClusterStore(c);
  checkUnderlay(c);
  const subnets = checkNetworks(c);
  const networks = new Map(topo.networks.map((n) => [n.name, n]));
  const nodes = new Map(topo.nodes.map((n) => [n.name, n]));
  for (const n of topo.nodes) checkNode(c, n, networks, subnets);
  checkLinks(c, nodes, opts.up === true);
  checkExpect(c, nodes);
  if (c.problems.length > 0) throw new LabFileError(c.problems.sort((a, b) => a.line - b.line));
}
