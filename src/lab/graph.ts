// `cnmkit lab graph`: the lab as a picture — hosts as clusters holding their nodes and networks,
// overlays across them, links between nodes with each end's interface and address — in DOT, SVG
// (Graphviz `dot` draws it), mermaid or JSON. Works from the file alone (addresses the file
// fixes) or from a lab that is up (the addresses the daemons gave).
import { spawn } from 'node:child_process';
import { CnmkitError } from '../errors.js';
import { MACHINE, type LabTopology } from './model.js';
import type { LabState } from './state.js';
import { networkIfnames } from './validate.js';

export type GraphFormat = 'svg' | 'dot' | 'mermaid' | 'json';

interface GIface { ifname: string; network?: string; link?: string; address?: string }
export interface LabGraph {
  name: string;
  hosts: Array<{ name: string; nodes: string[]; networks: string[] }>;
  networks: Array<{ name: string; driver: string; host?: string; subnet?: string }>;
  nodes: Array<{ name: string; host: string; kind: string; interfaces: GIface[] }>;
  links: Array<{ name: string; ends: Array<{ node: string; ifname: string; address?: string }>; settings: string }>;
}

/** The graph of topology t; with interfaces (a lab that is up), the addresses it really has. */
export function labGraph(t: LabTopology, interfaces?: LabState['interfaces']): LabGraph {
  const nodes = t.nodes.map((n) => {
    const real = interfaces?.[n.name];
    const names = networkIfnames(n);
    const fromFile: GIface[] = n.networks.map((a, i) => ({ ifname: names[i]!, network: a.network, ...(a.ip ? { address: a.ip } : {}) }));
    const ifaces: GIface[] = real
      ? real.filter((i) => i.network).map((i) => ({ ifname: i.ifname, network: i.network!, ...(i.ipv4 ?? i.ipv6 ? { address: (i.ipv4 ?? i.ipv6)! } : {}) }))
      : fromFile;
    return { name: n.name, host: n.host, kind: n.kind, interfaces: ifaces };
  });
  const links = t.links.map((l) => ({
    name: l.name,
    ends: l.ends.map((e) => ({ node: e.node, ifname: e.ifname, ...(e.address ? { address: e.address } : {}) })),
    settings: [l.mtu ? `mtu ${l.mtu}` : '', l.rate ?? '', l.delay ? `delay ${l.delay}` : '', l.loss ? `loss ${l.loss}` : ''].filter(Boolean).join(', '),
  }));
  return {
    name: t.name,
    hosts: t.hosts.map((h) => ({ name: h.name, nodes: t.nodes.filter((n) => n.host === h.name).map((n) => n.name), networks: t.networks.filter((n) => n.host === h.name).map((n) => n.name) })),
    networks: t.networks.map((n) => ({ name: n.name, driver: n.driver, ...(n.host ? { host: n.host } : {}), ...(n.subnet ? { subnet: n.subnet } : {}) })),
    nodes, links,
  };
}

const q = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

