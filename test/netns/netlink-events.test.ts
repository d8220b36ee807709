// Link and address events from a socket of their own: typed new/del for creation and deletion,
// and after an overflow (events the kernel had to drop) a resync that states what is there.
import { spawnSync } from 'node:child_process';
import { expect, it } from 'vitest';
import { addAddress, addVeth, deleteLink, subscribe, type NetlinkEvent } from '../../src/netlink/index.js';
import { describeRoot } from '../helpers/root.js';
import { makeNs } from '../helpers/netns.js';
import { handleOn } from './netlink-helpers.js';

/** Collects events from an async iterator until pred holds on the list (or timeoutMs passes). */
async function collectUntil(it: AsyncIterator<NetlinkEvent>, pred: (seen: NetlinkEvent[]) => boolean, timeoutMs = 5000): Promise<NetlinkEvent[]> {
  const seen: NetlinkEvent[] = [];
  const deadline = Date.now() + timeoutMs;
  while (!pred(seen)) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timed out; saw ${JSON.stringify(seen.map((e) => e.type))}`);
    const next = await Promise.race([it.next(), new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), left))]);
    if (next === 'timeout' || next.done) continue;
    seen.push(next.value);
  }
  return seen;
}

const linkEvent = (type: 'new-link' | 'del-link', name: string) => (e: NetlinkEvent): boolean => e.type === type && e.link.name === name;

describeRoot('netlink events', () => {
  it('reports creation and deletion of links and addresses, typed', async () => {
    const ns = await makeNs('evt');
    const h = handleOn(ns);
    const sub = subscribe(h, { overflowCheckMs: 0 });
    const it = sub[Symbol.asyncIterator]();
    try {
      await addVeth(h, { name: 'ev0', peer: { name: 'ev1' } });
      await addAddress(h, 'ev0', '10.220.0.1/24');
      const created = await collectUntil(it, (s) => s.some(linkEvent('new-link', 'ev0')) && s.some(linkEvent('new-link', 'ev1')) && s.some((e) => e.type === 'new-address'));
      expect(created.find(linkEvent('new-link', 'ev0'))).toMatchObject({ link: { kind: 'veth', name: 'ev0' } });
      expect(created.find((e) => e.type === 'new-address')).toMatchObject({ address: { cidr: '10.220.0.1/24', family: 4 } });
      await deleteLink(h, 'ev0');
      const deleted = await collectUntil(it, (s) => s.some(linkEvent('del-link', 'ev0')) && s.some(linkEvent('del-link', 'ev1')));
      expect(deleted.find(linkEvent('del-link', 'ev1'))).toMatchObject({ type: 'del-link', link: { kind: 'veth', name: 'ev1' } });
      expect(deleted.some((e) => e.type === 'del-address' && e.address.cidr === '10.220.0.1/24')).toBe(true);
    } finally {
      sub.close();
    }
    expect((await it.next()).done).toBe(true);
  });

  it('delivers to a callback as well', async () => {
    const ns = await makeNs('evc');
    const h = handleOn(ns);
    const got: NetlinkEvent[] = [];
    const sub = subscribe(h, { addresses: false, overflowCheckMs: 0, onEvent: (e) => got.push(e) });
    try {
      await addVeth(h, { name: 'cb0', peer: { name: 'cb1' } });
      await deleteLink(h, 'cb0');
      const deadline = Date.now() + 5000;
      while (!got.some(linkEvent('del-link', 'cb1')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(got.filter((e) => e.type === 'del-link').map((e) => (e as { link: { name: string } }).link.name).sort()).toEqual(['cb0', 'cb1']);
      // The namespace's name may go while subscribed: the drop counter is still readable.
      await ns.delete();
      expect(await sub.checkOverflow()).toBe(false);
    } finally {
      sub.close();
    }
  });

  it('survives an overflow and resyncs with the full current state', async () => {
    const ns = await makeNs('ovf');
    const h = handleOn(ns);
    const sub = subscribe(h, { receiveBuffer: 4096, overflowCheckMs: 0, addresses: false });
    const it = sub[Symbol.asyncIterator]();
    try {
      const batch = Array.from({ length: 200 }, (_, i) => `link add of${i} type bridge\n`).join('');
      // The event loop is blocked while iproute2 runs: the small socket buffer must overflow.
      const r = spawnSync('ip', ['-n', ns.name, '-batch', '-'], { input: batch });
      expect(r.status).toBe(0);
      expect(await sub.checkOverflow()).toBe(true);
      expect(sub.dropped).toBeGreaterThan(0);
      const seen = await collectUntil(it, (s) => s.some((e) => e.type === 'resync'));
      const resync = seen.find((e) => e.type === 'resync');
      const names = (resync as { links: { name: string }[] }).links.map((l) => l.name).sort();
      expect(names).toEqual((await ns.linkNames()).sort());
      expect(names).toHaveLength(201);
      expect(resync).toMatchObject({ reason: 'overflow' });
      expect(seen.filter((e) => e.type === 'new-link').length).toBeLessThan(200);
      expect(await sub.checkOverflow()).toBe(false);
    } finally {
      sub.close();
    }
  });
});
