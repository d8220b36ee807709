// `cnmkit lab inspect NAME`: the lab as it is — hosts (namespace, underlay address, daemon pid
// and whether it runs), networks with the subnets their daemons gave, nodes with their
// interfaces and addresses, links with their settings.
import { Client } from '../cli/client.js';
import { table } from '../cli/format.js';
import { isAlive, mustReadState } from './state.js';

export interface LabInspect {
  name: string;
  phase: string;
  file: string;
  underlay?: { namespace: string; prefix: string };
  etcd?: { url: string; pid?: number; running: boolean };
  hosts: Array<{ name: string; namespace: string; underlayAddress?: string; socket: string; pid?: number; running: boolean }>;
  networks: Array<{ name: string; driver: string; hosts: string[]; subnets: string[] }>;
  nodes: Array<{ name: string; host: string; kind: string; sandbox: string; interfaces: Array<{ ifname: string; network?: string; link?: string; ipv4?: string; ipv6?: string; mac?: string }> }>;
  links: Array<{ name: string; ends: string[]; mtu?: number; rate?: string; delay?: string; loss?: string }>;
}

async function subnetsOf(socket: string): Promise<Map<string, string[]>> {
  try {
    const nets = await new Client(socket).request<Array<{ name: string; ipv4: Array<{ subnet: string }>; ipv6: Array<{ subnet: string }> }>>('GET', '/v1/networks');
    return new Map(nets.map((n) => [n.name, [...n.ipv4, ...n.ipv6].map((s) => s.subnet)]));
  } catch {
    return new Map();
  }
}

export async function inspectLab(name: string): Promise<LabInspect> {
  const s = mustReadState(name);
  const p = s.plan;
  const hosts = p.hosts.map((h) => ({
    name: h.name, namespace: h.ns, socket: h.socket, running: isAlive(s.daemons[h.name]),
    ...(h.underlayAddress ? { underlayAddress: h.underlayAddress } : {}), ...(s.daemons[h.name] ? { pid: s.daemons[h.name]!.pid } : {}),
  }));
  const subnets = new Map<string, string[]>();
  for (const h of hosts.filter((x) => x.running)) for (const [n, list] of await subnetsOf(h.socket)) subnets.set(`${h.name}/${n}`, list);
  return {
    name: s.name, phase: s.phase, file: s.file,
    ...(p.underlay ? { underlay: { namespace: p.underlay.ns, prefix: p.underlay.prefix } } : {}),
    ...(p.etcd ? { etcd: { url: p.etcd.url, running: p.etcd.managed ? isAlive(s.etcd) : true, ...(s.etcd ? { pid: s.etcd.pid } : {}) } } : {}),
    hosts,
    networks: p.networks.map((n) => ({
      name: n.name, driver: n.spec.driver, hosts: n.hosts,
      subnets: [...new Set(n.hosts.flatMap((h) => subnets.get(`${h}/${n.name}`) ?? []))].concat(n.hosts.some((h) => subnets.has(`${h}/${n.name}`)) ? [] : [n.spec.subnet ?? ''].filter(Boolean)),
    })),
    nodes: p.nodes.map((n) => ({ name: n.name, host: n.host, kind: n.kind, sandbox: n.sandbox, interfaces: s.interfaces[n.name] ?? [] })),
    links: p.links.map((l) => ({
      name: l.name, ends: l.spec.ends.map((e) => `${e.node}:${e.ifname}${e.address ? ` ${e.address}` : ''}`),
      ...Object.fromEntries((['mtu', 'rate', 'delay', 'loss'] as const).filter((k) => l.spec[k] !== undefined).map((k) => [k, l.spec[k]])),
    })),
  };
}

export function printInspect(r: LabInspect): void {
  const lines = [`lab ${r.name} (${r.phase}) from ${r.file}`];
  if (r.underlay) lines.push(`underlay ${r.underlay.prefix} in namespace ${r.underlay.namespace}`);
  if (r.etcd) lines.push(`cluster store ${r.etcd.url}${r.etcd.pid ? ` (etcd pid ${r.etcd.pid}, ${r.etcd.running ? 'running' : 'not running'})` : ''}`);
  lines.push('', table(['HOST', 'NAMESPACE', 'UNDERLAY', 'DAEMON'], r.hosts.map((h) => [h.name, h.namespace, h.underlayAddress ?? '-', h.pid ? `pid ${h.pid} ${h.running ? 'running' : 'NOT RUNNING'}` : '-'])));
  lines.push('', table(['NETWORK', 'DRIVER', 'HOSTS', 'SUBNETS'], r.networks.map((n) => [n.name, n.driver, n.hosts.join(','), n.subnets.join(',') || '-'])));
  lines.push('', table(['NODE', 'HOST', 'KIND', 'INTERFACES'], r.nodes.map((n) => [n.name, n.host, n.kind,
    n.interfaces.map((i) => `${i.ifname}(${i.network ?? 'link'}) ${[i.ipv4, i.ipv6].filter(Boolean).join(' ') || '-'}`).join(', ') || '-'])));
  if (r.links.length > 0) lines.push('', table(['LINK', 'ENDS', 'SETTINGS'], r.links.map((l) => [l.name, l.ends.join(' <-> '), [l.mtu ? `mtu ${l.mtu}` : '', l.rate ?? '', l.delay ? `delay ${l.delay}` : '', l.loss ? `loss ${l.loss}` : ''].filter(Boolean).join(', ') || '-'])));
  console.log(lines.join('\n'));
}
