// Renders networks and published ports as `nft -f` commands for the project's one table
// (`inet cnmkit`), and reads `nft -j` listings back. Pure text work: nothing here runs nft.
import type { FirewallNetwork, PortMapping } from './types.js';
import { STRUCT_TAG, networkTag, portTag } from './validate.js';
import { familyOf, isLoopback } from '../ip/index.js';

export const TABLE = 'inet cnmkit';
export const USER_CHAIN = 'CNMKIT-USER';
export const REGULAR_CHAINS = [USER_CHAIN, 'CNMKIT-ISOLATION-1', 'CNMKIT-ISOLATION-2', 'CNMKIT-FORWARD', 'CNMKIT-PORTS', 'CNMKIT-DNAT', 'CNMKIT-POSTROUTING'];

/** Base chains hold only the project's jumps, so they can be flushed and rebuilt at any time. */
export const BASE_CHAINS: { name: string; spec: string; jumps: string[] }[] = [
  {
    name: 'forward',
    spec: 'type filter hook forward priority filter; policy accept;',
    jumps: ['jump CNMKIT-USER', 'jump CNMKIT-ISOLATION-1', 'jump CNMKIT-FORWARD'],
  },
  { name: 'prerouting', spec: 'type nat hook prerouting priority dstnat; policy accept;', jumps: ['fib daddr type local jump CNMKIT-DNAT'] },
  { name: 'output', spec: 'type nat hook output priority -100; policy accept;', jumps: ['fib daddr type local jump CNMKIT-DNAT'] },
  { name: 'postrouting', spec: 'type nat hook postrouting priority srcnat; policy accept;', jumps: ['jump CNMKIT-POSTROUTING'] },
];

export function rule(chain: string, body: string, tag: string): string {
  return `add rule ${TABLE} ${chain} ${body} comment "${tag}"`;
}

function q(ifname: string): string {
  return `"${ifname}"`;
}

function filterRules(net: FirewallNetwork, tag: string): string[] {
  const br = q(net.bridge);
  const icc = rule('CNMKIT-FORWARD', `iifname ${br} oifname ${br} ${net.icc ? 'accept' : 'drop'}`, tag);
  if (net.internal) {
    return [
      rule('CNMKIT-ISOLATION-1', `iifname ${br} oifname != ${br} drop`, tag),
      rule('CNMKIT-ISOLATION-1', `oifname ${br} iifname != ${br} drop`, tag),
      icc,
    ];
  }
  return [
    rule('CNMKIT-ISOLATION-1', `iifname ${br} oifname != ${br} jump CNMKIT-ISOLATION-2`, tag),
    rule('CNMKIT-ISOLATION-2', `oifname ${br} drop`, tag),
    rule('CNMKIT-FORWARD', `oifname ${br} ct state established,related accept`, tag),
    rule('CNMKIT-FORWARD', `oifname ${br} jump CNMKIT-PORTS`, tag),
    rule('CNMKIT-FORWARD', `iifname ${br} oifname != ${br} accept`, tag),
    icc,
  ];
}

/** Every rule of one network; the table is inet, so filter rules hold for IPv4 and IPv6. */
export function renderNetwork(net: FirewallNetwork): string[] {
  const tag = networkTag(net.id);
  const out = filterRules(net, tag);
  if (net.internal || !net.masquerade) return out;
  const v4 = net.hostIPv4 ? `snat ip to ${net.hostIPv4}` : 'masquerade';
  for (const s of net.subnets4) out.push(rule('CNMKIT-POSTROUTING', `ip saddr ${s} oifname != ${q(net.bridge)} ${v4}`, tag));
  for (const s of net.subnets6) out.push(rule('CNMKIT-POSTROUTING', `ip6 saddr ${s} oifname != ${q(net.bridge)} masquerade`, tag));
  return out;
}

function ports(start: number, end: number): string {
  return start === end ? `${start}` : `${start}-${end}`;
}

/** Where DNAT sends the packet: one port, the same port, or a map that keeps each offset. */
function dnatTarget(m: PortMapping, ipKw: 'ip' | 'ip6'): string {
  const addr = ipKw === 'ip6' ? `[${m.containerIP}]` : m.containerIP;
  if (m.containerPort === m.containerPortEnd) return `dnat ${ipKw} to ${addr}:${m.containerPort}`;
  if (m.containerPort === m.hostPort) return `dnat ${ipKw} to ${addr}`;
  const pairs: string[] = [];
  for (let p = m.hostPort; p <= m.hostPortEnd; p += 1) pairs.push(`${p} : ${p - m.hostPort + m.containerPort}`);
  return `dnat ${ipKw} to ${addr} : ${m.proto} dport map { ${pairs.join(', ')} }`;
}

