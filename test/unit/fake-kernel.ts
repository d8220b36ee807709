// A SandboxKernel for unit tests: named namespaces are names in a set, applied JoinInfos a list;
// nothing touches the kernel.
import type { SandboxKernel } from '../../src/controller/sandbox-kernel.js';
import type { JoinInfo, JoinOutcome } from '../../src/contract/driver.js';

/** A fake driver's join: an interface named ifname, born in the sandbox, with nothing else to apply. */
export function bornInSandbox(ifname: string): JoinOutcome {
  return { info: { src: { name: ifname, where: 'sandbox' }, routes: [], noGateway: false, ipv6Enabled: false } };
}

export class FakeKernel implements SandboxKernel {
  readonly namespaces = new Set<string>();
  namedPath(name: string): string {
    return `/fake/netns/${name}`;
  }
  async createNamed(name: string): Promise<void> {
    this.namespaces.add(name);
  }
  async deleteNamed(name: string): Promise<boolean> {
    this.namespaces.delete(name);
    return false;
  }
  release(): void {}
  exists(p: string): boolean {
    return this.namespaces.has(p.split('/').pop()!);
  }
  resolveExisting(ref: string): string {
    return ref;
  }
  /** The JoinInfos applied, in order. */
  readonly applied: JoinInfo[] = [];
  /** Set: apply fails (as a kernel refusing an address would). */
  failApply = false;
  async apply(_sb: unknown, info: JoinInfo): Promise<string> {
    if (this.failApply) throw new Error('apply failed on purpose');
    this.applied.push(info);
    return info.dstName ?? info.src.name;
  }
}
