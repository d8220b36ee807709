// A cnmkit sandbox on an overlay whose network namespace is deleted by hand (`ip netns del`), on one
// of two simulated hosts: the namespace takes the sandbox's veth along, and the daemon withdraws the
// endpoint's peer from the cluster at once, so the other host drops its entries for it; the record
// and its address stay until `cnmkit sandbox rm`, which then frees the address. And the contrast:
// `sandbox rm` of a sandbox on two overlays deletes its namespace before the endpoints' leaves, yet
// no peer is taken for vanished (no such log line), each is deleted once, and the other host drops them.
import { expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { simSuite } from '../helpers/sim-suite.js';
import { simCli, simJoined, simVni, storedPeers, waitFor, type SimCluster, type SimHost } from '../helpers/cluster.js';
import { keyRange } from '../../src/cluster/client.js';
import { run } from '../helpers/exec.js';

interface Ep { id: string; ipv4?: string; macAddress?: string }

let sim: SimCluster;
let hosts: SimHost[];
const made: { h: SimHost; sb: string }[] = [];
let vx = '';

const ip = (cidr: string | undefined): string => cidr!.split('/')[0]!;

const neighbours = async (h: SimHost, dev = vx): Promise<string> => (await h.ns.sh(['ip', 'neigh', 'show', 'dev', dev])).trim();

const peerIps = async (net = 'ovvanish'): Promise<string[]> => (await storedPeers(sim, net)).map((p) => ip(p.ip)).sort();

/** The daemon's log lines since offset `from` that say an endpoint's interface vanished. */
const vanishLines = (h: SimHost, from: number): string[] => h.daemon.log.slice(from).split('\n').filter((l) => l.includes('vanished'));

async function storeRevision(): Promise<number> {
  const client = sim.etcd.client();
  try {
    return (await client.range('/', { prefix: false })).revision;
  } finally {
    client.close();
  }
}

/** Keys deleted under /cnmkit/ from revision `after` (exclusive) up to the store's revision now, in order (from a watch replaying them). */
async function deletedSince(after: number): Promise<string[]> {
  const client = sim.etcd.client();
  const { revision } = await client.range('/', { prefix: false });
  const deleted: string[] = [];
  let seen = after;
  const stream = await client.stream('/v3/watch', { create_request: { ...keyRange('/cnmkit/', true), start_revision: String(after + 1) } }, {
    onResult: (r) => {
      for (const ev of (r.events ?? []) as { type?: string; kv: { key: string; mod_revision: string } }[]) {
        if (ev.type === 'DELETE') deleted.push(Buffer.from(ev.kv.key, 'base64').toString());
        seen = Math.max(seen, Number(ev.kv.mod_revision));
      }
    },
    onEnd: () => undefined,
  });
  try {
    await waitFor(`the watch replaying revisions up to ${revision}`, async () => (seen >= revision ? true : undefined), 5000);
    return deleted;
  } finally {
    stream.close();
    client.close();
  }
}

describeRoot('overlay sandbox whose namespace is deleted by hand', () => {
  simSuite({ hosts: 2, leaseTtl: 3 }, made, async (s) => {
    sim = s;
    hosts = s.hosts;
    await simCli(hosts[1]!, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.213.0/24', 'ovvanish']);
    vx = `ovvx${await simVni(hosts[1]!, 'ovvanish')}`;
  });

  it('its peer leaves the cluster and the other host at once; sandbox rm then frees its address', async () => {
    const [h1, h2] = hosts as [SimHost, SimHost];
    const a = await simJoined<Ep>(h1, 'ovvanish', made);
    const b = await simJoined<Ep>(h2, 'ovvanish', made);
    const entry = `${ip(a.ep.ipv4)} lladdr ${a.ep.macAddress} PERMANENT`;
    await waitFor('h2 programmed a', async () => ((await neighbours(h2)) === entry ? true : undefined), 5000);
    expect(await peerIps()).toEqual([ip(a.ep.ipv4), ip(b.ep.ipv4)].sort());

    const logFrom = h1.daemon.log.length;
    await run(['ip', 'netns', 'del', a.sb]);
    await waitFor('a\'s peer gone from etcd', async () => (JSON.stringify(await peerIps()) === JSON.stringify([ip(b.ep.ipv4)]) ? true : undefined), 3000);
    // Said once, of this sandbox's endpoint (not of a Docker endpoint).
    const said = vanishLines(h1, logFrom).map((l) => JSON.parse(l) as { msg: string; endpoint: string });
    expect(said).toEqual([expect.objectContaining({ endpoint: `${a.sb}-ovvanish`, msg: expect.stringContaining('its sandbox\'s namespace deleted') as string })]);
    await waitFor('h2 dropped a\'s entries', async () => ((await neighbours(h2)) === '' ? true : undefined), 3000);
    // h1 still holds the record (check names what is missing) and the address, until sandbox rm.
    const check = await h1.daemon.cmd(['check']);
    expect(check.code).not.toBe(0);
    expect(check.stdout).toContain(a.sb);
    const other = await h2.daemon.sandbox();
    made.push({ h: h2, sb: other });
    const taken = await h2.daemon.cmd(['connect', 'ovvanish', other, '--ip', ip(a.ep.ipv4)]);
    expect(taken.code).not.toBe(0);
    expect(taken.stderr).toContain(ip(a.ep.ipv4));
    await simCli(h1, ['sandbox', 'rm', a.sb]);
    made.splice(made.findIndex((m) => m.sb === a.sb), 1);
    const c = await simJoined<Ep>(h2, 'ovvanish', made, ['--ip', ip(a.ep.ipv4)]);
    expect(ip(c.ep.ipv4)).toBe(ip(a.ep.ipv4));
  });

  it('sandbox rm on two overlays: no peer taken for vanished, each deleted once, none left on the other host', async () => {
    const [h1, h2] = hosts as [SimHost, SimHost];
    await simCli(h2, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.214.0/24', 'ovvanish2']);
    const vx2 = `ovvx${await simVni(h2, 'ovvanish2')}`;
    // Two endpoints in one sandbox: the second's leave comes after the first's cluster round trips,
    // long after the namespace (and its veth) went.
    const a = await simJoined<Ep>(h1, 'ovvanish', made);
    const a2 = JSON.parse(await simCli(h1, ['connect', 'ovvanish2', a.sb, '--format', 'json'])) as Ep;
    const b = await simJoined<Ep>(h2, 'ovvanish', made);
    await simCli(h2, ['connect', 'ovvanish2', b.sb]);
    await waitFor('h2 programmed a on both networks', async () => ((await neighbours(h2)) !== '' && (await neighbours(h2, vx2)) !== '' ? true : undefined), 5000);
    const peerKeys = [...(await storedPeers(sim, 'ovvanish', { endpointId: a.ep.id })), ...(await storedPeers(sim, 'ovvanish2', { endpointId: a2.id }))].map((p) => p.key);
    expect(peerKeys).toHaveLength(2);
    const revision = await storeRevision();
    const logFrom = h1.daemon.log.length;

    await simCli(h1, ['sandbox', 'rm', a.sb]);
    made.splice(made.findIndex((m) => m.sb === a.sb), 1);
    expect(await peerIps()).toEqual([ip(b.ep.ipv4)]);
    expect(await storedPeers(sim, 'ovvanish2', { endpointId: a2.id })).toEqual([]);
    await waitFor('h2 dropped a\'s entries on both networks', async () => ((await neighbours(h2)) === '' && (await neighbours(h2, vx2)) === '' ? true : undefined), 3000);
    const deleted = await deletedSince(revision);
    for (const key of peerKeys) expect(deleted.filter((k) => k === key)).toHaveLength(1);
    expect(vanishLines(h1, logFrom)).toEqual([]);
  });
});
