// The invariants a daemon's state must keep after any request and after any restart, checked on a
// State read independently of the daemon (./state.ts): no leaked link, namespace, rule or address,
// no duplicate IP, and the store and the kernel agree. Each violation has a kind, so campaigns
// can count them. No test-runner imports.
// Limits: only the bridge, host and null drivers' objects are known; the firewall and listener
// checks assume a firewall backend and the userland proxy (as the daemon's defaults).
import type { EndpointRow, IpLink, NamespaceView, State } from './state.js';

export type ViolationKind = 'leaked-link' | 'leaked-namespace' | 'missing-namespace' | 'orphan-rule' | 'orphan-address' | 'duplicate-ip' | 'disagree';

export interface Violation {
  kind: ViolationKind;
  detail: string;
}

export interface InvariantOptions {
  /** The namespace the daemon runs in. */
  hostNs: string;
  /** Links that were in the host namespace before the daemon: not its to own, and they must stay. */
  baselineLinks: string[];
  /** Namespaces made for path sandboxes: only their loopback is expected when no sandbox uses them. */
  externalNamespaces?: string[];
  /** The daemon's pid, when its listeners should be checked (the userland proxy serves published ports). */
  daemonPid?: number;
  /** Whether a firewall backend runs (rules of every bridge network and published port). */
  firewall: boolean;
}

const kindOf = (l: IpLink): string => l.linkinfo?.info_kind ?? 'other';
const plain = (cidr: string | undefined): string | undefined => cidr?.split('/')[0];

/** Which record owns each interface, per namespace path ('' for the host namespace). */
function owners(s: State): Map<string, Map<string, string>> {
  const { store } = s;
  const byNs = new Map<string, Map<string, string>>();
  const own = (ns: string, ifname: string | undefined, what: string): void => {
    if (!ifname) return;
    if (!byNs.has(ns)) byNs.set(ns, new Map());
    byNs.get(ns)!.set(ifname, what);
  };
  const sandboxNs = new Map(store.sandboxes.map((sb) => [sb.id, sb.kind === 'host' ? '' : sb.netnsPath]));
  for (const n of store.networks) if (n.driver === 'bridge') own('', n.config.bridgeName ?? `br-${n.id.slice(0, 12)}`, `network ${n.name}`);
  for (const e of store.endpoints) {
    own('', e.driverData.hostIfname ?? (e.networkId ? `veth${e.id.slice(0, 7)}` : undefined), `endpoint ${e.name}`);
    own('', e.driverData.containerIfname, `endpoint ${e.name}`);
    const ns = e.sandboxId === undefined ? undefined : sandboxNs.get(e.sandboxId);
    if (ns !== undefined) own(ns, e.ifname, `endpoint ${e.name}`);
  }
  for (const l of store.links) for (const end of l.ends) {
    const ns = sandboxNs.get(end.sandboxId);
    if (ns !== undefined) own(ns, end.ifname, `link ${l.name}`);
  }
  return byNs;
}

function linkLeaks(s: State, o: InvariantOptions, out: Violation[]): void {
  const byNs = owners(s);
  const baseline = new Set(o.baselineLinks);
  const hostLinks = new Set(s.kernel.host.links.map((l) => l.ifname));
  for (const name of baseline) if (!hostLinks.has(name)) out.push({ kind: 'disagree', detail: `link ${name} of the host namespace, not cnmkit's, is gone` });
  for (const l of s.kernel.host.links) {
    if (baseline.has(l.ifname) || byNs.get('')?.has(l.ifname)) continue;
    out.push({ kind: 'leaked-link', detail: `${kindOf(l)} ${l.ifname} (group ${l.group}) in the host namespace: no record owns it` });
  }
  for (const [nsPath, view] of Object.entries(s.kernel.namespaces)) {
    if ('error' in view) continue;
    for (const l of view.links) {
      if (l.ifname === 'lo' || byNs.get(nsPath)?.has(l.ifname)) continue;
      out.push({ kind: 'leaked-link', detail: `${kindOf(l)} ${l.ifname} in ${nsPath}: no record owns it` });
    }
  }
}

