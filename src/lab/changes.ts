// `up` of a lab that is up already: what the changed file asks, sorted into what up applies
// (added or removed hosts, networks, nodes, links; a node's networks, settings; a link's ends or
// addresses, by making it again; its MTU and shaping, in place) and what it cannot change in place (the underlay, etcd, a host's
// firewall, a network's definition, a node's host), which it refuses, naming each.
import { ConflictError } from '../errors.js';
import type { LabPlan } from './plan.js';

export interface LabChanges {
  removedHosts: string[];
  removedNetworks: Array<{ name: string; hosts: string[] }>;
  removedNodes: Array<{ name: string; host: string; sandbox: string }>;
  removedLinks: Array<{ name: string; host: string }>;
  /** Per node: networks to leave (gone from its list, or with another address). */
  detach: Array<{ node: string; host: string; sandbox: string; network: string }>;
  /** Nodes whose exec lines changed: not run again (exec runs when a node is made). */
  execChanged: string[];
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** What a link is made of: its ends and their addresses (its MTU and shaping change in place: the daemon's links API). */
const linkEnds = (l: LabPlan['links'][number]): unknown => ({ ends: l.spec.ends, host: l.host });

function refusals(prev: LabPlan, next: LabPlan): string[] {
  const out: string[] = [];
  if (prev.underlay?.prefix !== next.underlay?.prefix) out.push(`underlay: ${prev.underlay?.prefix ?? 'none'} → ${next.underlay?.prefix ?? 'none'}`);
  if (prev.etcd?.url !== next.etcd?.url) out.push(`cluster store: ${prev.etcd?.url ?? 'none'} → ${next.etcd?.url ?? 'none'}`);
  for (const h of next.hosts) {
    const before = prev.hosts.find((x) => x.name === h.name);
    if (before && before.firewall !== h.firewall) out.push(`host ${h.name}: firewall ${before.firewall} → ${h.firewall}`);
  }
  for (const n of next.networks) {
    const before = prev.networks.find((x) => x.name === n.name);
    if (before && !same(before.body, n.body)) out.push(`network ${n.name}: its definition changed`);
  }
  for (const n of next.nodes) {
    const before = prev.nodes.find((x) => x.name === n.name);
    if (before && before.host !== n.host) out.push(`node ${n.name}: host ${before.host} → ${n.host}`);
  }
  return out;
}

/** The difference between the plan a lab is up with and the plan of its file now. */
export function diffPlans(prev: LabPlan, next: LabPlan): LabChanges {
  const refused = refusals(prev, next);
  if (refused.length > 0) {
    throw new ConflictError(`lab ${next.name} is up, and these changes cannot be made in place (run \`cnmkit lab down ${next.name}\` first):\n  ${refused.join('\n  ')}`);
  }
  const names = <T extends { name: string }>(l: T[]): Set<string> => new Set(l.map((x) => x.name));
  const nextNodes = new Map(next.nodes.map((n) => [n.name, n]));
  const nextLinks = new Map(next.links.map((l) => [l.name, l]));
  const detach: LabChanges['detach'] = [];
  const execChanged: string[] = [];
  for (const before of prev.nodes) {
    const now = nextNodes.get(before.name);
    if (!now) continue;
    for (const a of before.attachments) {
      const b = now.attachments.find((x) => x.network === a.network);
      if (!b || !same(a.body, b.body)) detach.push({ node: before.name, host: before.host, sandbox: before.sandbox, network: a.network });
    }
    if (!same(before.exec, now.exec)) execChanged.push(before.name);
  }
  return {
    removedHosts: prev.hosts.filter((h) => !names(next.hosts).has(h.name)).map((h) => h.name),
    removedNetworks: prev.networks.filter((n) => !names(next.networks).has(n.name)).map((n) => ({ name: n.name, hosts: n.hosts })),
    removedNodes: prev.nodes.filter((n) => !nextNodes.has(n.name)).map((n) => ({ name: n.name, host: n.host, sandbox: n.sandbox })),
    removedLinks: prev.links.filter((l) => !nextLinks.has(l.name) || !same(linkEnds(l), linkEnds(nextLinks.get(l.name)!))).map((l) => ({ name: l.name, host: l.host })),
    detach, execChanged,
  };
}

/**
 * Nodes whose exec lines ran before and are not run again, with a link to a node this up made
 * again (gone, then made): that link was made again with it, and what the lines set through the
 * old one (routes) went with it. By node: the nodes made again across its links.
 */
export function execLostWith(plan: LabPlan, remade: Set<string>, execDone: Set<string>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const withExec = new Set(plan.nodes.filter((n) => n.exec.length > 0 && execDone.has(n.name)).map((n) => n.name));
  for (const l of plan.links) {
    const [a, b] = l.spec.ends.map((e) => e.node) as [string, string];
    for (const [n, other] of [[a, b], [b, a]] as const) {
      if (withExec.has(n) && remade.has(other) && !out.get(n)?.includes(other)) out.set(n, [...(out.get(n) ?? []), other]);
    }
  }
  return out;
}

