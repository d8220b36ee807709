// What cluster mode's errors tell a user (issue 11, from a review). While etcd is stopped,
// `cluster status` and `check` (text and JSON) say "cluster store unavailable", naming the store as
// --cluster-store does, since when and for how long, and what still works, in one wording — never
// the etcd key of the call that failed (another network's, as likely as not); their exit codes stay
// the documented ones (0, and 3 for check), and existing endpoints do keep forwarding (a real ping).
// A refused connect, network create or rm says what the user asked for, as they asked it, then the
// store and why (no internal step, no 64-hex endpoint id); inspect's and ls's warnings name no key. Errors that
// say another host holds something (an address, a MAC, a subnet of a local network) name it as
// `cluster hosts` shows it: name, VTEP and id. One --mac
// connected at the same moment on two hosts, 20 times over: exactly one wins, the other is refused
// (409, field mac, naming the network), etcd holds one peer and one claim of the MAC, and the
// claim goes with its endpoint (the other host can then take the MAC). A --mac endpoint's own claim
// never blocks its host's republish: after a restart whose restore publishes again (its peer record
// not as it was) and after its lease was taken away (every key put back); a MAC another host took
// while its host was away longer than the lease leaves that endpoint unpublished, and said so
// (cluster status conflicts, check), as an address taken meanwhile does. A --mac endpoint removed
// while etcd was away, its daemon killed before etcd came back: the restart deletes the leftover
// peer and its claim (the MAC is free again for another host).
// Checked against the daemons' CLI and API, etcd's keys and real pings.
import { expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { simSuite } from '../helpers/sim-suite.js';
import { pings, simCli, type SimCluster, type SimHost, simJoined, storedPeers, UNDERLAY_IP, waitFor } from '../helpers/cluster.js';
import { ApiError, Client } from '../../src/client/index.js';
import { fdbRows, neighRows } from '../helpers/entries.js';

interface Ep { id: string; ipv4?: string; macAddress?: string }
interface Status { state: string; store?: string; unavailableSince?: string; unavailableFor?: number; error?: string }
interface Checked { network: string; items: unknown[]; unchecked?: { object: string; what: string; reason: string }[] }

let sim: SimCluster;
const made: { h: SimHost; sb: string }[] = [];
const STORE = `etcd://${UNDERLAY_IP}:2379`;

const ip = (cidr: string | undefined): string => cidr!.split('/')[0]!;


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
    // A network of h2's with no endpoint: its rm asks the cluster whether another host has endpoints on it.
    await simCli(h2, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.238.0/24', 'ovec']);
    // A connect answers once its peer is in etcd; h1 programs b when its watch delivers it, which must be before etcd stops
    // (read from h1's kernel: a ping now would fill b's neighbour cache, and the ping below would no longer ask h1's table).
    const vx = `ovvx${(JSON.parse(await simCli(h1, ['network', 'inspect', 'ovea', '--format', 'json'])) as { global: { vni: number } }[])[0]!.global.vni}`;
    await waitFor('h1 holds b\'s FDB entry and neighbour before etcd stops', async () => {
      const fdb = await fdbRows(h1.ns, vx);
      const neigh = await neighRows(h1.ns, vx);
      return fdb.some((e) => e.mac === b.ep.macAddress && e.dst === h2.ip) && neigh.some((n) => n.dst === ip(b.ep.ipv4) && n.lladdr === b.ep.macAddress) ? true : undefined;
    }, 10_000);
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
      // check words the outage as cluster status does (one wording): since when, for how long, the store and why.
      const outage = new RegExp(`^cluster store unavailable since ${first.unavailableSince!.replace(/\./g, '\\.')} \\(\\d+ s\\): ${STORE.replace(/\./g, '\\.')} does not answer \\((.+?)\\)`);
      expect(s.error).toMatch(outage);
      for (const n of nets) {
        expect(n.unchecked).toEqual([expect.objectContaining({ object: `network ${n.network}`, what: 'peers' })]);
        expect(n.unchecked![0]!.reason).toMatch(outage);
      }
      const checkText = await h2.daemon.cmd(['check']);
      expect(checkText.code).toBe(3);
      expect(checkText.stdout).toMatch(new RegExp(`^not compared: network ovea peers: cluster store unavailable since ${first.unavailableSince!.replace(/\./g, '\\.')} \\(\\d+ s\\): `, 'm'));
      // What a user asked for, said as they asked it, then the store and why: no internal step, no 64-hex id, no etcd key.
      const sb = await h2.daemon.sandbox();
      made.push({ h: h2, sb });
      const unavailable = `cluster store unavailable: ${STORE} does not answer \\(.+\\)`;
      const refused = [
        [['connect', 'ovea', sb], `connect sandbox ${sb} to network ovea`],
        [['connect', 'ovea', sb, '--ip', '198.19.230.77'], `connect sandbox ${sb} to network ovea`],
        [['network', 'create', '-d', 'overlay', 'ovenew'], 'create network ovenew'],
        [['network', 'rm', 'ovec'], 'remove network ovec'],
        [['cluster', 'hosts'], ''],
      ] as const;
      const said: string[] = [];
      for (const [args, doing] of refused) {
        const r = await h2.daemon.cmd([...args]);
        expect(r.code, args.join(' ')).toBe(1);
        expect(r.stderr).toMatch(new RegExp(`^Error: ${doing ? `${doing.replace(/\./g, '\\.')}: ` : ''}${unavailable}\n$`));
        said.push(r.stderr);
      }
      const inspected = await h2.daemon.cmd(['network', 'inspect', 'ovea']);
      expect(inspected.stderr).toMatch(new RegExp(`^Warning: cluster store unavailable \\(${STORE.replace(/\./g, '\\.')} does not answer \\(.+\\)\\): the VNI and hosts of network ovea are not shown\n$`));
      const listed = await h2.daemon.cmd(['network', 'ls']);
      expect(listed.stderr).toMatch(new RegExp(`^Warning: cluster store unavailable \\(${STORE.replace(/\./g, '\\.')} does not answer \\(.+\\)\\): overlay networks of other hosts are not listed`));
      // No etcd key (of this network or another) in anything a user reads; no internal step or 64-hex id in an error or warning.
      for (const out of [json.stdout, text.stdout, checked.stdout, checkText.stdout, inspected.stderr, listed.stderr, ...said]) {
        expect(out).not.toContain('/cnmkit/');
        expect(out).not.toContain('/v1/');
      }
      for (const out of [inspected.stderr, listed.stderr, ...said]) expect(out).not.toMatch(/[0-9a-f]{64}|join endpoint|read pools|read a global network|read \//);
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

  it('one --mac connected at the same moment on two hosts, 20 rounds: exactly one wins, the other is refused (409, field mac) naming the network; etcd holds one peer and one claim of it; the claim goes with its endpoint', async () => {
    const hosts = sim.hosts as [SimHost, SimHost];
    await simCli(hosts[0], ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.232.0/24', 'ovmac']);
    // The network up on both hosts first: the rounds race on the MAC, not on a first connect's devices.
    for (const h of hosts) await simJoined<Ep>(h, 'ovmac', made);
    const rounds: { mac: string; won: { h: number; ep: Ep; sb: string }[]; lost: { h: number; err: unknown }[] }[] = [];
    for (let r = 0; r < 20; r++) {
      const mac = `02:aa:00:00:01:${r.toString(16).padStart(2, '0')}`;
      const sbs = await Promise.all(hosts.map((h) => h.daemon.sandbox()));
      hosts.forEach((h, i) => made.push({ h, sb: sbs[i]! }));
      const outcomes = await Promise.all(hosts.map((h, i) => new Client(h.daemon.socket).request<Ep>('POST', '/v1/networks/ovmac/connect', { sandbox: sbs[i], mac })
        .then((ep) => ({ h: i, ep, sb: sbs[i]! }), (err: unknown) => ({ h: i, err }))));
      rounds.push({ mac, won: outcomes.filter((o) => 'ep' in o), lost: outcomes.filter((o) => 'err' in o) });
    }
    expect(rounds.map((r) => r.won.length)).toEqual(Array(20).fill(1));
    for (const { mac, lost } of rounds) {
      const err = lost[0]!.err;
      expect(err).toBeInstanceOf(ApiError);
      expect(err).toMatchObject({ status: 409, field: 'mac' });
      expect((err as ApiError).message).toMatch(new RegExp(`^mac address ${mac} is in use by endpoint [0-9a-f]{12} .*of network ovmac on host `));
    }
    const client = sim.etcd.client();
    try {
      const peers = await storedPeers(client, 'ovmac');
      const claims = new Map((await client.range('/cnmkit/v1/macs/ovmac/')).kvs.map((kv) => [kv.key.split('/').at(-1)!, JSON.parse(kv.value.toString()) as { endpointId: string }]));
      for (const { mac, won } of rounds) {
        expect(peers.filter((p) => p.mac === mac).map((p) => p.endpointId)).toEqual([won[0]!.ep.id]);
        expect(claims.get(mac)).toEqual({ host: expect.any(String) as string, endpointId: won[0]!.ep.id });
      }
      // The first round's winner leaves: its claim goes with its peer, and the other host takes the MAC.
      const [first] = rounds;
      const winner = first!.won[0]!;
      await simCli(hosts[winner.h] as SimHost, ['sandbox', 'rm', winner.sb]);
      made.splice(made.findIndex((m) => m.sb === winner.sb), 1);
      expect((await client.range(`/cnmkit/v1/macs/ovmac/${first!.mac}`, {})).kvs).toEqual([]);
      const other = hosts[1 - winner.h] as SimHost;
      const { ep } = await simJoined<Ep>(other, 'ovmac', made, ['--mac', first!.mac]);
      expect(ep.macAddress).toBe(first!.mac);
    } finally {
      client.close();
    }
  }, 120_000);

  it('a --mac endpoint\'s own claim does not block its host: a restart that publishes its peer again, and a lost lease, put peer and claim back; the other host forwards to it', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    const mac = '02:aa:00:00:02:01';
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.233.0/24', 'ovmacr']);
    const vx = `ovvx${(JSON.parse(await simCli(h1, ['network', 'inspect', 'ovmacr', '--format', 'json'])) as { global: { vni: number } }[])[0]!.global.vni}`;
    const b = await simJoined<Ep>(h2, 'ovmacr', made);
    const a = await simJoined<Ep>(h1, 'ovmacr', made, ['--mac', mac]);
    const client = sim.etcd.client();
    const published = async (): Promise<{ peer?: { mac: string }; claim?: { host: string; endpointId: string } }> => {
      // The record alone: put back on a new lease, it is the same.
      const peer = (await storedPeers(client, 'ovmacr', { endpointId: a.ep.id })).map(({ key, lease, ...record }) => record)[0];
      const [claim] = (await client.range(`/cnmkit/v1/macs/ovmacr/${mac}`, {})).kvs;
      return { ...(peer ? { peer } : {}), ...(claim ? { claim: JSON.parse(claim.value.toString()) as { host: string; endpointId: string } } : {}) };
    };
    const reachable = async (what: string): Promise<void> => {
      await waitFor(what, async () => {
        const fdb = await fdbRows(h2.ns, vx);
        return fdb.some((e) => e.mac === mac && e.dst === h1.ip) && (await pings(b.sb, ip(a.ep.ipv4))) ? true : undefined;
      }, 10_000);
    };
    try {
      const before = await published();
      expect(before).toMatchObject({ peer: { mac }, claim: { endpointId: a.ep.id } });
      await reachable('b reaches a');
      // The restore publishes a peer again when its record is not as it was (here: gone, the claim kept).
      await h1.daemon.stop('SIGKILL');
      const stored = await storedPeers(client, 'ovmacr', { host: before.claim!.host, endpointId: a.ep.id });
      expect(stored).toHaveLength(1);
      await client.txn('test: drop a peer', [], [{ del: stored[0]!.key }]);
      await h1.daemon.start();
      await waitFor('a\'s peer published again', async () => ((await published()).peer ? true : undefined), 10_000);
      expect(await published()).toEqual(before);
      await reachable('b reaches a after the restart');
      expect((await h1.daemon.cmd(['check'])).code).toBe(0);
      // The lease taken away: etcd deletes the peer and the claim; h1 registers again and puts both back.
      const lease = (await statusOf(h1) as Status & { lease: { id: string } }).lease.id;
      await client.leaseRevoke(lease);
      await waitFor('a\'s peer and claim put back on a new lease', async () => {
        const now = await published();
        return now.peer && now.claim && (await statusOf(h1) as Status & { lease: { id: string } }).lease.id !== lease ? now : undefined;
      }, 15_000);
      expect(await published()).toEqual(before);
      await reachable('b reaches a after the lease was lost');
      expect((await statusOf(h1) as Status & { conflicts: string[] }).conflicts).toEqual([]);
    } finally {
      client.close();
    }
  }, 60_000);

  it('an address, a MAC and a local subnet held on another host: each refusal names that host as cluster hosts shows it (name, VTEP, id)', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    const listed = JSON.parse(await simCli(h2, ['cluster', 'hosts', '--format', 'json'])) as { id: string; hostname: string; vtep: string }[];
    const h1Info = listed.find((h) => h.vtep === h1.ip)!;
    const named = `host ${h1Info.hostname} (${h1.ip}, id ${h1Info.id})`;
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.234.0/24', 'ovname']);
    const a = await simJoined<Ep>(h1, 'ovname', made, ['--mac', '02:aa:00:00:03:01']);
    const sb = await h2.daemon.sandbox();
    made.push({ h: h2, sb });
    const ipTaken = await h2.daemon.cmd(['connect', 'ovname', sb, '--ip', ip(a.ep.ipv4)]);
    expect(ipTaken.code).toBe(1);
    expect(ipTaken.stderr).toContain(`address ${ip(a.ep.ipv4)} is in use by endpoint ${a.ep.id.slice(0, 12)} on ${named}`);
    const macTaken = await h2.daemon.cmd(['connect', 'ovname', sb, '--mac', '02:aa:00:00:03:01']);
    expect(macTaken.code).toBe(1);
    expect(macTaken.stderr).toContain(`mac address 02:aa:00:00:03:01 is in use by endpoint ${a.ep.id.slice(0, 12)} (${ip(a.ep.ipv4)}) of network ovname on ${named}`);
    // A local network of h1 (published in its host record): an overlay of its subnet is refused on h2, naming h1.
    await simCli(h1, ['network', 'create', '--subnet', '198.19.235.0/24', 'lannamed']);
    try {
      const overlap = await waitFor('h1\'s local subnet in its host record', async () => {
        const r = await h2.daemon.cmd(['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.235.0/25', 'ovoverlap']);
        return r.code !== 0 ? r : (await simCli(h2, ['network', 'rm', 'ovoverlap']), undefined);
      }, 10_000);
      expect(overlap.code).toBe(1);
      expect(overlap.stderr).toContain(`overlaps the local network lannamed (198.19.235.0/24) on ${named}`);
    } finally {
      await simCli(h1, ['network', 'rm', 'lannamed']);
    }
  }, 60_000);

  it('a --mac another host took while this host was away past its lease: the restart leaves that endpoint unpublished and says so (cluster status, check exit 1), the other host\'s endpoint keeps the MAC', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    const mac = '02:aa:00:00:04:01';
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.236.0/24', 'ovmacl']);
    await simJoined<Ep>(h2, 'ovmacl', made);
    const a = await simJoined<Ep>(h1, 'ovmacl', made, ['--mac', mac]);
    const client = sim.etcd.client();
    try {
      await h1.daemon.stop('SIGKILL');
      await waitFor('h1\'s lease ended (its peer and claim gone)', async () => ((await client.range(`/cnmkit/v1/macs/ovmacl/${mac}`, {})).kvs.length === 0 ? true : undefined), (sim.leaseTtl + 5) * 1000);
      const b = await simJoined<Ep>(h2, 'ovmacl', made, ['--mac', mac]);
      await h1.daemon.start();
      const status = await waitFor('h1 reports the conflict', async () => {
        const s = await statusOf(h1) as Status & { conflicts: string[] };
        return s.conflicts.some((c) => c.includes(a.ep.id.slice(0, 12)) || c.includes(mac)) ? s : undefined;
      }, 10_000);
      expect(status.conflicts.join('\n')).toContain(`mac address ${mac} is in use by endpoint ${b.ep.id.slice(0, 12)} of network ovmacl on host `);
      const [claim] = (await client.range(`/cnmkit/v1/macs/ovmacl/${mac}`, {})).kvs;
      expect(JSON.parse(claim!.value.toString())).toMatchObject({ endpointId: b.ep.id });
      const peers = await storedPeers(client, 'ovmacl');
      expect(peers.filter((p) => p.mac === mac).map((p) => p.endpointId)).toEqual([b.ep.id]);
      const checked = await h1.daemon.cmd(['check']);
      expect(checked.code).toBe(1);
      expect(checked.stdout).toContain(`mac address ${mac} is in use by endpoint ${b.ep.id.slice(0, 12)}`);
    } finally {
      client.close();
    }
  }, 60_000);

  it('a --mac endpoint removed while etcd is away, its daemon killed before etcd is back: the restart deletes the leftover peer with its claim; the other host can take the MAC', async () => {
    const [h1, h2] = sim.hosts as [SimHost, SimHost];
    const mac = '02:aa:00:00:05:01';
    await simCli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.237.0/24', 'ovmacx']);
    await simJoined<Ep>(h2, 'ovmacx', made);
    const a = await simJoined<Ep>(h1, 'ovmacx', made, ['--mac', mac]);
    const client = sim.etcd.client();
    const left = async () => ({
      peers: (await storedPeers(client, 'ovmacx', { endpointId: a.ep.id })).length,
      claims: (await client.range(`/cnmkit/v1/macs/ovmacx/${mac}`, {})).kvs.length,
    });
    try {
      expect(await left()).toEqual({ peers: 1, claims: 1 });
      await sim.etcd.stop();
      try {
        // The removal is queued (etcd away), then lost with the daemon: the restart finds a peer no endpoint has.
        await simCli(h1, ['sandbox', 'rm', a.sb]);
        made.splice(made.findIndex((m) => m.sb === a.sb), 1);
        await h1.daemon.stop('SIGKILL');
      } finally {
        await sim.etcd.start();
      }
      // Back within the lease's TTL (etcd extends leases when it starts): the leftovers stay until h1's restart removes them.
      await h1.daemon.start();
      await waitFor('h1\'s leftover peer and claim deleted', async () => ((await left()).peers + (await left()).claims === 0 ? true : undefined), 10_000);
      const { ep } = await simJoined<Ep>(h2, 'ovmacx', made, ['--mac', mac]);
      expect(ep.macAddress).toBe(mac);
    } finally {
      client.close();
    }
  }, 60_000);
});
