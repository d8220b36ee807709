// Loads a topology file into a LabTopology: parse (source.ts), shape (schema.ts), the layout's own
// reading (cnmkit's here, containerlab's in clab.ts), then the references and addresses
// (validate.ts). Every problem found is thrown together, each with its file, line and field.
import { fromClab } from './clab.js';
import { endOf, str, strMap } from './fields.js';
import { IMPLICIT_HOST, linkName, type Attachment, type LabTopology, type LinkEnd, type NetworkDriver, type NodeSpec, type Origins } from './model.js';
import { detectFormat, validateShape } from './schema.js';
import { readSource, parseSource, type LabSource } from './source.js';
import { validateTopology } from './validate.js';

type Obj = Record<string, unknown>;
type Raw = Record<string, Obj | null>;

const opt = <T>(v: T | undefined | null): T | undefined => (v === null ? undefined : v);

function attachments(list: unknown[] | undefined): Attachment[] {
  return (list ?? []).map((a) => {
    if (typeof a === 'string') return { network: a };
    const [network, conf] = Object.entries(a as Obj)[0]!;
    const c = (conf ?? {}) as { ip?: string; ipv6?: string };
    return { network, ...(c.ip ? { ip: c.ip } : {}), ...(c.ipv6 ? { ipv6: c.ipv6 } : {}) };
  });
}

/** Reads cnmkit's own layout (already shape-checked) into a LabTopology with its origins. */
export function fromCnmkit(data: Obj): { topo: LabTopology; origins: Origins } {
  const origins: Origins = new Map();
  const hostsRaw = (data.hosts ?? {}) as Raw;
  const hostNames = Object.keys(hostsRaw);
  const only = hostNames.length === 0 ? IMPLICIT_HOST : hostNames.length === 1 ? hostNames[0] : undefined;
  const hosts = hostNames.length === 0 ? [{ name: IMPLICIT_HOST, firewall: 'none' as const }] : hostNames.map((name) => {
    origins.set(`host:${name}`, ['hosts', name]);
    return { name, firewall: ((hostsRaw[name] ?? {}).firewall as 'none' | undefined) ?? 'none' };
  });
  const networks = Object.entries((data.networks ?? {}) as Raw).map(([name, raw]) => {
    origins.set(`network:${name}`, ['networks', name]);
    const n = raw ?? {};
    const driver = (n.driver as NetworkDriver | undefined) ?? 'bridge';
    const options = strMap(n.options);
    if (n.mtu !== undefined) options['com.docker.network.driver.mtu'] = str(n.mtu);
    const host = (n.host as string | undefined) ?? (driver === 'overlay' ? undefined : only);
    return {
      name, driver, ...(host ? { host } : {}), ipv6: n.ipv6 === true || n['subnet-v6'] !== undefined, internal: n.internal !== false, options,
      ...Object.fromEntries([['subnet', n.subnet], ['gateway', n.gateway], ['ipRange', n['ip-range']], ['subnetV6', n['subnet-v6']]].filter(([, v]) => v !== undefined)),
    };
  });
  const nodes = Object.entries((data.nodes ?? {}) as Raw).map(([name, raw]): NodeSpec => {
    origins.set(`node:${name}`, ['nodes', name]);
    const n = raw ?? {};
    return {
      name, host: (n.host as string | undefined) ?? only ?? '', kind: (n.kind as 'host' | 'router' | undefined) ?? ('host' as const),
      networks: attachments(n.networks as unknown[] | undefined), sysctls: strMap(n.sysctls),
      routes: ((n.routes as Obj[] | undefined) ?? []).map((r) => ({ dst: str(r.dst), ...(r.via ? { via: str(r.via) } : {}), ...(r.dev ? { dev: str(r.dev) } : {}) })),
      exec: ((n.exec as string[] | undefined) ?? []).map(str), env: strMap(n.env),
    };
  });
  const links = ((data.links ?? []) as Obj[]).map((l, i) => {
    origins.set(`link:${i}`, ['links', i]);
    const [ea, eb] = l.endpoints as [string, string];
    const [aa, ab] = (l.addresses as [string | null, string | null] | undefined) ?? [];
    const a = endOf(ea, aa);
    const b = endOf(eb, ab);
    return {
      name: linkName(a, b), ends: [a, b] as [LinkEnd, LinkEnd],
      ...Object.fromEntries(['mtu', 'rate', 'delay', 'jitter', 'loss'].filter((k) => opt(l[k]) !== undefined).map((k) => [k, l[k]])),
    };
  });
  const expect = ((data.expect ?? []) as Obj[]).map((e, i) => {
    origins.set(`expect:${i}`, ['expect', i]);
    return { from: str(e.from), to: str(e.to), reach: e.reach !== false, ...(e.port !== undefined ? { port: Number(e.port) } : {}) };
  });
  const topo: LabTopology = {
    name: str(data.name), format: 'cnmkit', hosts, networks, nodes, links, expect, warnings: [],
    ...(data.underlay ? { underlay: str(data.underlay) } : {}), ...(data['cluster-store'] ? { clusterStore: str(data['cluster-store']) } : {}),
  };
  origins.set('underlay', ['underlay']);
  origins.set('name', ['name']);
  return { topo, origins };
}

/** Reads, checks and normalises the topology in src (with `up`: also what the machine must have for it). */
export function topologyOf(src: LabSource, opts: { up?: boolean } = {}): LabTopology {
  const format = detectFormat(src.data);
  validateShape(src, format);
  const { topo, origins } = format === 'cnmkit' ? fromCnmkit(src.data as Obj) : fromClab(src, src.data as Obj);
  validateTopology(topo, origins, src, opts);
  return topo;
}

/** Reads and checks the topology file at file. */
export function loadTopology(file: string, opts: { up?: boolean } = {}): LabTopology {
  return topologyOf(readSource(file), opts);
}

/** The same from text (tests, `graph` of a file given on stdin). */
export function topologyFromText(file: string, text: string): LabTopology {
  return topologyOf(parseSource(file, text));
}
