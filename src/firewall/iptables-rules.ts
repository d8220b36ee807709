// Renders networks and published ports as iptables-restore lines in the project's chains, and
// reads iptables-save output back. Pure text work: nothing here runs a command.
import type { FirewallNetwork, PortMapping } from './types.js';
import { networkTag, portTag } from './validate.js';
import { familyOf, isLoopback } from '../ip/index.js';

export type Family = 4 | 6;
export type Table = 'filter' | 'nat';

/** One iptables-restore command line (`-A CHAIN …`, `-D CHAIN …`, `-N CHAIN`, …). */
export interface RuleLine {
  family: Family;
  table: Table;
  text: string;
}

export const USER_CHAIN = 'CNMKIT-USER';
export const CHAINS: Record<Table, readonly string[]> = {
  filter: [USER_CHAIN, 'CNMKIT-ISOLATION-1', 'CNMKIT-ISOLATION-2', 'CNMKIT-FORWARD', 'CNMKIT'],
  nat: ['CNMKIT', 'CNMKIT-POSTROUTING'],
};

/** Jumps from built-in chains into ours, in the order they must head those chains. */
export const HEADS: { table: Table; chain: string; rules: string[] }[] = [
  { table: 'filter', chain: 'FORWARD', rules: ['-j CNMKIT-USER', '-j CNMKIT-ISOLATION-1', '-j CNMKIT-FORWARD'] },
  { table: 'nat', chain: 'PREROUTING', rules: ['-m addrtype --dst-type LOCAL -j CNMKIT'] },
  { table: 'nat', chain: 'OUTPUT', rules: ['-m addrtype --dst-type LOCAL -j CNMKIT'] },
  { table: 'nat', chain: 'POSTROUTING', rules: ['-j CNMKIT-POSTROUTING'] },
];

/** `spec` with the tag inserted before its target (`-j …`), so saved lines read naturally. */
export function tagged(spec: string, tag: string): string {
  const at = spec.lastIndexOf('-j ');
  return `${spec.slice(0, at)}-m comment --comment "${tag}" ${spec.slice(at)}`;
}

function lines(family: Family, table: Table, tag: string, chain: string, specs: string[]): RuleLine[] {
  return specs.map((spec) => ({ family, table, text: `-A ${chain} ${tagged(spec, tag)}` }));
}