export function toDot(g: LabGraph): string {
  const out = [`graph ${q(`lab ${g.name}`)} {`, `  graph [rankdir=LR, fontname="Helvetica", fontsize=11, label=${q(`lab ${g.name}`)}, labelloc=t];`,
    '  node [fontname="Helvetica", fontsize=10];', '  edge [fontname="Helvetica", fontsize=9];'];
  const net = (n: LabGraph['networks'][number]): string =>
    `${q(`net:${n.name}`)} [shape=ellipse, style=${n.driver === 'overlay' ? 'dashed' : 'solid'}, label=${q(`${n.name}\n${n.driver}${n.subnet ? ` ${n.subnet}` : ''}`)}];`;
  for (const h of g.hosts) {
    out.push(`  subgraph ${q(`cluster_${h.name}`)} {`, `    label=${q(`host ${h.name}`)}; style=rounded;`);
    for (const n of g.nodes.filter((x) => x.host === h.name)) out.push(`    ${q(`node:${n.name}`)} [shape=box, style=${n.kind === 'router' ? 'bold' : 'solid'}, label=${q(`${n.name}${n.kind === 'router' ? '\nrouter' : ''}`)}];`);
    for (const n of g.networks.filter((x) => x.host === h.name)) out.push(`    ${net(n)}`);
    out.push('  }');
  }
  for (const n of g.networks.filter((x) => x.host === undefined)) out.push(`  ${net(n)}`);
  if (g.links.some((l) => l.ends.some((e) => e.node === MACHINE))) out.push(`  ${q(`node:${MACHINE}`)} [shape=house, label="this machine"];`);
  for (const n of g.nodes) {
    for (const i of n.interfaces) out.push(`  ${q(`node:${n.name}`)} -- ${q(`net:${i.network}`)} [label=${q(`${i.ifname}${i.address ? ` ${i.address}` : ''}`)}];`);
  }
  for (const l of g.links) {
    const [a, b] = l.ends as [LabGraph['links'][number]['ends'][number], LabGraph['links'][number]['ends'][number]];
    const end = (e: typeof a): string => `${e.ifname}${e.address ? `\n${e.address}` : ''}`;
    out.push(`  ${q(`node:${a.node}`)} -- ${q(`node:${b.node}`)} [taillabel=${q(end(a))}, headlabel=${q(end(b))}${l.settings ? `, label=${q(l.settings)}` : ''}];`);
  }
  out.push('}');
  return `${out.join('\n')}\n`;
}

const mid = (kind: string, name: string): string => `${kind}_${name.replace(/[^A-Za-z0-9]/g, '_')}`;
const ml = (s: string): string => `"${s.replace(/"/g, '#quot;')}"`;

export function toMermaid(g: LabGraph): string {
  const out = ['flowchart LR'];
  const net = (n: LabGraph['networks'][number]): string => `${mid('net', n.name)}([${ml(`${n.name} ${n.driver}${n.subnet ? ` ${n.subnet}` : ''}`)}])`;
  for (const h of g.hosts) {
    out.push(`  subgraph ${mid('host', h.name)}[${ml(`host ${h.name}`)}]`);
    for (const n of g.nodes.filter((x) => x.host === h.name)) out.push(`    ${mid('node', n.name)}[${ml(n.kind === 'router' ? `${n.name} (router)` : n.name)}]`);
    for (const n of g.networks.filter((x) => x.host === h.name)) out.push(`    ${net(n)}`);
    out.push('  end');
  }
  for (const n of g.networks.filter((x) => x.host === undefined)) out.push(`  ${net(n)}`);
  for (const n of g.nodes) for (const i of n.interfaces) out.push(`  ${mid('node', n.name)} ---|${ml(`${i.ifname}${i.address ? ` ${i.address}` : ''}`)}| ${mid('net', i.network!)}`);
  for (const l of g.links) {
    const [a, b] = l.ends;
    const label = [a, b].map((e) => `${e!.ifname}${e!.address ? ` ${e!.address}` : ''}`).join(' — ');
    out.push(`  ${mid('node', a!.node)} ---|${ml(label + (l.settings ? ` (${l.settings})` : ''))}| ${mid('node', b!.node)}`);
  }
  return `${out.join('\n')}\n`;
}

/** Graphviz's dot turns DOT into SVG. */
export function dotToSvg(dot: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('dot', ['-Tsvg'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => reject(new CnmkitError('ERR_GRAPHVIZ', 'unavailable', `cannot run Graphviz's dot (Debian package graphviz): ${e.message}`)));
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new CnmkitError('ERR_GRAPHVIZ', 'internal', `dot failed: ${err.trim()}`))));
    child.stdin.end(dot);
  });
}

export async function renderGraph(g: LabGraph, format: GraphFormat): Promise<string> {
  if (format === 'json') return `${JSON.stringify(g, null, 2)}\n`;
  if (format === 'mermaid') return toMermaid(g);
  const dot = toDot(g);
  return format === 'dot' ? dot : dotToSvg(dot);
}
