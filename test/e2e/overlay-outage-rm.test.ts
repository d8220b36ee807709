// A disconnect made while etcd is away survives a restart of the daemon (issue 11, from a review):
// its peer and address removals are queued in memory only, so a daemon restarted before etcd
// returns must find this host's leftovers itself once the store answers; check names such
// leftovers while they exist. Two simulated hosts and a real etcd; checked with etcd's keys, host
// 1's neighbour table (ip -j neigh), check's exit code and a connect again.
import { expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { simSuite } from '../helpers/sim-suite.js';
import { simCli, simJoined, simVni, storedPeers, waitFor, type SimCluster, type SimHost } from '../helpers/cluster.js';
import { neighRows, type NeighRow } from '../helpers/entries.js';

interface Ep { id: string; ipv4?: string }

let sim: SimCluster;
const made: { h: SimHost; sb: string }[] = [];

describeRoot('overlay: a disconnect during an etcd outage, then a restart', () => {
  simSuite({ hosts: 2 }, made, (s) => {
    sim = s;
  });

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`host 2 disconnects while etcd is down and is restarted (${signal}) before it returns: its peer and address go once etcd answers`, async () => {
      const [h1, h2] = sim.hosts as [SimHost, SimHost];
      const net = `ovm${signal === 'SIGTERM' ? 't' : 'k'}`;
      const third = signal === 'SIGTERM' ? 70 : 71;
      const addr = `198.19.${third}.30`;
      await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', `198.19.${third}.0/24`, net]);
      const vx = `ovvx${await simVni(h1, net)}`;
      const g = await simJoined<Ep>(h2, net, made, ['--ip', addr]);
      const hostId = (JSON.parse(await simCli(h2, ['cluster', 'status', '--format', 'json'])) as { hostId: string }).hostId;
      const addrKey = `/cnmkit/v1/ipam/addresses/198.19.${third}.0_24/${addr}`;
      const neighOnH1 = async (): Promise<NeighRow[]> => (await neighRows(h1.ns, vx)).filter((n) => n.dst === addr);
      await waitFor('h1 has g\'s neighbour entry', async () => ((await neighOnH1()).length === 1 ? true : undefined), 5000);
      await sim.etcd.stop();
      try {
        await simCli(h2, ['disconnect', net, g.sb]);
        await h2.daemon.stop(signal);
        await h2.daemon.start();
      } finally {
        await sim.etcd.start();
      }
      const client = sim.etcd.client();
      try {
        await waitFor('h2\'s peer and address gone from etcd', async () => ((await storedPeers(client, net, { host: hostId, endpointId: g.ep.id })).length > 0 || (await client.get(addrKey)).kv ? undefined : true), 10_000);
      } finally {
        client.close();
      }
      await waitFor('h1\'s neighbour entry for g gone', async () => ((await neighOnH1()).length === 0 ? true : undefined), 5000);
      const inspect = (JSON.parse(await simCli(h1, ['network', 'inspect', net, '--format', 'json'])) as { global: { hosts: { id: string }[] } }[])[0]!;
      expect(inspect.global.hosts.map((h) => h.id)).not.toContain(hostId);
      expect(await h2.daemon.cmd(['check'])).toMatchObject({ code: 0 });
      const again = JSON.parse(await simCli(h2, ['connect', net, g.sb, '--ip', addr, '--format', 'json'])) as Ep;
      expect(again.ipv4).toBe(`${addr}/24`);
      await simCli(h2, ['disconnect', net, g.sb]);
    }, 60_000);
  }

  it('a peer and an address of host 2 in etcd that no endpoint there has: check names both; a restart with etcd up removes them', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.72.0/24', 'ovmc']);
    const vx = `ovvx${await simVni(h1, 'ovmc')}`;
    const g = await simJoined<Ep>(h2, 'ovmc', made);
    await simCli(h2, ['disconnect', 'ovmc', g.sb]);
    expect(await h2.daemon.cmd(['check'])).toMatchObject({ code: 0 });
    const hostId = (JSON.parse(await simCli(h2, ['cluster', 'status', '--format', 'json'])) as { hostId: string }).hostId;
    const ghost = 'f'.repeat(64);
    const peerKey = `/cnmkit/v1/peers/ovmc/${hostId}/${ghost}`;
    const addrKey = '/cnmkit/v1/ipam/addresses/198.19.72.0_24/198.19.72.31';
    const client = sim.etcd.client();
    try {
      await client.txn('test: leftovers of host 2', [], [
        { put: peerKey, value: { endpointId: ghost, ip: '198.19.72.31', mac: '02:42:c6:13:48:1f', vtep: h2.ip, network: 'ovmc', host: hostId } },
        { put: addrKey, value: { owner: `endpoint:${ghost}`, kind: 'endpoint', host: hostId } },
      ]);
      const neighOnH1 = async (): Promise<NeighRow[]> => (await neighRows(h1.ns, vx)).filter((n) => n.dst === '198.19.72.31');
      await waitFor('h1 programs the leftover peer', async () => ((await neighOnH1()).length === 1 ? true : undefined), 5000);
      const drift = await h2.daemon.cmd(['check']);
      expect(drift.code).toBe(1);
      expect(drift.stdout).toContain(`no peer of this host for endpoint ${ghost}`);
      expect(drift.stdout).toContain('address 198.19.72.31 not held for this host');
      await h2.daemon.stop('SIGKILL');
      await h2.daemon.start();
      await waitFor('the leftovers gone from etcd', async () => ((await storedPeers(client, 'ovmc', { host: hostId, endpointId: ghost })).length > 0 || (await client.get(addrKey)).kv ? undefined : true), 5000);
      await waitFor('h1\'s neighbour entry gone', async () => ((await neighOnH1()).length === 0 ? true : undefined), 5000);
      expect(await h2.daemon.cmd(['check'])).toMatchObject({ code: 0 });
    } finally {
      client.close();
    }
  });
});
