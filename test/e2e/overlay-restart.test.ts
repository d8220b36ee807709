// A cluster daemon restarted within its lease (issue 11, items 7 and 9 (d)): what etcd holds right
// of its endpoints is left as it is (not written again), what went missing meanwhile is put back,
// and a peer of this host that no endpoint has is removed; all before its API answers, with the
// other hosts' entries for it and its entries for them right (checked with `bridge`/`ip neigh`),
// and its kernel state the same as before (cnmkit check). On a host that did not create the network,
// a sandbox gone while the daemon was away takes neither the devices nor the other endpoints'
// ports along, nor does a disconnect cut by SIGKILL (issue 11: they were deleted, made again, and
// the survivors left off the bridge); a bridge deleted while away is made again with them on it.
import { expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { simSuite } from '../helpers/sim-suite.js';
import { simCli, simJoined, waitFor, type SimCluster, type SimHost } from '../helpers/cluster.js';
import type { KeyValue, StoreClient } from '../../src/cluster/client.js';
import { run } from '../helpers/exec.js';
import { permanentEntries } from '../helpers/entries.js';
import { openStore } from '../../src/store/index.js';

interface Ep { id: string; ipv4?: string; macAddress?: string }

let sim: SimCluster;
const made: { h: SimHost; sb: string }[] = [];
let vx = '';

const ip = (cidr: string | undefined): string => cidr!.split('/')[0]!;
const ping = (sb: string, to: string) => run(['ip', 'netns', 'exec', sb, 'ping', '-c', '1', '-W', '2', to]);

/** The ports of the overlay's bridge on host h (read with iproute2), sorted. */
async function bridgePorts(h: SimHost): Promise<string[]> {
  return (JSON.parse(await h.ns.sh(['ip', '-j', 'link', 'show', 'master', vx.replace('ovvx', 'ovbr')])) as { ifname: string }[]).map((l) => l.ifname).sort();
}

/** Every key of the network's peers and of its subnet's addresses but the spare ones (a host's stock, not endpoints), by key. */
async function keysOf(client: StoreClient, hostId: string): Promise<Map<string, KeyValue>> {
  const { kvs } = await client.range('/cnmkit/v1/');
  const spare = (kv: KeyValue) => (JSON.parse(kv.value.toString()) as { kind?: string }).kind === 'spare';
  return new Map(kvs.filter((kv) => kv.key.startsWith(`/cnmkit/v1/peers/ovr/${hostId}/`) || (kv.key.startsWith('/cnmkit/v1/ipam/addresses/198.19.220.0_24/') && !spare(kv))).map((kv) => [kv.key, kv]));
}

describeRoot('overlay daemon restart', () => {
  simSuite({ hosts: 2, leaseTtl: 20 }, made, async (s) => {
    sim = s;
    await simCli(s.hosts[0]!, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.220.0/24', 'ovr']);
    const net = (JSON.parse(await simCli(s.hosts[0]!, ['network', 'inspect', 'ovr', '--format', 'json'])) as { global: { vni: number } }[])[0]!;
    vx = `ovvx${net.global.vni}`;
  });

  it('leaves right keys unwritten, puts back missing ones and removes a stale peer, before the API answers', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    const [a, b, c] = [await simJoined<Ep>(h1, 'ovr', made), await simJoined<Ep>(h1, 'ovr', made), await simJoined<Ep>(h1, 'ovr', made)];
    const d = await simJoined<Ep>(h2, 'ovr', made);
    const hostId = (JSON.parse(await simCli(h1, ['cluster', 'hosts', '--format', 'json'])) as { id: string; vtep: string }[]).find((x) => x.vtep === h1.ip)!.id;
    const client = sim.etcd.client();
    const peerKey = (e: Ep) => `/cnmkit/v1/peers/ovr/${hostId}/${e.id}`;
    const addressKey = (e: Ep) => `/cnmkit/v1/ipam/addresses/198.19.220.0_24/${ip(e.ipv4)}`;
    try {
      // Each host programs the other's peers when its watch delivers them, after the connect answered.
      const h1Entries = [`${d.ep.macAddress} ${h2.ip} permanent`, `00:00:00:00:00:00 ${h2.ip} permanent`, `${ip(d.ep.ipv4)} ${d.ep.macAddress}`].sort();
      await waitFor('h1 has d', async () => (JSON.stringify(await permanentEntries(h1.ns, vx)) === JSON.stringify(h1Entries) ? true : undefined), 5000);
      await waitFor('h2 has h1\'s three endpoints', async () => ((await permanentEntries(h2.ns, vx)).length === 7 ? true : undefined), 5000);
      const before = await keysOf(client, hostId);
      const h2Entries = await permanentEntries(h2.ns, vx);
      const lease = before.get(peerKey(a.ep))!.lease;
      for (const e of [a, b, c]) expect([before.get(peerKey(e.ep))?.lease, before.get(addressKey(e.ep))?.lease]).toEqual([lease, lease]);
      await h1.daemon.stop('SIGKILL');
      // While it is away: b's peer and c's address are lost, a peer of an endpoint it no longer has appears.
      const ghost = `/cnmkit/v1/peers/ovr/${hostId}/0123456789abcdef`;
      await client.txn('test', [], [
        { del: peerKey(b.ep) }, { del: addressKey(c.ep) },
        { put: ghost, value: { network: 'ovr', host: hostId, endpointId: '0123456789abcdef', ip: '198.19.220.250', mac: '02:42:c6:13:dc:fa', vtep: h1.ip }, lease },
      ]);
      await waitFor('h2 dropped b', async () => ((await permanentEntries(h2.ns, vx)).some((e) => e.startsWith(ip(b.ep.ipv4))) ? undefined : true), 5000);
      await h1.daemon.start();
      const after = await keysOf(client, hostId);
      expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
      for (const [key, kv] of after) {
        expect([key, kv.value.toString(), kv.lease]).toEqual([key, before.get(key)!.value.toString(), before.get(key)!.lease]);
        // Written again only where something was missing (c's peer goes out again with its address).
        const rewritten = [peerKey(b.ep), addressKey(c.ep), peerKey(c.ep)].includes(key);
        expect([key, kv.modRevision === before.get(key)!.modRevision]).toEqual([key, !rewritten]);
      }
      expect(await permanentEntries(h1.ns, vx)).toEqual(h1Entries);
      await waitFor('h2 has b again, and no ghost', async () => (JSON.stringify(await permanentEntries(h2.ns, vx)) === JSON.stringify(h2Entries) ? true : undefined), 3000);
      expect(await h1.daemon.cmd(['check'])).toMatchObject({ code: 0 });
    } finally {
      client.close();
    }
  });

  it('a firewall reload (every network restored again, no restart) keeps joined endpoints on their bridge and reachable', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    const a = await simJoined<Ep>(h1, 'ovr', made);
    const d = await simJoined<Ep>(h2, 'ovr', made);
    await waitFor('a reaches d', async () => ((await ping(a.sb, ip(d.ep.ipv4))).code === 0 ? true : undefined), 5000);
    const ports = () => bridgePorts(h1);
    const before = await ports();
    expect(before.length).toBeGreaterThanOrEqual(2);
    expect(await h1.daemon.cmd(['firewall', 'reload'])).toMatchObject({ code: 0 });
    expect(await ports()).toEqual(before);
    expect((await ping(a.sb, ip(d.ep.ipv4))).code).toBe(0);
    expect((await ping(d.sb, ip(a.ep.ipv4))).code).toBe(0);
    expect(await h1.daemon.cmd(['check'])).toMatchObject({ code: 0 });
  });

  it('a sandbox gone while the daemon was away, on a host that did not create the network: the others keep their port, devices and traffic', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    const br = vx.replace('ovvx', 'ovbr');
    const ports = () => bridgePorts(h2);
    const ifindex = async (dev: string) => (JSON.parse(await h2.ns.sh(['ip', '-j', 'link', 'show', dev])) as { ifindex: number }[])[0]!.ifindex;
    const r0 = await simJoined<Ep>(h1, 'ovr', made);
    const r1 = await simJoined<Ep>(h2, 'ovr', made);
    const kept = await ports();
    // r2 is not left to the suite's clean-up: its namespace goes while the daemon is away.
    const r2 = await h2.daemon.sandbox();
    await simCli(h2, ['connect', 'ovr', r2]);
    expect((await ports()).length).toBe(kept.length + 1);
    await waitFor('r1 reaches r0', async () => ((await ping(r1.sb, ip(r0.ep.ipv4))).code === 0 ? true : undefined), 5000);
    const devices = [await ifindex(br), await ifindex(vx)];
    await h2.daemon.stop('SIGKILL');
    await run(['ip', 'netns', 'del', r2]);
    await h2.daemon.start();
    expect(await ports()).toEqual(kept);
    expect([await ifindex(br), await ifindex(vx)]).toEqual(devices);
    expect(await h2.daemon.cmd(['network', 'inspect', '--check', 'ovr'])).toMatchObject({ code: 0 });
    expect(await h2.daemon.cmd(['check'])).toMatchObject({ code: 0 });
    await waitFor('r1 reaches r0 again', async () => ((await ping(r1.sb, ip(r0.ep.ipv4))).code === 0 ? true : undefined), 5000);
    expect((await ping(r0.sb, ip(r1.ep.ipv4))).code).toBe(0);
  });

  it('a bridge deleted while the daemon was away: made again with the surviving endpoints\' ports on it', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    const br = vx.replace('ovvx', 'ovbr');
    const ports = () => bridgePorts(h2);
    const r0 = await simJoined<Ep>(h1, 'ovr', made);
    const r1 = await simJoined<Ep>(h2, 'ovr', made);
    const before = await ports();
    expect(before).toHaveLength(2);
    await h2.daemon.stop('SIGKILL');
    await h2.ns.sh(['ip', 'link', 'del', br]);
    await h2.daemon.start();
    expect(await ports()).toEqual(before);
    expect(await h2.daemon.cmd(['check'])).toMatchObject({ code: 0 });
    await waitFor('r1 reaches r0 again', async () => ((await ping(r1.sb, ip(r0.ep.ipv4))).code === 0 ? true : undefined), 5000);
  });

  it('the last local endpoint gone while the daemon was away, on a host that did not create the network: its devices and peers go', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    await simJoined<Ep>(h1, 'ovr', made);
    const r2 = await h2.daemon.sandbox();
    await simCli(h2, ['connect', 'ovr', r2]);
    await waitFor('h1 has h2\'s endpoint', async () => ((await permanentEntries(h1.ns, vx)).some((e) => e.includes(h2.ip)) ? true : undefined), 5000);
    await h2.daemon.stop('SIGKILL');
    await run(['ip', 'netns', 'del', r2]);
    await h2.daemon.start();
    const names = (JSON.parse(await h2.ns.sh(['ip', '-j', 'link', 'show'])) as { ifname: string }[]).map((l) => l.ifname);
    expect(names.filter((n) => n === vx || n === vx.replace('ovvx', 'ovbr'))).toEqual([]);
    expect(await h2.daemon.cmd(['check'])).toMatchObject({ code: 0 });
    await waitFor('h1 dropped h2\'s endpoint', async () => ((await permanentEntries(h1.ns, vx)).some((e) => e.includes(h2.ip)) ? undefined : true), 5000);
  });

  it('a disconnect cut by SIGKILL, on a host that did not create the network: finished at the restart, the other endpoint keeps its port and traffic', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    const ports = () => bridgePorts(h2);
    const r0 = await simJoined<Ep>(h1, 'ovr', made);
    const r1 = await simJoined<Ep>(h2, 'ovr', made);
    const kept = await ports();
    const r2 = await simJoined<Ep>(h2, 'ovr', made);
    await h2.daemon.stop('SIGKILL');
    // What a kill inside `disconnect` leaves: the endpoint marked deleting, its interfaces still there.
    const store = openStore(h2.daemon.stateDir);
    try {
      store.endpoints.put({ ...store.endpoints.get(r2.ep.id)!, state: 'deleting' });
    } finally {
      store.close();
    }
    await h2.daemon.start();
    expect(await ports()).toEqual(kept);
    expect(await h2.daemon.cmd(['check'])).toMatchObject({ code: 0 });
    await waitFor('r1 reaches r0 again', async () => ((await ping(r1.sb, ip(r0.ep.ipv4))).code === 0 ? true : undefined), 5000);
  });
});
