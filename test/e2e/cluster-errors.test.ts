// What cluster mode's errors tell a user (issue 11, from a review). While etcd is stopped,
// `cluster status` and `check` (text and JSON) say "cluster store unavailable", naming the store as
// --cluster-store does, since when and for how long, and what still works — never the etcd key of
// the call that failed (another network's, as likely as not); their exit codes stay the documented
// ones (0, and 3 for check), and existing endpoints do keep forwarding (a real ping).
// Checked against the daemons' CLI, etcd's keys and real pings.
import { expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { simSuite } from '../helpers/sim-suite.js';
import { simCli, simJoined, UNDERLAY_IP, waitFor, type SimCluster, type SimHost } from '../helpers/cluster.js';
import { run } from '../helpers/exec.js';

interface Ep { id: string; ipv4?: string; macAddress?: string }
interface Status { state: string; store?: string; unavailableSince?: string; unavailableFor?: number; error?: string }
interface Checked { network: string; items: unknown[]; unchecked?: { object: string; what: string; reason: string }[] }

let sim: SimCluster;
const made: { h: SimHost; sb: string }[] = [];
const STORE = `etcd://${UNDERLAY_IP}:2379`;

const ip = (cidr: string | undefined): string => cidr!.split('/')[0]!;

async function pings(sb: string, to: string): Promise<boolean> {
  return (await run(['ip', 'netns', 'exec', sb, 'ping', '-c', '1', '-W', '1', to])).stdout.includes('1 received');
}

async function statusOf(h: SimHost): Promise<Status> {
  return JSON.parse(await simCli(h, ['cluster', 'status', '--format', 'json'])) as Status;
}

describeRoot('cluster mode: what its errors tell a user', () => {
  simSuite({ hosts: 2, leaseTtl: 3 }, made, (s) => {
    sim = s;
  });

  it('etcd stopped: cluster status and check say "cluster store unavailable" with the store, since when and for how long, and what still works, naming no etcd key; exit 0 and 3; forwarding goes on', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.230.0/24', 'ovea']);
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.231.0/24', 'oveb']);
    const a = await simJoined<Ep>(h1, 'ovea', made);
    const b = await simJoined<Ep>(h2, 'ovea', made);
    await simJoined<Ep>(h2, 'oveb', made);
    expect(await statusOf(h2)).toMatchObject({ state: 'connected', store: STORE });
    expect((await statusOf(h2)).unavailableSince).toBeUndefined();
    const stopped = Date.now();
    await sim.etcd.stop();
    try {
      const first = await waitFor('h2 finds etcd unavailable', async () => {
        const s = await statusOf(h2);
        return s.state === 'unavailable' ? s : undefined;
      }, 10_000);
      const since = Date.parse(first.unavailableSince ?? '');
      expect(since).toBeGreaterThanOrEqual(stopped - 1000);
      expect(since).toBeLessThanOrEqual(Date.now());
      // For how long: it grows while etcd stays away.
      await waitFor('the outage counted in seconds', async () => ((await statusOf(h2)).unavailableFor! >= 2 ? true : undefined), 10_000);
      const json = await h2.daemon.cmd(['cluster', 'status', '--format', 'json']);
      expect(json.code).toBe(0);
      const s = JSON.parse(json.stdout) as Status;
      expect(s).toMatchObject({ state: 'unavailable', store: STORE, unavailableSince: first.unavailableSince });
      expect(s.error).toMatch(new RegExp(`^cluster store unavailable since ${first.unavailableSince!.replace(/\./g, '\\.')} \\(\\d+ s\\): ${STORE.replace(/\./g, '\\.')} does not answer \\(.+\\)\\. Existing endpoints keep forwarding`));
      expect(s.error).toContain('creating or connecting to overlay networks fails until it answers');
      const text = await h2.daemon.cmd(['cluster', 'status']);
      expect(text.code).toBe(0);
      expect(text.stdout).toContain('state: unavailable\n');
      expect(text.stdout).toContain(`store: ${STORE}\n`);
      expect(text.stdout).toContain(`cluster store unavailable since ${first.unavailableSince}`);
      const checked = await h2.daemon.cmd(['check', '--format', 'json']);
      expect(checked.code).toBe(3);
      const nets = (JSON.parse(checked.stdout) as Checked[]).filter((n) => n.network === 'ovea' || n.network === 'oveb');
      expect(nets).toHaveLength(2);
      for (const n of nets) {
        expect(n.unchecked).toEqual([expect.objectContaining({ object: `network ${n.network}`, what: 'peers' })]);
        expect(n.unchecked![0]!.reason).toMatch(new RegExp(`^cluster store unavailable since ${first.unavailableSince!.replace(/\./g, '\\.')} \\(\\d+ s: ${STORE.replace(/\./g, '\\.')} does not answer\\)`));
      }
      const checkText = await h2.daemon.cmd(['check']);
      expect(checkText.code).toBe(3);
      // No etcd key (of this network or another) in anything a user reads.
      for (const out of [json.stdout, text.stdout, checked.stdout, checkText.stdout]) {
        expect(out).not.toContain('/cnmkit/');
        expect(out).not.toContain('/v1/');
      }
      expect(await pings(b.sb, ip(a.ep.ipv4))).toBe(true);
    } finally {
      await sim.etcd.start();
    }
    const back = await waitFor('h2 connected again', async () => {
      const st = await statusOf(h2);
      return st.state === 'connected' ? st : undefined;
    }, 15_000);
    expect(back.unavailableSince).toBeUndefined();
    expect(back.error).toBeUndefined();
  }, 60_000);
});
