// Sandbox work of the controller that touches the kernel: tearing one down (its point-to-point
// links, its endpoints' drivers told, its namespace, then its endpoints, their links deleted one
// by one only when the namespace lives on, and a named one's hosts file under /etc/netns), and running an
// operation with cnmkit's handles into the namespace closed afterwards. Callers serialise these
// through the controller's queue.
import type { ControllerDeps } from './types.js';
import type { EndpointRecord, SandboxRecord } from '../core/model.js';
import { announceLeaving, teardownEndpoint } from './endpoints.js';
import { bestEffort } from '../core/steps.js';
import { removeHostsFile } from '../sandbox-config/index.js';

/**
 * A named sandbox's namespace is unmounted first: when the kernel confirms that nothing else
 * holds it, its links die with it (batched by the kernel, no per-link wait); when something does
 * (a process, a mount elsewhere) or it cannot tell, each endpoint's links are deleted one by one
 * before its addresses are released. Other namespaces stay; cnmkit's handles into them close.
 * The endpoints' drivers are told before the namespace goes (leaving), so that a watch of their
 * interfaces does not take their going for a namespace deleted by hand.
 */
export async function teardownSandbox(deps: ControllerDeps, sb: SandboxRecord, eps: EndpointRecord[]): Promise<void> {
  const { kernel, store, logger } = deps;
  const named = sb.kind === 'named';
  let namespaceGone = false;
  await bestEffort(`sandbox ${sb.name}`, [
    ['links', () => deps.links?.deleteFor(sb.id)],
    ['endpoints leaving', () => eps.forEach((ep) => announceLeaving(deps, ep))],
    ['namespace', async () => {
      if (!named) return;
      namespaceGone = await kernel.deleteNamed(sb.name, { confirm: eps.length > 0 });
      if (!namespaceGone && eps.length > 0) logger.debug({ sandbox: sb.name }, 'namespace not confirmed gone (something else may hold it): its links are deleted one by one');
    }],
    ...eps.map((ep): [string, () => Promise<void>] => [`endpoint ${ep.name}`, () => teardownEndpoint(deps, ep, sb, { namespaceGone })]),
    ['handles', () => (!named && sb.kind !== 'host' ? kernel.release(sb.netnsPath) : undefined)],
    ['hosts file', () => (named ? removeHostsFile(sb.name) : undefined)],
    ['store', () => store.sandboxes.delete(sb.id)],
  ]);
}

/** Runs fn, then closes cnmkit's handles into the sandbox's namespace (an open one pins it). */
export async function inSandbox<T>(deps: ControllerDeps, sb: SandboxRecord, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } finally {
    if (sb.kind !== 'host') deps.kernel.release(sb.netnsPath);
  }
}
