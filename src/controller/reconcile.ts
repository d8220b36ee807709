// Bringing the kernel and the address pools back in line with the store: drivers restore their
// networks, ports are published again (the proxy and the leases live in the daemon), joined
// endpoints whose interfaces vanished are made again or removed, and addresses whose owner no
// longer exists are released.
import type { PortSpec } from '../portmap/index.js';
import type { ControllerDeps } from './types.js';
import type { EndpointCheck } from '../contract/driver.js';
import { rejoinEndpoint, teardownEndpoint } from './endpoints.js';
import { dropHandedBack } from './handback.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../core/model.js';

/**
 * At start-up (sweep), the Docker endpoints the engine handed back while the daemon was away go
 * first (./handback.ts). Then each driver (global ones first: hosts elsewhere wait for what they
 * restore, and their remote peers are the slowest to come back) sweeps what no record owns (at
 * start-up, with `sweep`), restores its networks and finishes (restored()) before the next
 * driver's synchronous kernel reads begin; then every ready endpoint's ports are published again.
 */
export async function restoreKernelState(deps: ControllerDeps, done: string[], sweep = false): Promise<void> {
  const { store, drivers } = deps;
  if (sweep) await dropHandedBack(deps, done);
  const order = [...drivers.list().filter((d) => d.scope === 'global'), ...drivers.list().filter((d) => d.scope !== 'global')];
  for (const driver of order) {
    const nets = store.networks.list().filter((n) => n.driver === driver.name);
    if (sweep && driver.sweep) {
      const ids = new Set(nets.map((n) => n.id));
      done.push(...(await driver.sweep(nets, store.endpoints.list().filter((e) => ids.has(e.networkId)))));
    }
    if (driver.restore) for (const net of nets) await driver.restore(net, net.config);
    await driver.restored?.();
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

/**
 * Every ready endpoint joined to a sandbox with a namespace of its own: its driver checks that its
 * interfaces are there and makes them again where they vanished; an endpoint that cannot be made
 * again is removed and its addresses released (only once its interfaces are gone). Each repair
 * and removal is reported in done, with the reason.
 */
export async function checkJoinedEndpoints(deps: ControllerDeps, done: string[]): Promise<void> {
  const { store, drivers, kernel } = deps;
  const touched = new Set<string>();
  for (const ep of store.endpoints.list()) {
    const sb = ep.sandboxId ? store.sandboxes.get(ep.sandboxId) : undefined;
    const net = store.networks.get(ep.networkId);
    const driver = net && drivers.get(net.driver);
    if (ep.state !== 'ready' || !sb || sb.kind === 'host' || sb.state !== 'ready' || !net || !driver?.checkEndpoint) continue;
    touched.add(sb.netnsPath);
    let found: EndpointCheck;
    try {
      found = await driver.checkEndpoint(net, net.config, ep, sb);
    } catch (err) {
      found = { state: 'lost', reason: `its interfaces could not be checked or made again: ${(err as Error).message}` };
    }
    if (found.state === 'missing') found = await rejoin(deps, net, ep, sb, found.detail, done);
    if (found.state !== 'lost') continue;
    const addresses = [ep.ipv4, ep.ipv6].filter(Boolean).join(', ') || 'no address';
    try {
      await teardownEndpoint(deps, ep, sb);
      done.push(`endpoint ${ep.name} of sandbox ${sb.name} on network ${net.name}: removed, ${addresses} released (${found.reason})`);
    } catch (err) {
      done.push(`endpoint ${ep.name} of sandbox ${sb.name} on network ${net.name}: lost (${found.reason}), and not removed: ${(err as Error).message}`);
    }
  }
  for (const nsPath of touched) kernel.release(nsPath);
}

/** Joins an endpoint whose interfaces vanished again; says so in done, or returns why it is lost. */
async function rejoin(deps: ControllerDeps, net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord, detail: string, done: string[]): Promise<EndpointCheck> {
  try {
    await rejoinEndpoint(deps, net, ep, sb);
  } catch (err) {
    return { state: 'lost', reason: `${detail}, and it could not be made again: ${(err as Error).message}` };
  }
  const addresses = [ep.ipv4, ep.ipv6].filter(Boolean).join(', ') || 'no address';
  done.push(`endpoint ${ep.name}: ${detail}: made again with ${addresses} and MAC ${ep.macAddress ?? 'unknown'}`);
  return { state: 'ok' };
}
