// The kill -9 campaign on a real daemon (test/helpers/reliability/kill.ts): a mixed workload of
// networks, named and path sandboxes, connect with --ip and -p, disconnect and removals; SIGKILL
// after a random delay, restart, and after every restart: no leaked link, namespace, rule or
// address, no duplicate IP, store and kernel agree. Then everything goes through the API and
// nothing is left. Seeded: CNMKIT_SEED=N replays the operations and delays (printed).
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { CampaignHost } from '../helpers/reliability/daemon.js';
import { clear, killCampaign, violationsOf } from '../helpers/reliability/kill.js';

const seed = process.env.CNMKIT_SEED ? Number(process.env.CNMKIT_SEED) : Math.floor(Math.random() * 2 ** 31);
const ITERATIONS = 30;

describeRoot('SIGKILL of the daemon at random points of a mixed workload', () => {
  let host: CampaignHost;
  beforeEach(async () => {
    host = await CampaignHost.create({ tag: 'kl', externals: 2, daemonArgs: ['--docker-plugins', 'false'] });
    await host.start();
  });
  afterEach(async () => {
    expect(await host.cleanup(), 'namespaces the daemon should have removed').toEqual([]);
  });

  it(`keeps every invariant after each of ${ITERATIONS} restarts (seed ${seed})`, { timeout: 300_000 }, async () => {
    console.log(`reliability-kill: seed ${seed} (CNMKIT_SEED=${seed} replays it)`);
    const f = await killCampaign(host, { seed, iterations: ITERATIONS, maxDelayMs: 1200, log: (l) => console.log(l) });
    console.log(`reliability-kill: ${JSON.stringify(f)}`);
    expect(f.failures).toEqual([]);
    expect(f.iterations).toBe(ITERATIONS);
    expect(Object.values(f.violations).every((n) => n === 0)).toBe(true);
    // The workload did change the daemon's state between kills, and some kills cut a request.
    expect(f.outcomes['2xx'] ?? 0).toBeGreaterThan(ITERATIONS);
    expect(f.outcomes.cut ?? 0).toBeGreaterThan(0);
    expect(await clear(host)).toEqual([]);
    expect(await violationsOf(host)).toEqual([]);
  });
});
