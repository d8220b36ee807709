// The overlay keeps to what is its own and says what it lost (issue 11, from a review): a VXLAN
// device of the network found at start with learning on or proxy off is made again as it must be
// (check names it meanwhile); a bridge of the network's name that cnmkit did not make survives a
// refused connect, which leaves the network unadopted on that host (no record, no key; its creator
// removes it); an endpoint whose address another host took while its host was away past the
// lease is not published again and is reported (cluster status, check, and network inspect: in
// conflict, with check's reason, its host listed among the network's hosts) until disconnected; a
// local network may not overlap an overlay this host has no record of; a daemon started with a copy
// of a live host's identity does not take over that host's record; a --mac another host's endpoint
// has is refused.
// Checked with iproute2 and etcd's keys.
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { simSuite } from '../helpers/sim-suite.js';
import { simCli, simJoined, simKeysNaming, simVni, storedPeers, waitFor, type SimCluster, type SimHost } from '../helpers/cluster.js';
import { run } from '../helpers/exec.js';

interface Ep { id: string; ipv4?: string; macAddress?: string }
interface Inspected { endpoints: { id: string; state: string; conflict?: string }[]; global: { hosts: { id: string; vtep: string; endpoints: number }[] } }
interface VxlanInfo { info_data: { learning?: boolean; proxy?: boolean; local?: string } }

let sim: SimCluster;
const made: { h: SimHost; sb: string }[] = [];

const ip = (cidr: string | undefined): string => cidr!.split('/')[0]!;

async function vxlanInfo(h: SimHost, dev: string): Promise<VxlanInfo['info_data']> {
  return (JSON.parse(await h.ns.sh(['ip', '-d', '-j', 'link', 'show', dev])) as { linkinfo: VxlanInfo }[])[0]!.linkinfo.info_data;
}

