// The kernel side of sandboxes: named namespaces under a directory (visible to `ip netns`),
// existing namespaces by path or pid, and the loopback brought up in every new one. Interfaces
// born in a new one start with IPv6 off (as in Docker's containers): drivers turn it on for an
// interface on an IPv6 network.
import fs from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { createNamedNetns, deleteNamedNetns, ensureSysctl, netnsExists, runInNetns } from '../netns/index.js';

export interface SandboxKernel {
  namedPath(name: string): string;
  /** Creates the namespace NAME and brings its loopback up; rolls back on failure. */
  createNamed(name: string): Promise<void>;
  /** Idempotent. */
  deleteNamed(name: string): Promise<void>;
  exists(nsPath: string): boolean;
  /** Validates a path or pid that names an existing namespace and returns its path. */
  resolveExisting(ref: string): string;
}

export interface SandboxKernelDeps {
  netnsDir: string;
  /** Brings the loopback interface of the namespace at nsPath up (`ip -n NS link set lo up`). */
  loopbackUp(nsPath: string): Promise<void>;
  /** Called before a namespace is deleted, so cached netlink sockets into it are closed. */
  forget?(nsPath: string): void;
}

export function createSandboxKernel(deps: SandboxKernelDeps): SandboxKernel {
  const namedPath = (name: string): string => path.join(deps.netnsDir, name);
  return {
    namedPath,
    async createNamed(name) {
      const p = createNamedNetns(name, deps.netnsDir);
      try {
        runInNetns(p, () => ensureSysctl('net/ipv6/conf/default/disable_ipv6', '1'));
        await deps.loopbackUp(p);
      } catch (err) {
        deps.forget?.(p);
        deleteNamedNetns(name, deps.netnsDir);
        throw err;
      }
    },
    async deleteNamed(name) {
      deps.forget?.(namedPath(name));
      deleteNamedNetns(name, deps.netnsDir);
    },
    exists: netnsExists,
    resolveExisting(ref) {
      const p = /^\d+$/.test(ref) ? `/proc/${ref}/ns/net` : ref;
      if (!p.startsWith('/')) throw new InvalidArgumentError('netns', `expected an absolute path or a pid, got ${JSON.stringify(ref)}`);
      if (!fs.existsSync(p)) throw new InvalidArgumentError('netns', `no namespace at ${p}`);
      if (!netnsExists(p)) throw new InvalidArgumentError('netns', `${p} is not a network namespace`);
      return p;
    },
  };
}
