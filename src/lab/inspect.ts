// `cnmkit lab inspect NAME`: the lab as it is — hosts (namespace, underlay address, daemon pid
// and whether it runs), networks with the subnets their daemons gave, nodes with their
// interfaces and addresses, links with their settings.
import { Client } from '../client/index.js';
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
