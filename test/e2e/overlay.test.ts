// The overlay driver end to end on three simulated hosts (namespaces on an underlay, one real
// etcd, a real daemon each), driven through the CLI: sandboxes on every host reach each other
// over one overlay, two overlays stay apart, broadcast reaches every host, the MTU follows the
// underlay (or the MTU given, also under IPv6's 1280 on an IPv4 overlay), the underlay carries VXLAN
// on the chosen port and VNI, IPv6 crosses. Checked with
// iproute2 (`bridge -j fdb`, `ip -j neigh`, `ip -d -j link`), tcpdump and real packets.
import { spawn } from 'node:child_process';
import { expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { simSuite } from '../helpers/sim-suite.js';
import { SimCluster, simCli, simJoined, waitFor, type SimHost } from '../helpers/cluster.js';
import { check, run } from '../helpers/exec.js';
import { fdbRows, neighRows, type NeighRow } from '../helpers/entries.js';

interface Ep { ipv4?: string; ipv6?: string; macAddress?: string; networkId: string }
interface Net { id: string; name: string; scope: string; driver: string; options: Record<string, string>; ipv4: { subnet: string }[]; global?: { vni: number; port: number; hosts: { hostname: string; vtep: string; endpoints: number }[] } }

let sim: SimCluster;
let hosts: SimHost[];
/** Sandboxes made by the current test, removed through the CLI after it (each must take its namespace along). */
let made: { h: SimHost; sb: string }[] = [];

const cli = simCli;

async function inspectNet(h: SimHost, name: string): Promise<Net> {
  return (JSON.parse(await cli(h, ['network', 'inspect', name, '--format', 'json'])) as Net[])[0]!;
}

const joined = (h: SimHost, net: string, extra: string[] = []) => simJoined<Ep>(h, net, made, extra);

const ip = (cidr: string | undefined): string => cidr!.split('/')[0]!;

async function ping(sb: string, to: string, extra: string[] = []): Promise<boolean> {
  const r = await run(['ip', 'netns', 'exec', sb, 'ping', '-c', '1', '-W', '2', ...extra, to]);
  return r.code === 0 && r.stdout.includes('1 received');
}

/** tcpdump (filter: its arguments) in namespace ns, listening once this resolves; the function returned gives its output once it ends (15 s at most). */
async function capture(ns: string, filter: string[]): Promise<() => Promise<string>> {
  const child = spawn('ip', ['netns', 'exec', ns, 'timeout', '15', 'tcpdump', '-l', ...filter], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise((res) => child.once('close', res));
  await waitFor('tcpdump listening', async () => (err.includes('listening on') ? true : undefined), 5000);
  return async () => {
    await exited;
    return out;
  };
}

describeRoot('overlay driver across simulated hosts', () => {
  simSuite({ hosts: 3, leaseTtl: 3 }, made, (s) => {
    sim = s;
    hosts = s.hosts;
  });

  it('one overlay across three hosts: all pairs ping; only static entries (FDB, neighbours, floods) for the remote peers; scope global, VNI and hosts shown', async () => {
    const [h1, , h3] = hosts as [SimHost, SimHost, SimHost];
    await cli(h1, ['network', 'create', '-d', 'overlay', '--subnet', '198.19.200.0/24', 'ov1']);
    const members = [];
    for (const h of hosts) members.push({ h, ...(await joined(h, 'ov1')) });
    const addrs = members.map((m) => ip(m.ep.ipv4));
    expect(new Set(addrs).size).toBe(3);
    for (const a of members) for (const b of members) if (a !== b) expect(await ping(a.sb, ip(b.ep.ipv4)), `${a.sb} → ${ip(b.ep.ipv4)}`).toBe(true);
    const net = await inspectNet(h3, 'ov1');
    expect(net.scope).toBe('global');
    // The creating host shows the network as the others do (its options as the cluster has them).
    expect((await inspectNet(h1, 'ov1')).options).toEqual(net.options);
    expect(net.global!.vni).toBeGreaterThanOrEqual(4096);
    expect(net.global!.hosts.map((x) => [x.vtep, x.endpoints]).sort()).toEqual(hosts.map((h) => [h.ip, 1]).sort());
    const vx = `ovvx${net.global!.vni}`;
    for (const m of members) {
      const remote = members.filter((o) => o !== m);
      const [link] = JSON.parse(await m.h.ns.sh(['ip', '-d', '-j', 'link', 'show', vx])) as { mtu: number; linkinfo: { info_data: { id: number; port: number; learning: boolean; proxy: boolean; l2miss?: boolean; l3miss?: boolean } } }[];
      expect(link!.mtu).toBe(1450);
      expect(link!.linkinfo.info_data).toMatchObject({ id: net.global!.vni, port: 4789, learning: false, proxy: true });
      expect(link!.linkinfo.info_data.l2miss ?? false).toBe(false);
      expect(link!.linkinfo.info_data.l3miss ?? false).toBe(false);
      const entries = (await fdbRows(m.h.ns, vx)).filter((e) => e.flags?.includes('self'));
      const got = entries.map((e) => `${e.mac} ${e.dst} ${e.state ?? ''}`).sort();
      const want = remote.flatMap((o) => [`${o.ep.macAddress} ${o.h.ip} permanent`, `00:00:00:00:00:00 ${o.h.ip} permanent`]).sort();
      expect(got).toEqual(want);
      const n = (await neighRows(m.h.ns, vx)).map((e) => `${e.dst} ${e.lladdr} ${e.state?.join(',')}`).sort();
      expect(n).toEqual(remote.map((o) => `${ip(o.ep.ipv4)} ${o.ep.macAddress} PERMANENT`).sort());
      // The sandbox's port on the bridge (up, with its carrier) has no IPv6 address: nothing of its
      // own (DAD, router solicitation, MLD report) is flooded to the other VTEPs.
      const ports = (JSON.parse(await m.h.ns.sh(['ip', '-j', 'link', 'show', 'master', `ovbr${net.global!.vni}`])) as { ifname: string; flags: string[] }[]).filter((p) => p.ifname !== vx);
      expect(ports).toHaveLength(1);
      expect(ports[0]!.flags).toContain('LOWER_UP');
      expect(JSON.parse(await m.h.ns.sh(['ip', '-6', '-j', 'addr', 'show', 'dev', ports[0]!.ifname]))).toEqual([]);
      // Nor do the bridge and the VXLAN device, made at the network's create (h1) or at a first join
      // (h2, h3): the host has no IPv6 on the overlay's bridge at all (no address, no SLAAC from a sandbox's RA).
      const bridge = `ovbr${net.global!.vni}`;
      for (const dev of [bridge, vx]) expect(JSON.parse(await m.h.ns.sh(['ip', '-6', '-j', 'addr', 'show', 'dev', dev])), `${dev} on host ${m.h.index}`).toEqual([]);
      expect((await m.h.ns.sh(['cat', `/proc/sys/net/ipv6/conf/${bridge}/disable_ipv6`])).trim()).toBe('1');
    }
  });

  it('broadcast: ARP is answered across hosts from the static neighbours, a broadcast ping reaches every host', async () => {
    const members = [];
    for (const h of hosts) members.push({ h, ...(await joined(h, 'ov1')) });
    const [a, b, c] = members as [typeof members[0], typeof members[0], typeof members[0]];
    for (const m of [b, c]) await check(['ip', 'netns', 'exec', m.sb, 'sysctl', '-qw', 'net.ipv4.icmp_echo_ignore_broadcasts=0']);
    expect(await ping(a.sb, ip(b.ep.ipv4))).toBe(true);
    // c joined last: a's host floods to c's host once its watch delivered c (a moment after c's connect answered).
    await waitFor('a reaches c', async () => ((await ping(a.sb, ip(c.ep.ipv4))) ? true : undefined), 5000);
    const learned = JSON.parse(await check(['ip', '-n', a.sb, '-j', 'neigh', 'show', ip(b.ep.ipv4)])) as NeighRow[];
    expect(learned[0]?.lladdr).toBe(b.ep.macAddress);
    const r = await run(['ip', 'netns', 'exec', a.sb, 'ping', '-b', '-c', '2', '-i', '0.3', '-W', '2', '198.19.200.255']);
    const from = new Set([...r.stdout.matchAll(/from (\d+\.\d+\.\d+\.\d+)/g)].map((x) => x[1]));
    // Every sandbox that answers broadcasts (b, c) is heard from across the underlay.
    expect(from.has(ip(b.ep.ipv4)) && from.has(ip(c.ep.ipv4))).toBe(true);
  });

  it('two overlays stay apart; an overlapping subnet is refused; the last leave on a host removes its devices and its peers everywhere', async () => {
    const [h1, h2, h3] = hosts as [SimHost, SimHost, SimHost];
    await cli(h2, ['network', 'create', '-d', 'overlay', '--subnet', '198.19.202.0/24', 'ov2']);
    const clash = await h3.daemon.cmd(['network', 'create', '-d', 'overlay', '--subnet', '198.19.202.128/25', 'ov3']);
    expect(clash.code).toBe(1);
    expect(clash.stderr).toMatch(/subnet 198\.19\.202\.128\/25 cannot be a global pool: it is in use by global network ov2/);
    const a1 = await joined(h1, 'ov1');
    const a3 = await joined(h3, 'ov1');
    const b1 = await joined(h1, 'ov2');
    const b3 = await joined(h3, 'ov2');
    expect(await ping(a1.sb, ip(a3.ep.ipv4))).toBe(true);
    expect(await ping(b1.sb, ip(b3.ep.ipv4))).toBe(true);
    expect(await ping(a1.sb, ip(b3.ep.ipv4))).toBe(false);
    expect(await ping(b3.sb, ip(a1.ep.ipv4))).toBe(false);
    // h2 created ov2 but has no endpoint on ov1: its ov1 devices exist only while an endpoint of its own is there.
    const vni1 = (await inspectNet(h1, 'ov1')).global!.vni;
    expect((await h2.ns.sh(['ip', '-br', 'link', 'show', 'group', String(0x636e6f76)])).includes(`ovvx${vni1}`)).toBe(false);
    const c2 = await joined(h2, 'ov1');
    expect(await ping(c2.sb, ip(a3.ep.ipv4))).toBe(true);
    await cli(h2, ['disconnect', 'ov1', c2.sb]);
    expect(await run(['ip', '-n', h2.ns.name, 'link', 'show', `ovvx${vni1}`])).toMatchObject({ code: 1 });
    // The removal reaches the other hosts through their watches: within 2 s (it takes milliseconds).
    for (const h of [h1, h3]) {
      await waitFor(`h2's peer gone from host ${h.index}`, async () => ((await fdbRows(h.ns, `ovvx${vni1}`)).some((e) => e.mac === c2.ep.macAddress || e.dst === h2.ip) ? undefined : true), 2000);
    }
  });

  it('MTU follows the underlay (1400 − 50): ping -M do with the largest payload passes, one byte more fails', async () => {
    const links = [...hosts.map((h) => [h.ns, 'eth0'] as const), ...hosts.map((h) => [sim.underlay, `u${h.index}`] as const), [sim.underlay, 'br0'] as const];
    const setMtu = async (mtu: number) => {
      for (const [ns, dev] of links) await ns.sh(['ip', 'link', 'set', dev, 'mtu', String(mtu)]);
    };
    await setMtu(1400);
    try {
      await cli(hosts[0]!, ['network', 'create', '-d', 'overlay', '--subnet', '198.19.203.0/24', 'ovmtu']);
      const a = await joined(hosts[0]!, 'ovmtu');
      const b = await joined(hosts[1]!, 'ovmtu');
      const vni = (await inspectNet(hosts[0]!, 'ovmtu')).global!.vni;
      for (const h of [hosts[0]!, hosts[1]!]) expect(await h.ns.sh(['ip', '-br', 'link', 'show', `ovvx${vni}`])).toBeTruthy();
      expect(await check(['ip', '-n', a.sb, '-j', 'link', 'show', 'eth0'])).toContain('"mtu":1350');
      expect(await ping(a.sb, ip(b.ep.ipv4), ['-M', 'do', '-s', '1322'])).toBe(true);
      expect(await ping(a.sb, ip(b.ep.ipv4), ['-M', 'do', '-s', '1323'])).toBe(false);
      expect((await hosts[0]!.daemon.cmd(['network', 'inspect', 'ovmtu'])).stderr).toBe('');

      // An MTU set above what the underlay carries is taken (as Docker does), with a warning at
      // create and at inspect on each host where the network came up: larger packets cross
      // fragmented; with don't-fragment set, the sender is told the underlay's MTU less 50.
      const over = await hosts[0]!.daemon.cmd(['network', 'create', '-d', 'overlay', '--subnet', '198.19.208.0/24', '-o', 'com.docker.network.driver.mtu=1400', 'ovbig']);
      expect(over.code).toBe(0);
      const warning = /^Warning: MTU 1400 \(com\.docker\.network\.driver\.mtu\) is above what this host's underlay carries, 1350 \(the --advertise-addr interface's MTU less VXLAN's 50 bytes\)/m;
      expect(over.stderr).toMatch(warning);
      const c = await joined(hosts[0]!, 'ovbig');
      const d = await joined(hosts[1]!, 'ovbig');
      expect(await check(['ip', '-n', c.sb, '-j', 'link', 'show', 'eth0'])).toContain('"mtu":1400');
      expect(await ping(c.sb, ip(d.ep.ipv4), ['-M', 'dont', '-s', '1372'])).toBe(true);
      const df = await run(['ip', 'netns', 'exec', c.sb, 'ping', '-c', '1', '-W', '2', '-M', 'do', '-s', '1372', ip(d.ep.ipv4)]);
      expect(df.stdout).toContain('Frag needed and DF set (mtu = 1350)');
      for (const h of [hosts[0]!, hosts[1]!]) expect((await h.daemon.cmd(['network', 'inspect', 'ovbig'])).stderr).toMatch(warning);
      expect((await hosts[1]!.daemon.cmd(['network', 'ls'])).stderr).toMatch(warning);
      expect((await hosts[2]!.daemon.cmd(['network', 'inspect', 'ovbig'])).stderr).toBe('');
    } finally {
      await setMtu(1500);
    }
  });

  it('an MTU under IPv6\'s 1280 on an IPv4 overlay (-o com.docker.network.driver.mtu=1200): connects work, and it is the MTU end to end', async () => {
    await cli(hosts[0]!, ['network', 'create', '-d', 'overlay', '-o', 'com.docker.network.driver.mtu=1200', '--subnet', '198.19.209.0/24', 'ovsmall']);
    const a = await joined(hosts[0]!, 'ovsmall');
    const b = await joined(hosts[1]!, 'ovsmall');
    expect(await check(['ip', '-n', a.sb, '-j', 'link', 'show', 'eth0'])).toContain('"mtu":1200');
    expect(await ping(a.sb, ip(b.ep.ipv4), ['-M', 'do', '-s', '1172'])).toBe(true);
    expect(await ping(a.sb, ip(b.ep.ipv4), ['-M', 'do', '-s', '1173'])).toBe(false);
    expect(await cli(hosts[0]!, ['check'])).toMatch(/^no drift: /m);
  });

  it('the underlay carries VXLAN on the chosen UDP port with the network\'s VNI', async () => {
    await cli(hosts[0]!, ['network', 'create', '-d', 'overlay', '--subnet', '198.19.204.0/24', '-o', 'com.docker.network.driver.overlay.vxlanid_list=5000', '-o', 'cnmkit.overlay.port=4790', 'ovport']);
    const a = await joined(hosts[0]!, 'ovport');
    const b = await joined(hosts[2]!, 'ovport');
    const dump = await capture(sim.underlay.name, ['-i', 'br0', '-nn', '-c', '2', '-T', 'vxlan', 'udp', 'port', '4790']);
    expect(await ping(a.sb, ip(b.ep.ipv4))).toBe(true);
    const out = await dump();
    expect(out).toMatch(new RegExp(`${hosts[0]!.ip.replace(/\./g, '\\.')}\\.\\d+ > ${hosts[2]!.ip.replace(/\./g, '\\.')}\\.4790: VXLAN, flags \\[I\\] \\(0x08\\), vni 5000`));
    expect(out).toContain(`${ip(a.ep.ipv4)} > ${ip(b.ep.ipv4)}: ICMP echo request`);
  });

  it('IPv6 crosses hosts (addresses from the global IPv6 pool, neighbours from the static table)', async () => {
    await cli(hosts[1]!, ['network', 'create', '-d', 'overlay', '--ipv6', '--subnet', '198.19.205.0/24', '--subnet-v6', 'fd00:c6:13:5::/64', 'ov6']);
    const a = await joined(hosts[1]!, 'ov6');
    const b = await joined(hosts[2]!, 'ov6');
    expect(a.ep.ipv6).toMatch(/^fd00:c6:13:5::/);
    expect(b.ep.ipv6).not.toBe(a.ep.ipv6);
    expect(await ping(a.sb, ip(b.ep.ipv6), ['-6'])).toBe(true);
    expect(await ping(b.sb, ip(a.ep.ipv6), ['-6'])).toBe(true);
    // The sandbox asks again for a neighbour every 20 ms, 15 times (ARP and NS), not every second 3
    // times: its host's VXLAN device drops a question it has no entry for yet (a peer a moment from
    // being programmed).
    for (const family of ['ipv4', 'ipv6']) {
      expect((await check(['ip', 'netns', 'exec', a.sb, 'cat', `/proc/sys/net/${family}/neigh/eth0/retrans_time_ms`])).trim()).toBe('20');
      expect((await check(['ip', 'netns', 'exec', a.sb, 'cat', `/proc/sys/net/${family}/neigh/eth0/mcast_solicit`])).trim()).toBe('15');
    }
  });

  it('egress: a sandbox on a non-internal overlay gets the gateway bridge with the default route and its published port; an internal one gets neither', async () => {
    const [h1, h2] = hosts as [SimHost, SimHost];
    const a = await joined(h1, 'ov1', ['-p', '18080:8080']);
    const routes = await check(['ip', '-n', a.sb, 'route', 'show', 'default']);
    expect(routes).toMatch(/default via \S+ dev eth1/);
    const gw = JSON.parse(await cli(h1, ['network', 'inspect', 'cnmkit_gwbridge', '--format', 'json'])) as { scope: string; endpoints: { sandboxId: string }[] }[];
    expect(gw[0]!.scope).toBe('local');
    // The sandbox reaches its host's underlay address through the gateway bridge.
    expect(await ping(a.sb, h1.ip)).toBe(true);
    const server = run(['ip', 'netns', 'exec', a.sb, 'busybox', 'nc', '-l', '-p', '8080', '-e', 'echo', 'from-overlay'], { timeoutMs: 15_000 });
    await waitFor('nc listens in the sandbox', async () => ((await check(['ip', 'netns', 'exec', a.sb, 'ss', '-Hltn', 'sport = :8080'])).trim() !== '' ? true : undefined), 5000);
    const got = await h2.ns.sh(['curl', '-s', '--max-time', '5', '--http0.9', `http://${h1.ip}:18080/`]).catch((err: Error) => err.message);
    expect(got).toContain('from-overlay');
    await server;
    await cli(h1, ['network', 'create', '-d', 'overlay', '--internal', '--subnet', '198.19.206.0/24', 'ovint']);
    const i = await joined(h1, 'ovint');
    expect(await check(['ip', '-n', i.sb, 'route', 'show', 'default'])).toBe('');
    expect(await check(['ip', '-n', i.sb, '-br', 'link'])).not.toContain('eth1');
    const other = await h1.daemon.sandbox();
    made.push({ h: h1, sb: other });
    const refused = await h1.daemon.cmd(['connect', 'ovint', other, '-p', '18081:80']);
    expect(refused.stderr).toMatch(/ports: network ovint is internal: it cannot publish ports/);
  });
});
