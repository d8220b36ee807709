// The firewall backends' bookkeeping, read back from the kernel with iptables-save / nft -j:
// idempotent init, exact removal, owners and reconcile, the user chain, refused input and
// refused batches. The same suite runs for iptables and nftables.
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { createFirewall, type FirewallNetwork, type PortMapping } from '../../src/firewall/index.js';
import { describeRoot } from '../helpers/root.js';
import { makeNs } from '../helpers/netns.js';
import { KERNEL_BACKENDS, UNDERLAY, ask, fakeHost, firewallIn, memoryLogger, peerEchoServer, ruleset } from './firewall-fakehost.js';

const NET_A: FirewallNetwork = { id: 'netA', bridge: 'brA', subnets4: ['198.18.10.0/24'], subnets6: ['fd00:10::/64'], icc: true, masquerade: true, internal: false };
const NET_B: FirewallNetwork = { id: 'netB', bridge: 'brB', subnets4: ['198.18.20.0/24'], subnets6: [], icc: false, masquerade: true, internal: false };

function port(id: string, hostPort: number, extra: Partial<PortMapping> = {}): PortMapping {
  return {
    id,
    proto: 'tcp',
    hostPort,
    hostPortEnd: hostPort,
    containerIP: '198.18.10.2',
    containerPort: 80,
    containerPortEnd: 80,
    bridge: 'brA',
    userlandProxy: true,
    ...extra,
  };
}

/** Runs iptables or nft in ns: the user's own hand, independent of the code under test. */
async function userRule(ns: Awaited<ReturnType<typeof makeNs>>, backend: string, source: string): Promise<void> {
  if (backend === 'iptables') await ns.sh(['iptables', '-A', 'CNMKIT-USER', '-s', source, '-j', 'DROP']);
  else await ns.sh(['nft', 'add', 'rule', 'inet', 'cnmkit', 'CNMKIT-USER', 'ip', 'saddr', source, 'drop']);
}

async function firstForwardJump(ns: Awaited<ReturnType<typeof makeNs>>, backend: string): Promise<string | undefined> {
  if (backend === 'iptables') return /-j (\S+)/.exec((await ns.sh(['iptables', '-S', 'FORWARD'])).split('\n')[1] ?? '')?.[1];
  const items = JSON.parse(await ns.sh(['nft', '-j', 'list', 'chain', 'inet', 'cnmkit', 'forward'])).nftables as { rule?: { expr: { jump?: { target: string } }[] } }[];
  return items.find((i) => i.rule)?.rule?.expr.find((e) => e.jump)?.jump?.target;
}