function namespaceLeaks(s: State, out: Violation[], netnsDir: string): void {
  const named = new Set(s.store.sandboxes.filter((sb) => sb.kind === 'named').map((sb) => sb.netnsPath));
  for (const entry of s.kernel.named) {
    if (!named.has(`${netnsDir}/${entry}`)) out.push({ kind: 'leaked-namespace', detail: `${netnsDir}/${entry}: no sandbox owns it` });
  }
  for (const sb of s.store.sandboxes) {
    if (sb.kind === 'host') continue;
    const view = s.kernel.namespaces[sb.netnsPath];
    if (!view || 'error' in view) out.push({ kind: 'missing-namespace', detail: `sandbox ${sb.name} (${sb.kind}): ${sb.netnsPath} cannot be read${view && 'error' in view ? `: ${view.error}` : ''}` });
  }
}

function ruleOrphans(s: State, out: Violation[]): void {
  const ids = new Set([...s.store.networks.map((n) => n.id), ...s.store.endpoints.map((e) => e.id)]);
  for (const tag of new Set(s.kernel.rules)) {
    const owner = tag.split(' ')[1]!.slice('cnmkit:'.length).split('/')[0]!;
    if (!ids.has(owner)) out.push({ kind: 'orphan-rule', detail: `${tag}: its owner ${owner} is no network or endpoint` });
  }
}

function addressOrphans(s: State, out: Violation[]): void {
  const { store } = s;
  const nets = new Set(store.networks.map((n) => n.id));
  const eps = new Map(store.endpoints.map((e) => [e.id, e]));
  for (const p of store.pools) {
    const [kind, id] = p.owner.split(':');
    if (kind === 'network' && !nets.has(id!)) out.push({ kind: 'orphan-address', detail: `pool ${p.id} is held by network ${id}, which does not exist` });
  }
  for (const a of store.addresses) {
    const [kind, id] = a.owner.split(':');
    if (kind === 'endpoint' && !eps.has(id!)) out.push({ kind: 'orphan-address', detail: `${a.address} is held by endpoint ${id}, which does not exist` });
    if (kind === 'network' && !nets.has(id!)) out.push({ kind: 'orphan-address', detail: `${a.address} is held by network ${id}, which does not exist` });
  }
  const held = new Map(store.addresses.map((a) => [a.address, a.owner]));
  for (const e of store.endpoints) {
    if (e.sandboxId === undefined) continue;
    for (const cidr of [e.ipv4, e.ipv6]) {
      const ip = plain(cidr);
      if (ip && held.get(ip) !== `endpoint:${e.id}`) out.push({ kind: 'disagree', detail: `endpoint ${e.name} has ${ip}, which IPAM gives to ${held.get(ip) ?? 'no one'}` });
    }
  }
}

/** Every address of every interface of the given views, and where it is. */
function addressesSeen(views: [string, NamespaceView][]): Map<string, string[]> {
  const seen = new Map<string, string[]>();
  for (const [where, v] of views) for (const l of v.links) for (const a of l.addr_info ?? []) {
    if (l.ifname === 'lo' || a.scope === 'host' || /^fe[89ab]/i.test(a.local)) continue;
    seen.set(a.local, [...(seen.get(a.local) ?? []), `${where}:${l.ifname}`]);
  }
  return seen;
}

function duplicates(s: State, out: Violation[]): void {
  const views: [string, NamespaceView][] = [['host', s.kernel.host]];
  for (const [p, v] of Object.entries(s.kernel.namespaces)) if (!('error' in v)) views.push([p, v]);
  const linkAddresses = new Set(s.store.links.flatMap((l) => l.ends.map((e) => plain(e.address))));
  for (const [ip, where] of addressesSeen(views)) {
    if (where.length > 1 && !linkAddresses.has(ip)) out.push({ kind: 'duplicate-ip', detail: `${ip} is on ${where.join(' and ')}` });
  }
}

