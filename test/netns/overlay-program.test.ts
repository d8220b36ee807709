// The overlay's peer programmer against a real VXLAN device: an incremental batch whose netlink
// datagram fails (an entry removed behind cnmkit's back) is redone one write at a time for the
// peers it changes only — the entries of the other peers stay; on a device made just now the first
// batch writes without reading the kernel first, and a resync reads it. Checked with `ip -j neigh/fdb`.
import { expect, it } from 'vitest';
import { PeerProgrammer } from '../../drivers/overlay/program.js';
import type { Peer, PeerBatch } from '../../src/cluster/types.js';
import { addVxlan, getLink } from '../../src/netlink/index.js';
import { makeNs, type TestNs } from '../helpers/netns.js';
import { describeRoot } from '../helpers/root.js';
import { handleOn } from './netlink-helpers.js';

const peer = (n: number): Peer => ({
  network: 'n1', host: `h${n}`, endpointId: `e${n}`, ip: `10.203.0.${n}`, mac: `02:00:00:00:00:0${n}`, vtep: `198.18.3.${n}`,
});

function batch(peers: Peer[], changes: PeerBatch['changes'], resync = false): PeerBatch {
  return { network: 'n1', resync, revision: 1, changes, peers: new Map(peers.map((p) => [`${p.host}/${p.endpointId}`, p])) };
}

async function neighbours(ns: TestNs): Promise<string[]> {
  const rows = await ns.ipJson<{ dst: string; lladdr?: string }[]>(['neigh', 'show', 'dev', 'vx0']);
  return rows.map((r) => `${r.dst} ${r.lladdr ?? ''}`).sort();
}

async function fdb(ns: TestNs): Promise<string[]> {
  const out = await ns.exec(['bridge', '-j', 'fdb', 'show', 'dev', 'vx0']);
  const rows = JSON.parse(out.stdout) as { mac: string; dst?: string }[];
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
});
