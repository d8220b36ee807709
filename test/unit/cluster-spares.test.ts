// The spare stock's size rules (src/cluster/spares.ts): adaptive to the connect rate within 4…64,
// never more than 1/16 of the pool's free addresses; in a tight pool (fewer than 64 free) 1…3
// while the host connects and none when it is idle, which is also what an idle host trims to.
// And the stock's answer to another host's request for one of its addresses (src/cluster/wanted.ts),
// over a fake store: given up from the ready stock, kept when handed out or not held.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import pino from 'pino';
import type { Compare, Op, StoreClient, StreamHandlers } from '../../src/cluster/client.js';
import type { AddressView, EtcdIpam } from '../../src/cluster/ipam.js';
import { Keys } from '../../src/cluster/keys.js';
import { Spares } from '../../src/cluster/spares.js';
import { idleLimit, wantedStock } from '../../src/cluster/stock.js';
import { parsePrefix } from '../../src/ip/index.js';

describe('spare stock size', () => {
  it('follows the connect rate between 4 and 64 in a roomy pool', () => {
    expect(wantedStock(0, 4000)).toBe(4);
    expect(wantedStock(10, 4000)).toBe(20);
    expect(wantedStock(500, 4000)).toBe(64);
  });

  it('holds at most 1/16 of the free addresses; in a tight pool only while the host connects', () => {
    expect(wantedStock(100, 253)).toBe(15);
    expect(wantedStock(100, 64)).toBe(4);
    expect(wantedStock(100, 63)).toBe(3);
    expect(wantedStock(1, 20)).toBe(1);
    expect(wantedStock(100, 15)).toBe(0);
    expect(wantedStock(0, 63)).toBe(0);
    expect(wantedStock(0, 0)).toBe(0);
    expect(wantedStock(5, -3)).toBe(0);
    fc.assert(fc.property(fc.nat(1000), fc.nat(1 << 20), (rate, free) => {
      const n = wantedStock(rate, free);
      expect(n).toBeGreaterThanOrEqual(0);
      expect(n).toBeLessThanOrEqual(64);
      expect(n * 16).toBeLessThanOrEqual(free);
      if (rate === 0) expect(n === 0 || n === 4).toBe(true);
    }));
  });

  it('an idle host keeps its share of the free addresses, and nothing in a tight pool', () => {
    expect(idleLimit(4000)).toBe(250);
    expect(idleLimit(64)).toBe(4);
    expect(idleLimit(63)).toBe(0);
    expect(idleLimit(-1)).toBe(0);
    fc.assert(fc.property(fc.integer({ min: -100, max: 1 << 20 }), (free) => {
      const n = idleLimit(free);
      expect(n === 0 || (n >= 4 && n * 16 <= free)).toBe(true);
      expect(wantedStock(0, free)).toBeLessThanOrEqual(Math.max(n, 0));
    }));
  });
});

/** A store that answers every transaction as succeeded at revision 7, and lets the test send watch events. */
function fakeStore() {
  const txns: { what: string; compare: Compare[]; then: Op[] }[] = [];
  let onResult: ((res: Record<string, unknown>) => void) | undefined;
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const client = {
    txn: async (what: string, compare: Compare[], then: Op[]) => {
      txns.push({ what, compare, then });
      return { succeeded: true, revision: 7, reads: [] };
    },
    range: async () => ({ revision: 1, kvs: [] }),
    stream: async (_path: string, _body: unknown, h: StreamHandlers) => {
      onResult = h.onResult;
      return { close: () => undefined };
    },
    onUnavailable: () => () => undefined,
  } as unknown as StoreClient;
  const event = (key: string, value: unknown) => onResult!({ events: [{ kv: { key: b64(key), value: b64(JSON.stringify(value)) } }] });
  return { client, txns, event, watching: () => onResult !== undefined };
}

/** The view of one pool a fake IPAM keeps (no etcd read). */
function fakeIpam(poolId: string) {
  const subnet = parsePrefix('pool', poolId);
  const view: AddressView = { poolRevision: 1, subnet, first: subnet.start + 2n, last: subnet.end - 1n, taken: new Set(), next: subnet.start + 2n };
  const pending = new Set<bigint>();
  return { view, ipam: { poolView: async () => view, pendingOf: () => pending, heldView: () => view, dropView: () => undefined } as unknown as EtcdIpam };
}

const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

describe('the stock\'s answer to another host\'s request for one of its addresses', () => {
  const POOL = '198.19.7.0/24';
  const keys = new Keys('/t');
  let store: ReturnType<typeof fakeStore>;
  let view: AddressView;
  let spares: Spares;
  let stocked: string[];

  beforeEach(async () => {
    store = fakeStore();
    const fake = fakeIpam(POOL);
    view = fake.view;
    spares = new Spares({ client: store.client, keys, hostId: 'a1', ipam: fake.ipam, lease: () => '99', logger: pino({ level: 'silent' }), idleMs: 60_000 });
    spares.hold(POOL);
    await vi.waitFor(() => expect(store.txns.some((t) => t.what === 'claim spare addresses') && store.watching()).toBe(true));
    await settle();
    stocked = store.txns[0]!.then.map((op) => ('put' in op ? op.put.split('/').pop()! : ''));
    store.txns.length = 0;
  });

  afterEach(async () => {
    await spares.dropAll();
  });

  const deletes = () => store.txns.filter((t) => t.what === 'delete a spare address').map((t) => ({ key: (t.then[0] as { del: string }).del, guard: t.compare[0]!.value }));

  it('gives up an address of its ready stock: its key deleted if still as the stock wrote it, kept taken in the view, never handed out', async () => {
    expect(stocked).toEqual(['198.19.7.2', '198.19.7.3', '198.19.7.4', '198.19.7.5']);
    expect(spares.yieldTo(POOL, '198.19.7.2')).toBe(true);
    await settle();
    expect(deletes()).toEqual([{ key: keys.address(POOL, '198.19.7.2'), guard: 7 }]);
    expect(view.taken.has('198.19.7.2')).toBe(true);
    // It was first in line: the next connect gets the one after it.
    expect(spares.take(POOL)?.ip).toBe('198.19.7.3');
    expect(spares.yieldTo(POOL, '198.19.7.2')).toBe(false);
  });

  it('keeps one handed to a connect (its publish makes it the endpoint\'s), and ignores one it does not hold', async () => {
    const out = spares.take(POOL)!;
    expect(spares.yieldTo(POOL, out.ip)).toBe(false);
    expect(spares.yieldTo(POOL, '198.19.7.200')).toBe(false);
    expect(spares.yieldTo('198.19.8.0/24', '198.19.8.3')).toBe(false);
    await settle();
    expect(deletes()).toEqual([]);
    // Its connect failed before the publish: back in stock, it can be given up again.
    spares.giveBack(POOL, out);
    expect(spares.yieldTo(POOL, out.ip)).toBe(true);
  });

  it('serves the requests its watch of ipam/wanted/ sees, of other hosts only', async () => {
    store.event(keys.wantedAddress(POOL, '198.19.7.4'), { by: 'b2', at: 'now' });
    store.event(keys.wantedAddress(POOL, '198.19.7.5'), { by: 'a1', at: 'now' });
    await vi.waitFor(() => expect(deletes()).toEqual([{ key: keys.address(POOL, '198.19.7.4'), guard: 7 }]));
    await settle();
    expect(deletes()).toHaveLength(1);
  });
});