function endpointAgrees(s: State, e: EndpointRow, o: InvariantOptions, out: Violation[]): void {
  const net = s.store.networks.find((n) => n.id === e.networkId);
  const sb = s.store.sandboxes.find((x) => x.id === e.sandboxId);
  if (!net || net.driver !== 'bridge') return;
  const bridge = net.config.bridgeName ?? `br-${net.id.slice(0, 12)}`;
  const port = s.kernel.host.links.find((l) => l.ifname === e.driverData.hostIfname);
  if (!port) return void out.push({ kind: 'disagree', detail: `endpoint ${e.name}: its bridge port ${e.driverData.hostIfname} is missing` });
  if (port.master !== bridge) out.push({ kind: 'disagree', detail: `endpoint ${e.name}: port ${port.ifname} is on ${port.master ?? 'no bridge'}, not ${bridge}` });
  if (sb && sb.kind !== 'host') {
    const view = s.kernel.namespaces[sb.netnsPath];
    const inside = view && !('error' in view) ? view.links.find((l) => l.ifname === e.ifname) : undefined;
    if (!inside) return void out.push({ kind: 'disagree', detail: `endpoint ${e.name}: ${e.ifname} is missing from sandbox ${sb.name}` });
    const have = new Set((inside.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
    for (const cidr of [e.ipv4, e.ipv6]) if (cidr && !have.has(cidr)) out.push({ kind: 'disagree', detail: `endpoint ${e.name}: ${e.ifname} in sandbox ${sb.name} lacks ${cidr}` });
  }
  for (const p of e.ports) {
    const ports = `${p.hostPort}${p.hostPortEnd !== p.hostPort ? `-${p.hostPortEnd}` : ''}`;
    if (o.firewall && !s.kernel.rules.some((t) => t.includes(`cnmkit:${e.id}/${p.proto}/`) && t.endsWith(`/${ports}`)))
      out.push({ kind: 'disagree', detail: `endpoint ${e.name}: no rule publishes ${ports}/${p.proto}` });
    if (o.daemonPid !== undefined && p.proto !== 'sctp' && !s.kernel.listeners.some((l) => l.proto === p.proto && l.port === p.hostPort && l.pid === o.daemonPid))
      out.push({ kind: 'disagree', detail: `endpoint ${e.name}: the daemon does not listen on ${p.hostPort}/${p.proto}` });
  }
}

function storeAgrees(s: State, o: InvariantOptions, out: Violation[]): void {
  for (const rec of [...s.store.networks, ...s.store.endpoints, ...s.store.sandboxes, ...s.store.links]) {
    if (rec.state !== 'ready') out.push({ kind: 'disagree', detail: `${rec.name} is still '${rec.state}'` });
  }
  for (const n of s.store.networks) {
    if (n.driver !== 'bridge') continue;
    const bridge = n.config.bridgeName ?? `br-${n.id.slice(0, 12)}`;
    const dev = s.kernel.host.links.find((l) => l.ifname === bridge);
    if (!dev || kindOf(dev) !== 'bridge') {
      out.push({ kind: 'disagree', detail: `network ${n.name}: bridge ${bridge} is missing` });
      continue;
    }
    const have = new Set((dev.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
    for (const sub of [...n.ipv4, ...n.ipv6]) if (sub.gateway && !have.has(sub.gateway)) out.push({ kind: 'disagree', detail: `network ${n.name}: ${bridge} lacks its gateway ${sub.gateway}` });
    if (o.firewall && !s.kernel.rules.some((t) => t.endsWith(` cnmkit:${n.id}`))) out.push({ kind: 'disagree', detail: `network ${n.name}: no firewall rule carries its tag` });
  }
  for (const e of s.store.endpoints) endpointAgrees(s, e, o, out);
}

/** Every violation of the invariants in s; empty when it is sound. */
export function checkInvariants(s: State, o: InvariantOptions & { netnsDir: string }): Violation[] {
  const out: Violation[] = [];
  linkLeaks(s, o, out);
  namespaceLeaks(s, out, o.netnsDir);
  ruleOrphans(s, out);
  addressOrphans(s, out);
  duplicates(s, out);
  storeAgrees(s, o, out);
  return out;
}

/** Counts by kind, every kind present (zero when none). */
export function countByKind(vs: Violation[]): Record<ViolationKind, number> {
  const counts: Record<ViolationKind, number> = {
    'leaked-link': 0, 'leaked-namespace': 0, 'missing-namespace': 0, 'orphan-rule': 0, 'orphan-address': 0, 'duplicate-ip': 0, disagree: 0,
  };
  for (const v of vs) counts[v.kind] += 1;
  return counts;
}
