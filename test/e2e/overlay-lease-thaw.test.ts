// A frozen etcd that thaws after the lease TTL (issue 11) on two simulated hosts with a real etcd:
// at the thaw etcd revokes every host's lease (their host records, peers and addresses go), and
// the hosts register again and publish their peers anew a moment later; the other hosts keep the
// entries of peers that went with their lease for a grace, so a ping stream across the thaw
// loses nothing. A host that never comes back still loses its entries everywhere, after its
// lease's TTL and the grace. Checked with ping, `bridge -j fdb` and `ip -j neigh`.
import { expect, it } from 'vitest';
import { PEER_GRACE_MS } from '../../drivers/overlay/linger.js';
import { describeRoot } from '../helpers/root.js';
import { simSuite } from '../helpers/sim-suite.js';
import { SimCluster, simCli, simJoined, simVni, waitFor, type SimHost } from '../helpers/cluster.js';
import { run } from '../helpers/exec.js';
import { fdbRows, neighRows } from '../helpers/entries.js';

interface Ep { ipv4?: string; macAddress?: string }

let sim: SimCluster;
let hosts: SimHost[];
const made: { h: SimHost; sb: string }[] = [];
let vx = '';

const ip = (cidr: string | undefined): string => cidr!.split('/')[0]!;

/** The VXLAN device's static entries on host h: FDB `MAC DST` (its own, `self`) and neighbours `IP MAC`. */
async function entries(h: SimHost): Promise<{ fdb: string[]; neigh: string[] }> {
  const fdb = await fdbRows(h.ns, vx);
  const neigh = await neighRows(h.ns, vx);
  return {
    fdb: fdb.filter((e) => e.flags?.includes('self') && e.dst).map((e) => `${e.mac} ${e.dst}`).sort(),
    neigh: neigh.filter((n) => n.state?.includes('PERMANENT')).map((n) => `${n.dst} ${n.lladdr}`).sort(),
  };
}

const leaseOf = async (h: SimHost): Promise<string> =>
  (JSON.parse(await simCli(h, ['cluster', 'status', '--format', 'json'])) as { lease?: { id: string } }).lease?.id ?? '';

describeRoot('overlay: etcd frozen past the lease TTL', () => {
  simSuite({ hosts: 2, leaseTtl: 3 }, made, async (s) => {
    sim = s;
    hosts = s.hosts;
    await simCli(hosts[0]!, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.212.0/24', 'ovthaw']);
    vx = `ovvx${await simVni(hosts[0]!, 'ovthaw')}`;
  });

  it('etcd SIGSTOPped for TTL + 2 s, then SIGCONTed: every lease is revoked and taken anew, and a ping stream across the thaw loses nothing', async () => {
    const [h1, h2] = hosts as [SimHost, SimHost];
    const a = await simJoined<Ep>(h1, 'ovthaw', made);
    const b = await simJoined<Ep>(h2, 'ovthaw', made);
    await waitFor('a reaches b', async () => ((await run(['ip', 'netns', 'exec', a.sb, 'ping', '-c', '1', '-W', '1', ip(b.ep.ipv4)])).code === 0 ? true : undefined), 5000);
    const leases = [await leaseOf(h1), await leaseOf(h2)];
    // 1 s before the freeze, TTL + 2 s frozen, then past the grace after the thaw (a drop at its end would show).
    const count = Math.round((1 + sim.leaseTtl + 2 + PEER_GRACE_MS / 1000 + 3) / 0.01);
    const pinging = run(['ip', 'netns', 'exec', a.sb, 'ping', '-q', '-c', String(count), '-i', '0.01', '-W', '1', ip(b.ep.ipv4)], { timeoutMs: count * 40 + 10_000 });
    await new Promise((r) => setTimeout(r, 1000));
    sim.etcd.freeze();
    try {
      await new Promise((r) => setTimeout(r, (sim.leaseTtl + 2) * 1000));
    } finally {
      sim.etcd.thaw();
    }
    const out = (await pinging).stdout;
    // The leases were revoked at the thaw: both hosts hold new ones (else nothing was tested).
    await waitFor('both hosts registered on new leases', async () => {
      const now = [await leaseOf(h1), await leaseOf(h2)];
      return now.every((l, i) => l !== '' && l !== leases[i]) ? true : undefined;
    }, 10_000);
    expect(out).toContain(`${count} packets transmitted, ${count} received, 0% packet loss`);
    expect(await entries(h1)).toEqual({ fdb: [`${b.ep.macAddress} ${h2.ip}`, `00:00:00:00:00:00 ${h2.ip}`].sort(), neigh: [`${ip(b.ep.ipv4)} ${b.ep.macAddress}`] });
  }, 90_000);

  it('a host whose daemon is SIGKILLed and never restarted: its entries leave the other host after the lease TTL and the grace', async () => {
    const [h1, h2] = hosts as [SimHost, SimHost];
    await simJoined<Ep>(h1, 'ovthaw', made);
    const b = await simJoined<Ep>(h2, 'ovthaw', made);
    await waitFor('b\'s entries on h1', async () => ((await entries(h1)).neigh.includes(`${ip(b.ep.ipv4)} ${b.ep.macAddress}`) ? true : undefined), 5000);
    await h2.daemon.stop('SIGKILL');
    const killed = Date.now();
    try {
      await waitFor('h2\'s entries gone from h1', async () => {
        const e = await entries(h1);
        return e.fdb.length === 0 && e.neigh.length === 0 ? true : undefined;
      }, (sim.leaseTtl + 4) * 1000 + PEER_GRACE_MS);
      // Its lease runs out first (at most TTL after its last keep-alive), then the grace.
      expect(Date.now() - killed).toBeGreaterThanOrEqual(PEER_GRACE_MS);
    } finally {
      await h2.daemon.start();
    }
  }, 60_000);
});
