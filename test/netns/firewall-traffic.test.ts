// What the firewall backends do to real packets on a fake host: ICC, isolation between bridges,
// masquerade and SNAT, internal networks, published ports (TCP, UDP, ranges, IPv6), loopback and
// hairpin without the userland proxy. The same suite runs for iptables (both the nf_tables and
// the legacy variant) and nftables.
import { describe, expect, it } from 'vitest';
import type { FirewallBackend, FirewallNetwork, PortMapping } from '../../src/firewall/index.js';
import { describeRoot } from '../helpers/root.js';
import { check } from '../helpers/exec.js';
import {
  KERNEL_BACKENDS,
  UNDERLAY,
  ask,
  fakeHost,
  firewallIn,
  peerAddr,
  peerEchoServer,
  pings,
  ruleset,
  wordServer,
  type Container,
  type FakeHost,
  type TestedBackend,
} from './firewall-fakehost.js';

const NET_A: FirewallNetwork = { id: 'netA', bridge: 'brA', subnets4: ['198.18.10.0/24'], subnets6: [], icc: true, masquerade: true, internal: false };
const NET_B: FirewallNetwork = { id: 'netB', bridge: 'brB', subnets4: ['198.18.20.0/24'], subnets6: [], icc: true, masquerade: true, internal: false };

function tcp(id: string, c: Container, hostPort: number, containerPort: number, userlandProxy: boolean, span = 0): PortMapping {
  return {
    id,
    proto: 'tcp',
    hostPort,
    hostPortEnd: hostPort + span,
    containerIP: c.ip,
    containerPort,
    containerPortEnd: containerPort + span,
    bridge: 'brA',
    userlandProxy,
  };
}

interface World {
  fh: FakeHost;
  fw: FirewallBackend;
  a1: Container;
  a2: Container;
}

/** A fake host with bridge A (two containers) and the backend under test acting in it. */
async function worldA(backend: TestedBackend, net: FirewallNetwork = NET_A): Promise<World> {
  const fh = await fakeHost();
  await fh.bridge('brA', '198.18.10.1/24');
  const [a1, a2] = await Promise.all([fh.container('a1', 'brA', '198.18.10.2/24', '198.18.10.1'), fh.container('a2', 'brA', '198.18.10.3/24', '198.18.10.1')]);
  const { fw } = await firewallIn(fh.host, backend);
  await fw.addNetwork(net);
  return { fh, fw, a1, a2 };
}

