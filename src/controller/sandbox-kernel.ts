// The kernel side of sandboxes: named namespaces under a directory (visible to `ip netns`),
// existing namespaces by path or pid, and the loopback brought up in every new one. Interfaces
// born in a new one start with IPv6 off (as in Docker's containers): the applier turns it on for an
// interface on an IPv6 network, and puts drivers' JoinInfo in (./apply.ts). cnmkit's handles into a sandbox's namespace are closed after each
// operation (an open socket pins a namespace), so that deleting a named one can ask the kernel
// whether anything else still holds it. Limits: paths are checked with stat/statfs before they
// are opened (never opened blocking), but not locked: a path replaced later fails, it never hangs.
import fs from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import type { NetlinkHandlePool } from '../netlink/index.js';
import type { JoinInfo } from '../contract/join.js';
import type { SandboxRecord } from '../core/model.js';
import { applyJoinInfo, type ApplyOptions } from './apply.js';
import { createNamedNetns, deleteNamedNetns, namespaceFileProblem, netnsExists, runInNetns, setSysctl } from '../netns/index.js';

/**
 * How long after cnmkit closed its last socket in a namespace that socket may still hold it: the
 * kernel drops a closed socket's reference after an RCU grace period (tens of ms here).
 */
const OWN_REFERENCES_MS = 200;
const POLL_MS = 1;

export interface SandboxKernel {
  namedPath(name: string): string;
  /** Creates the namespace NAME and brings its loopback up; rolls back on failure. */
  createNamed(name: string): Promise<void>;
  /**
   * Unmounts the namespace NAME and closes cnmkit's handles into it. With confirm, resolves true
   * once the kernel says nothing holds it any more (it is destroyed, its interfaces with it), and
   * false when something still does (a process, another mount, an open file) or it cannot tell.
   * Idempotent.
   */
  deleteNamed(name: string, opts?: { confirm?: boolean }): Promise<boolean>;
  /** Closes cnmkit's handles into the namespace at nsPath (each pins it while open). */
  release(nsPath: string): void;
  exists(nsPath: string): boolean;
  /** Validates a path or pid that names an existing namespace and returns its path. */
  resolveExisting(ref: string): string;
  /** Puts a driver's JoinInfo into the sandbox (./apply.ts); returns the interface's name there. */
  apply(sb: SandboxRecord, info: JoinInfo, opts: ApplyOptions): Promise<string>;
}

export interface SandboxKernelDeps {
  netnsDir: string;
  netlink: NetlinkHandlePool;
  /** Brings the loopback interface of the namespace at nsPath up (`ip -n NS link set lo up`). */
  loopbackUp(nsPath: string): Promise<void>;
  /** Closes cached netlink sockets into the namespace at nsPath; true when there were any. */
  forget?(nsPath: string): boolean;
  /** The id the daemon's namespace gives the namespace open as fd (assigned if it had none). */
  netnsId?(fd: number): Promise<number>;
  /** Whether the namespace the daemon's namespace calls nsid still has references. */
  netnsReferenced?(nsid: number): Promise<boolean>;
}

export function createSandboxKernel(deps: SandboxKernelDeps): SandboxKernel {
  const namedPath = (name: string): string => path.join(deps.netnsDir, name);
  /** When cnmkit last closed its sockets in a namespace, by path (only the last OWN_REFERENCES_MS matter). */
  const closedAt = new Map<string, number>();
  const release = (nsPath: string): void => {
    if (!deps.forget?.(nsPath)) return;
    const now = Date.now();
    for (const [p, t] of closedAt) if (now - t > OWN_REFERENCES_MS) closedAt.delete(p);
    closedAt.set(nsPath, now);
  };

  /** The daemon namespace's id for the namespace at nsPath; undefined when it is not one. */
  async function idOf(nsPath: string): Promise<number | undefined> {
    if (!deps.netnsId || namespaceFileProblem(nsPath) !== undefined) return undefined;
    const fd = fs.openSync(nsPath, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      return await deps.netnsId(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** True once nsid is unreferenced; waits only as long as cnmkit's own closed sockets may hold it. */
  async function unreferenced(nsid: number, deadline: number): Promise<boolean> {
    for (;;) {
      if (!(await deps.netnsReferenced!(nsid))) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  return {
    namedPath,
    async createNamed(name) {
      const p = createNamedNetns(name, deps.netnsDir);
      try {
        // Written without a read first: the namespace was made just now, nothing set it yet.
        runInNetns(p, () => setSysctl('net/ipv6/conf/default/disable_ipv6', '1'));
        await deps.loopbackUp(p);
      } catch (err) {
        deps.forget?.(p);
        deleteNamedNetns(name, deps.netnsDir);
        throw err;
      }
      release(p);
    },
    async deleteNamed(name, opts = {}) {
      const p = namedPath(name);
      const nsid = opts.confirm ? await idOf(p) : undefined;
      release(p);
      deleteNamedNetns(name, deps.netnsDir);
      const deadline = (closedAt.get(p) ?? 0) + OWN_REFERENCES_MS;
      closedAt.delete(p);
      if (nsid === undefined) return false;
      return unreferenced(nsid, deadline);
    },
    release,
    exists: netnsExists,
    apply: (sb, info, opts) => applyJoinInfo(deps.netlink, sb, info, opts),
    resolveExisting(ref) {
      const p = /^\d+$/.test(ref) ? `/proc/${ref}/ns/net` : ref;
      if (!p.startsWith('/')) throw new InvalidArgumentError('netns', `expected an absolute path or a pid, got ${JSON.stringify(ref)}`);
      const problem = namespaceFileProblem(p);
      if (problem === 'no such file') throw new InvalidArgumentError('netns', `no namespace at ${p}`);
      if (problem !== undefined) throw new InvalidArgumentError('netns', `${p} is not a network namespace: ${problem}`);
      if (!netnsExists(p)) throw new InvalidArgumentError('netns', `${p} is not a network namespace (it is a namespace of another type)`);
      return p;
    },
  };
}
