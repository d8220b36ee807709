// The overlay check's look for this host's leftovers in the cluster store (checkLeftovers): a
// store that fails the read (gone a moment ago, before the daemon knows it away) is listed as not
// compared, not as drift that `check --fix` would then call repaired; found leftovers are drift.
import { describe, expect, it } from 'vitest';
import { checkLeftovers } from '../../drivers/overlay/check.js';
import type { UncheckedItem } from '../../src/contract/driver.js';
import type { Cluster } from '../../src/cluster/types.js';

const cluster = (leftovers: () => Promise<unknown>): Cluster => ({ status: () => ({ state: 'connected' }), leftovers } as unknown as Cluster);

describe('overlay check: leftovers in the cluster store', () => {
  it('a read the store fails is not compared (unchecked, with why), not drift', async () => {
    const unchecked: UncheckedItem[] = [];
    const why = 'cluster store unavailable: etcd://198.19.255.254:2379 does not answer (connect ECONNREFUSED 198.19.255.254:2379)';
    const items = await checkLeftovers(cluster(() => Promise.reject(new Error(why))), 'ov1', ['p1'], new Set(), unchecked);
    expect(items).toEqual([]);
    expect(unchecked).toEqual([{ object: 'network ov1', what: 'leftovers', reason: `this host's peers and addresses in the cluster store not read: ${why}` }]);
  });

  it('what it finds is drift', async () => {
    const unchecked: UncheckedItem[] = [];
    const items = await checkLeftovers(cluster(async () => ({ peers: ['0123456789ab'], addresses: [] })), 'ov1', ['p1'], new Set(), unchecked);
    expect(items).toEqual([expect.objectContaining({ object: 'network ov1', what: 'peer', found: 'stale peer' })]);
    expect(unchecked).toEqual([]);
  });
});
