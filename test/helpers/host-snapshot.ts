// Snapshot of the real host's network: links, addresses, routes, iptables and nftables
// rulesets, and the namespaces this test run created. The suite takes one before and one
// after the privileged tiers and fails on any difference. Volatile fields (counters,
// lifetimes, statistics) are left out so only real changes count.
import { run } from './exec.js';

export type Snapshot = Record<string, string>;

const VOLATILE = new Set(['stats', 'stats64', 'valid_life_time', 'preferred_life_time', 'expires', 'used', 'lastused', 'updated', 'confirmed', 'refcnt']);

function scrub(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(scrub);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (!VOLATILE.has(k)) out[k] = scrub(v);
    return out;
  }
  return value;
}

async function ipJson(args: string[]): Promise<string> {
  const r = await run(['ip', '-j', ...args]);
  if (r.code !== 0) return `error: ${r.stderr.trim()}`;
  return JSON.stringify(scrub(r.stdout.trim() ? JSON.parse(r.stdout) : []), null, 1);
}

async function textOf(argv: string[]): Promise<string> {
  const r = await run(argv).catch((err: Error) => ({ code: 127, stdout: '', stderr: err.message }));
  if (r.code !== 0) return `unavailable: ${r.stderr.trim().split('\n')[0] ?? ''}`;
  return r.stdout
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/g, '[*]'))
    .join('\n');
}

export async function takeSnapshot(runPrefix?: string): Promise<Snapshot> {
  const [links, addrs, routes4, routes6, rules, ipt, ip6t, nft] = await Promise.all([
    ipJson(['link', 'show']),
    ipJson(['addr', 'show']),
    ipJson(['-4', 'route', 'show', 'table', 'all']),
    ipJson(['-6', 'route', 'show', 'table', 'all']),
    ipJson(['rule', 'show']),
    textOf(['iptables-save']),
    textOf(['ip6tables-save']),
    textOf(['nft', '-s', 'list', 'ruleset']),
  ]);
  const snap: Snapshot = { links, addrs, routes4, routes6, rules, 'iptables-save': ipt, 'ip6tables-save': ip6t, 'nft list ruleset': nft };
  if (runPrefix) {
    const ns = await run(['ip', '-j', 'netns', 'list']);
    const names = (ns.stdout.trim() ? (JSON.parse(ns.stdout) as { name: string }[]) : []).map((n) => n.name);
    snap['namespaces of this run'] = names.filter((n) => n.startsWith(runPrefix)).sort().join('\n');
  }
  return snap;
}

/** Human-readable differences; empty when the host is unchanged. */
export function diffSnapshots(before: Snapshot, after: Snapshot): string[] {
  const out: string[] = [];
  for (const key of Object.keys(before)) {
    if (before[key] === after[key]) continue;
    const a = new Set((before[key] ?? '').split('\n'));
    const b = new Set((after[key] ?? '').split('\n'));
    const gone = [...a].filter((l) => !b.has(l)).slice(0, 20);
    const added = [...b].filter((l) => !a.has(l)).slice(0, 20);
    out.push(`${key} changed:\n${gone.map((l) => `  - ${l}`).join('\n')}\n${added.map((l) => `  + ${l}`).join('\n')}`);
  }
  return out;
}
