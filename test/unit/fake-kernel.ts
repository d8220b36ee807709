// A SandboxKernel for unit tests: named namespaces are names in a set; nothing touches the kernel.
import type { SandboxKernel } from '../../src/controller/sandbox-kernel.js';

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
}
