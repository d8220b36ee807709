// The hooks every simulated-hosts e2e file repeats: a SimCluster made before the file's tests with
// every daemon started, the sandboxes a test made removed through the CLI after it (each must take
// its namespace along), the cluster destroyed at the end. Vitest only (it registers hooks).
import { afterAll, afterEach, beforeAll } from 'vitest';
import { SimCluster, simCli, type SimClusterOptions, type SimHost } from './cluster.js';

/** A sandbox a test made on a host; simSuite removes it after the test. */
export interface MadeSandbox { h: SimHost; sb: string }

/** Registers the hooks; `ready` receives the cluster once its daemons answer (and may make networks). */
export function simSuite(opts: SimClusterOptions, made: MadeSandbox[], ready: (sim: SimCluster) => Promise<void> | void): void {
  let sim: SimCluster | undefined;
  beforeAll(async () => {
    sim = await SimCluster.create(opts);
    for (const h of sim.hosts) await h.daemon.start();
    await ready(sim);
  }, 60_000);
  afterEach(async () => {
    for (const { h, sb } of made.splice(0)) await simCli(h, ['sandbox', 'rm', sb]);
  });
  afterAll(async () => {
    await sim?.destroy();
  }, 60_000);
}
