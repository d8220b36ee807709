// Instruments the daemon's parts for metrics without changing them: the controller's operations
// and the firewall backend's calls are timed through proxies (methods run on the object itself),
// and the store's transactions through its timing hook. Reads (lookups, listings) are not timed.
import type { Controller } from '../controller/controller.js';
import type { FirewallBackend } from '../firewall/index.js';
import type { Store } from '../store/index.js';
import type { DaemonMetrics } from './metrics.js';

type Args = unknown[];
type DriverOf = (c: Controller, args: Args) => string | undefined;

const ofNetwork: DriverOf = (c, [ref]) => c.network(String(ref)).driver;
const ofEndpoint: DriverOf = (c, [id]) => c.network(c.endpoint(String(id)).networkId).driver;
const noDriver: DriverOf = () => '';

/** Controller method → operation label and how to find its driver (before the call: a delete loses it). */
const OPERATIONS: Partial<Record<keyof Controller, { operation: string; driver: DriverOf | 'create' }>> = {
  createNetwork: { operation: 'network_create', driver: 'create' },
  deleteNetwork: { operation: 'network_delete', driver: ofNetwork },
  createSandbox: { operation: 'sandbox_create', driver: noDriver },
  deleteSandbox: { operation: 'sandbox_delete', driver: noDriver },
  connect: { operation: 'connect', driver: ofNetwork },
  disconnect: { operation: 'disconnect', driver: ofNetwork },
  createDetachedEndpoint: { operation: 'endpoint_create', driver: ofNetwork },
  deleteEndpoint: { operation: 'endpoint_delete', driver: ofEndpoint },
  publishPorts: { operation: 'publish', driver: ofEndpoint },
};

export interface ControllerLabels {
  /** The driver a network gets when its request names none. */
  defaultDriver: string;
  /** Registered driver names: any other name (a typo, a fuzzer) is labelled "unknown". */
  drivers: ReadonlySet<string>;
}

async function observe<T>(metrics: DaemonMetrics, operation: string, driver: string, run: () => Promise<T>): Promise<T> {
  const end = metrics.operationSeconds.startTimer({ operation, driver });
  try {
    const result = await run();
    metrics.operations.inc({ operation, driver, result: 'ok' });
    return result;
  } catch (err) {
    metrics.operations.inc({ operation, driver, result: 'error' });
    throw err;
  } finally {
    end();
  }
}

/** The controller, with each CNM operation counted and timed under its operation and driver. */
export function observeController(controller: Controller, metrics: DaemonMetrics, labels: ControllerLabels): Controller {
  const driverLabel = (op: { driver: DriverOf | 'create' }, args: Args): string => {
    let name: string | undefined;
    try {
      name = op.driver === 'create' ? ((args[0] as { driver?: string } | undefined)?.driver ?? labels.defaultDriver) : op.driver(controller, args);
    } catch {
      name = undefined;
    }
    return name === '' || (name !== undefined && labels.drivers.has(name)) ? name : 'unknown';
  };
  return new Proxy(controller, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const op = OPERATIONS[prop as keyof Controller];
      if (!op) return value.bind(target);
      return (...args: Args) => observe(metrics, op.operation, driverLabel(op, args), () => value.apply(target, args) as Promise<unknown>);
    },
  });
}

/**
 * Where store and firewall timings go: the metrics registry, or (while the daemon starts, before the
 * registry is loaded) something that keeps them for it. DaemonMetrics is one.
 */
export interface TimingSink {
  storeTxSeconds: { observe(seconds: number): void };
  firewallSeconds: { observe(labels: { backend: string; operation: string; result: string }, seconds: number): void };
}

/** The firewall backend, with every asynchronous call (each applies or reads rules) timed. */
export function observeFirewall(firewall: FirewallBackend, sink: TimingSink): FirewallBackend {
  return new Proxy(firewall, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const operation = String(prop).replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
      return (...args: Args) => {
        const result: unknown = value.apply(target, args);
        if (!(result instanceof Promise)) return result;
        const t0 = performance.now();
        const end = (outcome: string) => sink.firewallSeconds.observe({ backend: target.name, operation, result: outcome }, (performance.now() - t0) / 1000);
        return result.then(
          (ok) => (end('ok'), ok),
          (err: unknown) => {
            end('error');
            throw err;
          },
        );
      };
    },
  });
}

/** Times the store's transactions. */
export function observeStore(store: Store, sink: TimingSink): void {
  store.onTxTimed = (seconds) => sink.storeTxSeconds.observe(seconds);
}
