// What a daemon's store and the kernel hold, read independently of the daemon: the state database
// opened read-only with better-sqlite3, the namespaces' links, addresses and routes with `ip -j`,
// the firewall's owner tags with `nft -j` and iptables-save/ip6tables-save, listeners with `ss`,
// and the entries of the daemon's folder of named namespaces. A digest of it tells whether a
// request changed anything. No test-runner imports (scripts/soak uses it).
// Limits: IPv6 link-local addresses and routes are left out of the digest (the kernel adds them on
// its own, after a request returns); so are counters, flags and operational states.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { run } from '../exec.js';

export interface NetworkRow { id: string; name: string; driver: string; state: string; internal: boolean; config: { bridgeName?: string; adopted?: boolean }; ipv4: { poolId: string; subnet: string; gateway?: string }[]; ipv6: { subnet: string; gateway?: string }[]; dockerId?: string }
export interface EndpointRow { id: string; networkId: string; sandboxId?: string; name: string; ifname?: string; ipv4?: string; ipv6?: string; ports: { proto: string; hostIP?: string; hostPort: number; hostPortEnd: number }[]; driverData: { hostIfname?: string; containerIfname?: string }; state: string }
export interface SandboxRow { id: string; name: string; kind: string; netnsPath: string; state: string }
export interface PoolRow { id: string; subnet: string; owner: string }
export interface AddressRow { subnet: string; address: string; poolId: string; kind: string; owner: string }
export interface LinkRow { id: string; name: string; state: string; ends: { sandboxId: string; ifname: string; address?: string }[] }

export interface StoreView {
  networks: NetworkRow[];
  endpoints: EndpointRow[];
  sandboxes: SandboxRow[];
  pools: PoolRow[];
  addresses: AddressRow[];
  links: LinkRow[];
}

export interface IpAddr { family: string; local: string; prefixlen: number; scope?: string }
export interface IpLink { ifname: string; group?: string; master?: string; mtu?: number; linkinfo?: { info_kind?: string }; addr_info?: IpAddr[] }
export interface IpRoute { dst: string; gateway?: string; dev?: string; table?: string; type?: string }

export interface NamespaceView {
  links: IpLink[];
  routes: IpRoute[];
}

export interface Listener { proto: string; local: string; port: number; pid?: number }

export interface KernelView {
  host: NamespaceView;
  /** By namespace path: every named namespace in the daemon's folder, every path sandbox's, every extra one asked for. */
  namespaces: Record<string, NamespaceView | { error: string }>;
  /** Entries of the daemon's folder of named namespaces. */
  named: string[];
  /** Every owner-tagged rule comment, one entry per rule ("nft …", "iptables …", "ip6tables …"). */
  rules: string[];
  listeners: Listener[];
}

export interface State {
  store: StoreView;
  kernel: KernelView;
}

export interface StateSource {
  /** The daemon's --state-dir. */
  stateDir: string;
  /** The namespace the daemon runs in (its "host"). */
  hostNs: string;
  /** The daemon's --netns-dir. */
  netnsDir: string;
  /** More namespaces to read (those path sandboxes may use). */
  extraNamespaces?: string[];
}

const json = (text: unknown): any => (typeof text === 'string' && text !== '' ? JSON.parse(text) : undefined);

