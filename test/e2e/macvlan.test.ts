// The macvlan driver end to end, with packets: a real daemon in a throwaway namespace that stands
// for the host, whose veth `nic0` stands for the physical NIC; its peer sits in a "LAN" namespace
// with the LAN host 198.18.40.1 (also the network's gateway). Sandboxes on a macvlan of nic0 are
// checked with ip -j, ip neigh on the LAN host, ping and ping6 — never through cnmkit itself. And
// `check --fix` on a macvlan network: the parent bridge cnmkit made and a sandbox's macvlan set down by
// hand are set up again (read back with ip -j).
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { makeNs, type TestNs } from '../helpers/netns.js';
import { TestDaemon } from '../helpers/daemon.js';
import { check, run } from '../helpers/exec.js';
import { neighRows } from '../helpers/entries.js';
import { kernelLacks, skipUnlessKernelHas } from '../helpers/kernel-features.js';

interface Ep { ipv4?: string; ipv6?: string; macAddress?: string; ifname?: string }
interface Net { id: string; name: string; ipv6: { subnet: string; gateway?: string }[] }

const LAN_HOST = '198.18.40.1';

describeRoot('macvlan driver', () => {
  let host: TestNs;
  let lan: TestNs;
  let daemon: TestDaemon;

  beforeEach(async () => {
    host = await makeNs('host');
    lan = await makeNs('lan');
    await check(['ip', 'link', 'add', 'nic0', 'netns', host.name, 'type', 'veth', 'peer', 'name', 'lan0', 'netns', lan.name]);
    await host.sh(['ip', 'addr', 'add', '198.18.40.254/24', 'dev', 'nic0']);
    await host.sh(['ip', 'link', 'set', 'nic0', 'up']);
    await lan.sh(['ip', 'addr', 'add', `${LAN_HOST}/24`, 'dev', 'lan0']);
    await lan.sh(['ip', 'link', 'set', 'lan0', 'up']);
    daemon = new TestDaemon(host, ['--firewall-backend', 'none']);
    await daemon.start();
  });
  afterEach(async () => {
    await daemon.cleanup();
  });

  async function create(name: string, args: string[]): Promise<Net> {
    const r = await daemon.cmd(['network', 'create', '--format', 'json', '-d', 'macvlan', ...args, name]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as Net;
  }

  async function connect(net: string, sb: string, extra: string[] = []): Promise<Ep> {
    const r = await daemon.cmd(['connect', '--format', 'json', ...extra, net, sb]);
    expect(r.stderr).toBe('');
    return JSON.parse(r.stdout) as Ep;
  }

  const ping = (from: string, to: string) => run(['ip', 'netns', 'exec', from, 'ping', '-c', '1', '-W', '1', to]);
  const ping6 = (from: string, to: string) => run(['ip', 'netns', 'exec', from, 'ping', '-6', '-c', '1', '-W', '2', to]);
  const addr = (cidr: string | undefined) => cidr!.split('/')[0]!;

  it('two sandboxes on a macvlan of the NIC reach each other and the LAN host, which sees their own MACs; the host cannot reach them', async () => {
    await create('lan', ['-o', 'parent=nic0', '--subnet', '198.18.40.0/24', '--gateway', LAN_HOST, '--ip-range', '198.18.40.128/25']);
    const [a, b] = [await daemon.sandbox(), await daemon.sandbox()];
    const ea = await connect('lan', a);
    const eb = await connect('lan', b, ['--ip', '198.18.40.200', '--mac', '02:aa:bb:cc:dd:01']);
    expect(addr(ea.ipv4)).toBe('198.18.40.128');
    expect(ea.macAddress).toBe('02:42:c6:12:28:80');
    expect(eb.macAddress).toBe('02:aa:bb:cc:dd:01');
    for (const [sb, ep] of [[a, ea], [b, eb]] as const) {
      const [link] = JSON.parse(await check(['ip', '-n', sb, '-d', '-j', 'link', 'show', 'eth0'])) as { address: string; link_netnsid?: number; linkinfo: { info_kind: string; info_data: { mode: string } } }[];
      expect(link!.linkinfo.info_kind).toBe('macvlan');
      expect(link!.linkinfo.info_data.mode).toBe('bridge');
      expect(link!.address).toBe(ep.macAddress);
      const routes = JSON.parse(await check(['ip', '-n', sb, '-j', 'route', 'show', 'default'])) as { gateway: string; dev: string }[];
      expect(routes).toEqual([expect.objectContaining({ gateway: LAN_HOST, dev: 'eth0' })]);
    }
    expect((await ping(a, addr(eb.ipv4))).code).toBe(0);
    expect((await ping(b, addr(ea.ipv4))).code).toBe(0);
    expect((await ping(a, LAN_HOST)).code).toBe(0);
    expect((await ping(b, LAN_HOST)).code).toBe(0);
    // The LAN host learnt each sandbox by its own MAC (not the NIC's): they are stations on the LAN.
    const neigh = await neighRows(lan, 'lan0');
    expect(neigh).toEqual(expect.arrayContaining([
      expect.objectContaining({ dst: addr(ea.ipv4), lladdr: ea.macAddress }),
      expect.objectContaining({ dst: addr(eb.ipv4), lladdr: eb.macAddress }),
    ]));
    // Docker's documented limit: the host cannot reach its own macvlan children (positive control: the LAN host can).
    expect((await host.exec(['ping', '-c', '1', '-W', '1', LAN_HOST])).code).toBe(0);
    expect((await lan.exec(['ping', '-c', '1', '-W', '1', addr(ea.ipv4)])).code).toBe(0);
    expect((await host.exec(['ping', '-c', '1', '-W', '1', addr(ea.ipv4)])).code).not.toBe(0);
    expect((await daemon.cmd(['disconnect', 'lan', b])).code).toBe(0);
    expect(await check(['ip', '-n', b, '-j', 'link', 'show'])).not.toContain('eth0');
    expect((await ping(a, addr(eb.ipv4))).code).not.toBe(0);
  });

  it('private mode: sandboxes reach the LAN host but not each other (bridge mode on the same NIC as the control)', async () => {
    await create('priv', ['-o', 'parent=nic0', '-o', 'macvlan_mode=private', '--subnet', '198.18.40.0/24', '--gateway', LAN_HOST, '--ip-range', '198.18.40.64/27']);
    const [a, b] = [await daemon.sandbox(), await daemon.sandbox()];
    const ea = await connect('priv', a);
    const eb = await connect('priv', b);
    const [link] = JSON.parse(await check(['ip', '-n', a, '-d', '-j', 'link', 'show', 'eth0'])) as { linkinfo: { info_data: { mode: string } } }[];
    expect(link!.linkinfo.info_data.mode).toBe('private');
    expect((await ping(a, LAN_HOST)).code).toBe(0);
    expect((await ping(b, LAN_HOST)).code).toBe(0);
    expect((await ping(a, addr(eb.ipv4))).code).not.toBe(0);
    expect((await ping(b, addr(ea.ipv4))).code).not.toBe(0);
    // Positive control: the same two sandboxes in bridge mode on the same NIC reach each other.
    for (const sb of [a, b]) expect((await daemon.cmd(['disconnect', 'priv', sb])).code).toBe(0);
    expect((await daemon.cmd(['network', 'rm', 'priv'])).code).toBe(0);
    await create('br', ['-o', 'parent=nic0', '--subnet', '198.18.40.0/24', '--gateway', LAN_HOST, '--ip-range', '198.18.40.64/27']);
    const ba = await connect('br', a);
    const bb = await connect('br', b);
    expect((await ping(a, addr(bb.ipv4))).code).toBe(0);
    expect((await ping(b, addr(ba.ipv4))).code).toBe(0);
  });

  it('dual stack: a ULA /64 generated when no IPv6 subnet is given, ping6 between sandboxes and to the LAN host', async () => {
    const net = await create('v6', ['-o', 'parent=nic0', '--subnet', '198.18.40.0/24', '--gateway', LAN_HOST, '--ip-range', '198.18.40.96/27', '--ipv6']);
    expect(net.ipv6[0]!.subnet).toMatch(/^fd[0-9a-f]{2}:[0-9a-f:]+\/64$/);
    const gw6 = net.ipv6[0]!.gateway!;
    // The LAN host takes the gateway address (it is the router of that LAN).
    await lan.sh(['ip', 'addr', 'add', gw6, 'dev', 'lan0', 'nodad']);
    const [a, b] = [await daemon.sandbox(), await daemon.sandbox()];
    const ea = await connect('v6', a);
    const eb = await connect('v6', b);
    expect(ea.ipv6).toBeDefined();
    const routes = JSON.parse(await check(['ip', '-n', a, '-6', '-j', 'route', 'show', 'default'])) as { gateway: string }[];
    expect(routes[0]!.gateway).toBe(addr(gw6));
    // DAD is off for the sandboxes' addresses, but the link-local ones need a moment.
    for (let i = 0; i < 30 && (await ping6(a, addr(eb.ipv6))).code !== 0; i++) await new Promise((r) => setTimeout(r, 200));
    expect((await ping6(a, addr(eb.ipv6))).code).toBe(0);
    expect((await ping6(b, addr(ea.ipv6))).code).toBe(0);
    expect((await ping6(a, addr(gw6))).code).toBe(0);
    expect((await ping(a, addr(eb.ipv4))).code).toBe(0);
  });

  it('refuses a second network on one parent naming the network that holds it, an MTU above the parent\'s, and a missing parent', async () => {
    await create('first', ['-o', 'parent=nic0', '--subnet', '198.18.40.0/24', '--gateway', LAN_HOST]);
    const second = await daemon.cmd(['network', 'create', '-d', 'macvlan', '-o', 'parent=nic0', '--subnet', '198.18.41.0/24', 'second']);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain('network first is already using parent interface nic0');
    const loop = await daemon.cmd(['network', 'create', '-d', 'macvlan', '-o', 'parent=lo', '--subnet', '198.18.42.0/24', 'loop']);
    expect(loop.stderr).toContain('loopback');
    expect((await daemon.cmd(['network', 'rm', 'first'])).code).toBe(0);
    const big = await daemon.cmd(['network', 'create', '-d', 'macvlan', '-o', 'parent=nic0', '-o', 'com.docker.network.driver.mtu=9000', '--subnet', '198.18.40.0/24', 'big']);
    expect(big.code).toBe(1);
    expect(big.stderr).toContain('9000 is larger than the MTU 1500 of parent interface nic0');
    const missing = await daemon.cmd(['network', 'create', '-d', 'macvlan', '-o', 'parent=nope0', '--subnet', '198.18.40.0/24', 'missing']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('parent interface nope0 was not found on the host');
    const mode = await daemon.cmd(['network', 'create', '-d', 'macvlan', '-o', 'parent=nic0', '-o', 'macvlan_mode=bogus', 'bogus']);
    expect(mode.code).toBe(1);
    expect(mode.stderr).toContain('macvlan_mode');
    const ls = JSON.parse((await daemon.cmd(['network', 'ls', '--format', 'json'])).stdout) as { name: string }[];
    expect(ls.map((n) => n.name)).not.toEqual(expect.arrayContaining(['second', 'big', 'missing', 'bogus']));
    // A smaller MTU is set on the endpoints.
    await create('small', ['-o', 'parent=nic0', '-o', 'com.docker.network.driver.mtu=1400', '--subnet', '198.18.40.0/24', '--gateway', LAN_HOST]);
    const sb = await daemon.sandbox();
    await connect('small', sb);
    const [link] = JSON.parse(await check(['ip', '-n', sb, '-j', 'link', 'show', 'eth0'])) as { mtu: number }[];
    expect(link!.mtu).toBe(1400);
  });

  it('without a parent: a bridge cnmkit owns and names, its sandboxes reach each other, and it goes with the network; --internal sets no default route', async () => {
    const net = await create('island', ['--subnet', '198.18.43.0/24', '--internal']);
    const bridge = `mv-${net.id.slice(0, 12)}`;
    const [link] = await host.ipJson<{ linkinfo: { info_kind: string }; group: string; flags: string[] }[]>(['-d', 'link', 'show', bridge]);
    expect(link!.linkinfo.info_kind).toBe('bridge');
    expect(link!.flags).toContain('UP');
    expect(await host.ipJson(['link', 'show', 'master', bridge])).toEqual([]);
    const [a, b] = [await daemon.sandbox(), await daemon.sandbox()];
    const ea = await connect('island', a);
    await connect('island', b);
    expect((await ping(b, addr(ea.ipv4))).code).toBe(0);
    expect(await check(['ip', '-n', a, 'route', 'show', 'default'])).toBe('');
    for (const sb of [a, b]) expect((await daemon.cmd(['disconnect', 'island', sb])).code).toBe(0);
    expect((await daemon.cmd(['network', 'rm', 'island'])).code).toBe(0);
    expect((await host.exec(['ip', 'link', 'show', bridge])).code).not.toBe(0);
  });

  it('a parent NAME.ID: the 802.1Q sub-interface is made, used and deleted with the network', async (ctx) => {
    skipUnlessKernelHas(ctx, '8021q');
    await create('tagged', ['-o', 'parent=nic0.10', '--subnet', '198.18.44.0/24']);
    const [vlan] = await host.ipJson<{ linkinfo: { info_kind: string; info_data: { id: number } } }[]>(['-d', 'link', 'show', 'nic0.10']);
    expect(vlan!.linkinfo).toMatchObject({ info_kind: 'vlan', info_data: { id: 10 } });
    const [a, b] = [await daemon.sandbox(), await daemon.sandbox()];
    const ea = await connect('tagged', a);
    await connect('tagged', b);
    expect((await ping(b, addr(ea.ipv4))).code).toBe(0);
    for (const sb of [a, b]) await daemon.cmd(['disconnect', 'tagged', sb]);
    expect((await daemon.cmd(['network', 'rm', 'tagged'])).code).toBe(0);
    expect((await host.exec(['ip', 'link', 'show', 'nic0.10'])).code).not.toBe(0);
  });

  it('a parent NAME.ID where the kernel lacks 802.1Q: refused naming the missing support, nothing left behind', async () => {
    const r = await daemon.cmd(['network', 'create', '-d', 'macvlan', '-o', 'parent=nic0.10', '--subnet', '198.18.44.0/24', 'tagged']);
    if (kernelLacks('8021q') === undefined) {
      // This kernel has 802.1Q: the sub-interface is made instead (the test above checks it in full).
      expect(r.code).toBe(0);
      expect((await daemon.cmd(['network', 'rm', 'tagged'])).code).toBe(0);
      return;
    }
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot create VLAN sub-interface nic0.10 of nic0');
    expect(r.stderr).toContain('8021q');
    expect((await host.exec(['ip', 'link', 'show', 'nic0.10'])).code).not.toBe(0);
    expect((await daemon.cmd(['network', 'inspect', 'tagged'])).code).not.toBe(0);
  });

  it('after a SIGKILL and a restart: endpoints still work, a vanished interface is made again, a lost own bridge is recreated', async () => {
    await create('lan', ['-o', 'parent=nic0', '--subnet', '198.18.40.0/24', '--gateway', LAN_HOST, '--ip-range', '198.18.40.160/27']);
    const island = await create('island', ['--subnet', '198.18.45.0/24']);
    const [a, b] = [await daemon.sandbox(), await daemon.sandbox()];
    const ea = await connect('lan', a);
    const eb = await connect('lan', b);
    await daemon.stop('SIGKILL');
    await check(['ip', '-n', b, 'link', 'del', 'eth0']);
    await host.sh(['ip', 'link', 'del', `mv-${island.id.slice(0, 12)}`]);
    await daemon.start();
    expect((await ping(a, addr(eb.ipv4))).code).toBe(0);
    const [link] = JSON.parse(await check(['ip', '-n', b, '-j', 'link', 'show', 'eth0'])) as { address: string }[];
    expect(link!.address).toBe(eb.macAddress);
    expect((await ping(b, LAN_HOST)).code).toBe(0);
    expect((await ping(b, addr(ea.ipv4))).code).toBe(0);
    expect((await host.exec(['ip', 'link', 'show', `mv-${island.id.slice(0, 12)}`])).code).toBe(0);
  });

  it('check --fix sets up again the parent bridge cnmkit made and a sandbox\'s macvlan that were set down by hand', async () => {
    // Internal: no default route in the sandbox, which its interface's down would take along (not repaired).
    const net = await create('fixlan', ['--subnet', '198.18.45.0/24', '--internal']);
    const parent = `mv-${net.id.slice(0, 12)}`;
    const sb = await daemon.sandbox();
    await connect('fixlan', sb);
    const up = async (ns: string, dev: string): Promise<boolean> =>
      (JSON.parse((await check(['ip', '-n', ns, '-j', 'link', 'show', dev]))) as { flags: string[] }[])[0]!.flags.includes('UP');
    expect((await daemon.cmd(['check'])).code).toBe(0);
    await host.sh(['ip', 'link', 'set', parent, 'down']);
    await check(['ip', '-n', sb, 'link', 'set', 'eth0', 'down']);
    const drift = await daemon.cmd(['check']);
    expect(drift.code).toBe(1);
    expect(drift.stdout).toMatch(new RegExp(`^fixlan +network fixlan +state +${parent} up +${parent} down$`, 'm'));
    expect(drift.stdout).toMatch(new RegExp(`^fixlan +endpoint \\S+ of sandbox ${sb} +state +eth0 up +eth0 down$`, 'm'));
    const fixed = await daemon.cmd(['check', '--fix']);
    expect(fixed).toMatchObject({ code: 0, stderr: '' });
    // The connected route went with eth0's down and comes back with its up: repaired too.
    expect(fixed.stdout).toMatch(/^repaired 3 differences:$/m);
    expect(fixed.stdout).toMatch(new RegExp(`^fixlan +endpoint \\S+ of sandbox ${sb} +route +198\\.18\\.45\\.0/24 dev eth0 +missing$`, 'm'));
    expect(await up(host.name, parent)).toBe(true);
    expect(await up(sb, 'eth0')).toBe(true);
    expect((await daemon.cmd(['check'])).code).toBe(0);
  });
});
