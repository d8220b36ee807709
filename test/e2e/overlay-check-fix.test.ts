// `cnmkit check --fix` on an overlay, on two simulated hosts with a real etcd: a remote peer's FDB
// entry deleted and its neighbour entry changed by hand on host 1's VXLAN device (the sandbox there
// then cannot reach the peer), `check` names both (exit 1), `check --fix` repairs both and says so
// (text and JSON, exit 0), `check` is clean again, and a ping across works. The kernel entries are
// read with `bridge -j fdb` and `ip -j neigh` in host 1's namespace. A VXLAN device deleted by
// hand is not made again by check --fix, which says so and that a restart makes it (then checked).
// The named check of an overlay a host has no endpoint on finds it (as network inspect does).
// Also: `check --help` names --fix.
import { expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { simSuite } from '../helpers/sim-suite.js';
import { pings, simCli, type SimCluster, type SimHost, simJoined, simVni, waitFor } from '../helpers/cluster.js';
import { run } from '../helpers/exec.js';
import { fdbRows, neighRows } from '../helpers/entries.js';

interface Ep { ipv4?: string; macAddress: string }
interface Item { object: string; what: string; expected: string; found: string }
interface Checked { network: string; items: Item[]; repaired?: Item[]; repairFailed?: string }

let sim: SimCluster;
const made: { h: SimHost; sb: string }[] = [];
const WRONG_MAC = '02:42:00:00:00:99';

const ip = (cidr: string | undefined): string => cidr!.split('/')[0]!;

async function fdbOf(h: SimHost, vx: string, mac: string): Promise<{ dst?: string; state?: string }[]> {
  return (await fdbRows(h.ns, vx)).filter((e) => e.mac === mac);
}

async function neighOf(h: SimHost, vx: string, addr: string): Promise<{ lladdr?: string; state?: string[] }[]> {
  return (await neighRows(h.ns, vx)).filter((n) => n.dst === addr);
}


describeRoot('overlay: check --fix', () => {
  simSuite({ hosts: 2, leaseTtl: 5 }, made, (s) => {
    sim = s;
  });

  it('repairs a remote peer\'s FDB entry deleted and its neighbour entry changed by hand; check is clean after, and a ping across works again', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.230.0/24', 'ovfix']);
    const vx = `ovvx${await simVni(h1, 'ovfix')}`;
    const a = await simJoined<Ep>(h1, 'ovfix', made);
    const b = await simJoined<Ep>(h2, 'ovfix', made);
    const bIp = ip(b.ep.ipv4);
    await waitFor('host 1 programs b', async () => ((await h1.daemon.cmd(['network', 'inspect', '--check', 'ovfix'])).code === 0 ? true : undefined), 5000);
    expect(await fdbOf(h1, vx, b.ep.macAddress)).toEqual([expect.objectContaining({ dst: h2.ip, state: 'permanent' })]);

    await h1.ns.sh(['bridge', 'fdb', 'del', b.ep.macAddress, 'dev', vx, 'dst', h2.ip, 'self']);
    await h1.ns.sh(['ip', 'neigh', 'replace', bIp, 'lladdr', WRONG_MAC, 'dev', vx, 'nud', 'permanent']);
    expect(await fdbOf(h1, vx, b.ep.macAddress)).toEqual([]);
    expect(await neighOf(h1, vx, bIp)).toEqual([expect.objectContaining({ lladdr: WRONG_MAC })]);
    // The VXLAN device answers a's ARP for b with the wrong MAC: b is not reached.
    expect(await pings(a.sb, bIp)).toBe(false);

    const drift = await h1.daemon.cmd(['check']);
    expect(drift.code).toBe(1);
    const fdbRow = new RegExp(`^ovfix +network ovfix +fdb +${b.ep.macAddress} via ${h2.ip.replace(/\./g, '\\.')} on ${vx} +missing$`, 'm');
    const neighRow = new RegExp(`^ovfix +network ovfix +neighbour +${bIp.replace(/\./g, '\\.')} lladdr ${b.ep.macAddress} permanent on ${vx} +lladdr ${WRONG_MAC}$`, 'm');
    expect(drift.stdout).toMatch(fdbRow);
    expect(drift.stdout).toMatch(neighRow);

    const fixed = await h1.daemon.cmd(['check', '--fix']);
    expect(fixed).toMatchObject({ code: 0, stderr: '' });
    expect(fixed.stdout).toMatch(/^repaired 2 differences:$/m);
    expect(fixed.stdout).toMatch(fdbRow);
    expect(fixed.stdout).toMatch(neighRow);
    expect(fixed.stdout).toMatch(/^no drift: \d+ networks? checked \(.*ovfix.*\)$/m);
    expect(fixed.stdout).not.toContain('not repaired');

    expect(await fdbOf(h1, vx, b.ep.macAddress)).toEqual([expect.objectContaining({ dst: h2.ip, state: 'permanent' })]);
    expect(await neighOf(h1, vx, bIp)).toEqual([expect.objectContaining({ lladdr: b.ep.macAddress, state: ['PERMANENT'] })]);
    expect(await h1.daemon.cmd(['check'])).toMatchObject({ code: 0 });
    // a's own cache still holds the wrong MAC the VXLAN device gave it; once it asks again, the right one answers.
    await run(['ip', '-n', a.sb, 'neigh', 'flush', 'all']);
    expect(await pings(a.sb, bIp)).toBe(true);

    // The same in JSON: what was repaired, with what was found before; nothing left.
    await h1.ns.sh(['bridge', 'fdb', 'del', b.ep.macAddress, 'dev', vx, 'dst', h2.ip, 'self']);
    const json = await h1.daemon.cmd(['check', '--fix', '--format', 'json']);
    expect(json.code).toBe(0);
    const ovfix = (JSON.parse(json.stdout) as Checked[]).find((c) => c.network === 'ovfix')!;
    expect(ovfix.items).toEqual([]);
    expect(ovfix.repairFailed).toBeUndefined();
    expect(ovfix.repaired).toEqual([{ object: 'network ovfix', what: 'fdb', expected: `${b.ep.macAddress} via ${h2.ip} on ${vx}`, found: 'missing' }]);
    expect(await fdbOf(h1, vx, b.ep.macAddress)).toEqual([expect.objectContaining({ dst: h2.ip, state: 'permanent' })]);
  });

  it('a VXLAN device deleted by hand: check --fix says it is not made again and that a restart makes it (no kernel error), and the restart does', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.231.0/24', 'ovdel']);
    const vx = `ovvx${await simVni(h1, 'ovdel')}`;
    const a = await simJoined<Ep>(h1, 'ovdel', made);
    const b = await simJoined<Ep>(h2, 'ovdel', made);
    await waitFor('host 1 programs b', async () => ((await h1.daemon.cmd(['network', 'inspect', '--check', 'ovdel'])).code === 0 ? true : undefined), 5000);
    await h1.ns.sh(['ip', 'link', 'del', vx]);

    const fixed = await h1.daemon.cmd(['network', 'inspect', '--check', '--fix', 'ovdel']);
    expect(fixed.code).toBe(1);
    expect(fixed.stdout).toContain(`repair of network ovdel stopped: its VXLAN device ${vx} is missing (deleted by hand?): check --fix does not make it again; restarting the daemon does (its start makes the network's devices and programs its peers)`);
    expect(fixed.stdout).toMatch(new RegExp(`^ovdel +network ovdel +device +vxlan ${vx} in the host namespace +missing$`, 'm'));
    const json = await h1.daemon.cmd(['network', 'inspect', '--check', '--fix', '--format', 'json', 'ovdel']);
    expect((JSON.parse(json.stdout) as Checked[])[0]!.repairFailed).toMatch(new RegExp(`^its VXLAN device ${vx} is missing`));

    await h1.daemon.stop();
    await h1.daemon.start();
    await waitFor('host 1 clean after its restart', async () => ((await h1.daemon.cmd(['network', 'inspect', '--check', 'ovdel'])).code === 0 ? true : undefined), 5000);
    expect(await fdbOf(h1, vx, b.ep.macAddress)).toEqual([expect.objectContaining({ dst: h2.ip, state: 'permanent' })]);
    expect(await pings(a.sb, ip(b.ep.ipv4))).toBe(true);
  });

  it('network inspect --check [--fix] of an overlay this host has no endpoint on (network inspect shows it): nothing here differs, nothing changes', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.232.0/24', 'ovaway']);
    await waitFor('host 2 sees the network', async () => ((await h2.daemon.cmd(['network', 'inspect', 'ovaway'])).code === 0 ? true : undefined), 5000);
    const links = async () => (await h2.ns.sh(['ip', '-br', 'link'])).split('\n').filter((l) => l.startsWith('ov')).sort();
    const before = await links();
    const checked = await h2.daemon.cmd(['network', 'inspect', '--check', 'ovaway']);
    expect(checked).toMatchObject({ code: 0, stderr: '' });
    expect(checked.stdout).toMatch(/^no drift: 1 network checked \(ovaway\)$/m);
    const fixed = await h2.daemon.cmd(['network', 'inspect', '--check', '--fix', '--format', 'json', 'ovaway']);
    expect(fixed).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(fixed.stdout)).toMatchObject([{ network: 'ovaway', driver: 'overlay', items: [], repaired: [] }]);
    expect(await links()).toEqual(before);
    expect(await h2.daemon.cmd(['network', 'ls', '--format', 'json'])).toMatchObject({ code: 0 });
    // It stays a network of the cluster only here: no record made by the check.
    expect((await h2.daemon.cmd(['check'])).stdout).not.toContain('ovaway');
  });

  it('check --help names --fix', async () => {
    const help = await sim.hosts[0]!.daemon.cmd(['check', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^ +--fix +repair what differs/m);
  });
});