/** The store's records, read-only; empty when the daemon has not made its database yet. */
export function readStore(stateDir: string): StoreView {
  const file = path.join(stateDir, 'state.db');
  const empty: StoreView = { networks: [], endpoints: [], sandboxes: [], pools: [], addresses: [], links: [] };
  if (!fs.existsSync(file)) return empty;
  const db = new Database(file, { readonly: true, fileMustExist: true, timeout: 5_000 });
  try {
    const rows = (sql: string): Record<string, unknown>[] => db.prepare(sql).all() as Record<string, unknown>[];
    const has = (table: string): boolean => db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) !== undefined;
    if (!has('networks')) return empty;
    return {
      networks: rows('SELECT * FROM networks ORDER BY id').map((r) => ({
        id: String(r.id), name: String(r.name), driver: String(r.driver), state: String(r.state), internal: r.internal === 1,
        config: json(r.config) ?? {}, ipv4: json(r.ipv4) ?? [], ipv6: json(r.ipv6) ?? [], ...(r.docker_id ? { dockerId: String(r.docker_id) } : {}),
      })),
      endpoints: rows('SELECT * FROM endpoints ORDER BY id').map((r) => ({
        id: String(r.id), networkId: String(r.network_id), name: String(r.name), state: String(r.state), ports: json(r.ports) ?? [], driverData: json(r.driver_data) ?? {},
        ...(r.sandbox_id ? { sandboxId: String(r.sandbox_id) } : {}), ...(r.ifname ? { ifname: String(r.ifname) } : {}),
        ...(r.ipv4 ? { ipv4: String(r.ipv4) } : {}), ...(r.ipv6 ? { ipv6: String(r.ipv6) } : {}),
      })),
      sandboxes: rows('SELECT * FROM sandboxes ORDER BY id').map((r) => ({ id: String(r.id), name: String(r.name), kind: String(r.kind), netnsPath: String(r.netns_path), state: String(r.state) })),
      pools: has('ipam_pools') ? rows('SELECT id, subnet, owner FROM ipam_pools ORDER BY id').map((r) => ({ id: String(r.id), subnet: String(r.subnet), owner: String(r.owner) })) : [],
      addresses: has('ipam_addresses')
        ? rows('SELECT * FROM ipam_addresses ORDER BY subnet, address').map((r) => ({ subnet: String(r.subnet), address: String(r.address), poolId: String(r.pool_id), kind: String(r.kind), owner: String(r.owner) }))
        : [],
      links: has('links') ? rows('SELECT * FROM links ORDER BY id').map((r) => ({ id: String(r.id), name: String(r.name), state: String(r.state), ends: (json(r.data) ?? {}).ends ?? [] })) : [],
    };
  } finally {
    db.close();
  }
}

/** Links with their addresses, and every route of both families, of the namespace at nsPath. */
export async function readNamespace(nsPath: string): Promise<NamespaceView> {
  const ip = async (argv: string[], input: string): Promise<string[]> => {
    const r = await run(['nsenter', `--net=${nsPath}`, '--', 'ip', ...argv, '-j', '-d', '-batch', '-'], { input });
    if (r.code !== 0) throw new Error(`ip in ${nsPath} exited ${r.code}: ${r.stderr.trim()}`);
    return r.stdout.split('\n');
  };
  // `ip -batch` takes no family per line: the IPv6 routes are a second batch.
  const [[links = '[]', routes4 = '[]'], [routes6 = '[]']] = await Promise.all([ip([], 'addr show\nroute show table all\n'), ip(['-6'], 'route show table all\n')]);
  return { links: JSON.parse(links) as IpLink[], routes: [...(JSON.parse(routes4) as IpRoute[]), ...(JSON.parse(routes6) as IpRoute[])] };
}

/** Every comment of a rule that carries cnmkit's owner tag, per tool. */
export async function readRuleTags(hostNs: string): Promise<string[]> {
  const inNs = (argv: string[]) => run(['nsenter', `--net=${hostNs}`, '--', ...argv]);
  const [nft, ipt, ip6t] = await Promise.all([inNs(['nft', '-j', 'list', 'ruleset']), inNs(['iptables-save']), inNs(['ip6tables-save'])]);
  const tags: string[] = [];
  if (nft.code === 0) {
    for (const item of (JSON.parse(nft.stdout) as { nftables: { rule?: { comment?: string } }[] }).nftables) {
      if (item.rule?.comment?.startsWith('cnmkit:')) tags.push(`nft ${item.rule.comment}`);
    }
  }
  for (const [tool, out] of [['iptables', ipt], ['ip6tables', ip6t]] as const) {
    for (const m of out.stdout.matchAll(/--comment "?(cnmkit:[^" ]+)/g)) tags.push(`${tool} ${m[1]}`);
  }
  return tags.sort();
}

