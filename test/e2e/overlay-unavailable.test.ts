// The overlay when something it needs is missing (issue 11, from a review). The cluster store
// away while a daemon restarts: its kernel entries are kept (nothing removes them, forwarding goes
// on), and check says the peer entries could not be compared (exit 3) instead of calling them
// stale, still checks the devices, and is clean again once etcd is back (before the restart, it
// compares them with the peers as last read, and says that). An advertise address on no
// interface of the host: the daemon starts with a warning, cluster status, cluster hosts and check
// (of an overlay the host has) say it, a connect is refused naming it (the network not adopted), and once the address is added a connect works without
// a restart; a daemon restarted while its address is gone starts, keeping its overlay as it is,
// also after a reboot (its devices gone too: made by the next connect once the address is back).
// `network ls` and `inspect` while etcd is away show what the host has and warn on stderr (exit 0).
// Checked with iproute2, ping and etcd's keys.
import { expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { simSuite } from '../helpers/sim-suite.js';
import { pings, simCli, type SimCluster, type SimHost, simJoined, waitFor } from '../helpers/cluster.js';
import { permanentEntries } from '../helpers/entries.js';

interface Ep { id: string; ipv4?: string; macAddress?: string }
interface Checked { network: string; items: { object: string; what: string; expected: string; found: string }[]; unchecked?: { object: string; what: string; reason: string }[] }

let sim: SimCluster;
const made: { h: SimHost; sb: string }[] = [];
/** Host 3 advertises this address, which none of its interfaces has until a test adds it. */
const ABSENT = '198.19.255.13';

const ip = (cidr: string | undefined): string => cidr!.split('/')[0]!;

async function vniOf(h: SimHost, net: string): Promise<number> {
  return (JSON.parse(await simCli(h, ['network', 'inspect', net, '--format', 'json'])) as { global: { vni: number } }[])[0]!.global.vni;
}

async function checkJson(h: SimHost): Promise<{ code: number; nets: Checked[] }> {
  const r = await h.daemon.cmd(['check', '--format', 'json']);
  return { code: r.code, nets: JSON.parse(r.stdout) as Checked[] };
}

/**
 * A reboot of host h as far as the overlay sees it: its daemon killed, the network's devices gone
 * (its namespaces would go too: the caller's host has no sandbox on it), its address not back yet.
 */
/** Until h's daemon is registered in the cluster again (its retries run on a backoff; 15 s at most). */
async function registered(h: SimHost, who: string): Promise<void> {
  await waitFor(`${who} registered`, async () => ((JSON.parse(await simCli(h, ['cluster', 'status', '--format', 'json'])) as { state: string }).state === 'connected' ? true : undefined), 15_000);
}

async function rebootWithoutAddress(h: SimHost, vni: number): Promise<void> {
  await h.daemon.stop('SIGKILL');
  await h.ns.sh(['ip', 'link', 'del', `ovbr${vni}`]);
  await h.ns.sh(['ip', 'link', 'del', `ovvx${vni}`]);
  await h.ns.sh(['ip', 'addr', 'del', `${h.ip}/24`, 'dev', 'eth0']);
}

describeRoot('overlay: the cluster store or the advertise address missing', () => {
  // Host 2 advertises its address as such (not by its interface), so that it may restart without it.
  simSuite({ hosts: 3, leaseTtl: 3, advertise: (i) => (i === 3 ? ABSENT : i === 2 ? '198.19.255.2' : 'eth0') }, made, (s) => {
    sim = s;
  });

  it('etcd away while a daemon restarts: its entries stay and forward; check names the store as unavailable (exit 3), not every entry as stale; clean once etcd is back', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.240.0/24', 'ovu']);
    const vx = `ovvx${await vniOf(h1, 'ovu')}`;
    const a = await simJoined<Ep>(h1, 'ovu', made);
    const b = await simJoined<Ep>(h2, 'ovu', made);
    expect(await h2.daemon.cmd(['check'])).toMatchObject({ code: 0 });
    const before = await permanentEntries(h2.ns, vx);
    expect(before).toEqual([`${ip(a.ep.ipv4)} ${a.ep.macAddress}`, `00:00:00:00:00:00 ${h1.ip} permanent`, `${a.ep.macAddress} ${h1.ip} permanent`].sort());
    await sim.etcd.stop();
    try {
      // Before the restart h2 has read the peers: they are compared with that read, and check says so.
      const last = await waitFor('h2\'s watch lost etcd', async () => {
        const r = await checkJson(h2);
        return r.code === 3 ? r : undefined;
      }, 5000);
      const first = last.nets.find((n) => n.network === 'ovu')!;
      expect(first.items).toEqual([]);
      expect(first.unchecked).toContainEqual({ object: 'network ovu', what: 'peers', reason: expect.stringContaining('compared with the peer records as last read') as string });
      // Until h2 knows etcd away, a read of its leftovers there may fail too: not compared (not drift), with why.
      expect(first.unchecked!.every((u) => u.what === 'peers' || (u.what === 'leftovers' && u.reason.includes('cluster store unavailable')))).toBe(true);
      await h2.daemon.stop('SIGKILL');
      await h2.daemon.start();
      const text = await h2.daemon.cmd(['check']);
      expect(text.code).toBe(3);
      expect(text.stdout).toContain('cluster store unavailable');
      expect(text.stdout).not.toContain('stale');
      const { code, nets } = await checkJson(h2);
      expect(code).toBe(3);
      const ovu = nets.find((n) => n.network === 'ovu')!;
      expect(ovu.items).toEqual([]);
      expect(ovu.unchecked).toEqual([{ object: 'network ovu', what: 'peers', reason: expect.stringContaining('cluster store unavailable') as string }]);
      expect(ovu.unchecked![0]!.reason).toContain('2 FDB and 1 neighbour entries');
      expect(nets.filter((n) => n.network !== 'ovu').every((n) => n.unchecked === undefined && n.items.length === 0)).toBe(true);
      // What can be checked locally still is: a VXLAN device with learning turned on is drift (exit 1).
      await h2.ns.sh(['ip', 'link', 'set', vx, 'type', 'vxlan', 'learning']);
      const drift = await checkJson(h2);
      expect(drift.code).toBe(1);
      expect(drift.nets.find((n) => n.network === 'ovu')!.items).toEqual([expect.objectContaining({ what: 'vxlan', found: 'learning on' })]);
      await h2.ns.sh(['ip', 'link', 'set', vx, 'type', 'vxlan', 'nolearning']);
      // Past the lease TTL, with the store still away: nothing removed, forwarding goes on.
      await new Promise((r) => setTimeout(r, (sim.leaseTtl + 2) * 1000));
      expect(await permanentEntries(h2.ns, vx)).toEqual(before);
      expect(await pings(b.sb, ip(a.ep.ipv4))).toBe(true);
    } finally {
      await sim.etcd.start();
    }
    await waitFor('check clean once etcd is back', async () => ((await h2.daemon.cmd(['check'])).code === 0 ? true : undefined), 10_000);
    expect(await permanentEntries(h2.ns, vx)).toEqual(before);
    expect(await pings(b.sb, ip(a.ep.ipv4))).toBe(true);
  }, 60_000);

  it('etcd away: network ls lists what the host has, warns on stderr that other hosts\' overlays are not listed, exit 0, JSON unchanged; inspect warns the same way', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.244.0/24', 'ovls']);
    const names = (out: string): string[] => (JSON.parse(out) as { name: string }[]).map((n) => n.name);
    const ok = await h2.daemon.cmd(['network', 'ls', '--format', 'json']);
    expect(ok).toMatchObject({ code: 0, stderr: '' });
    expect(names(ok.stdout)).toContain('ovls');
    await sim.etcd.stop();
    try {
      for (const h of [h1, h2]) {
        const json = await h.daemon.cmd(['network', 'ls', '--format', 'json']);
        expect(json.code).toBe(0);
        expect(json.stderr).toMatch(/^Warning: cluster store unavailable \(.*\): overlay networks of other hosts are not listed/);
        // h1 still lists the overlay it created (its own record); h2 cannot know it.
        expect(names(json.stdout).includes('ovls')).toBe(h === h1);
        expect(names(json.stdout)).toContain('bridge');
        const text = await h.daemon.cmd(['network', 'ls']);
        expect(text.code).toBe(0);
        expect(text.stderr).toContain('cluster store unavailable');
        expect(text.stdout).toContain('NETWORK ID');
      }
      // inspect of h1's own record: shown without what the cluster would add, and said (as ls says it, once).
      expect((await h1.daemon.cmd(['network', 'ls'])).stderr.trim().split('\n')).toHaveLength(1);
      const shown = await h1.daemon.cmd(['network', 'inspect', 'ovls']);
      expect(shown.code).toBe(0);
      expect(shown.stderr).toMatch(/^Warning: cluster store unavailable \(.*\): the VNI and hosts of network ovls are not shown\n$/);
      expect(JSON.parse(shown.stdout)).toEqual([expect.not.objectContaining({ global: expect.anything() as unknown })]);
      expect(JSON.parse(shown.stdout)).toEqual([expect.objectContaining({ name: 'ovls', scope: 'global' })]);
    } finally {
      await sim.etcd.start();
    }
    await waitFor('h2 lists ovls again, with no warning', async () => {
      const r = await h2.daemon.cmd(['network', 'ls', '--format', 'json']);
      return r.code === 0 && r.stderr === '' && names(r.stdout).includes('ovls') ? true : undefined;
    }, 10_000);
    await simCli(h1, ['network', 'rm', 'ovls']);
  }, 60_000);

  it('an advertise address on no interface: a warning at start, said by cluster status and cluster hosts, a connect refused naming it (the network not adopted); once added, a connect works without a restart', async () => {
    const [h1, , h3] = sim.hosts as [SimHost, SimHost, SimHost];
    const warned = h3.daemon.log.split('\n').filter((l) => l.includes(`the advertise address ${ABSENT} (--advertise-addr) is on no interface of this host`));
    expect(warned.map((l) => (JSON.parse(l) as { level: number }).level)).toEqual([40]);
    const status = JSON.parse(await simCli(h3, ['cluster', 'status', '--format', 'json'])) as { vtep: string; vtepInterface: string | null };
    expect(status).toMatchObject({ vtep: ABSENT, vtepInterface: null });
    expect(await simCli(h3, ['cluster', 'status'])).toContain(`vtep: ${ABSENT} (on no interface of this host`);
    const hosts = JSON.parse(await simCli(h3, ['cluster', 'hosts', '--format', 'json'])) as { vtep: string; self: boolean; vtepInterface?: string | null }[];
    expect(hosts.find((h) => h.self)).toMatchObject({ vtep: ABSENT, vtepInterface: null });
    expect(hosts.filter((h) => !h.self).every((h) => !('vtepInterface' in h))).toBe(true);
    expect(await simCli(h3, ['cluster', 'hosts'])).toContain(`${ABSENT} (on no interface here)`);
    expect(JSON.parse(await simCli(h1, ['cluster', 'status', '--format', 'json']))).toMatchObject({ vtep: h1.ip, vtepInterface: 'eth0' });

    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.241.0/24', 'ovv']);
    const vni = await vniOf(h1, 'ovv');
    const a = await simJoined<Ep>(h1, 'ovv', made);
    const sb = await h3.daemon.sandbox();
    made.push({ h: h3, sb });
    const refused = await h3.daemon.cmd(['connect', 'ovv', sb]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`the advertise address ${ABSENT} (--advertise-addr) is on no interface of this host`);
    expect((await h3.ns.sh(['ip', '-br', 'link'])).split('\n').filter((l) => l.startsWith(`ovbr${vni}`) || l.startsWith(`ovvx${vni}`))).toEqual([]);
    const created = await h3.daemon.cmd(['network', 'create', '-d', 'overlay', '--internal', '-o', 'com.docker.network.driver.mtu=1400', '--subnet', '198.19.242.0/24', 'ovw']);
    expect(created.code).toBe(1);
    expect(created.stderr).toContain(`the advertise address ${ABSENT} (--advertise-addr) is on no interface of this host`);
    const client = sim.etcd.client();
    try {
      expect((await client.range('/cnmkit/v1/')).kvs.map((kv) => kv.key).filter((k) => k.split('/').includes('ovw'))).toEqual([]);
    } finally {
      client.close();
    }
    expect((await h3.daemon.cmd(['network', 'inspect', 'ovw'])).code).toBe(1);
    // The refused connect did not adopt ovv here: check has no overlay of h3's to name the address on (the restart test below has one).
    const unadopted = await checkJson(h3);
    expect(unadopted.code).toBe(0);
    expect(unadopted.nets.map((n) => n.network)).not.toContain('ovv');

    await h3.ns.sh(['ip', 'addr', 'add', `${ABSENT}/24`, 'dev', 'eth0']);
    try {
      expect(JSON.parse(await simCli(h3, ['cluster', 'status', '--format', 'json']))).toMatchObject({ vtepInterface: 'eth0' });
      const c = await simJoined<Ep>(h3, 'ovv', made);
      await waitFor('h1 reaches h3 across the overlay', async () => ((await pings(a.sb, ip(c.ep.ipv4))) ? true : undefined), 5000);
      expect(await pings(c.sb, ip(a.ep.ipv4))).toBe(true);
      expect(await h3.daemon.cmd(['check'])).toMatchObject({ code: 0 });
    } finally {
      // h3's sandboxes go while it still has the address (their peers leave through its VTEP's network).
      for (const m of made.filter((m) => m.h === h3)) await simCli(h3, ['sandbox', 'rm', m.sb]);
      made.splice(0, made.length, ...made.filter((m) => m.h !== h3));
      await h3.ns.sh(['ip', 'addr', 'del', `${ABSENT}/24`, 'dev', 'eth0']);
    }
  }, 60_000);

  it('a daemon restarted while its advertise address is gone: it starts, keeps its overlay devices and entries, check names the address; back, traffic flows', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.243.0/24', 'ovx']);
    const vx = `ovvx${await vniOf(h1, 'ovx')}`;
    const a = await simJoined<Ep>(h1, 'ovx', made);
    const b = await simJoined<Ep>(h2, 'ovx', made);
    const before = await permanentEntries(h2.ns, vx);
    const links = async () => (await h2.ns.sh(['ip', '-br', 'link', 'show', 'group', String(0x636e6f76)])).trim().split('\n').map((l) => l.split(/[\s@]/)[0]).sort();
    const devices = await links();
    await h2.daemon.stop('SIGKILL');
    await h2.ns.sh(['ip', 'addr', 'del', `${h2.ip}/24`, 'dev', 'eth0']);
    try {
      await h2.daemon.start();
      expect(await links()).toEqual(devices);
      expect(await permanentEntries(h2.ns, vx)).toEqual(before);
      const drift = await checkJson(h2);
      expect(drift.code).toBe(1);
      expect(drift.nets.find((n) => n.network === 'ovx')).toMatchObject({
        items: [expect.objectContaining({ what: 'vtep', found: 'on no interface' })],
        unchecked: [expect.objectContaining({ what: 'peers', reason: expect.stringContaining('cluster store') as string })],
      });
    } finally {
      await h2.ns.sh(['ip', 'addr', 'add', `${h2.ip}/24`, 'dev', 'eth0']);
    }
    await waitFor('b reaches a again', async () => ((await pings(b.sb, ip(a.ep.ipv4))) ? true : undefined), 5000);
    // Without its address h2 reached no etcd either (the underlay's): clean once its watch has listed again.
    await waitFor('check clean on h2', async () => ((await h2.daemon.cmd(['check'])).code === 0 ? true : undefined), 10_000);
    // Its registration is retried on a backoff of its own, which a clean check does not wait for: the next test connects on h2.
    await registered(h2, 'h2');
  }, 60_000);

  it('the same reboot with --advertise-addr eth0 (the interface up, its address not back yet): the daemon starts on the address its last run registered; once the address is back, the overlay works with no restart', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.246.0/24', 'ovboot2']);
    const vni = await vniOf(h1, 'ovboot2');
    const b = await simJoined<Ep>(h2, 'ovboot2', made);
    await rebootWithoutAddress(h1, vni);
    try {
      await h1.daemon.start();
      expect(JSON.parse(await simCli(h1, ['cluster', 'status', '--format', 'json']))).toMatchObject({ vtep: h1.ip, vtepInterface: null });
    } finally {
      await h1.ns.sh(['ip', 'addr', 'add', `${h1.ip}/24`, 'dev', 'eth0']);
    }
    await registered(h1, 'h1');
    const a = await simJoined<Ep>(h1, 'ovboot2', made);
    await waitFor('a reaches b', async () => ((await pings(a.sb, ip(b.ep.ipv4))) ? true : undefined), 10_000);
    expect(await pings(b.sb, ip(a.ep.ipv4))).toBe(true);
  }, 60_000);

  it('a reboot (state dir kept, devices gone) with the advertise address still missing: the daemon starts, keeps its overlay, cluster status says it; once the address is added, the overlay works with no restart', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h2, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.245.0/24', 'ovboot']);
    const vni = await vniOf(h2, 'ovboot');
    const a = await simJoined<Ep>(h1, 'ovboot', made);
    await rebootWithoutAddress(h2, vni);
    try {
      await h2.daemon.start();
      expect(JSON.parse(await simCli(h2, ['cluster', 'status', '--format', 'json']))).toMatchObject({ vtepInterface: null });
      expect((JSON.parse(await simCli(h2, ['network', 'ls', '--format', 'json'])) as { name: string; scope: string }[]).find((n) => n.name === 'ovboot')).toMatchObject({ scope: 'global' });
      expect(h2.daemon.log).toContain('is on no interface of this host');
    } finally {
      await h2.ns.sh(['ip', 'addr', 'add', `${h2.ip}/24`, 'dev', 'eth0']);
    }
    expect(JSON.parse(await simCli(h2, ['cluster', 'status', '--format', 'json']))).toMatchObject({ vtepInterface: 'eth0' });
    // Without its address h2 reached no etcd either (the underlay's): it registers once its next try gets through.
    await registered(h2, 'h2');
    const b = await simJoined<Ep>(h2, 'ovboot', made);
    await waitFor('b reaches a', async () => ((await pings(b.sb, ip(a.ep.ipv4))) ? true : undefined), 10_000);
    expect(await pings(a.sb, ip(b.ep.ipv4))).toBe(true);
    expect((await h2.ns.sh(['ip', '-br', 'link', 'show', 'group', String(0x636e6f76)])).split('\n').map((l) => l.split(/[\s@]/)[0])).toEqual(expect.arrayContaining([`ovbr${vni}`, `ovvx${vni}`]));
    await waitFor('check clean on h2', async () => ((await h2.daemon.cmd(['check'])).code === 0 ? true : undefined), 10_000);
  }, 60_000);
});