describeRoot('firewall lifecycle', () => {
  describe.each(KERNEL_BACKENDS)('%s', (backend) => {
    it('init is idempotent, jumps to the user chain first, and logs which backend acts', async () => {
      const ns = await makeNs('fw');
      const { fw, log } = await firewallIn(ns, backend);
      const once = await ruleset(ns, backend);
      await fw.init();
      expect(await ruleset(ns, backend)).toBe(once);
      expect(await firstForwardJump(ns, backend)).toBe('CNMKIT-USER');
      expect(log.entries.some((e) => e.level === 'info' && e.msg?.includes(`firewall backend: ${backend}`))).toBe(true);
    });

    it('removePorts and removeNetwork take away exactly what was added; twice is fine', async () => {
      const ns = await makeNs('fw');
      const { fw } = await firewallIn(ns, backend);
      const empty = await ruleset(ns, backend);
      await fw.addNetwork(NET_A);
      await fw.addNetwork(NET_B);
      const networks = await ruleset(ns, backend);
      await fw.addPorts([port('ep1', 8080), port('ep1', 9000, { proto: 'udp', hostPortEnd: 9099, containerPort: 9000, containerPortEnd: 9099 })]);
      await fw.addPorts([port('ep2', 8081, { containerIP: 'fd00:10::2', userlandProxy: false })]);
      expect(await ruleset(ns, backend)).not.toBe(networks);
      await fw.removePorts(['netA', 'netB']); // network ids: no port rules of theirs, nothing happens
      await fw.removePorts(['ep1', 'ep2']);
      expect(await ruleset(ns, backend)).toBe(networks);
      await fw.removePorts(['ep1', 'ep2']);
      await fw.removeNetwork('netA');
      await fw.removeNetwork('netB');
      expect(await ruleset(ns, backend)).toBe(empty);
      await fw.removeNetwork('netA');
      expect(await ruleset(ns, backend)).toBe(empty);
    });

    it('addNetwork replaces the network; addPorts adds per mapping and replaces a mapping given again', async () => {
      const ns = await makeNs('fw');
      const { fw } = await firewallIn(ns, backend);
      await fw.addNetwork(NET_B);
      const once = await ruleset(ns, backend, { handles: false });
      await fw.addNetwork(NET_B);
      expect(await ruleset(ns, backend, { handles: false })).toBe(once);
      await fw.addPorts([port('ep1', 8080)]);
      await fw.addPorts([port('ep1', 8081)]);
      const both = await ruleset(ns, backend, { handles: false });
      expect(both).toContain('cnmkit:ep1/tcp/0.0.0.0/8080');
      expect(both).toContain('cnmkit:ep1/tcp/0.0.0.0/8081');
      await fw.addPorts([port('ep1', 8080)]);
      const again = await ruleset(ns, backend, { handles: false });
      expect(again.split('cnmkit:ep1/tcp/0.0.0.0/8080').length).toBe(both.split('cnmkit:ep1/tcp/0.0.0.0/8080').length);
    });

    it('listOwners, removeOwner and reconcile act on owner tags found in the kernel', async () => {
      const ns = await makeNs('fw');
      const { fw } = await firewallIn(ns, backend);
      await fw.addNetwork(NET_A);
      await fw.addPorts([port('ep1', 8080), port('ep2', 8081), port('ep3', 8082)]);
      expect(await fw.listOwners()).toEqual(new Set(['netA', 'ep1', 'ep2', 'ep3']));
      expect((await fw.reconcile(new Set(['netA', 'ep1', 'ep2']))).sort()).toEqual(['ep3']);
      expect(await ruleset(ns, backend)).not.toContain('cnmkit:ep3');
      await fw.removeOwner('ep2');
      expect(await fw.listOwners()).toEqual(new Set(['netA', 'ep1']));
      expect(await fw.reconcile(new Set(['netA', 'ep1']))).toEqual([]);
      expect((await fw.reconcile(new Set())).sort()).toEqual(['ep1', 'netA']);
      expect(await fw.listOwners()).toEqual(new Set());
    });

    it('calls made at once are applied one after another', async () => {
      const ns = await makeNs('fw');
      const { fw } = await firewallIn(ns, backend);
      const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
      await Promise.all(ids.map((id, i) => fw.addNetwork({ ...NET_B, id, bridge: `br${i}` })));
      expect(await fw.listOwners()).toEqual(new Set(ids));
    });

    it('the user chain runs first and survives flushAll', async () => {
      const fh = await fakeHost();
      await fh.bridge('brA', '198.18.10.1/24');
      const a1 = await fh.container('a1', 'brA', '198.18.10.2/24', '198.18.10.1');
      const { fw } = await firewallIn(fh.host, backend);
      await fw.addNetwork(NET_A);
      await userRule(fh.host, backend, '198.18.10.2');
      await peerEchoServer(fh.client, 'tcp', 7000);
      expect(await ask(a1.ns, 'tcp', UNDERLAY.client, 7000)).toBe('');
      await fw.flushAll();
      await fw.flushAll();
      const after = await ruleset(fh.host, backend);
      expect(after).toContain('CNMKIT-USER');
      expect(after).toContain('198.18.10.2');
      expect(after).not.toMatch(/CNMKIT-(FORWARD|ISOLATION|POSTROUTING|DNAT|PORTS)/);
      expect(after).not.toContain('cnmkit:netA');
      await fw.init();
      expect(await firstForwardJump(fh.host, backend)).toBe('CNMKIT-USER');
      const user = backend === 'iptables' ? await fh.host.sh(['iptables', '-S', 'CNMKIT-USER']) : await fh.host.sh(['nft', 'list', 'chain', 'inet', 'cnmkit', 'CNMKIT-USER']);
      expect(user).toContain('198.18.10.2');
    });

    it('bad input is refused naming the field, and nothing changes', async () => {
      const ns = await makeNs('fw');
      const { fw } = await firewallIn(ns, backend);
      await fw.addNetwork(NET_A);
      const before = await ruleset(ns, backend);
      const cases: [() => Promise<unknown>, string][] = [
        [() => fw.addPorts([port('ep1', 0)]), 'mappings[0].hostPort'],
        [() => fw.addPorts([port('ep1', 8080), port('ep1', 70000)]), 'mappings[1].hostPort'],
        [() => fw.addPorts([port('ep1', 8080, { containerIP: '198.18.10.300' })]), 'mappings[0].containerIP'],
        [() => fw.addPorts([port('ep1', 8080, { hostIP: 'fd00::1' })]), 'mappings[0].hostIP'],
        [() => fw.addPorts([port('ep1', 8080, { hostPortEnd: 8000 })]), 'mappings[0].hostPortEnd'],
        [() => fw.addPorts([port('ep1', 8080, { hostPortEnd: 8090, containerPortEnd: 85 })]), 'mappings[0].containerPortEnd'],
        [() => fw.addPorts([port('ep 1', 8080)]), 'mappings[0].id'],
        [() => fw.addPorts([port('ep1', 8080, { bridge: 'br;rm -rf /' })]), 'mappings[0].bridge'],
        [() => fw.addNetwork({ ...NET_A, subnets4: ['198.18.10.1/24'] }), 'subnets4[0]'],
        [() => fw.addNetwork({ ...NET_A, bridge: 'a-bridge-name-too-long' }), 'bridge'],
        [() => fw.removeNetwork('"x"'), 'id'],
      ];
      for (const [call, field] of cases) {
        const err = await call().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, field).toBeInstanceOf(InvalidArgumentError);
        expect((err as InvalidArgumentError).field).toBe(field);
      }
      expect(await ruleset(ns, backend)).toBe(before);
    });

    it('a batch the kernel refuses changes nothing', async () => {
      const ns = await makeNs('fw');
      const { fw } = await firewallIn(ns, backend);
      await fw.addNetwork(NET_A);
      // Without a userland proxy the bridge must exist (route_localnet): refused before any rule.
      const before = await ruleset(ns, backend);
      await expect(fw.addPorts([port('ep1', 8080, { userlandProxy: false })])).rejects.toThrow(/route_localnet/);
      expect(await ruleset(ns, backend)).toBe(before);
      // Take away the IPv6 DNAT chain behind the backend's back: the IPv4 half must be undone too.
      if (backend === 'iptables') {
        await ns.sh(['ip6tables', '-t', 'nat', '-D', 'PREROUTING', '-m', 'addrtype', '--dst-type', 'LOCAL', '-m', 'comment', '--comment', 'cnmkit', '-j', 'CNMKIT']);
        await ns.sh(['ip6tables', '-t', 'nat', '-D', 'OUTPUT', '-m', 'addrtype', '--dst-type', 'LOCAL', '-m', 'comment', '--comment', 'cnmkit', '-j', 'CNMKIT']);
        await ns.sh(['ip6tables', '-t', 'nat', '-X', 'CNMKIT']);
      } else {
        await ns.sh(['nft', 'flush', 'chain', 'inet', 'cnmkit', 'prerouting']);
        await ns.sh(['nft', 'flush', 'chain', 'inet', 'cnmkit', 'output']);
        await ns.sh(['nft', 'delete', 'chain', 'inet', 'cnmkit', 'CNMKIT-DNAT']);
      }
      const broken = await ruleset(ns, backend);
      await expect(fw.addPorts([port('ep1', 8080), port('ep1', 8081, { containerIP: 'fd00:10::2' })])).rejects.toThrow();
      expect(await ruleset(ns, backend)).toBe(broken);
      await fw.init();
      await fw.addPorts([port('ep1', 8080), port('ep1', 8081, { containerIP: 'fd00:10::2' })]);
      expect(await fw.listOwners()).toEqual(new Set(['netA', 'ep1']));
    });
  });

  it('auto picks nftables where nft works and says why; none programs nothing', async () => {
    const ns = await makeNs('fw');
    const log = memoryLogger();
    const fw = await createFirewall({ backend: 'auto', netnsPath: ns.path, logger: log });
    expect(fw.name).toBe('nftables');
    expect(log.entries.map((e) => e.msg).join('\n')).toMatch(/firewall backend: nftables \(auto: nft works here\)/);
    const empty = await ruleset(ns, 'nftables');
    const none = await createFirewall({ backend: 'none', netnsPath: ns.path, logger: log });
    await none.init();
    await none.addNetwork(NET_A);
    await none.addPorts([port('ep1', 8080)]);
    expect(await none.listOwners()).toEqual(new Set());
    expect(await ruleset(ns, 'nftables')).toBe(empty);
    expect(log.entries.some((e) => e.level === 'warn' && /no rules are programmed/.test(e.msg ?? ''))).toBe(true);
  });
});
