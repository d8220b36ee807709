// The overlay's peer programmer against a real VXLAN device: an incremental batch whose netlink
// datagram fails (an entry removed behind cnmkit's back) is redone one write at a time for the
// peers it changes only — the entries of the other peers stay; on a device made just now the first
// batch writes without reading the kernel first, and a resync reads it. A peer that went with its
// host's lease keeps its entries for the grace: they stay when its host publishes it again, go
// when the grace runs out (also when a restarted watch's resync no longer lists it), and go at once
// when another endpoint takes its address or when it was deleted. Checked with `ip -j neigh/fdb`.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PeerProgrammer } from '../../drivers/overlay/program.js';
import type { Peer, PeerBatch } from '../../src/cluster/types.js';
import { addVxlan, getLink } from '../../src/netlink/index.js';
import { makeNs, type TestNs } from '../helpers/netns.js';
import { fdbRows, neighRows } from '../helpers/entries.js';
import { describeRoot } from '../helpers/root.js';
import { handleOn } from './netlink-helpers.js';

const peer = (n: number, o: Partial<Peer> = {}): Peer => ({
  network: 'n1', host: `h${n}`, endpointId: `e${n}`, ip: `10.203.0.${n}`, mac: `02:00:00:00:00:0${n}`, vtep: `198.18.3.${n}`, ...o,
});

function batch(peers: Peer[], changes: PeerBatch['changes'], resync = false): PeerBatch {
  return { network: 'n1', resync, revision: 1, changes, peers: new Map(peers.map((p) => [`${p.host}/${p.endpointId}`, p])) };
}

async function neighbours(ns: TestNs): Promise<string[]> {
  const rows = await neighRows(ns, 'vx0');
  return rows.map((r) => `${r.dst} ${r.lladdr ?? ''}`).sort();
}

async function fdb(ns: TestNs): Promise<string[]> {
  const rows = await fdbRows(ns, 'vx0');
  return rows.filter((r) => r.dst).map((r) => `${r.mac} ${r.dst}`).sort();
}

