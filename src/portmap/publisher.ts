// Publishing one endpoint's ports end to end: host ports leased from the allocator (conflicts
// name the holder), the userland proxy holding them (TCP/UDP, when enabled; its port and fd
// limits checked before any lease), and the kernel DNAT rules of the firewall — all or nothing,
// and unpublish removes exactly what publish added. A port the allocator chose (ephemeral, or
// within a given range) that another socket of the host holds is chosen again, as Docker does,
// up to PUBLISH_ATTEMPTS times; a port given exactly is refused at once.
import type { FirewallBackend, PortMapping } from '../firewall/index.js';
import { bestEffort, withRollback } from '../core/steps.js';
import { PortInUseError } from '../errors.js';
import type { PortAllocator } from './allocator.js';
import type { ProxyMapping, UserlandProxy } from './proxy.js';
import { picksFromHostRange, type PortSpec } from './spec.js';

/** Tries of a publish whose chosen host port is held by a socket not ours (Docker's number). */
export const PUBLISH_ATTEMPTS = 10;

export interface PublishTarget {
  /** Owner of the leases, listeners and rules: the endpoint id. */
  owner: string;
  containerIP: string;
  bridge: string;
  /** Host address used when a spec names none ('' = every address). */
  defaultHostIP: string;
}

export class PortPublisher {
  constructor(
    private readonly allocator: PortAllocator,
    private readonly proxy: UserlandProxy | undefined,
    private readonly firewall: FirewallBackend,
  ) {}

  get userlandProxy(): boolean {
    return this.proxy !== undefined;
  }

  /**
   * Publishes specs for target; returns them resolved (ephemeral host ports chosen). When the
   * owner already holds its ports (a reload), only the kernel rules are installed again: its
   * leases and live proxied connections stay as they are.
   */
  async publish(target: PublishTarget, specs: readonly PortSpec[]): Promise<PortSpec[]> {
    if (this.allocator.leases(target.owner).length > 0) {
      await this.firewall.addPorts(specs.map((s) => firewallMapping(s, target, this.userlandProxy)));
      return [...specs];
    }
    this.proxy?.checkCapacity(proxiedPorts(specs));
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.publishOnce(target, specs);
      } catch (err) {
        // The leases were released; the allocator's cursor is past the busy port, so the next try chooses another.
        if (!(err instanceof PortInUseError) || attempt >= PUBLISH_ATTEMPTS || givenExactly(specs, err)) throw err;
      }
    }
  }

  private publishOnce(target: PublishTarget, specs: readonly PortSpec[]): Promise<PortSpec[]> {
    return withRollback(async (undo) => {
      undo.push('leases', () => this.allocator.release(target.owner));
      const resolved: PortSpec[] = [];
      for (const spec of specs) {
        const withIP = spec.hostIP === undefined && target.defaultHostIP ? { ...spec, hostIP: target.defaultHostIP } : spec;
        resolved.push(...this.allocator.allocate(target.owner, withIP));
      }
      if (this.proxy) {
        const proxied = resolved.filter((s) => s.proto !== 'sctp').map((s) => proxyMapping(s, target.containerIP));
        undo.push('proxy', () => this.proxy!.unpublish(target.owner));
        await this.proxy.publish(target.owner, proxied);
      }
      undo.push('firewall', () => this.firewall.removePorts([target.owner]));
      await this.firewall.addPorts(resolved.map((s) => firewallMapping(s, target, this.userlandProxy)));
      return resolved;
    });
  }

  /** Removes the target's rules, listeners and leases. Idempotent. */
  unpublish(owner: string): Promise<void> {
    return bestEffort(`ports of ${owner}`, [
      ['firewall', () => this.firewall.removePorts([owner])],
      ['proxy', () => this.proxy?.unpublish(owner)],
      ['leases', () => this.allocator.release(owner)],
    ]);
  }

  async close(): Promise<void> {
    await this.proxy?.close();
  }
}

/** True when the busy port was asked for exactly (not chosen by the allocator from a range). */
function givenExactly(specs: readonly PortSpec[], err: PortInUseError): boolean {
  return specs.some((s) => s.proto === err.proto && s.hostPort !== 0 && !picksFromHostRange(s) && err.port >= s.hostPort && err.port <= s.hostPortEnd);
}

/** Host ports the proxy would hold for specs once allocated (one listening socket each). */
export function proxiedPorts(specs: readonly PortSpec[]): number {
  return specs
    .filter((s) => s.proto === 'tcp' || s.proto === 'udp')
    .reduce((sum, s) => {
      if (s.hostPort === 0) return sum + s.containerPortEnd - s.containerPort + 1;
      if (picksFromHostRange(s)) return sum + 1;
      return sum + s.hostPortEnd - s.hostPort + 1;
    }, 0);
}

function proxyMapping(s: PortSpec, containerIP: string): ProxyMapping {
  return {
    proto: s.proto as 'tcp' | 'udp',
    ...(s.hostIP !== undefined ? { hostIP: s.hostIP } : {}),
    hostPort: s.hostPort, hostPortEnd: s.hostPortEnd,
    containerIP, containerPort: s.containerPort, containerPortEnd: s.containerPortEnd,
  };
}

function firewallMapping(s: PortSpec, t: PublishTarget, userlandProxy: boolean): PortMapping {
  return {
    id: t.owner, proto: s.proto, ...(s.hostIP !== undefined ? { hostIP: s.hostIP } : {}),
    hostPort: s.hostPort, hostPortEnd: s.hostPortEnd,
    containerIP: t.containerIP, containerPort: s.containerPort, containerPortEnd: s.containerPortEnd,
    bridge: t.bridge, userlandProxy,
  };
}
