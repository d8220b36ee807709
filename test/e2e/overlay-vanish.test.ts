// A cnmkit sandbox on an overlay whose network namespace is deleted by hand (`ip netns del`), on one
// of two simulated hosts: the namespace takes the sandbox's veth along, and the daemon withdraws the
// endpoint's peer from the cluster at once, so the other host drops its entries for it; the record
// and its address stay until `cnmkit sandbox rm`, which then frees the address.
import { expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { simSuite } from '../helpers/sim-suite.js';
import { simCli, simJoined, simVni, waitFor, type SimCluster, type SimHost } from '../helpers/cluster.js';
import { run } from '../helpers/exec.js';

interface Ep { ipv4?: string; macAddress?: string }

let sim: SimCluster;
let hosts: SimHost[];
const made: { h: SimHost; sb: string }[] = [];
let vx = '';

const ip = (cidr: string | undefined): string => cidr!.split('/')[0]!;

const neighbours = async (h: SimHost): Promise<string> => (await h.ns.sh(['ip', 'neigh', 'show', 'dev', vx])).trim();

async function peerIps(): Promise<string[]> {
  const client = sim.etcd.client();
  try {
    return (await client.range('/cnmkit/v1/peers/ovvanish/')).kvs.map((kv) => (JSON.parse(kv.value.toString()) as { ip: string }).ip.split('/')[0]!).sort();
  } finally {
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

    await run(['ip', 'netns', 'del', a.sb]);
    await waitFor('a\'s peer gone from etcd', async () => (JSON.stringify(await peerIps()) === JSON.stringify([ip(b.ep.ipv4)]) ? true : undefined), 3000);
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
});