describeRoot('overlay peer programmer (netlink batches)', () => {
  it('a failed batch of one peer\'s removal leaves the other peers\' entries in place', async () => {
    const ns = await makeNs('ovprog');
    const h = handleOn(ns);
    await addVxlan(h, { name: 'vx0', vni: 4243, local: '198.18.3.9', port: 4789, learning: false, up: true });
    const dev = (await getLink(h, 'vx0')).index;
    const prog = new PeerProgrammer(h, dev, { host: 'h9', vtep: '198.18.3.9' });
    const [a, b] = [peer(1), peer(2)];
    await prog.apply(batch([a, b], [{ kind: 'added', peer: a }, { kind: 'added', peer: b }], true));
    expect(await neighbours(ns)).toEqual([`${a.ip} ${a.mac}`, `${b.ip} ${b.mac}`]);
    // Behind cnmkit's back: a's neighbour entry goes, so the batch deleting it fails (ENOENT).
    await ns.exec(['ip', 'neigh', 'del', a.ip, 'dev', 'vx0']);
    await prog.apply(batch([b], [{ kind: 'removed', peer: a }]));
    expect(await neighbours(ns)).toEqual([`${b.ip} ${b.mac}`]);
    expect(await fdb(ns)).toEqual([`00:00:00:00:00:00 ${b.vtep}`, `${b.mac} ${b.vtep}`].sort());
  });

  it('a device made just now: the first batch writes without a dump; a resync dumps and puts right what changed behind its back', async () => {
    const ns = await makeNs('ovprog');
    const h = handleOn(ns);
    await addVxlan(h, { name: 'vx0', vni: 4244, local: '198.18.3.9', port: 4789, learning: false, up: true });
    const dev = (await getLink(h, 'vx0')).index;
    const dumps: string[] = [];
    const dump = h.dump.bind(h);
    h.dump = (op, type, body) => {
      dumps.push(op);
      return dump(op, type, body);
    };
    const prog = new PeerProgrammer(h, dev, { host: 'h9', vtep: '198.18.3.9' }, true);
    const [a, b] = [peer(1), peer(2)];
    await prog.apply(batch([a], [{ kind: 'added', peer: a }]));
    expect(dumps).toEqual([]);
    expect(await neighbours(ns)).toEqual([`${a.ip} ${a.mac}`]);
    expect(await fdb(ns)).toEqual([`00:00:00:00:00:00 ${a.vtep}`, `${a.mac} ${a.vtep}`].sort());
    // Behind cnmkit's back: a stray entry; the resync reads the kernel and removes it.
    await ns.exec(['ip', 'neigh', 'add', '10.203.0.77', 'lladdr', '02:00:00:00:00:77', 'dev', 'vx0', 'nud', 'permanent']);
    await prog.apply(batch([a, b], [{ kind: 'added', peer: b }], true));
    expect(dumps.length).toBeGreaterThan(0);
    expect(await neighbours(ns)).toEqual([`${a.ip} ${a.mac}`, `${b.ip} ${b.mac}`]);
  });

  describe('peers that went with their host\'s lease', () => {
    const GRACE = 400;
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    /** Polls until ok() holds, failing after ms. */
    const waitFor = async (what: string, ok: () => Promise<true | undefined>, ms: number): Promise<void> => {
      for (const end = Date.now() + ms; !(await ok()); await sleep(20)) if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    };
    const entriesOf = (...ps: Peer[]) => ({
      neigh: ps.map((p) => `${p.ip} ${p.mac}`).sort(),
      fdb: [...new Set(ps.flatMap((p) => [`00:00:00:00:00:00 ${p.vtep}`, `${p.mac} ${p.vtep}`]))].sort(),
    });
    let ns: TestNs;
    let prog: PeerProgrammer;
    const kernel = async () => ({ neigh: await neighbours(ns), fdb: await fdb(ns) });

    beforeEach(async () => {
      ns = await makeNs('ovgrace');
      const h = handleOn(ns);
      await addVxlan(h, { name: 'vx0', vni: 4245, local: '198.18.3.9', port: 4789, learning: false, up: true });
      prog = new PeerProgrammer(h, (await getLink(h, 'vx0')).index, { host: 'h9', vtep: '198.18.3.9' }, true, { graceMs: GRACE });
    });
    afterEach(() => prog.close());

    it('kept through the grace; published again by its host (on a new lease) within it, its entries never go', async () => {
      const [a, b] = [peer(1), peer(2)];
      await prog.apply(batch([a, b], [{ kind: 'added', peer: a }, { kind: 'added', peer: b }]));
      await prog.apply(batch([b], [{ kind: 'removed', peer: a, leaseEnded: true }]));
      expect(await kernel()).toEqual(entriesOf(a, b));
      expect(prog.kept).toEqual([a]);
      expect((await prog.compare()).want).toEqual((await prog.compare()).have);
      await prog.apply(batch([a, b], [{ kind: 'added', peer: a }]));
      expect(prog.kept).toEqual([]);
      await sleep(GRACE + 200);
      expect(await kernel()).toEqual(entriesOf(a, b));
    });

    it('not published again: its entries go when the grace runs out (a flood entry stays while another peer on its VTEP does)', async () => {
      const [a, b] = [peer(1), peer(2)];
      const a2 = peer(3, { host: 'h1', vtep: a.vtep });
      await prog.apply(batch([a, a2, b], [{ kind: 'added', peer: a }, { kind: 'added', peer: a2 }, { kind: 'added', peer: b }]));
      const t0 = Date.now();
      await prog.apply(batch([a2, b], [{ kind: 'removed', peer: a, leaseEnded: true }]));
      await sleep(GRACE / 2);
      expect(await kernel()).toEqual(entriesOf(a, a2, b));
      await waitFor('a\'s entries gone', async () => ((await neighbours(ns)).length === 2 ? true : undefined), GRACE * 5);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(GRACE);
      expect(await kernel()).toEqual(entriesOf(a2, b));
      expect(prog.kept).toEqual([]);
    });

    it('deleted by its host (no lease ended): its entries go at once', async () => {
      const [a, b] = [peer(1), peer(2)];
      await prog.apply(batch([a, b], [{ kind: 'added', peer: a }, { kind: 'added', peer: b }]));
      await prog.apply(batch([b], [{ kind: 'removed', peer: a }]));
      expect(await kernel()).toEqual(entriesOf(b));
      expect(prog.kept).toEqual([]);
    });

    it('another endpoint takes its IP or its MAC meanwhile: the kept entries go at once and the new owner\'s are programmed', async () => {
      const [a, b, c] = [peer(1), peer(2), peer(3)];
      await prog.apply(batch([a, b, c], ['a', 'b', 'c'].map((_, i) => ({ kind: 'added' as const, peer: [a, b, c][i]! }))));
      await prog.apply(batch([], [{ kind: 'removed', peer: a, leaseEnded: true }, { kind: 'removed', peer: b, leaseEnded: true }, { kind: 'removed', peer: c, leaseEnded: true }]));
      const takesIp = peer(4, { ip: a.ip });
      const takesMac = peer(5, { mac: b.mac });
      await prog.apply(batch([takesIp, takesMac], [{ kind: 'added', peer: takesIp }, { kind: 'added', peer: takesMac }]));
      expect(await kernel()).toEqual(entriesOf(c, takesIp, takesMac));
      // In one batch: a peer whose address a listed peer holds already is not kept at all.
      await prog.apply(batch([takesMac], [{ kind: 'removed', peer: takesIp }]));
      const d = peer(6, { ip: c.ip });
      await prog.apply(batch([takesMac, d], [{ kind: 'removed', peer: c, leaseEnded: true }, { kind: 'added', peer: d }]));
      expect(await kernel()).toEqual(entriesOf(takesMac, d));
      expect(prog.kept).toEqual([]);
    });

    it('a restarted watch\'s resync: the removal it finds keeps the entries for the grace, a resync that lists the peer again ends the grace, one that does not leaves it running', async () => {
      const [a, b] = [peer(1), peer(2)];
      await prog.apply(batch([a, b], [{ kind: 'added', peer: a }, { kind: 'added', peer: b }]));
      await prog.apply(batch([b], [{ kind: 'removed', peer: a, leaseEnded: true }], true));
      expect(await kernel()).toEqual(entriesOf(a, b));
      await prog.apply(batch([a, b], [{ kind: 'added', peer: a }], true));
      expect(prog.kept).toEqual([]);
      await prog.apply(batch([b], [{ kind: 'removed', peer: b, leaseEnded: true }, { kind: 'removed', peer: a, leaseEnded: true }], true));
      await prog.apply(batch([], [], true));
      expect(await kernel()).toEqual(entriesOf(a, b));
      await waitFor('both gone after the grace', async () => ((await neighbours(ns)).length === 0 ? true : undefined), GRACE * 5);
      expect(await fdb(ns)).toEqual([]);
    });
  });
});
