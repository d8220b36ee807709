// Snapshot of everything a test could leave on a machine's network: links, addresses, routes,
// rules, xtables (iptables-save, ip6tables-save, the legacy ones and legacy table names),
// nftables, `net.*` sysctls, every named namespace, /etc/netns, the Docker plugin folder and the
// processes a test run started. The suite takes one before and one after the privileged tiers and
// fails on any difference. A target points the same code at another network namespace and other
// folders, so the check can prove on throwaway objects that it sees each kind of leak.
// Processes: one belongs to the run when its environment carries CNMKIT_TEST_RUN=<run id>, or an
// ancestor's does. Children inherit the environment (global-setup sets the variable before vitest
// forks its workers), and it outlives re-parenting: a process a test left behind is adopted by init
// once its worker exits, so a parent chain alone would lose it. The ancestor rule covers children
// started with a scrubbed environment while their parent lives (a container under its shim).
// Limits: volatile fields (counters, lifetimes) are left out; an orphan started with a scrubbed
// environment is not seen (the Docker harness passes the variable on to dockerd for that reason).
import fs from 'node:fs';
import path from 'node:path';
import { run } from './exec.js';

export type Snapshot = Record<string, string>;

export interface SnapshotTarget {
  /** A network namespace file to look into (nsenter --net); undefined: this process's own. */
  netns?: string;
  /** Where named namespaces are mounted (/run/netns). */
  netnsDir: string;
  /** Per-namespace files of `ip netns exec` (/etc/netns). */
  etcNetnsDir: string;
  /** Docker's plugin folder (/run/docker/plugins). */
  pluginDir: string;
  /** The CNMKIT_TEST_RUN value whose processes are listed; undefined: none. */
  runMarker?: string;
  /** Processes never listed: the one taking the snapshot, its ancestors and its direct children (vitest's workers, the snapshot's own commands). */
  self?: number;
}

/** The real host, as the global check sees it. */
export function hostTarget(runMarker: string | undefined): SnapshotTarget {
  return { netnsDir: '/run/netns', etcNetnsDir: '/etc/netns', pluginDir: '/run/docker/plugins', runMarker, self: process.pid };
}

const VOLATILE = new Set(['stats', 'stats64', 'valid_life_time', 'preferred_life_time', 'expires', 'used', 'lastused', 'updated', 'confirmed', 'refcnt']);

/**
 * Sysctls that change on their own: the live connection count, and keys the kernel draws at random
 * on first use (TCP Fast Open's, the RSS hash key a NIC driver fills when it probes).
 */
const VOLATILE_SYSCTLS = new Set(['net.netfilter.nf_conntrack_count', 'net.ipv4.tcp_fastopen_key', 'net.core.netdev_rss_key']);

function scrub(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(scrub);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (!VOLATILE.has(k)) out[k] = scrub(v);
    return out;
  }
  return value;
}

function inTarget(t: SnapshotTarget, argv: string[]): string[] {
  return t.netns === undefined ? argv : ['nsenter', `--net=${t.netns}`, '--', ...argv];
}

async function ipJson(t: SnapshotTarget, args: string[]): Promise<string> {
  const r = await run(inTarget(t, ['ip', '-j', ...args]));
  if (r.code !== 0) return `error: ${r.stderr.trim()}`;
  return JSON.stringify(scrub(r.stdout.trim() ? JSON.parse(r.stdout) : []), null, 1);
}

/** A command's output without comments and counters; "absent" when the tool is not installed. */
async function textOf(t: SnapshotTarget, argv: string[]): Promise<string> {
  const r = await run(inTarget(t, argv)).catch((err: Error) => ({ code: 127, stdout: '', stderr: err.message }));
  if (r.code !== 0) return `unavailable: ${r.stderr.trim().split('\n')[0] ?? ''}`;
  return r.stdout
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/g, '[*]'))
    .join('\n');
}

function onPath(tool: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((dir) => fs.existsSync(path.join(dir, tool)));
}

/** Every entry below dir, one line each ("path type"), sorted; empty when dir is empty or absent (the same to a user). */
export function listTree(dir: string, depth = 3): string {
  const out: string[] = [];
  const walk = (sub: string, left: number): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(path.join(dir, sub), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const rel = path.join(sub, e.name);
      const kind = e.isDirectory() ? 'dir' : e.isSocket() ? 'socket' : e.isSymbolicLink() ? 'symlink' : 'file';
      out.push(`${rel} ${kind}`);
      if (e.isDirectory() && left > 0) walk(rel, left - 1);
    }
  };
  walk('', depth);
  return out.sort().join('\n');
}

/** `net.*` sysctls of the target's namespace, as `key = value` lines (unreadable ones are left out by sysctl). */
async function sysctls(t: SnapshotTarget): Promise<string> {
  const r = await run(inTarget(t, ['sysctl', '--all', '--pattern', '^net\\.']));
  if (r.code !== 0 && r.stdout === '') return `error: ${r.stderr.trim()}`;
  return r.stdout.split('\n').filter((l) => l !== '' && !VOLATILE_SYSCTLS.has(l.split(' = ')[0]!)).sort().join('\n');
}

