// Rough edges of the overlay's CLI and API (issue 11, from a new user's review), on two simulated
// hosts with a real etcd: a global network named by full id or unique id prefix on a host that has
// no record of it yet (inspect, connect, rm), and an ambiguous prefix refused naming the candidates;
// `network rm` on a host that holds a record while another host has endpoints on the network
// (refused naming that host, nothing changed, skipped by prune; once none has, removed from the
// cluster and from every host; a second rm says not found); `-o encrypted` without a value reaching the overlay's
// refusal (exit 1, as `-o encrypted=true`); and inspect showing the same labels and a real IPv6
// gateway on every host; check ignoring the kernel's own multicast NOARP neighbour entries on the
// VXLAN device (MLD's ff02::16) while still naming a stale unicast one; --aux-address refused on
// an overlay; a local network and an overlay refused the same name, on one host and across hosts; a --mac that is the
// network's own MAC of another of its addresses (02:42 + IPv4) refused, as two hosts' endpoints would share it; a peer's FDB
// entry made not permanent behind cnmkit's back named by check, and made permanent again by a restart's resync; entries
// deleted behind its back written again when the watch re-lists (etcd restarted), no peer having changed. Checked with the CLI's JSON, iproute2 and etcd's keys.
import { expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { simSuite } from '../helpers/sim-suite.js';
import { simCli, simJoined, simKeysNaming, simVni, waitFor, type SimCluster, type SimHost } from '../helpers/cluster.js';
import { fdbRows, neighRows } from '../helpers/entries.js';

interface Ep { id: string; ipv4?: string; ipv6?: string }
interface Subnet { subnet: string; gateway?: string }
interface Net { id: string; name: string; scope: string; labels: Record<string, string>; ipv4: Subnet[]; ipv6: Subnet[]; endpoints: unknown[] }

let sim: SimCluster;
const made: { h: SimHost; sb: string }[] = [];

async function inspect(h: SimHost, ref: string): Promise<Net> {
  return (JSON.parse(await simCli(h, ['network', 'inspect', ref, '--format', 'json'])) as Net[])[0]!;
}

/** The network's bridge and VXLAN devices on host h (read with iproute2). */
async function devices(h: SimHost, vni: number): Promise<string[]> {
  return (JSON.parse(await h.ns.sh(['ip', '-j', 'link', 'show'])) as { ifname: string }[])
    .map((l) => l.ifname).filter((n) => n === `ovbr${vni}` || n === `ovvx${vni}`).sort();
}

const names = async (h: SimHost): Promise<string[]> => (JSON.parse(await simCli(h, ['network', 'ls', '--format', 'json'])) as Net[]).map((n) => n.name);

/** An internal overlay with an endpoint on hosts 1 and 2, once host 1 has programmed host 2's peer (its check clean). */
async function pairProgrammed(name: string, subnet: string) {
  const [h1, h2] = sim.hosts as [SimHost, SimHost];
  await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', subnet, name]);
  const vx = `ovvx${await simVni(h1, name)}`;
  await simJoined<Ep>(h1, name, made);
  const { ep } = await simJoined<Ep & { macAddress: string }>(h2, name, made);
  await waitFor('host 1 programs host 2\'s peer', async () => ((await h1.daemon.cmd(['network', 'inspect', '--check', name])).code === 0 ? true : undefined), 5000);
  return { h1, h2, vx, ep };
}

describeRoot('overlay: CLI and API edges', () => {
  simSuite({ hosts: 2, leaseTtl: 5 }, made, (s) => {
    sim = s;
  });

  it('a global network this host has no record of is found by full id and by unique id prefix (inspect, connect, rm); an ambiguous prefix names the candidates', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    const id = (await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.240.0/24', 'ovid'])).trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(await inspect(h2, id)).toMatchObject({ id, name: 'ovid', scope: 'global' });
    expect(await inspect(h2, id.slice(0, 12))).toMatchObject({ id, name: 'ovid' });
    // A connect by prefix adopts it, as one by name does.
    const { ep } = await simJoined<Ep>(h2, id.slice(0, 10), made);
    expect(ep.ipv4).toMatch(/^198\.19\.240\./);
    expect((await inspect(h2, 'ovid')).endpoints).toHaveLength(1);

    // rm by prefix from a host with no record: removed from the cluster.
    const id2 = (await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.241.0/24', 'ovid2'])).trim();
    expect(await simCli(h2, ['network', 'rm', id2.slice(0, 12)])).toContain(id2.slice(0, 12));
    expect(await simKeysNaming(sim, 'ovid2')).toEqual([]);
    await waitFor('host 1 drops ovid2', async () => ((await names(h1)).includes('ovid2') ? undefined : true), 2000);

    // Networks made on host 1 until two of them share a first hex digit: that digit is ambiguous on host 2.
    const byDigit = new Map<string, string[]>();
    let digit: string | undefined;
    for (let i = 0; digit === undefined && i < 17; i++) {
      const first = (await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', `ovamb${i}`])).trim()[0]!;
      const list = [...(byDigit.get(first) ?? []), `ovamb${i}`];
      byDigit.set(first, list);
      if (list.length === 2) digit = first;
    }
    const amb = await h2.daemon.cmd(['network', 'inspect', digit!]);
    expect(amb.code).toBe(1);
    expect(amb.stderr).toContain('is ambiguous');
    for (const n of byDigit.get(digit!)!) expect(amb.stderr).toContain(n);
    const refused = await h2.daemon.cmd(['network', 'rm', digit!]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('is ambiguous');
    for (const n of [...byDigit.values()].flat()) await simCli(h1, ['network', 'rm', n]);
  });

  it('network rm on a host that holds a record while another host has endpoints: refused naming that host, nothing changed; then removed everywhere; a second rm says not found', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.242.0/24', 'ovheld']);
    const vni = await simVni(h1, 'ovheld');
    const b = await simJoined<Ep>(h2, 'ovheld', made);
    const keys = await simKeysNaming(sim, 'ovheld');

    const refused = await h1.daemon.cmd(['network', 'rm', 'ovheld']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`(${h2.ip})`);
    expect(refused.stderr).toContain('disconnect them there first');
    expect(await simKeysNaming(sim, 'ovheld')).toEqual(keys);
    expect((await inspect(h1, 'ovheld')).scope).toBe('global');
    expect(await devices(h1, vni)).toEqual([`ovbr${vni}`, `ovvx${vni}`]);
    // prune skips it, saying why, and removes nothing of it.
    expect(await simCli(h1, ['network', 'prune'])).toContain('Skipped network ovheld: network ovheld has active endpoints on host(s)');
    expect(await simKeysNaming(sim, 'ovheld')).toEqual(keys);
    // On the host with the endpoint: refused as before, naming it.
    const here = await h2.daemon.cmd(['network', 'rm', 'ovheld']);
    expect(here.code).toBe(1);
    expect(here.stderr).toContain('has active endpoints');

    await simCli(h2, ['disconnect', 'ovheld', b.sb]);
    expect(await simCli(h1, ['network', 'rm', 'ovheld'])).toContain('ovheld');
    expect(await simKeysNaming(sim, 'ovheld')).toEqual([]);
    expect(await devices(h1, vni)).toEqual([]);
    for (const h of [h1, h2]) {
      await waitFor(`host ${h.index} drops ovheld`, async () => ((await names(h)).includes('ovheld') ? undefined : true), 2000);
      expect(await devices(h, vni)).toEqual([]);
    }
    const again = await h1.daemon.cmd(['network', 'rm', 'ovheld']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('network "ovheld" not found');
  });

  it('network rm on the creator while another host only adopted it (no endpoint): removed from the cluster and from both hosts', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.243.0/24', 'ovidle']);
    const b = await simJoined<Ep>(h2, 'ovidle', made);
    await simCli(h2, ['disconnect', 'ovidle', b.sb]);
    expect(await simCli(h1, ['network', 'rm', 'ovidle'])).toContain('ovidle');
    expect(await simKeysNaming(sim, 'ovidle')).toEqual([]);
    for (const h of [h1, h2]) await waitFor(`host ${h.index} drops ovidle`, async () => ((await names(h)).includes('ovidle') ? undefined : true), 2000);
  });

  it('-o KEY without a value is KEY with an empty value: -o encrypted reaches the overlay\'s refusal (exit 1, as -o encrypted=true); an empty key is a usage error', async () => {
    const [h1] = sim.hosts as [SimHost];
    const valued = await h1.daemon.cmd(['network', 'create', '-d', 'overlay', '-o', 'encrypted=true', 'ovenc']);
    expect(valued.code).toBe(1);
    expect(valued.stderr).toContain('no IPsec ESP');
    for (const flag of [['-o', 'encrypted'], ['--opt', 'encrypted'], ['--opt=encrypted']]) {
      const bare = await h1.daemon.cmd(['network', 'create', '-d', 'overlay', ...flag, 'ovenc']);
      expect(bare).toMatchObject({ code: 1, stderr: valued.stderr });
    }
    const empty = await h1.daemon.cmd(['network', 'create', '-d', 'overlay', '-o', '=x', 'ovenc']);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('--opt');
    expect(await names(h1)).not.toContain('ovenc');
    expect(await simKeysNaming(sim, 'ovenc')).toEqual([]);
  });

  it('inspect shows the same labels on every host, and an IPv6 gateway inside the subnet that is not its network address, as IPv4 shows', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--ipv6', '--subnet', '198.19.244.0/24', '--subnet-v6', 'fd00:1::/64', '--label', 'team=blue', '--label', 'tier=db', 'ov6']);
    const creator = await inspect(h1, 'ov6');
    const seen = [creator, await inspect(h2, 'ov6')];
    const { ep } = await simJoined<Ep>(h2, 'ov6', made);
    seen.push(await inspect(h2, 'ov6'));
    for (const n of seen) {
      expect(n.labels).toEqual({ team: 'blue', tier: 'db' });
      expect(n.ipv4).toMatchObject([{ subnet: '198.19.244.0/24', gateway: '198.19.244.1/24' }]);
      expect(n.ipv6).toMatchObject([{ subnet: 'fd00:1::/64', gateway: 'fd00:1::1/64' }]);
    }
    expect(ep.ipv6).toBeDefined();
    expect(ep.ipv6!.split('/')[0]).not.toBe('fd00:1::');
    expect(ep.ipv6!.split('/')[0]).not.toBe('fd00:1::1');
  });
  it('check reports no drift for the multicast NOARP neighbour entries the kernel makes itself on an IPv6 overlay\'s VXLAN device (as for MLD with IPv6 forwarding on)', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--ipv6', '--subnet', '198.19.245.0/24', '--subnet-v6', 'fd00:2::/64', 'ovmld']);
    const vni = await simVni(h1, 'ovmld');
    await simJoined<Ep>(h1, 'ovmld', made);
    await simJoined<Ep>(h2, 'ovmld', made);
    await waitFor('host 1 programs host 2\'s peer', async () => ((await h1.daemon.cmd(['network', 'inspect', '--check', 'ovmld'])).code === 0 ? true : undefined), 5000);
    // Entries of the kind the kernel makes for multicast destinations (state NOARP), added with iproute2.
    for (const ip of ['ff02::16', '224.0.0.22']) await h1.ns.sh(['ip', 'neigh', 'add', ip, 'dev', `ovvx${vni}`, 'nud', 'noarp']);
    const neigh = await neighRows(h1.ns, `ovvx${vni}`, 'all');
    expect(neigh).toContainEqual(expect.objectContaining({ dst: 'ff02::16', state: ['NOARP'] }));
    const checked = await h1.daemon.cmd(['network', 'inspect', '--check', 'ovmld']);
    expect(checked).toMatchObject({ code: 0, stderr: '' });
    // A stale unicast entry is still drift.
    await h1.ns.sh(['ip', 'neigh', 'add', 'fd00:2::99', 'lladdr', '02:42:00:00:00:99', 'dev', `ovvx${vni}`, 'nud', 'permanent']);
    const drift = await h1.daemon.cmd(['network', 'inspect', '--check', 'ovmld']);
    expect(drift.code).toBe(1);
    expect(drift.stdout).toContain('no fd00:2::99 (no such peer)');
    expect(drift.stdout).not.toContain('ff02::16');
    await h1.ns.sh(['ip', 'neigh', 'del', 'fd00:2::99', 'dev', `ovvx${vni}`]);
  });
  it('--aux-address on an overlay is refused at create naming aux-address; nothing is made in the cluster', async () => {
    const [h1] = sim.hosts as [SimHost];
    const r = await h1.daemon.cmd(['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.246.0/24', '--aux-address', 'router=198.19.246.2', 'ovaux']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('aux-address');
    expect(await names(h1)).not.toContain('ovaux');
    expect(await simKeysNaming(sim, 'ovaux')).toEqual([]);
  });

  it('a local network and a cluster overlay cannot share a name: each create is refused naming the other network, nothing changed', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    const ovId = (await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.247.0/24', 'ovname'])).trim();
    // On the other host (no record of the overlay yet) a local network of that name is refused.
    const local = await h2.daemon.cmd(['network', 'create', '--internal', '--subnet', '198.18.247.0/24', 'ovname']);
    expect(local.code).toBe(1);
    expect(local.stderr).toContain(`the overlay network ovname (${ovId.slice(0, 12)}) in the cluster`);
    expect(await inspect(h2, 'ovname')).toMatchObject({ id: ovId, scope: 'global' });
    const { ep } = await simJoined<Ep>(h2, 'ovname', made);
    expect(ep.ipv4).toMatch(/^198\.19\.247\./);
    // A host with a local network of a name: an overlay of that name is refused there, and not made in the cluster.
    await simCli(h1, ['network', 'create', '--internal', '--subnet', '198.18.248.0/24', 'locname']);
    const overlay = await h1.daemon.cmd(['network', 'create', '-d', 'overlay', '--internal', 'locname']);
    expect(overlay.code).toBe(1);
    expect(overlay.stderr).toContain('locname');
    expect(overlay.stderr).toContain('already exists');
    expect(await simKeysNaming(sim, 'locname')).toEqual([]);
    expect((await inspect(h1, 'locname')).scope).toBe('local');
    await simCli(h1, ['network', 'rm', 'locname']);
  });

  it('an overlay named as another host\'s local network is refused naming that host and its network (from its host record), nothing made in the cluster', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h2, ['network', 'create', '--internal', '--subnet', '198.18.249.0/24', 'locb']);
    try {
      await waitFor('host 2\'s record lists locb', async () => {
        const hosts = JSON.parse(await simCli(h1, ['cluster', 'hosts', '--format', 'json'])) as { vtep: string; localSubnets: { network: string }[] }[];
        return hosts.find((h) => h.vtep === h2.ip)?.localSubnets.some((l) => l.network === 'locb') ? true : undefined;
      }, 5000);
      const overlay = await h1.daemon.cmd(['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.249.0/24', 'locb']);
      expect(overlay.code).toBe(1);
      expect(overlay.stderr).toMatch(new RegExp(`network with name locb already exists: the local network locb \\(198\\.18\\.249\\.0/24\\) on host \\S+ \\(${h2.ip.replace(/\./g, '\\.')}\\)`));
      expect(await simKeysNaming(sim, 'locb')).toEqual([]);
      expect((await h1.daemon.cmd(['network', 'inspect', 'locb'])).code).toBe(1);
      expect((await inspect(h2, 'locb')).scope).toBe('local');
    } finally {
      await simCli(h2, ['network', 'rm', 'locb']);
    }
  });

  it('a --mac that is the network\'s MAC of another of its addresses (02:42 + IPv4) is refused naming mac and that address, nothing published; the endpoint that takes the address later has the MAC alone on the other host', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.250.0/24', 'ovmac']);
    const vni = await simVni(h1, 'ovmac');
    const sb = await h2.daemon.sandbox();
    made.push({ h: h2, sb });
    const refused = await h2.daemon.cmd(['connect', 'ovmac', sb, '--ip', '198.19.250.9', '--mac', '02:42:c6:13:fa:05']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('mac: 02:42:c6:13:fa:05 is the MAC that network ovmac gives the endpoint of its address 198.19.250.5');
    expect((await simKeysNaming(sim, 'ovmac')).filter((k) => k.includes('/peers/'))).toEqual([]);
    // The MAC of its own address is taken.
    const own = JSON.parse(await simCli(h2, ['connect', 'ovmac', sb, '--ip', '198.19.250.9', '--mac', '02:42:c6:13:fa:09', '--format', 'json'])) as { macAddress: string };
    expect(own.macAddress).toBe('02:42:c6:13:fa:09');
    const { ep: later } = await simJoined<Ep & { macAddress: string }>(h1, 'ovmac', made, ['--ip', '198.19.250.5']);
    expect(later.macAddress).toBe('02:42:c6:13:fa:05');
    await waitFor('host 2 programs host 1\'s endpoint', async () => {
      const fdb = await fdbRows(h2.ns, `ovvx${vni}`);
      const ofMac = fdb.filter((e) => e.mac === '02:42:c6:13:fa:05').map((e) => e.dst);
      return ofMac.length > 0 ? ofMac : undefined;
    }, 5000).then((dsts) => expect(dsts).toEqual([h1.ip]));
  });

  it('a peer\'s FDB entry that is not permanent (it would age out) is drift for check, and a restart\'s resync makes it permanent again', async () => {
    const { h1, h2, vx, ep } = await pairProgrammed('ovperm', '198.19.251.0/24');
    const entry = async () => (await fdbRows(h1.ns, vx)).filter((e) => e.mac === ep.macAddress);
    await h1.ns.sh(['bridge', 'fdb', 'replace', ep.macAddress, 'dev', vx, 'dst', h2.ip, 'self', 'dynamic']);
    expect(await entry()).toEqual([expect.objectContaining({ dst: h2.ip, state: '' })]);
    const drift = await h1.daemon.cmd(['check']);
    expect(drift.code).toBe(1);
    expect(drift.stdout).toMatch(new RegExp(`ovperm .* fdb +${ep.macAddress} via ${h2.ip.replace(/\./g, '\\.')} on ${vx} +not permanent`));
    await h1.daemon.stop();
    await h1.daemon.start();
    expect(await entry()).toEqual([expect.objectContaining({ dst: h2.ip, state: 'permanent' })]);
    expect(await h1.daemon.cmd(['network', 'inspect', '--check', 'ovperm'])).toMatchObject({ code: 0 });
  });

  it('a peer\'s entries deleted behind cnmkit\'s back are written again when the watch re-lists (etcd restarted), though no peer changed', async () => {
    const { h1, h2, vx, ep } = await pairProgrammed('ovrelist', '198.19.252.0/24');
    const clean = async () => ((await h1.daemon.cmd(['network', 'inspect', '--check', 'ovrelist'])).code === 0 ? true : undefined);
    await h1.ns.sh(['bridge', 'fdb', 'del', ep.macAddress, 'dev', vx, 'dst', h2.ip, 'self']);
    await h1.ns.sh(['ip', 'neigh', 'del', ep.ipv4!.split('/')[0]!, 'dev', vx]);
    expect((await h1.daemon.cmd(['network', 'inspect', '--check', 'ovrelist'])).code).toBe(1);
    await sim.etcd.restart();
    await waitFor('host 1 writes the entries again', clean, 5000);
    const fdb = await fdbRows(h1.ns, vx);
    expect(fdb.filter((e) => e.mac === ep.macAddress)).toEqual([expect.objectContaining({ dst: h2.ip, state: 'permanent' })]);
  });
});
