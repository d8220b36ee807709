// Request fuzzing of a real daemon (test/helpers/reliability): fast-check batches of schema-derived,
// broken and malformed requests to the management socket and both plugin sockets. Every answer is
// a 2xx or a 4xx in the socket's one error shape within 20 s, the daemon lives and is healthy,
// refused batches change neither store nor kernel, accepted ones keep the invariants, and
// removing everything through the API leaves the state the daemon started with.
// Seeded: CNMKIT_SEED=N replays a run (the seed is printed; a failure prints the shrunk batch).
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { CampaignHost } from '../helpers/reliability/daemon.js';
import { fuzzCampaign } from '../helpers/reliability/fuzz.js';
import { clear, violationsOf } from '../helpers/reliability/kill.js';
import { digest, digestDiff, readState } from '../helpers/reliability/state.js';

const seed = process.env.CNMKIT_SEED ? Number(process.env.CNMKIT_SEED) : Math.floor(Math.random() * 2 ** 31);

describeRoot('fuzzed requests to the management API and the plugin sockets', () => {
  let host: CampaignHost;
  beforeEach(async () => {
    host = await CampaignHost.create({ tag: 'fz', externals: 1 });
    await host.start();
  });
  afterEach(async () => {
    expect(await host.cleanup(), 'namespaces the daemon should have removed').toEqual([]);
  });

  it(`answers 2xx or 4xx in the one error shape, survives, and changes nothing it refuses (seed ${seed})`, { timeout: 240_000 }, async () => {
    console.log(`reliability-fuzz: seed ${seed} (CNMKIT_SEED=${seed} replays it)`);
    const start = await readState(host.source);
    const { figures, counterexample } = await fuzzCampaign(host, { seed, runs: 40, batch: 12, log: (l) => console.log(l) });
    console.log(`reliability-fuzz: ${JSON.stringify(figures)}`);
    expect(figures.failures, counterexample ?? '').toEqual([]);
    expect(counterexample).toBeUndefined();
    // The campaign did reach the daemon's logic: requests were both accepted and refused.
    expect(figures.requests).toBeGreaterThanOrEqual(150);
    expect(Object.entries(figures.byStatus).filter(([s]) => s.startsWith('2')).length).toBeGreaterThan(0);
    expect(Object.entries(figures.byStatus).filter(([s]) => s.startsWith('4')).length).toBeGreaterThan(0);

    expect(await clear(host)).toEqual([]);
    expect(await violationsOf(host)).toEqual([]);
    const end = await readState(host.source);
    // Cleanup through the API leaves the daemon's own objects only, as at its start.
    expect(digestDiff(digest(start), digest(end))).toEqual([]);
  });
});