describeRoot('firewall traffic', () => {
  describe.each<TestedBackend>([...KERNEL_BACKENDS, 'iptables-legacy'])('%s', (backend) => {
    it('ICC: containers on one bridge talk with icc=true and not with icc=false', async () => {
      const { fw, a1, a2 } = await worldA(backend);
      expect(await pings(a1.ns, a2.ip)).toBe(true);
      await fw.addNetwork({ ...NET_A, icc: false });
      expect(await pings(a1.ns, a2.ip)).toBe(false);
      expect(await pings(a1.ns, '198.18.10.1')).toBe(true);
      await fw.addNetwork(NET_A);
      expect(await pings(a2.ns, a1.ip)).toBe(true);
    });

    it('isolation: bridge A and bridge B cannot reach each other, both reach the outside', async () => {
      const fh = await fakeHost();
      await fh.bridge('brA', '198.18.10.1/24');
      await fh.bridge('brB', '198.18.20.1/24');
      const [a1, b1] = await Promise.all([fh.container('a1', 'brA', '198.18.10.2/24', '198.18.10.1'), fh.container('b1', 'brB', '198.18.20.2/24', '198.18.20.1')]);
      expect(await pings(a1.ns, b1.ip)).toBe(true); // routed by the host before any rule exists
      const { fw } = await firewallIn(fh.host, backend);
      await fw.addNetwork(NET_A);
      await fw.addNetwork(NET_B);
      expect(await pings(a1.ns, b1.ip)).toBe(false);
      expect(await pings(b1.ns, a1.ip)).toBe(false);
      expect(await pings(a1.ns, UNDERLAY.client)).toBe(true);
      expect(await pings(b1.ns, UNDERLAY.client)).toBe(true);
    });

    it('masquerade: traffic leaves with the host address, or with hostIPv4 when set', async () => {
      const fh = await fakeHost();
      await fh.bridge('brA', '198.18.10.1/24');
      await fh.bridge('brB', '198.18.20.1/24');
      await check(['ip', '-n', fh.host.name, 'addr', 'add', '198.19.0.10/24', 'dev', 'u0']);
      const [a1, b1] = await Promise.all([fh.container('a1', 'brA', '198.18.10.2/24', '198.18.10.1'), fh.container('b1', 'brB', '198.18.20.2/24', '198.18.20.1')]);
      await peerEchoServer(fh.client, 'tcp', 7000);
      const { fw } = await firewallIn(fh.host, backend);
      await fw.addNetwork({ ...NET_A, masquerade: false });
      expect(await ask(a1.ns, 'tcp', UNDERLAY.client, 7000)).toBe(''); // the client has no route back
      await fw.addNetwork(NET_A);
      await fw.addNetwork({ ...NET_B, hostIPv4: '198.19.0.10' });
      expect(await ask(a1.ns, 'tcp', UNDERLAY.client, 7000)).toBe(UNDERLAY.host);
      expect(await ask(b1.ns, 'tcp', UNDERLAY.client, 7000)).toBe('198.19.0.10');
    });

    it('internal: the network reaches neither the client nor other bridges, gets no NAT, still reaches its gateway', async () => {
      const fh = await fakeHost();
      await fh.bridge('brA', '198.18.10.1/24');
      await fh.bridge('brI', '198.18.30.1/24');
      const [a1, i1, i2] = await Promise.all([
        fh.container('a1', 'brA', '198.18.10.2/24', '198.18.10.1'),
        fh.container('i1', 'brI', '198.18.30.2/24', '198.18.30.1'),
        fh.container('i2', 'brI', '198.18.30.3/24', '198.18.30.1'),
      ]);
      await peerEchoServer(fh.client, 'tcp', 7000);
      await check(['ip', '-n', fh.client.name, 'route', 'add', '198.18.0.0/16', 'via', UNDERLAY.host]);
      expect(await ask(i1.ns, 'tcp', UNDERLAY.client, 7000)).toBe(i1.ip); // routed both ways before any rule
      const { fw } = await firewallIn(fh.host, backend);
      await fw.addNetwork(NET_A);
      await fw.addNetwork({ id: 'netI', bridge: 'brI', subnets4: ['198.18.30.0/24'], subnets6: [], icc: true, masquerade: true, internal: true });
      expect(await ask(i1.ns, 'tcp', UNDERLAY.client, 7000)).toBe('');
      expect(await pings(i1.ns, UNDERLAY.client)).toBe(false);
      expect(await pings(i1.ns, a1.ip)).toBe(false);
      expect(await pings(a1.ns, i1.ip)).toBe(false);
      expect(await pings(i1.ns, i2.ip)).toBe(true);
      expect(await pings(i1.ns, '198.18.30.1')).toBe(true);
      expect(await ruleset(fh.host, backend)).not.toMatch(/198\.18\.30\.0\/24/);
    });

    it('published TCP port: the client keeps its address; the host reaches it through its own address; loopback and the bridge go to the proxy', async () => {
      const { fh, fw, a1, a2 } = await worldA(backend);
      await peerEchoServer(a1.ns, 'tcp', 80);
      await wordServer(fh.host, 8080, 'proxy');
      await fw.addPorts([tcp('ep1', a1, 8080, 80, true)]);
      expect(await ask(fh.client, 'tcp', UNDERLAY.host, 8080)).toBe(UNDERLAY.client);
      expect(await ask(fh.host, 'tcp', UNDERLAY.host, 8080)).toBe(UNDERLAY.host);
      expect(await ask(fh.host, 'tcp', '127.0.0.1', 8080)).toBe('proxy');
      expect(await ask(a2.ns, 'tcp', UNDERLAY.host, 8080)).toBe('proxy');
    });

    it('without the userland proxy: loopback clients, hairpin from a neighbour and from the container itself', async () => {
      const { fh, fw, a1, a2 } = await worldA(backend, { ...NET_A, icc: false });
      await check(['ip', '-n', fh.host.name, 'link', 'set', a1.hostIf, 'type', 'bridge_slave', 'hairpin', 'on']);
      await peerEchoServer(a1.ns, 'tcp', 80);
      await wordServer(fh.host, 8080, 'proxy');
      await fw.addPorts([tcp('ep1', a1, 8080, 80, false)]);
      expect((await fh.host.sh(['sysctl', '-n', 'net.ipv4.conf.brA.route_localnet'])).trim()).toBe('1');
      expect(await ask(fh.host, 'tcp', '127.0.0.1', 8080)).toBe('198.18.10.1');
      expect(await ask(a2.ns, 'tcp', UNDERLAY.host, 8080)).toBe(a2.ip);
      expect(await ask(a1.ns, 'tcp', UNDERLAY.host, 8080)).toBe('198.18.10.1');
      expect(await ask(fh.client, 'tcp', UNDERLAY.host, 8080)).toBe(UNDERLAY.client);
      expect(await ask(a2.ns, 'tcp', a1.ip, 80)).toBe(''); // icc=false still holds without DNAT
    });

    it('a 1000-port range is one rule, and both ends answer, with and without a port shift', async () => {
      const { fh, fw, a1 } = await worldA(backend);
      for (const port of [20000, 20999, 40000, 40999]) await peerEchoServer(a1.ns, 'tcp', port);
      await fw.addPorts([tcp('ep1', a1, 20000, 20000, true, 999), tcp('ep1', a1, 30000, 40000, true, 999)]);
      const rules = await ruleset(fh.host, backend);
      const dnat = backend === 'nftables' ? /"dnat":\{/ : /-j DNAT/;
      for (const tag of ['cnmkit:ep1/tcp/0.0.0.0/20000-20999', 'cnmkit:ep1/tcp/0.0.0.0/30000-30999']) {
        const lines = backend === 'nftables' ? nftRulesTagged(rules, tag) : rules.split('\n').filter((l) => l.includes(tag));
        expect(lines.filter((l) => dnat.test(l))).toHaveLength(1);
      }
      for (const [host, container] of [[20000, 20000], [20999, 20999], [30000, 40000], [30999, 40999]] as const) {
        expect(await ask(fh.client, 'tcp', UNDERLAY.host, host), `host port ${host} → ${container}`).toBe(UNDERLAY.client);
      }
    });

    it('published UDP port', async () => {
      const { fh, fw, a1 } = await worldA(backend);
      await peerEchoServer(a1.ns, 'udp', 53);
      await fw.addPorts([{ ...tcp('ep1', a1, 5353, 53, true), proto: 'udp' }]);
      expect(await ask(fh.client, 'udp', UNDERLAY.host, 5353)).toBe(UNDERLAY.client);
    });

    it('IPv6: masquerade out, a published port in with the client address kept', async () => {
      const fh = await fakeHost();
      await fh.bridge('brA', '198.18.10.1/24', 'fd00:10::1/64');
      const a1 = await fh.container('a1', 'brA', '198.18.10.2/24', '198.18.10.1', { cidr: 'fd00:10::2/64', gw: 'fd00:10::1' });
      const { fw } = await firewallIn(fh.host, backend);
      await fw.addNetwork({ ...NET_A, subnets6: ['fd00:10::/64'] });
      await peerEchoServer(fh.client, 'tcp', 7000, 6);
      await peerEchoServer(a1.ns, 'tcp', 80, 6);
      expect(peerAddr(await ask(a1.ns, 'tcp', UNDERLAY.client6, 7000))).toBe(UNDERLAY.host6);
      await fw.addPorts([{ ...tcp('ep1', a1, 8080, 80, true), containerIP: a1.ip6 as string }]);
      expect(peerAddr(await ask(fh.client, 'tcp', UNDERLAY.host6, 8080))).toBe(UNDERLAY.client6);
    });
  });
});

/** The rules of an `nft -j` ruleset that carry tag, each as JSON text. */
function nftRulesTagged(json: string, tag: string): string[] {
  const items = JSON.parse(json) as { rule?: { comment?: string } }[];
  return items.filter((i) => i.rule?.comment === tag).map((i) => JSON.stringify(i.rule));
}
