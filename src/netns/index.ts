// Network namespaces: named ones under /run/netns (visible to `ip netns`) created and deleted
// through native/, existence checks for any namespace path, and running a step inside one;
// nothing here ever leaves the calling thread in another namespace.
import fs from 'node:fs';
import path from 'node:path';
import { CnmkitError, ConflictError, NotFoundError } from '../errors.js';
import { native, type NetlinkSocketOptions } from './native.js';
import { validateNetnsName } from './names.js';
import { DAEMON_DEFAULTS } from '../defaults.js';

export { validateIfname, validateNetnsName, IFNAME_MAX } from './names.js';
export { native } from './native.js';
export { ensureSysctl, setSysctl } from './sysctl.js';

export const DEFAULT_NETNS_DIR: string = DAEMON_DEFAULTS.netnsDir;

function wrap(err: unknown, what: string, name: string): Error {
  const code = (err as { code?: string }).code;
  if (code === 'EEXIST') return new ConflictError(`${what} ${JSON.stringify(name)} already exists`, { cause: err });
  if (code === 'ENOENT') return new NotFoundError(what, name, { cause: err });
  if (code === 'EINVAL' && path.isAbsolute(name)) {
    const problem = namespaceFileProblem(name);
    if (problem !== undefined) return new CnmkitError('ERR_NETNS_EINVAL', 'bad-request', `${what} ${JSON.stringify(name)}: ${problem}${problem === 'it is a file, not a namespace file' ? ' (a namespace bound in another mount namespace, as one made under `ip netns exec`, is an empty file elsewhere: run cnmkit under `nsenter --net=PATH` instead)' : ''}`, { cause: err });
  }
  return new CnmkitError(`ERR_NETNS_${code ?? 'UNKNOWN'}`, 'internal', `${what} ${JSON.stringify(name)}: ${(err as Error).message}`, { cause: err });
}

/** Equivalent to: `ip netns add NAME`. Returns the namespace's path. */
export function createNamedNetns(name: string, dir = DEFAULT_NETNS_DIR): string {
  validateNetnsName(name);
  try {
    return native.createNamed(dir, name);
  } catch (err) {
    throw wrap(err, 'network namespace', name);
  }
}

/** Equivalent to: `ip netns del NAME`. Idempotent: false when it was already gone. */
export function deleteNamedNetns(name: string, dir = DEFAULT_NETNS_DIR): boolean {
  validateNetnsName(name);
  try {
    return native.deleteNamed(path.join(dir, name));
  } catch (err) {
    throw wrap(err, 'network namespace', name);
  }
}

/** statfs(2) f_type of nsfs, the filesystem of namespace files (bind mounts and /proc/PID/ns/*). */
const NSFS_MAGIC = 0x6e736673;

function fileKind(st: fs.Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isDirectory()) return 'a folder';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'a file';
}

/**
 * Why nsPath cannot be a namespace file (missing, a FIFO, a folder, a file on another filesystem),
 * or undefined when it is on nsfs. Only stat(2) and statfs(2): nothing is opened, so a FIFO put
 * where a namespace was expected cannot block the caller. The namespace's type is not checked here.
 */
export function namespaceFileProblem(nsPath: string): string | undefined {
  let st: fs.Stats;
  try {
    st = fs.statSync(nsPath);
    if (st.isFile() && fs.statfsSync(nsPath).type === NSFS_MAGIC) return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
  }
  return `it is ${fileKind(st)}, not a namespace file`;
}

/** True when a network namespace exists at nsPath (a bind-mounted nsfs file or a /proc link). */
export function netnsExists(nsPath: string): boolean {
  if (namespaceFileProblem(nsPath) !== undefined) return false;
  try {
    native.runIn(nsPath, () => undefined);
    return true;
  } catch {
    return false;
  }
}

/** Runs fn synchronously inside the namespace at nsPath, then returns home (always). */
export function runInNetns<T>(nsPath: string, fn: () => T): T {
  try {
    return native.runIn(nsPath, fn);
  } catch (err) {
    if ((err as { path?: string }).path === nsPath) throw wrap(err, 'network namespace', nsPath);
    throw err;
  }
}

/**
 * Link names in the namespace at nsPath (the calling thread's own when omitted), from its
 * /proc/net/dev: one read, no netlink dump. Equivalent to: `ip -n NS -o link show | cut -d: -f2`
 */
export function linkNamesIn(nsPath?: string): Set<string> {
  const read = (): Set<string> => {
    const lines = fs.readFileSync('/proc/thread-self/net/dev', 'utf8').split('\n').slice(2);
    return new Set(lines.map((l) => l.split(':')[0]!.trim()).filter(Boolean));
  };
  return nsPath === undefined ? read() : runInNetns(nsPath, read);
}

/** A raw rtnetlink socket created inside the namespace at nsPath, with options set on it. */
export function rtnetlinkSocketIn(nsPath: string, options: NetlinkSocketOptions): number {
  try {
    return native.netlinkSocketIn(nsPath, 0, options);
  } catch (err) {
    if ((err as { path?: string }).path === nsPath) throw wrap(err, 'network namespace', nsPath);
    throw err;
  }
}
