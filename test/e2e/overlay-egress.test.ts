// Egress and published ports of an overlay sandbox through cnmkit_gwbridge with a real firewall
// backend (nftables, then iptables) inside a simulated host: an "outside" namespace on the
// underlay sees the sandbox's connection come from the host's underlay address (masquerade), and
// a port published with -p is reached from the underlay by kernel DNAT (the sandbox sees the
// outside client's own address, which the userland proxy would hide). Rules read with nft/iptables-save.
import { expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { simSuite } from '../helpers/sim-suite.js';
import { SimCluster, simCli, simJoined, type SimHost } from '../helpers/cluster.js';
import { check, run } from '../helpers/exec.js';
import { makeNs } from '../helpers/netns.js';

interface Ep { ipv4?: string; ports?: { hostPort: number; containerPort: number; proto: string }[] }
const OUTSIDE = '198.19.255.200';

/**
 * Serves one TCP connection in namespace ns on port: answers with the client's address as it
 * arrives there. Resolves once socat listens (read with ss; 10 s at most); `served` ends with it.
 */
async function tellPeer(ns: string, port: number): Promise<{ served: Promise<unknown> }> {
  const served = run(['ip', 'netns', 'exec', ns, 'socat', '-T', '5', `TCP-LISTEN:${port},reuseaddr`, 'SYSTEM:echo $SOCAT_PEERADDR'], { timeoutMs: 20_000 });
  const deadline = Date.now() + 10_000;
  while ((await run(['ip', 'netns', 'exec', ns, 'ss', '-Hltn', `sport = :${port}`])).stdout.trim() === '') {
    if (Date.now() > deadline) throw new Error(`socat did not listen on port ${port} in ${ns} within 10 s: ${JSON.stringify(await Promise.race([served, 'still running']))}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { served };
}

/** Connects from namespace ns to addr:port and returns what the server said. */
async function askPeer(ns: string, addr: string, port: number): Promise<string> {
  return (await check(['ip', 'netns', 'exec', ns, 'socat', '-T', '5', '-u', `TCP:${addr}:${port}`, '-'])).trim();
}

for (const backend of ['nftables', 'iptables'] as const) {
  describeRoot(`overlay egress with the ${backend} firewall backend`, () => {
    let sim: SimCluster;
    const made: { h: SimHost; sb: string }[] = [];

    simSuite({ hosts: 1, leaseTtl: 5, firewallBackend: backend }, made, async (s) => {
      sim = s;
      await simCli(s.hosts[0]!, ['network', 'create', '-d', 'overlay', '--subnet', '198.19.220.0/24', 'ove']);
    });

    it('a sandbox reaches the outside masqueraded as its host; -p reaches it from the underlay by kernel DNAT', async () => {
      const h = sim.hosts[0]!;
      const out = await makeNs('out');
      await check(['ip', 'link', 'add', 'uout', 'netns', sim.underlay.name, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', out.name]);
      await sim.underlay.sh(['ip', 'link', 'set', 'uout', 'master', 'br0', 'up']);
      await out.sh(['ip', 'addr', 'add', `${OUTSIDE}/24`, 'dev', 'eth0']);
      await out.sh(['ip', 'link', 'set', 'eth0', 'up']);

      const { sb, ep } = await simJoined<Ep>(h, 'ove', made, ['-p', '18080:8080']);
      // The connect's answer lists the ports published for it (on the sandbox's cnmkit_gwbridge endpoint).
      expect(ep.ports).toMatchObject([{ hostPort: 18080, containerPort: 8080, proto: 'tcp' }]);
      const rules = backend === 'nftables' ? await h.ns.sh(['nft', 'list', 'ruleset']) : await h.ns.sh(['iptables-save', '-t', 'nat']);
      expect(rules).toMatch(backend === 'nftables' ? /masquerade/ : /-j MASQUERADE/);

      const outside = await tellPeer(out.name, 9000);
      expect(await askPeer(sb, OUTSIDE, 9000)).toBe(h.ip);
      await outside.served;

      const inside = await tellPeer(sb, 8080);
      expect(await askPeer(out.name, h.ip, 18080)).toBe(OUTSIDE);
      await inside.served;
    });

    it('run -p on an overlay prints the host port chosen, as on a bridge network', async () => {
      const { daemon } = sim.hosts[0]!;
      const r = await daemon.cmd(['run', '--network', 'ove', '-p', '8081', '--', 'true']);
      expect(r.code, `${r.stderr}\ndaemon log:\n${daemon.log.slice(-4000)}`).toBe(0);
      expect(r.stderr).toMatch(/^0\.0\.0\.0:\d+->8081\/tcp$/m);
    });
  });
}