/** TCP and UDP listeners of the namespace (`ss -Hltunp`), with their process when ss names one. */
export async function readListeners(hostNs: string): Promise<Listener[]> {
  const r = await run(['nsenter', `--net=${hostNs}`, '--', 'ss', '-Hltunp']);
  return r.stdout.split('\n').filter(Boolean).map((line) => {
    const cols = line.trim().split(/\s+/);
    const local = cols[4] ?? '';
    const cut = local.lastIndexOf(':');
    const pid = /pid=(\d+)/.exec(line)?.[1];
    return { proto: cols[0] ?? '', local: local.slice(0, cut), port: Number(local.slice(cut + 1)), ...(pid ? { pid: Number(pid) } : {}) };
  });
}

/** The store, then the kernel (read in parallel). */
export async function readState(src: StateSource): Promise<State> {
  const store = readStore(src.stateDir);
  let named: string[] = [];
  try {
    named = fs.readdirSync(src.netnsDir).sort();
  } catch {
    // No named sandbox yet.
  }
  const paths = new Set([...named.map((n) => path.join(src.netnsDir, n)), ...(src.extraNamespaces ?? [])]);
  for (const sb of store.sandboxes) if (sb.kind !== 'host' && sb.netnsPath) paths.add(sb.netnsPath);
  const [host, rules, listeners, ...views] = await Promise.all([
    readNamespace(src.hostNs), readRuleTags(src.hostNs), readListeners(src.hostNs),
    ...[...paths].map((p) => readNamespace(p).catch((err: Error) => ({ error: err.message }))),
  ]);
  const namespaces: KernelView['namespaces'] = {};
  [...paths].forEach((p, i) => (namespaces[p] = views[i]!));
  return { store, kernel: { host, namespaces, named, rules, listeners } };
}

const linkLocal = (a: string): boolean => /^fe[89ab]/i.test(a);

function namespaceDigest(v: NamespaceView | { error: string }): unknown {
  if ('error' in v) return v;
  return {
    links: v.links.map((l) => ({
      name: l.ifname, kind: l.linkinfo?.info_kind, master: l.master, group: l.group, mtu: l.mtu,
      addrs: (l.addr_info ?? []).filter((a) => !linkLocal(a.local)).map((a) => `${a.local}/${a.prefixlen}`).sort(),
    })).sort((a, b) => a.name.localeCompare(b.name)),
    routes: v.routes.filter((r) => !linkLocal(r.dst) && !r.dst.startsWith('ff00') && !(r.type === 'local' && linkLocal(r.dst)))
      .map((r) => `${r.table ?? 'main'} ${r.type ?? ''} ${r.dst} ${r.gateway ?? ''} ${r.dev ?? ''}`).sort(),
  };
}

/** A stable text of what a request may change: equal digests, nothing changed. */
export function digest(s: State): string {
  const ns: Record<string, unknown> = {};
  for (const p of Object.keys(s.kernel.namespaces).sort()) ns[p] = namespaceDigest(s.kernel.namespaces[p]!);
  return JSON.stringify({
    store: s.store,
    host: namespaceDigest(s.kernel.host),
    namespaces: ns,
    named: s.kernel.named,
    rules: s.kernel.rules,
    listeners: s.kernel.listeners.map((l) => `${l.proto} ${l.local}:${l.port}`).sort(),
  }, null, 1);
}

/** The lines that differ between two digests (for a report). */
export function digestDiff(before: string, after: string, max = 20): string[] {
  const a = before.split('\n');
  const b = after.split('\n');
  const setA = new Set(a);
  const setB = new Set(b);
  return [...a.filter((l) => !setB.has(l)).map((l) => `- ${l.trim()}`), ...b.filter((l) => !setA.has(l)).map((l) => `+ ${l.trim()}`)].slice(0, max);
}