function filterRules(net: FirewallNetwork, family: Family): RuleLine[] {
  const br = net.bridge;
  const tag = networkTag(net.id);
  const icc = `-i ${br} -o ${br} -j ${net.icc ? 'ACCEPT' : 'DROP'}`;
  if (net.internal) {
    return [
      ...lines(family, 'filter', tag, 'CNMKIT-ISOLATION-1', [`-i ${br} ! -o ${br} -j DROP`, `-o ${br} ! -i ${br} -j DROP`]),
      ...lines(family, 'filter', tag, 'CNMKIT-FORWARD', [icc]),
    ];
  }
  return [
    ...lines(family, 'filter', tag, 'CNMKIT-ISOLATION-1', [`-i ${br} ! -o ${br} -j CNMKIT-ISOLATION-2`]),
    ...lines(family, 'filter', tag, 'CNMKIT-ISOLATION-2', [`-o ${br} -j DROP`]),
    ...lines(family, 'filter', tag, 'CNMKIT-FORWARD', [
      `-o ${br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
      `-o ${br} -j CNMKIT`,
      `-i ${br} ! -o ${br} -j ACCEPT`,
      icc,
    ]),
  ];
}

function natRules(net: FirewallNetwork): RuleLine[] {
  if (net.internal || !net.masquerade) return [];
  const tag = networkTag(net.id);
  const v4 = net.hostIPv4 ? `-j SNAT --to-source ${net.hostIPv4}` : '-j MASQUERADE';
  return [
    ...lines(4, 'nat', tag, 'CNMKIT-POSTROUTING', net.subnets4.map((s) => `-s ${s} ! -o ${net.bridge} ${v4}`)),
    ...lines(6, 'nat', tag, 'CNMKIT-POSTROUTING', net.subnets6.map((s) => `-s ${s} ! -o ${net.bridge} -j MASQUERADE`)),
  ];
}

/** Every rule of one network: IPv4 always, IPv6 filter rules when it has IPv6 subnets. */
export function renderNetwork(net: FirewallNetwork): RuleLine[] {
  return [...filterRules(net, 4), ...(net.subnets6.length > 0 ? filterRules(net, 6) : []), ...natRules(net)];
}

const LOOPBACK: Record<Family, string> = { 4: '127.0.0.0/8', 6: '::1/128' };

function portSpec(m: PortMapping, start: number, end: number): string {
  return `-p ${m.proto} -m ${m.proto} --dport ${start === end ? start : `${start}:${end}`}`;
}

/** The DNAT target: one port, or a range that keeps each port's offset (`/base`). */
function dnatTarget(m: PortMapping, family: Family): string {
  const ip = family === 6 ? `[${m.containerIP}]` : m.containerIP;
  if (m.containerPort === m.containerPortEnd) return `-j DNAT --to-destination ${ip}:${m.containerPort}`;
  return `-j DNAT --to-destination ${ip}:${m.containerPort}-${m.containerPortEnd}/${m.hostPort}`;
}

/**
 * One mapping: a DNAT rule, a filter accept for DNATed traffic, hairpin masquerade; without the
 * userland proxy also masquerade of loopback sources toward the bridge. Loopback-only mappings
 * served by the proxy need no rule at all.
 */
export function renderMapping(m: PortMapping): RuleLine[] {
  const family = familyOf(m.containerIP);
  const tag = portTag(m);
  if (m.userlandProxy && m.hostIP !== undefined && isLoopback(m.hostIP)) return [];
  const dst = m.hostIP !== undefined ? `-d ${m.hostIP} ` : m.userlandProxy || family === 6 ? `! -d ${LOOPBACK[family]} ` : '';
  const fromBridge = m.userlandProxy ? `! -i ${m.bridge} ` : '';
  const host = portSpec(m, m.hostPort, m.hostPortEnd);
  const cont = portSpec(m, m.containerPort, m.containerPortEnd);
  const out: RuleLine[] = [
    ...lines(family, 'nat', tag, 'CNMKIT', [`${dst}${fromBridge}${host} ${dnatTarget(m, family)}`]),
    ...lines(family, 'filter', tag, 'CNMKIT', [`-d ${m.containerIP} -o ${m.bridge} ${cont} -m conntrack --ctstate DNAT -j ACCEPT`]),
    ...lines(family, 'nat', tag, 'CNMKIT-POSTROUTING', [`-s ${m.containerIP} -d ${m.containerIP} ${cont} -j MASQUERADE`]),
  ];
  if (!m.userlandProxy && family === 4) out.push(...lines(4, 'nat', tag, 'CNMKIT-POSTROUTING', [`-s 127.0.0.0/8 -o ${m.bridge} -j MASQUERADE`]));
  return out;
}

/** One `-A` line of iptables-save: its chain, the rest of the line, and its comment if any. */
export interface SavedRule {
  chain: string;
  rest: string;
  comment?: string;
}

export interface SavedTable {
  chains: Set<string>;
  rules: SavedRule[];
}

const COMMENT_RE = /--comment (?:"((?:[^"\\]|\\.)*)"|(\S+))/;

/** Parses iptables-save output into tables of chains and rules. */
export function parseSave(text: string): Map<string, SavedTable> {
  const tables = new Map<string, SavedTable>();
  let current: SavedTable | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      current = { chains: new Set(), rules: [] };
      tables.set(line.slice(1).trim(), current);
    } else if (current && line.startsWith(':')) {
      current.chains.add(line.slice(1).split(' ')[0] ?? '');
    } else if (current && line.startsWith('-A ')) {
      const [chain = '', ...rest] = line.slice(3).split(' ');
      const m = COMMENT_RE.exec(line);
      const comment = m ? (m[1] ?? m[2]) : undefined;
      current.rules.push({ chain, rest: rest.join(' '), ...(comment === undefined ? {} : { comment }) });
    }
  }
  return tables;
}

/** The line that undoes `line` (`-A`/`-I` ↔ `-D`, `-N` → `-X`). */
export function inverse(line: RuleLine): RuleLine {
  const { text } = line;
  if (text.startsWith('-A ')) return { ...line, text: `-D ${text.slice(3)}` };
  if (text.startsWith('-D ')) return { ...line, text: `-A ${text.slice(3)}` };
  if (text.startsWith('-N ')) return { ...line, text: `-X ${text.slice(3)}` };
  const ins = /^-I (\S+) \d+ (.*)$/.exec(text);
  if (ins) return { ...line, text: `-D ${ins[1]} ${ins[2]}` };
  throw new Error(`no inverse for iptables line ${JSON.stringify(text)}`);
}
