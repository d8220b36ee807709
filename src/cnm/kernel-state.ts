// Bringing the kernel and the address pools back in line with the store: drivers restore their
// networks, ports are published again (the proxy and the leases live in the daemon), and
// addresses whose owner no longer exists are released.
import type { PortSpec } from '../portmap/index.js';
import type { ControllerDeps } from './controller.js';

/** Each network's driver restores what is missing; every ready endpoint's ports are published again. */
export async function restoreKernelState(deps: ControllerDeps, done: string[]): Promise<void> {
  const { store, drivers } = deps;
  for (const net of store.networks.list()) {
    const driver = drivers.get(net.driver);
    if (driver?.restore) await driver.restore(net, net.config);
  }
  for (const ep of store.endpoints.list()) {
    const net = store.networks.get(ep.networkId);
    const driver = net && drivers.get(net.driver);
    const ports = ep.ports as PortSpec[];
    if (!net || !driver?.publish || ep.state !== 'ready' || ports.length === 0) continue;
    try {
      await driver.publish(net, net.config, ep, ports);
    } catch (err) {
      done.push(`endpoint ${ep.name}: ports not published again: ${(err as Error).message}`);
    }
  }
}

/** Pools whose gateway belongs to no stored network, and endpoint addresses of no stored endpoint. */
export function releaseOrphanAddresses(deps: ControllerDeps): string[] {
  const { ipam, store } = deps;
  const done: string[] = [];
  for (const pool of ipam.listPools()) {
    for (const a of ipam.listAddresses(pool.poolId)) {
      const [kind, id] = a.owner.split(':');
      if (kind === 'network' && a.kind === 'gateway' && id && !store.networks.get(id)) {
        ipam.releasePool(pool.poolId);
        done.push(`pool ${pool.pool}: released (its network is gone)`);
        break;
      }
      if (kind === 'endpoint' && id && !store.endpoints.get(id)) {
        ipam.releaseAddress(pool.poolId, a.address);
        done.push(`address ${a.address}: released (its endpoint is gone)`);
      }
    }
  }
  return done;
}
