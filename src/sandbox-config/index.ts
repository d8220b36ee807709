// Settings of a sandbox's own namespace that a lab (or a person) asks for after it is made:
// net.* sysctls, routes, permanent neighbour entries, and its hosts file
// (/etc/netns/NAME/hosts, which `ip netns exec NAME` bind-mounts over /etc/hosts, so `cnmkit
// exec` sees it too). Each part is idempotent (routes and neighbours are replaced).
// Limits: sysctls outside net.* belong to the whole machine and are refused; a hosts file only
// for named sandboxes (the ones `ip netns exec` knows).
import fs from 'node:fs';
import path from 'node:path';
import { CnmkitError, InvalidArgumentError } from '../errors.js';
import type { SandboxRecord } from '../core/model.js';
import { addNeighbor, addRoute, linkIndex, type NetlinkHandlePool } from '../netlink/index.js';
import { runInNetns } from '../netns/index.js';

export const ETC_NETNS = '/etc/netns';

export interface SandboxConfig {
  sysctls?: Record<string, string>;
  routes?: Array<{ dst: string; via?: string; dev?: string }>;
  neighbors?: Array<{ dev: string; ip: string; mac: string }>;
  /** The hosts file's entries (after localhost), in order. */
  hosts?: Array<{ ip: string; names: string[] }>;
}

const SYSCTL_RE = /^net[./][A-Za-z0-9_./@-]+$/;
/** A hosts file name: DNS's letters, digits, dots and hyphens, and underscores (containerlab's lab and node names have them; the hosts file resolver takes them). */
const HOSTNAME_RE = /^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?$/;

/** The /proc/sys path of a net.* key, dotted (`net.ipv4.ip_forward`) or slashed. */
function sysctlPath(key: string, field: string): string {
  if (!SYSCTL_RE.test(key) || key.includes('..')) throw new InvalidArgumentError(field, `only net.* settings belong to a sandbox's namespace; got ${JSON.stringify(key)}`);
  return `/proc/sys/${key.includes('/') ? key : key.replace(/\./g, '/')}`;
}

/** Equivalent to: `ip netns exec SB sysctl -w KEY=VALUE` for each. */
function applySysctls(sb: SandboxRecord, sysctls: Record<string, string>): void {
  const writes = Object.entries(sysctls).map(([k, v]) => ({ key: k, file: sysctlPath(k, `sysctls.${k}`), value: String(v) }));
  runInNetns(sb.netnsPath, () => {
    for (const w of writes) {
      try {
        fs.writeFileSync(w.file, w.value);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const why = code === 'ENOENT' ? 'no such setting in this kernel' : code === 'EINVAL' ? `the kernel refused the value ${JSON.stringify(w.value)}` : (err as Error).message;
        throw new InvalidArgumentError(`sysctls.${w.key}`, why, { cause: err });
      }
    }
  });
}

/** The hosts file of a lab node: localhost first, then the entries. */
export function hostsFileText(entries: NonNullable<SandboxConfig['hosts']>): string {
  const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback'];
  for (const e of entries) lines.push(`${e.ip}\t${e.names.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

function writeHosts(sb: SandboxRecord, entries: NonNullable<SandboxConfig['hosts']>): void {
  if (sb.kind !== 'named') throw new InvalidArgumentError('hosts', `sandbox ${sb.name} is not a named namespace: \`ip netns exec\` would not use a hosts file for it`);
  entries.forEach((e, i) => e.names.forEach((n) => {
    if (!HOSTNAME_RE.test(n)) throw new InvalidArgumentError(`hosts[${i}].names`, `${JSON.stringify(n)} is not a host name`);
  }));
  const dir = path.join(ETC_NETNS, sb.name);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.hosts.${process.pid}`);
  fs.writeFileSync(tmp, hostsFileText(entries));
  fs.renameSync(tmp, path.join(dir, 'hosts'));
}

/** Removes /etc/netns/NAME (the hosts file written here); idempotent. */
export function removeHostsFile(name: string): void {
  if (!name || name.includes('/') || name === '.' || name === '..') return;
  fs.rmSync(path.join(ETC_NETNS, name), { recursive: true, force: true });
}

/** Applies config to sandbox sb: sysctls, routes, neighbours, hosts, in that order. */
export async function applySandboxConfig(pool: NetlinkHandlePool, sb: SandboxRecord, config: SandboxConfig): Promise<void> {
  if (sb.kind === 'host') throw new CnmkitError('ERR_FORBIDDEN', 'forbidden', `sandbox ${sb.name} is the daemon's own namespace: its settings are the machine's`);
  // Nothing asked of a part, nothing done for it: no trip into the namespace, no socket opened (and
  // kept) there for empty sysctls, routes and neighbours, as a lab sends for most nodes.
  if (config.sysctls && Object.keys(config.sysctls).length > 0) applySysctls(sb, config.sysctls);
  const routes = config.routes ?? [];
  const neighbors = config.neighbors ?? [];
  if (routes.length > 0 || neighbors.length > 0) {
    const h = pool.get(sb.netnsPath);
    const indexes = new Map<string, number>();
    const index = async (dev: string, field: string): Promise<number> => {
      if (!indexes.has(dev)) indexes.set(dev, await linkIndex(h, dev, field));
      return indexes.get(dev)!;
    };
    for (const [i, r] of routes.entries()) {
      const dev = r.dev ? await index(r.dev, `routes[${i}].dev`) : undefined;
      await addRoute(h, { dst: r.dst, ...(r.via ? { gateway: r.via } : {}), ...(dev !== undefined ? { dev } : {}) }, { replace: true });
    }
    for (const [i, n] of neighbors.entries()) {
      await addNeighbor(h, { dev: await index(n.dev, `neighbors[${i}].dev`), ip: n.ip, mac: n.mac }, { replace: true });
    }
  }
  if (config.hosts) writeHosts(sb, config.hosts);
}