/**
 * One mapping: DNAT, a filter accept for DNATed traffic, hairpin masquerade; without the userland
 * proxy also masquerade of loopback sources toward the bridge. Loopback-only mappings served by
 * the proxy need no rule at all.
 */
export function renderMapping(m: PortMapping): string[] {
  const v6 = familyOf(m.containerIP) === 6;
  const ipKw = v6 ? 'ip6' : 'ip';
  const tag = portTag(m);
  if (m.userlandProxy && m.hostIP !== undefined && isLoopback(m.hostIP)) return [];
  const dst =
    m.hostIP !== undefined
      ? `${ipKw} daddr ${m.hostIP}`
      : m.userlandProxy || v6
        ? `${ipKw} daddr != ${v6 ? '::1' : '127.0.0.0/8'}`
        : 'meta nfproto ipv4';
  const fromBridge = m.userlandProxy ? ` iifname != ${q(m.bridge)}` : '';
  const host = `${m.proto} dport ${ports(m.hostPort, m.hostPortEnd)}`;
  const cont = `${m.proto} dport ${ports(m.containerPort, m.containerPortEnd)}`;
  const out = [
    rule('CNMKIT-DNAT', `${dst}${fromBridge} ${host} ${dnatTarget(m, ipKw)}`, tag),
    rule('CNMKIT-PORTS', `${ipKw} daddr ${m.containerIP} oifname ${q(m.bridge)} ${cont} ct status dnat accept`, tag),
    rule('CNMKIT-POSTROUTING', `${ipKw} saddr ${m.containerIP} ${ipKw} daddr ${m.containerIP} ${cont} masquerade`, tag),
  ];
  if (!m.userlandProxy && !v6) out.push(rule('CNMKIT-POSTROUTING', `ip saddr 127.0.0.0/8 oifname ${q(m.bridge)} masquerade`, tag));
  return out;
}

/** Commands that create the table and chains and rebuild the base chains whose jumps are off. */
export function renderInit(listed: Listing | undefined): string[] {
  const out = [`add table ${TABLE}`, ...REGULAR_CHAINS.map((c) => `add chain ${TABLE} ${c}`)];
  for (const base of BASE_CHAINS) {
    out.push(`add chain ${TABLE} ${base.name} { ${base.spec} }`);
    const rules = listed?.rules.filter((r) => r.chain === base.name) ?? [];
    const inPlace = rules.length === base.jumps.length && rules.every((r, i) => r.comment === STRUCT_TAG && r.jump === jumpTarget(base.jumps[i] ?? ''));
    if (inPlace) continue;
    if (rules.length > 0) out.push(`flush chain ${TABLE} ${base.name}`);
    for (const j of base.jumps) out.push(rule(base.name, j, STRUCT_TAG));
  }
  return out;
}

/** Commands that remove every chain but the user's (and with them all jumps and rules). */
export function renderFlush(listed: Listing): string[] {
  const chains = [...listed.chains].filter((c) => c !== USER_CHAIN);
  return [...chains.map((c) => `flush chain ${TABLE} ${c}`), ...chains.map((c) => `delete chain ${TABLE} ${c}`)];
}

function jumpTarget(body: string): string | undefined {
  return /jump (\S+)/.exec(body)?.[1];
}

export interface ListedRule {
  chain: string;
  handle: number;
  comment?: string;
  jump?: string;
}

export interface Listing {
  chains: Set<string>;
  rules: ListedRule[];
}

interface JsonRule {
  chain: string;
  handle: number;
  comment?: string;
  expr?: Record<string, unknown>[];
}

/** Reads `nft -j -a list table inet cnmkit`. */
export function parseListing(json: string): Listing {
  const items = (JSON.parse(json) as { nftables?: Record<string, unknown>[] }).nftables ?? [];
  const listing: Listing = { chains: new Set(), rules: [] };
  for (const item of items) {
    if (item.chain) listing.chains.add((item.chain as { name: string }).name);
    if (!item.rule) continue;
    const r = item.rule as JsonRule;
    const jump = r.expr?.map((e) => (e.jump as { target?: string } | undefined)?.target).find((t) => t !== undefined);
    listing.rules.push({ chain: r.chain, handle: r.handle, ...(r.comment === undefined ? {} : { comment: r.comment }), ...(jump === undefined ? {} : { jump }) });
  }
  return listing;
}

export function deleteRule(r: ListedRule): string {
  return `delete rule ${TABLE} ${r.chain} handle ${r.handle}`;
}