/**
 * Legacy xtables tables in use in the target's namespace (/proc/net/*_tables_names, per namespace),
 * also those of families no *-legacy-save tool of this machine prints (arptables, often).
 */
async function legacyTableNames(t: SnapshotTarget): Promise<string> {
  const files = ['ip_tables_names', 'ip6_tables_names', 'arp_tables_names'].map((f) => `/proc/net/${f}`);
  // grep exits 1 when the files are empty and 2 when one is missing (that family is not built in).
  const r = await run(inTarget(t, ['grep', '-s', '-H', '', ...files]));
  return r.stdout.split('\n').filter(Boolean).sort().join('\n');
}

interface Proc { pid: number; ppid: number; marked: boolean; line: string }

function readProc(pid: number, marker: string): Proc | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const environ = fs.readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim().slice(0, 160);
    return { pid, ppid, marked: environ.includes(`CNMKIT_TEST_RUN=${marker}`), line: `${pid} ${cmdline}` };
  } catch {
    return undefined;
  }
}

/** The processes of the run marked `marker` (see the file header), one line each. Synchronous: run it before spawning anything. */
export function runProcesses(marker: string, self?: number): string {
  const procs = new Map<number, Proc>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const p = readProc(Number(e), marker);
    if (p) procs.set(p.pid, p);
  }
  const ignored = new Set<number>();
  for (let pid = self; pid !== undefined && pid > 0 && !ignored.has(pid); pid = procs.get(pid)?.ppid) ignored.add(pid);
  const belongs = (p: Proc): boolean => {
    for (let q: Proc | undefined = p, hops = 0; q && hops < 64; q = procs.get(q.ppid), hops++) if (q.marked) return true;
    return false;
  };
  const lines = [...procs.values()].filter((p) => !ignored.has(p.pid) && p.ppid !== self && belongs(p)).map((p) => p.line);
  return lines.sort().join('\n');
}

export async function takeSnapshot(t: SnapshotTarget): Promise<Snapshot> {
  const processes = t.runMarker === undefined ? undefined : runProcesses(t.runMarker, t.self);
  const legacy = ['iptables-legacy-save', 'ip6tables-legacy-save', 'ebtables-legacy-save', 'arptables-legacy-save'].filter(onPath);
  const [links, addrs, routes4, routes6, rules, ipt, ip6t, nft, net, tableNames, ...legacySaves] = await Promise.all([
    ipJson(t, ['link', 'show']),
    ipJson(t, ['addr', 'show']),
    ipJson(t, ['-4', 'route', 'show', 'table', 'all']),
    ipJson(t, ['-6', 'route', 'show', 'table', 'all']),
    ipJson(t, ['rule', 'show']),
    textOf(t, ['iptables-save']),
    textOf(t, ['ip6tables-save']),
    textOf(t, ['nft', '-s', 'list', 'ruleset']),
    sysctls(t),
    legacyTableNames(t),
    ...legacy.map((tool) => textOf(t, [tool])),
  ]);
  const snap: Snapshot = {
    links, addrs, routes4, routes6, rules, 'iptables-save': ipt, 'ip6tables-save': ip6t, 'nft list ruleset': nft, 'net.* sysctls': net,
    'legacy xtables tables': tableNames,
  };
  for (const [i, tool] of legacy.entries()) snap[tool] = legacySaves[i]!;
  snap[`named namespaces (${t.netnsDir})`] = listTree(t.netnsDir, 0);
  snap[`namespace files (${t.etcNetnsDir})`] = listTree(t.etcNetnsDir);
  snap[`Docker plugins (${t.pluginDir})`] = listTree(t.pluginDir);
  if (processes !== undefined) snap['processes of this run'] = processes;
  return snap;
}

/** Human-readable differences; empty when nothing changed. Sysctls that appeared are not differences (see below). */
export function diffSnapshots(before: Snapshot, after: Snapshot): string[] {
  const out: string[] = [];
  for (const key of Object.keys(before)) {
    if (before[key] === after[key]) continue;
    const a = new Set((before[key] ?? '').split('\n').filter(Boolean));
    const b = new Set((after[key] ?? '').split('\n').filter(Boolean));
    const gone = [...a].filter((l) => !b.has(l));
    let added = [...b].filter((l) => !a.has(l));
    // A kernel module a test loads (nf_conntrack, vxlan…) adds its sysctls to every namespace, and a
    // new link its own: neither is a setting changed (a leaked link shows under links). A changed
    // value shows as one line gone and one added.
    if (key === 'net.* sysctls') {
      const keysBefore = new Set([...a].map((l) => l.split(' = ')[0]));
      added = added.filter((l) => keysBefore.has(l.split(' = ')[0]));
    }
    if (gone.length === 0 && added.length === 0) continue;
    out.push([`${key} changed:`, ...gone.slice(0, 20).map((l) => `  - ${l}`), ...added.slice(0, 20).map((l) => `  + ${l}`)].join('\n'));
  }
  return out;
}