describeRoot('overlay: its own devices, and addresses lost while away', () => {
  simSuite({ hosts: 2, leaseTtl: 3 }, made, (s) => {
    sim = s;
  });

  it('a VXLAN device with learning turned on by hand: check names it; a restart makes it again with learning off', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.230.0/24', 'ovl1']);
    const vx = `ovvx${await simVni(h1, 'ovl1')}`;
    const a = await simJoined<Ep>(h1, 'ovl1', made);
    const b = await simJoined<Ep>(h2, 'ovl1', made);
    expect(await vxlanInfo(h1, vx)).toMatchObject({ learning: false, proxy: true, local: h1.ip });
    await h1.ns.sh(['ip', 'link', 'set', vx, 'type', 'vxlan', 'learning']);
    const drift = await h1.daemon.cmd(['check']);
    expect(drift.code).toBe(1);
    expect(drift.stdout).toContain('learning on');
    await h1.daemon.stop('SIGKILL');
    await h1.daemon.start();
    expect(await vxlanInfo(h1, vx)).toMatchObject({ learning: false, proxy: true, local: h1.ip });
    await waitFor('a reaches b again', async () => ((await run(['ip', 'netns', 'exec', a.sb, 'ping', '-c', '1', '-W', '1', ip(b.ep.ipv4)])).stdout.includes('1 received') ? true : undefined), 10_000);
    expect(await h1.daemon.cmd(['check'])).toMatchObject({ code: 0 });
  });

  it('a bridge of the network\'s name that cnmkit did not make: the connect is refused, the bridge stays, the network is not adopted there', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.231.0/24', '-o', 'com.docker.network.driver.overlay.vxlanid_list=5000', 'ovl2']);
    await h2.ns.sh(['ip', 'link', 'add', 'ovbr5000', 'type', 'bridge']);
    const sb = await h2.daemon.sandbox();
    made.push({ h: h2, sb });
    const r = await h2.daemon.cmd(['connect', 'ovl2', sb]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('a device named ovbr5000 exists that cnmkit did not create');
    expect(await h2.ns.sh(['ip', '-br', 'link', 'show', 'ovbr5000'])).toMatch(/^ovbr5000\s/);
    // The refused first connect did not adopt the network on host 2: check (which goes over this host's records)
    // does not name it, etcd has no key of host 2 for it, and its creator removes it.
    const hostId = (JSON.parse(await simCli(h2, ['cluster', 'status', '--format', 'json'])) as { hostId: string }).hostId;
    expect((JSON.parse(await simCli(h2, ['check', '--format', 'json'])) as { network: string }[]).map((n) => n.network)).not.toContain('ovl2');
    expect((await simKeysNaming(sim, 'ovl2')).filter((k) => k.includes(hostId))).toEqual([]);
    await h2.ns.sh(['ip', 'link', 'del', 'ovbr5000']);
    expect(await simCli(h1, ['network', 'rm', 'ovl2'])).toContain('ovl2');
    expect(await simKeysNaming(sim, 'ovl2')).toEqual([]);
    expect((JSON.parse(await simCli(h2, ['network', 'ls', '--format', 'json'])) as { name: string }[]).map((n) => n.name)).not.toContain('ovl2');
  });

  it('a local network on a host that has no record of an overlay is refused when its subnet overlaps the overlay\'s', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.233.0/24', 'ovl4']);
    const r = await h2.daemon.cmd(['network', 'create', '--subnet', '198.19.233.128/25', 'lan4']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('subnet: 198.19.233.128/25 overlaps the subnet 198.19.233.0/24 of network "ovl4"');
    expect((await h2.ns.sh(['ip', '-br', 'link'])).split('\n').filter((l) => l.startsWith('br-'))).toEqual([]);
    expect((await h2.daemon.cmd(['network', 'create', '--subnet', '198.19.234.0/24', 'lan5'])).code).toBe(0);
    await simCli(h2, ['network', 'rm', 'lan5']);
  });

  it('an address another host took while this one was away past its lease: not published again, reported until disconnected', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.232.0/24', 'ovl3']);
    const e = await simJoined<Ep>(h2, 'ovl3', made);
    const hostId = (JSON.parse(await simCli(h2, ['cluster', 'status', '--format', 'json'])) as { hostId: string }).hostId;
    await h2.daemon.stop('SIGKILL');
    const client = sim.etcd.client();
    try {
      const peer = () => storedPeers(client, 'ovl3', { host: hostId, endpointId: e.ep.id });
      await waitFor('h2\'s lease expired', async () => ((await peer()).length > 0 ? undefined : true), (sim.leaseTtl + 5) * 1000);
      const taker = await simJoined<Ep>(h1, 'ovl3', made, ['--ip', ip(e.ep.ipv4)]);
      expect(ip(taker.ep.ipv4)).toBe(ip(e.ep.ipv4));
      await h2.daemon.start();
      const status = JSON.parse(await simCli(h2, ['cluster', 'status', '--format', 'json'])) as { conflicts: string[] };
      expect(status.conflicts.join('\n')).toContain(`its address ${ip(e.ep.ipv4)} is in use`);
      expect(await peer()).toEqual([]);
      const drift = await h2.daemon.cmd(['check', '--format', 'json']);
      expect(drift.code).toBe(1);
      const item = (JSON.parse(drift.stdout) as { network: string; items: { what: string; found: string }[] }[]).find((n) => n.network === 'ovl3')!.items.find((i) => i.what === 'address')!;
      expect(item.found).toContain(`its address ${ip(e.ep.ipv4)} is in use`);
      // inspect on h2 shows the endpoint in conflict, with check's reason, and lists h2 among the network's hosts.
      const shown = (JSON.parse(await simCli(h2, ['network', 'inspect', 'ovl3', '--format', 'json'])) as Inspected[])[0]!;
      expect(shown.endpoints.find((x) => x.id === e.ep.id)).toMatchObject({ state: 'conflict', conflict: item.found });
      expect(shown.global.hosts).toEqual(expect.arrayContaining([expect.objectContaining({ id: hostId, endpoints: 1 }), expect.objectContaining({ vtep: h1.ip, endpoints: 1 })]));
      expect(shown.global.hosts).toHaveLength(2);
      await simCli(h2, ['disconnect', 'ovl3', e.sb]);
      expect(await h2.daemon.cmd(['check'])).toMatchObject({ code: 0 });
    } finally {
      client.close();
    }
  });

  it('a daemon started with a copy of a live host\'s identity: refused, naming it; the live host\'s record and peers keep their VTEP', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.235.0/24', 'ovl6']);
    const a = await simJoined<Ep>(h1, 'ovl6', made);
    const hostId = (JSON.parse(await simCli(h1, ['cluster', 'status', '--format', 'json'])) as { hostId: string }).hostId;
    const identity = path.join(h2.daemon.stateDir, 'cluster.json');
    const own = fs.readFileSync(identity);
    await h2.daemon.stop();
    const client = sim.etcd.client();
    try {
      fs.copyFileSync(path.join(h1.daemon.stateDir, 'cluster.json'), identity);
      await h2.daemon.start();
      const status = JSON.parse(await simCli(h2, ['cluster', 'status', '--format', 'json'])) as { state: string; error?: string };
      expect(status.state).toBe('unavailable');
      expect(status.error).toContain(`host id ${hostId} is registered by another live daemon`);
      expect(status.error).toContain(`VTEP ${h1.ip}`);
      const record = await client.get(`/cnmkit/v1/hosts/${hostId}`);
      expect(JSON.parse(record.kv!.value.toString())).toMatchObject({ vtep: h1.ip });
      expect(await storedPeers(client, 'ovl6', { host: hostId, endpointId: a.ep.id })).toEqual([expect.objectContaining({ vtep: h1.ip })]);
      expect(JSON.parse(await simCli(h1, ['cluster', 'status', '--format', 'json']))).toMatchObject({ state: 'connected' });
      // Global requests on the copy fail, naming why.
      const r = await h2.daemon.cmd(['network', 'create', '-d', 'overlay', '--internal', 'ovl7']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('another live daemon');
    } finally {
      client.close();
      await h2.daemon.stop();
      fs.writeFileSync(identity, own);
      await h2.daemon.start();
    }
  });

  it('a --mac another host\'s endpoint of the network has is refused, naming it; nothing is left of the refused connect', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.236.0/24', 'ovl8']);
    const a = await simJoined<Ep>(h1, 'ovl8', made, ['--mac', '02:aa:00:00:00:01']);
    const sb = await h2.daemon.sandbox();
    made.push({ h: h2, sb });
    const r = await h2.daemon.cmd(['connect', 'ovl8', sb, '--mac', '02:aa:00:00:00:01']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`mac address 02:aa:00:00:00:01 is in use by endpoint ${a.ep.id.slice(0, 12)}`);
    expect((await run(['ip', '-n', sb, '-br', 'link'])).stdout.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('lo'))).toEqual([]);
    const b = await simJoined<Ep>(h2, 'ovl8', made, ['--mac', '02:aa:00:00:00:02']);
    await waitFor('a reaches b', async () => ((await run(['ip', 'netns', 'exec', a.sb, 'ping', '-c', '1', '-W', '1', ip(b.ep.ipv4)])).stdout.includes('1 received') ? true : undefined), 10_000);
  });
});
