// The gateway bridge (Docker's docker_gwbridge role): a sandbox on a global network that is not
// internal has no way out through it (an overlay has no gateway), so it also joins the local
// bridge network `cnmkit_gwbridge` (made on first use, ICC off, masquerade on, its subnet from
// the local IPAM), which gives it the default route; ports published on the global network are
// published on that endpoint, exactly as on any bridge network (the connect's answer lists them
// with the global network's endpoint, as Docker shows a container's ports whatever network they
// came with). The gateway endpoint goes when the sandbox's last such network is disconnected (or
// with the sandbox).
import type { ControllerDeps, CreateNetworkRequest } from './types.js';
import type { Driver } from '../contract/driver.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../core/model.js';
import type { PortSpec } from '../portmap/index.js';
import { InvalidArgumentError } from '../errors.js';
import { mark } from '../core/trace.js';
import { createJoinedEndpoint, teardownEndpoint, type JoinRequest } from './endpoints.js';

export const GATEWAY_NETWORK = 'cnmkit_gwbridge';

const GATEWAY_OPTIONS = {
  'com.docker.network.bridge.name': GATEWAY_NETWORK,
  'com.docker.network.bridge.enable_icc': 'false',
  'com.docker.network.bridge.enable_ip_masquerade': 'true',
};

export function needsGateway(driver: Driver, net: NetworkRecord): boolean {
  return driver.global !== undefined && !net.internal;
}

/**
 * Joins sb to the gateway network (made if missing) unless it is there already; the ports go on
 * that endpoint, which is returned when made now. Runs inside the controller's queue: create is
 * the unqueued network create.
 */
export async function joinGateway(
  deps: ControllerDeps, create: (req: CreateNetworkRequest) => Promise<NetworkRecord>, sb: SandboxRecord, ports: PortSpec[], joined: EndpointRecord[],
): Promise<EndpointRecord | undefined> {
  const net = deps.store.networks.getByName(GATEWAY_NETWORK) ?? (await create({ name: GATEWAY_NETWORK, driver: 'bridge', options: GATEWAY_OPTIONS }));
  const have = joined.find((e) => e.networkId === net.id);
  if (have) {
    if (ports.length > 0) throw new InvalidArgumentError('ports', `sandbox ${sb.name} is on ${GATEWAY_NETWORK} already: publish its ports at its first connect to a global network`);
    return undefined;
  }
  return createJoinedEndpoint(deps, net, sb, {}, ports, joined);
}

/**
 * A new endpoint of a global network joined to sb, then sb's gateway endpoint; the first is removed
 * again if the second fails, and is ready on record only once both are made. Answers with the ports
 * published (on the gateway endpoint).
 */
export async function joinWithGateway(
  deps: ControllerDeps, create: (req: CreateNetworkRequest) => Promise<NetworkRecord>,
  j: { net: NetworkRecord; sb: SandboxRecord; req: JoinRequest; ports: PortSpec[]; joined: EndpointRecord[] },
): Promise<EndpointRecord> {
  // 'creating' on record until the gateway endpoint is made too: a crash in between leaves no endpoint without its way out.
  const ep = await createJoinedEndpoint(deps, j.net, j.sb, j.req, [], j.joined, { ready: false });
  let gw: EndpointRecord | undefined;
  mark('gateway');
  try {
    gw = await joinGateway(deps, create, j.sb, j.ports, [...j.joined, ep]);
  } catch (err) {
    await teardownEndpoint(deps, ep, j.sb).catch(() => undefined);
    throw err;
  }
  ep.state = 'ready';
  deps.store.endpoints.put(ep);
  return gw && gw.ports.length > 0 ? { ...ep, ports: gw.ports } : ep;
}

/** sb's gateway endpoint when none of its endpoints but those leaving needs it. */
function gatewayUnusedWithout(deps: ControllerDeps, sb: SandboxRecord, leaving: EndpointRecord[]): EndpointRecord | undefined {
  const { store } = deps;
  const gw = store.networks.getByName(GATEWAY_NETWORK);
  if (!gw) return undefined;
  const gone = new Set(leaving.map((e) => e.id));
  const eps = store.endpoints.listWhere('sandbox_id', sb.id).filter((e) => !gone.has(e.id));
  const still = eps.some((e) => {
    const net = store.networks.get(e.networkId);
    const driver = net && deps.drivers.get(net.driver);
    return net !== undefined && driver !== undefined && needsGateway(driver, net);
  });
  return still ? undefined : eps.find((e) => e.networkId === gw.id);
}

/**
 * A disconnect of sb's endpoints eps, and of its gateway endpoint when nothing else needs it. All
 * are marked 'deleting' on record first, in one transaction: a crash on the way leaves them to the
 * start-up reconcile, which removes them all (never the gateway leg without the other, or the reverse).
 */
export async function leaveWithGateway(deps: ControllerDeps, sb: SandboxRecord, eps: EndpointRecord[]): Promise<void> {
  const gw = gatewayUnusedWithout(deps, sb, eps);
  const all = gw ? [...eps, gw] : eps;
  deps.store.tx(() => {
    for (const e of all) deps.store.endpoints.put({ ...e, state: 'deleting' });
  });
  const failed: unknown[] = [];
  for (const e of all) await teardownEndpoint(deps, e, sb).catch((err: unknown) => failed.push(err));
  if (failed.length > 0) throw failed[0];
}
