// check (CNI's CHECK) over networks: for each, the state the store records, then its driver's
// check of the kernel (the network's own objects and each endpoint's), with every endpoint whose
// sandbox namespace is gone reported here and checked on the host side only; what a driver could
// not compare is listed apart (unchecked), with why. Reads only, unless asked to fix (`check
// --fix`): then each network that differs has its driver's repair run, and is checked again; what
// differed before and no longer does is listed as repaired, what still differs stays in items.
// Handles opened into sandboxes are closed afterwards. Callers serialise this through the
// controller's queue. Limits: a driver without a repair step repairs nothing.
import type { CheckedEndpoint, CheckItem, UncheckedItem } from '../contract/driver.js';
import { endpointObject, item } from '../contract/check.js';
import type { NetworkRecord } from '../core/model.js';
import type { ControllerDeps } from './types.js';

export type { CheckItem, UncheckedItem } from '../contract/driver.js';

/** What check found for one network: nothing (clean) or each difference; and what it could not compare, when anything. */
export interface NetworkCheck {
  network: string;
  id: string;
  driver: string;
  items: CheckItem[];
  unchecked?: UncheckedItem[];
  /** check --fix only: what differed before the repair and no longer does. */
  repaired?: CheckItem[];
  /** check --fix only: why the driver's repair stopped (what it left differs still, in items). */
  repairFailed?: string;
}

/** The network's endpoints with their sandboxes; what the store itself says is wrong goes to items. */
function endpointsOf(deps: ControllerDeps, net: NetworkRecord, items: CheckItem[], touched: Set<string>): CheckedEndpoint[] {
  const { store, kernel } = deps;
  const out: CheckedEndpoint[] = [];
  for (const ep of store.endpoints.listWhere('network_id', net.id)) {
    const sb = ep.sandboxId === undefined ? undefined : store.sandboxes.get(ep.sandboxId);
    if (ep.state !== 'ready') items.push(item(endpointObject(ep, sb), 'state', 'ready', ep.state));
    if (ep.sandboxId !== undefined && !sb) items.push(item(endpointObject(ep, undefined), 'sandbox', `sandbox ${ep.sandboxId} in the store`, 'missing'));
    if (!sb || sb.kind === 'host') {
      out.push({ ep, ...(sb ? { sb } : {}) });
      continue;
    }
    if (!kernel.exists(sb.netnsPath)) {
      items.push(item(endpointObject(ep, sb), 'namespace', `namespace ${sb.netnsPath}`, 'missing'));
      out.push({ ep });
      continue;
    }
    touched.add(sb.netnsPath);
    out.push({ ep, sb });
  }
  return out;
}

async function checkNetwork(deps: ControllerDeps, net: NetworkRecord, touched: Set<string>): Promise<{ result: NetworkCheck; endpoints: CheckedEndpoint[] }> {
  const items: CheckItem[] = [];
  const result: NetworkCheck = { network: net.name, id: net.id, driver: net.driver, items };
  const object = `network ${net.name}`;
  if (net.state !== 'ready') items.push(item(object, 'state', 'ready', net.state));
  const driver = deps.drivers.get(net.driver);
  if (!driver) {
    items.push(item(object, 'driver', `driver ${net.driver}`, 'not registered in this daemon'));
    return { result, endpoints: [] };
  }
  const endpoints = endpointsOf(deps, net, items, touched);
  const unchecked: UncheckedItem[] = [];
  try {
    items.push(...(await driver.check(net, net.config, endpoints, unchecked)));
  } catch (err) {
    items.push(item(object, 'check', `the ${net.driver} driver's kernel state readable`, (err as Error).message));
  }
  if (unchecked.length > 0) result.unchecked = unchecked;
  return { result, endpoints };
}

const itemKey = (i: CheckItem): string => `${i.object}\0${i.what}\0${i.expected}`;

/** The network checked; with fix, its driver's repair run on what differs, and the network checked again. */
async function checkOrFix(deps: ControllerDeps, net: NetworkRecord, touched: Set<string>, fix: boolean): Promise<NetworkCheck> {
  const { result, endpoints } = await checkNetwork(deps, net, touched);
  if (!fix) return result;
  const driver = deps.drivers.get(net.driver);
  if (!driver?.repair || result.items.length === 0) return { ...result, repaired: [] };
  let repairFailed: string | undefined;
  try {
    await driver.repair(net, net.config, endpoints, result.items);
  } catch (err) {
    repairFailed = (err as Error).message;
  }
  const after = (await checkNetwork(deps, net, touched)).result;
  const left = new Set(after.items.map(itemKey));
  return { ...after, repaired: result.items.filter((i) => !left.has(itemKey(i))), ...(repairFailed !== undefined ? { repairFailed } : {}) };
}

/** Checks (with fix: repairs, then checks again) each network in turn; one that cannot be read is reported, and the others still checked. */
export async function checkNetworks(deps: ControllerDeps, nets: NetworkRecord[], fix = false): Promise<NetworkCheck[]> {
  const touched = new Set<string>();
  try {
    const out: NetworkCheck[] = [];
    for (const net of nets) out.push(await checkOrFix(deps, net, touched, fix));
    return out;
  } finally {
    for (const nsPath of touched) deps.kernel.release(nsPath);
  }
}
