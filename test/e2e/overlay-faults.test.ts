// The overlay's faults (issue 11, item 7) on three simulated hosts with a real etcd: a daemon
// SIGKILLed and restarted (its peers stay programmed elsewhere meanwhile; it reprograms its own
// entries, none duplicated, no device leaked), a host that never comes back (its peers vanish
// from the others after the lease TTL; when it does come back they return), and etcd stopped for
// 30 s (forwarding goes on without loss, new endpoints fail fast, a join afterwards converges).
import { expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { simSuite } from '../helpers/sim-suite.js';
import { SimCluster, simCli, simJoined, waitFor, type SimHost } from '../helpers/cluster.js';
import { check, run } from '../helpers/exec.js';
import { fdbRows } from '../helpers/entries.js';

interface Ep { ipv4?: string; macAddress?: string }

let sim: SimCluster;
let hosts: SimHost[];
let made: { h: SimHost; sb: string }[] = [];
let vx = '';

const cli = simCli;

const joined = (h: SimHost, net: string, extra: string[] = []) => simJoined<Ep>(h, net, made, extra);

const ip = (cidr: string | undefined): string => cidr!.split('/')[0]!;

async function ping(sb: string, to: string, count = 1): Promise<string> {
  return (await run(['ip', 'netns', 'exec', sb, 'ping', '-c', String(count), '-i', '1', '-W', '2', to], { timeoutMs: (count + 5) * 1000 })).stdout;
}

async function selfFdb(h: SimHost): Promise<string[]> {
  const all = await fdbRows(h.ns, vx);
  return all.filter((e) => e.flags?.includes('self')).map((e) => `${e.mac} ${e.dst} ${e.state ?? ''}`).sort();
}

const entriesFor = (peers: { h: SimHost; ep: Ep }[]): string[] =>
  peers.flatMap((p) => [`${p.ep.macAddress} ${p.h.ip} permanent`, `00:00:00:00:00:00 ${p.h.ip} permanent`]).sort();

/**
 * Until host h holds exactly the entries of peers. A connect answers once its peer is in etcd;
 * the other hosts program it when their watch delivers it, a moment later (not promised before).
 */
const programmed = (h: SimHost, peers: { h: SimHost; ep: Ep }[]) =>
  waitFor(`host ${h.index} programmed ${peers.length} peer(s)`, async () => (JSON.stringify(await selfFdb(h)) === JSON.stringify(entriesFor(peers)) ? true : undefined), 5000);

describeRoot('overlay faults', () => {
  simSuite({ hosts: 3, leaseTtl: 3 }, made, async (s) => {
    sim = s;
    hosts = s.hosts;
    await cli(hosts[0]!, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.210.0/24', 'ovf']);
    const net = (JSON.parse(await cli(hosts[0]!, ['network', 'inspect', 'ovf', '--format', 'json'])) as { global: { vni: number } }[])[0]!;
    vx = `ovvx${net.global.vni}`;
  });

  it('a daemon SIGKILLed and restarted: the others keep its peers meanwhile; it reprograms what it lost, nothing duplicated or leaked', async () => {
    const [h1, h2] = hosts as [SimHost, SimHost];
    const a = { h: h1, ...(await joined(h1, 'ovf')) };
    const b = { h: h2, ...(await joined(h2, 'ovf')) };
    await programmed(h1, [b]);
    await h2.daemon.stop('SIGKILL');
    expect(await selfFdb(h1)).toEqual(entriesFor([b]));
    expect(await ping(a.sb, ip(b.ep.ipv4))).toContain('1 received');
    // Entries lost on h2 while its daemon was away: restart must put them back, each once.
    await h2.ns.sh(['bridge', 'fdb', 'del', a.ep.macAddress!, 'dev', vx, 'dst', h1.ip, 'self']);
    await h2.ns.sh(['ip', 'neigh', 'del', ip(a.ep.ipv4), 'dev', vx]);
    await h2.ns.sh(['bridge', 'fdb', 'append', '02:42:de:ad:be:ef', 'dev', vx, 'dst', '198.19.255.77', 'self', 'permanent']);
    await h2.daemon.start();
    await waitFor('h2 reprogrammed', async () => (JSON.stringify(await selfFdb(h2)) === JSON.stringify(entriesFor([a])) ? true : undefined), 5000);
    const neigh = await h2.ns.sh(['ip', 'neigh', 'show', 'dev', vx]);
    expect(neigh.trim()).toBe(`${ip(a.ep.ipv4)} lladdr ${a.ep.macAddress} PERMANENT`);
    expect(await ping(b.sb, ip(a.ep.ipv4))).toContain('1 received');
    expect(await selfFdb(h1)).toEqual(entriesFor([b]));
    const group = (await h2.ns.sh(['ip', '-br', 'link', 'show', 'group', String(0x636e6f76)])).trim().split('\n').map((l) => l.split(/[\s@]/)[0]).sort();
    // The bridge, the VXLAN device and b's one port: nothing made twice, nothing left over.
    expect(group).toHaveLength(3);
    expect(group).toEqual(expect.arrayContaining([`ovbr${vx.slice(4)}`, vx]));
  });

  it('a host that does not come back: its peers vanish from the others after the lease TTL; back again, it publishes them anew', async () => {
    const [h1, , h3] = hosts as [SimHost, SimHost, SimHost];
    const a = { h: h1, ...(await joined(h1, 'ovf')) };
    const c = { h: h3, ...(await joined(h3, 'ovf')) };
    await programmed(h1, [c]);
    await h3.daemon.stop('SIGKILL');
    const gone = Date.now();
    await waitFor('h3\'s peers removed from h1', async () => ((await selfFdb(h1)).length === 0 ? true : undefined), (sim.leaseTtl + 5) * 1000);
    expect(Date.now() - gone).toBeGreaterThan(1000);
    expect(await run(['ip', '-n', h1.ns.name, 'neigh', 'show', ip(c.ep.ipv4), 'dev', vx])).toMatchObject({ stdout: '' });
    await h3.daemon.start();
    await waitFor('h3\'s peers back on h1', async () => (JSON.stringify(await selfFdb(h1)) === JSON.stringify(entriesFor([c])) ? true : undefined), 5000);
    expect(await ping(a.sb, ip(c.ep.ipv4))).toContain('1 received');
  });

  it('etcd stopped 30 s: existing endpoints forward without loss, a new endpoint fails fast, a join after etcd returns converges within 2 s', async () => {
    const [h1, h2, h3] = hosts as [SimHost, SimHost, SimHost];
    const a = await joined(h1, 'ovf');
    const b = { h: h2, ...(await joined(h2, 'ovf')) };
    // With etcd stopped, a peer not programmed yet would never be: the ping would find no way.
    await programmed(h1, [b]);
    await sim.etcd.stop();
    try {
      const pinging = ping(a.sb, ip(b.ep.ipv4), 30);
      await new Promise((r) => setTimeout(r, 2000));
      const sb = await h3.daemon.sandbox();
      made.push({ h: h3, sb });
      const t0 = Date.now();
      const refused = await h3.daemon.cmd(['connect', 'ovf', sb]);
      expect(Date.now() - t0).toBeLessThan(4000);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('cluster store unavailable');
      expect(await pinging).toContain('30 packets transmitted, 30 received, 0% packet loss');
    } finally {
      await sim.etcd.start();
    }
    const sb = await h3.daemon.sandbox();
    made.push({ h: h3, sb });
    const ep = await waitFor('connect after etcd returns', async () => {
      const r = await h3.daemon.cmd(['connect', 'ovf', sb, '--format', 'json']);
      return r.code === 0 ? (JSON.parse(r.stdout) as Ep) : undefined;
    }, 10_000);
    const connected = Date.now();
    await waitFor('a reaches the new endpoint', async () => ((await ping(a.sb, ip(ep.ipv4))).includes('1 received') ? true : undefined), 5000);
    expect(Date.now() - connected).toBeLessThan(2000);
    expect(await check(['ip', '-n', h1.ns.name, 'neigh', 'show', ip(ep.ipv4), 'dev', vx])).toContain('PERMANENT');
  }, 90_000);
});
