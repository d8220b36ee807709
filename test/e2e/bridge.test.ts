// The bridge driver end to end: a real daemon in a throwaway "host" namespace, sandboxes as
// named namespaces, checked with ip -j and real packets. Runs once per firewall backend.
import { spawn } from 'node:child_process';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { makeNs, underlay, type TestNs } from '../helpers/netns.js';
import { TestDaemon } from '../helpers/daemon.js';
import { check, run } from '../helpers/exec.js';

interface Ep { ipv4?: string; macAddress?: string; ifname?: string }

/** tcpdump (a setup dependency) on `iface` of `ns`, listening once this resolves; the function returned gives its output after one packet (5 s at most). */
async function startCapture(ns: TestNs, iface: string, filter: string[]): Promise<() => Promise<string>> {
  const child = spawn('ip', ['netns', 'exec', ns.name, 'timeout', '5', 'tcpdump', '-n', '-l', '-c', '1', '-i', iface, ...filter], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise((res) => child.once('close', res));
  const deadline = Date.now() + 5000;
  while (!err.includes('listening on')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`tcpdump did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return async () => {
    await exited;
    return out;
  };
}

for (const backend of ['nftables', 'iptables'] as const) {
  describeRoot(`bridge driver (${backend})`, () => {
    let host: TestNs;
    let daemon: TestDaemon;

    beforeEach(async () => {
      host = await makeNs('host');
      daemon = new TestDaemon(host, ['--firewall-backend', backend]);
      await daemon.start();
    });
    afterEach(async () => {
      await daemon.cleanup();
    });

    const sandbox = (): Promise<string> => daemon.sandbox();

    async function connect(net: string, sb: string): Promise<Ep> {
      const r = await daemon.cmd(['connect', '--format', 'json', net, sb]);
      expect(r.stderr).toBe('');
      return JSON.parse(r.stdout) as Ep;
    }

    const ping = (from: string, to: string) => run(['ip', 'netns', 'exec', from, 'ping', '-c', '1', '-W', '1', to]);
    const addr = (ep: Ep) => ep.ipv4!.split('/')[0]!;

    it('joins three sandboxes to one bridge: veth on the bridge, Docker-style MAC, default route, ping all pairs', async () => {
      expect((await daemon.cmd(['network', 'create', '--subnet', '198.18.10.0/24', '-o', 'com.docker.network.bridge.name=brtest0', 'lab'])).code).toBe(0);
      const bridge = await host.ipJson<{ ifname: string; flags: string[]; linkinfo?: { info_kind: string; info_data: { mcast_snooping: number } } }[]>(['-d', 'link', 'show', 'brtest0']);
      expect(bridge[0]!.linkinfo!.info_kind).toBe('bridge');
      expect(bridge[0]!.flags).toContain('UP');
      // Multicast snooping is off unless asked for (cnmkit.bridge.mcast_snooping=true).
      expect(bridge[0]!.linkinfo!.info_data.mcast_snooping).toBe(0);
      expect((await daemon.cmd(['network', 'create', '--subnet', '198.18.19.0/24', '-o', 'com.docker.network.bridge.name=brsnoop0', '-o', 'cnmkit.bridge.mcast_snooping=true', 'snoop'])).code).toBe(0);
      const snoop = await host.ipJson<{ linkinfo: { info_data: { mcast_snooping: number } } }[]>(['-d', 'link', 'show', 'brsnoop0']);
      expect(snoop[0]!.linkinfo.info_data.mcast_snooping).toBe(1);
      const gw = await host.ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(['-4', 'addr', 'show', 'brtest0']);
      expect(gw[0]!.addr_info).toEqual([expect.objectContaining({ local: '198.18.10.1', prefixlen: 24 })]);
      const sbs = [await sandbox(), await sandbox(), await sandbox()];
      const eps = [];
      for (const sb of sbs) eps.push(await connect('lab', sb));
      expect(eps.map(addr)).toEqual(['198.18.10.2', '198.18.10.3', '198.18.10.4']);
      const ports = await host.ipJson<{ ifname: string }[]>(['link', 'show', 'master', 'brtest0']);
      expect(ports).toHaveLength(3);
      // Bridge ports carry no IPv6 of their own (no link-local address, no fe80::/64 route each).
      for (const port of ports) expect((await host.sh(['cat', `/proc/sys/net/ipv6/conf/${port.ifname}/disable_ipv6`])).trim()).toBe('1');
      expect(await host.ipJson(['-6', 'route', 'show', 'dev', ports[0]!.ifname])).toEqual([]);
      for (const [i, sb] of sbs.entries()) {
        const inside = JSON.parse(await check(['ip', '-n', sb, '-j', 'addr', 'show', 'eth0'])) as { address: string; operstate: string; addr_info: { local: string }[] }[];
        expect(inside[0]!.address).toBe(`02:42:c6:12:0a:0${i + 2}`);
        expect(inside[0]!.addr_info.map((a) => a.local)).toContain(addr(eps[i]!));
        const routes = JSON.parse(await check(['ip', '-n', sb, '-j', 'route', 'show', 'default'])) as { gateway: string }[];
        expect(routes[0]!.gateway).toBe('198.18.10.1');
        // An IPv4-only network: IPv6 is off on the interface (no link-local address, no DAD or MLD floods).
        expect((await check(['ip', 'netns', 'exec', sb, 'cat', '/proc/sys/net/ipv6/conf/eth0/disable_ipv6'])).trim()).toBe('1');
        expect(JSON.parse(await check(['ip', '-n', sb, '-6', '-j', 'addr', 'show', 'eth0']))).toEqual([]);
      }
      for (const a of sbs) for (const b of eps) expect((await ping(a, addr(b))).code).toBe(0);
      expect((await ping(sbs[0]!, '198.18.10.1')).code).toBe(0);
      for (const sb of sbs) expect((await daemon.cmd(['sandbox', 'rm', sb])).code).toBe(0);
      // The kernel deletes a namespace's veth pairs in the background, soon after the namespace goes.
      for (let i = 0; i < 50 && (await host.ipJson<unknown[]>(['link', 'show', 'master', 'brtest0'])).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
      expect(await host.ipJson(['link', 'show', 'master', 'brtest0'])).toEqual([]);
      expect((await daemon.cmd(['network', 'rm', 'lab'])).code).toBe(0);
      expect((await host.exec(['ip', 'link', 'show', 'brtest0'])).code).not.toBe(0);
    });

    it('isolates two bridge networks from each other, and icc=false isolates sandboxes inside one', async () => {
      await daemon.cmd(['network', 'create', '--subnet', '198.18.11.0/24', 'neta']);
      await daemon.cmd(['network', 'create', '--subnet', '198.18.12.0/24', 'netb']);
      await daemon.cmd(['network', 'create', '--subnet', '198.18.13.0/24', '-o', 'com.docker.network.bridge.enable_icc=false', 'noicc']);
      const [a, a2, b, b2, c1, c2] = [await sandbox(), await sandbox(), await sandbox(), await sandbox(), await sandbox(), await sandbox()];
      const ea = await connect('neta', a!);
      await connect('neta', a2!);
      const eb = await connect('netb', b!);
      await connect('netb', b2!);
      await connect('noicc', c1!);
      const ec2 = await connect('noicc', c2!);
      // Positive controls: the same probes succeed from the target's own network.
      expect((await ping(a2!, addr(ea))).code).toBe(0);
      expect((await ping(b2!, addr(eb))).code).toBe(0);
      expect((await ping(a!, addr(eb))).code).not.toBe(0);
      expect((await ping(b!, addr(ea))).code).not.toBe(0);
      // c2 answers (from the host, its gateway), and c1 reaches the gateway, but not each other.
      expect((await host.exec(['ping', '-c', '1', '-W', '1', addr(ec2)])).code).toBe(0);
      expect((await ping(c1!, '198.18.13.1')).code).toBe(0);
      expect((await ping(c1!, addr(ec2))).code).not.toBe(0);
    });

    it('masquerades traffic to another host on the underlay, and keeps internal networks inside their subnet', async () => {
      const client = await makeNs('client');
      await underlay(host, client, '198.19.0.1', '198.19.0.2');
      await daemon.cmd(['network', 'create', '--subnet', '198.18.14.0/24', 'outnet']);
      await daemon.cmd(['network', 'create', '--subnet', '198.18.15.0/24', '--internal', 'inner']);
      const [s1, s2] = [await sandbox(), await sandbox()];
      await connect('outnet', s1!);
      await connect('inner', s2!);
      const listener = client.exec(['timeout', '5', 'nc', '-l', '-u', '-W', '1', '-p', '9999'], { timeoutMs: 8000 });
      // The datagram is sent once nc has bound its port (a datagram sooner is lost).
      for (const deadline = Date.now() + 5000; (await client.sh(['ss', '-Hlun', 'sport = :9999'])).trim() === ''; await new Promise((r) => setTimeout(r, 20))) {
        if (Date.now() > deadline) throw new Error('nc did not bind UDP port 9999 within 5 s');
      }
      const captured = await startCapture(client, 'ul1', ['udp', 'port', '9999']);
      await run(['ip', 'netns', 'exec', s1!, 'sh', '-c', 'echo hello | nc -u -w 1 198.19.0.2 9999']);
      expect((await listener).stdout).toContain('hello');
      // On the wire the source is the host's underlay address, not the sandbox's 198.18.14.x.
      expect(await captured()).toMatch(/^[\d:.]+ IP 198\.19\.0\.1\.\d+ > 198\.19\.0\.2\.9999: UDP/m);
      expect((await ping(s1!, '198.19.0.2')).code).toBe(0);
      expect((await ping(s2!, '198.19.0.2')).code).not.toBe(0);
      const routes = JSON.parse(await check(['ip', '-n', s2!, '-j', 'route', 'show', 'default'])) as unknown[];
      expect(routes).toEqual([]);
    });

    it('gives IPv6 networks a ULA /64 (or the given subnet): gateway on the bridge, addresses and default routes inside, ping6 between sandboxes', async () => {
      expect((await daemon.cmd(['network', 'create', '--ipv6', '--subnet', '198.18.30.0/24', 'v6auto'])).code).toBe(0);
      const net = JSON.parse((await daemon.cmd(['network', 'inspect', 'v6auto'])).stdout)[0] as { ipv6: { subnet: string; gateway: string }[] };
      expect(net.ipv6[0]!.subnet).toMatch(/^fd[0-9a-f]{2}:[0-9a-f:]+\/64$/);
      const [a, b] = [await sandbox(), await sandbox()];
      const ea = (await connect('v6auto', a!)) as Ep & { ipv6: string };
      const eb = (await connect('v6auto', b!)) as Ep & { ipv6: string };
      const inside = JSON.parse(await check(['ip', '-n', a!, '-6', '-j', 'addr', 'show', 'eth0'])) as { addr_info: { local: string; prefixlen: number }[] }[];
      expect(inside[0]!.addr_info.map((x) => `${x.local}/${x.prefixlen}`)).toContain(ea.ipv6);
      expect(inside[0]!.addr_info.some((x) => x.local.startsWith('fe80:'))).toBe(true);
      expect((await check(['ip', 'netns', 'exec', a!, 'cat', '/proc/sys/net/ipv6/conf/eth0/disable_ipv6'])).trim()).toBe('0');
      const r6 = JSON.parse(await check(['ip', '-n', a!, '-6', '-j', 'route', 'show', 'default'])) as { gateway: string }[];
      expect(r6[0]!.gateway).toBe(net.ipv6[0]!.gateway.split('/')[0]);
      expect((await run(['ip', 'netns', 'exec', a!, 'ping', '-6', '-c', '1', '-W', '2', eb.ipv6.split('/')[0]!])).code).toBe(0);
      expect((await daemon.cmd(['network', 'create', '--subnet-v6', 'fd00:cafe:1::/64', '--subnet', '198.18.31.0/24', 'v6given'])).code).toBe(0);
      const given = JSON.parse((await daemon.cmd(['network', 'inspect', 'v6given'])).stdout)[0] as { ipv6: { subnet: string; gateway: string }[] };
      expect(given.ipv6[0]).toMatchObject({ subnet: 'fd00:cafe:1::/64', gateway: 'fd00:cafe:1::1/64' });
    });

    it('sweeps devices of its link group that nothing owns at start, and never touches other devices', async () => {
      expect((await daemon.cmd(['network', 'create', '--subnet', '198.18.32.0/24', 'keep'])).code).toBe(0);
      const sb = await sandbox();
      await connect('keep', sb);
      await daemon.stop('SIGKILL');
      await host.sh(['ip', 'link', 'add', 'name', 'orphanbr0', 'group', String(0x636e6d6b), 'type', 'bridge']);
      await host.sh(['ip', 'link', 'add', 'name', 'vethdeadbee', 'group', String(0x636e6d6b), 'type', 'veth', 'peer', 'name', 'orphanpeer']);
      await host.sh(['ip', 'link', 'add', 'name', 'usersbr0', 'type', 'bridge']);
      await daemon.start();
      const links = await host.linkNames();
      expect(links).not.toContain('orphanbr0');
      expect(links).not.toContain('vethdeadbee');
      expect(links).toContain('usersbr0');
      expect(links.filter((l) => l.startsWith('veth'))).toHaveLength(1);
      expect(daemon.log).toMatch(/orphanbr0: deleted \(nothing owns it\)/);
      expect((await ping(sb, '198.18.32.1')).code).toBe(0);
    });

    it('refuses -p on an internal network before making anything, naming the ports and why (connect and run)', async () => {
      expect((await daemon.cmd(['network', 'create', '--subnet', '198.18.33.0/24', '--internal', 'sealed'])).code).toBe(0);
      const sb = await sandbox();
      const linksBefore = await host.linkNames();
      const refused = await daemon.cmd(['connect', 'sealed', sb, '-p', '8080:80']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/ports: network sealed is internal: it cannot publish ports/);
      // Nothing made: no interface in the sandbox, no veth or endpoint here, no address taken (the next connect gets the first).
      expect((await check(['ip', '-n', sb, '-br', 'link'])).trim().split('\n').map((l) => l.split(' ')[0])).toEqual(['lo']);
      expect(await host.linkNames()).toEqual(linksBefore);
      const nets = JSON.parse((await daemon.cmd(['network', 'inspect', 'sealed', '--format', 'json'])).stdout) as { endpoints: unknown[] }[];
      expect(nets[0]!.endpoints).toEqual([]);
      expect(addr(await connect('sealed', sb))).toBe('198.18.33.2');
      const ran = await daemon.cmd(['run', '--network', 'sealed', '-p', '8081:80', '--', 'true']);
      expect(ran.code).not.toBe(0);
      expect(ran.stderr).toMatch(/ports: network sealed is internal: it cannot publish ports/);
      expect(addr(await connect('sealed', await sandbox()))).toBe('198.18.33.3');
    });

    it('refuses bad options naming the field, and leaves no bridge, rule or address behind', async () => {
      const linksBefore = await host.linkNames();
      const bad = await daemon.cmd(['network', 'create', '-o', 'com.docker.network.bridge.enable_icc=maybe', 'bad1']);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/com\.docker\.network\.bridge\.enable_icc: expected true or false/);
      const long = await daemon.cmd(['network', 'create', '-o', 'com.docker.network.bridge.name=waytoolongbridgename', 'bad2']);
      expect(long.stderr).toMatch(/longer than 15/);
      const snooping = await daemon.cmd(['network', 'create', '-o', 'cnmkit.bridge.mcast_snooping=sometimes', 'bad6']);
      expect(snooping.stderr).toMatch(/cnmkit\.bridge\.mcast_snooping: expected true or false/);
      const unknown = await daemon.cmd(['network', 'create', '-o', 'frobnicate=1', 'bad3']);
      expect(unknown.stderr).toMatch(/options\.frobnicate: unknown bridge option/);
      const subnet = await daemon.cmd(['network', 'create', '--subnet', '198.18.16.0/24', '--gateway', '198.18.99.1', 'bad4']);
      expect(subnet.code).toBe(1);
      expect(subnet.stderr).toMatch(/gateway/);
      await host.sh(['ip', 'link', 'add', 'taken0', 'type', 'veth', 'peer', 'name', 'taken1']);
      const clash = await daemon.cmd(['network', 'create', '--subnet', '198.18.17.0/24', '-o', 'com.docker.network.bridge.name=taken0', 'bad5']);
      expect(clash.code).toBe(1);
      expect(clash.stderr).toMatch(/not a bridge/);
      expect((await host.linkNames()).filter((l) => !['taken0', 'taken1'].includes(l))).toEqual(linksBefore);
      const nets = JSON.parse((await daemon.cmd(['network', 'ls', '--format', 'json'])).stdout) as { name: string }[];
      expect(nets.map((n) => n.name).sort()).toEqual(['bridge', 'host', 'none']);
      const again = await daemon.cmd(['network', 'create', '--subnet', '198.18.16.0/24', 'good']);
      expect(again.code).toBe(0);
    });
  });
}
