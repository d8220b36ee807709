// IPv6 -p through the daemon, as the README says: a port published on an IPv6 network forwards to
// the container's IPv4 address; IPv6 clients (an underlay client, the host's ::1) are served by
// the userland proxy, and refused without it. Checked with real connections: socat in the sandbox
// answers with the source address it saw. The Docker side is in readme-docker.test.ts.
import { spawn } from 'node:child_process';
import { afterEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { makeNs, underlay, uniqueName, type TestNs } from '../helpers/netns.js';
import { TestDaemon } from '../helpers/daemon.js';

const HOST_UL = '198.19.4.1';
const CLIENT_UL = '198.19.4.2';
const HOST_UL6 = 'fd00:198:19:4::1';
const CLIENT_UL6 = 'fd00:198:19:4::2';

const daemons: TestDaemon[] = [];

/** Underlay IPv4 and IPv6 between a host and a client namespace. */
async function dualUnderlay(host: TestNs, client: TestNs): Promise<void> {
  await underlay(host, client, HOST_UL, CLIENT_UL);
  await host.sh(['ip', '-6', 'addr', 'add', `${HOST_UL6}/64`, 'dev', 'ul0', 'nodad']);
  await client.sh(['ip', '-6', 'addr', 'add', `${CLIENT_UL6}/64`, 'dev', 'ul1', 'nodad']);
}

async function until(fn: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** One TCP connection with socat; the server answers with the peer address it saw. */
async function peerSeen(ns: TestNs, target: string): Promise<string> {
  const r = await ns.exec(['socat', '-T', '3', '-', target], { input: '' });
  return r.code === 0 ? r.stdout.trim() : `failed (${r.code}): ${r.stderr.trim()}`;
}

for (const proxy of [true, false]) {
  describeRoot(`README: IPv6 -p through the daemon (userland proxy ${proxy ? 'on' : 'off'})`, () => {
    afterEach(async () => {
      for (const d of daemons.splice(0)) await d.cleanup();
    });

    it(`publishes -p of a sandbox on an IPv6 network: IPv4 clients keep their source; IPv6 clients on the underlay and ::1 are ${proxy ? 'served by the proxy' : 'refused'}`, async () => {
      const host = await makeNs('host');
      const client = await makeNs('client');
      await dualUnderlay(host, client);
      const d = new TestDaemon(host, ['--userland-proxy', String(proxy)]);
      daemons.push(d);
      await d.start();
      expect((await d.cmd(['network', 'create', '--subnet', '198.18.40.0/24', '--subnet-v6', 'fd00:198:18:40::/64', 'v6net'])).code).toBe(0);
      const sb = await d.sandbox(uniqueName('v6'));
      const c = await d.cmd(['connect', '--format', 'json', '-p', '8080:80', 'v6net', sb]);
      expect(c.stderr).toBe('');
      const ep = JSON.parse(c.stdout) as { ipv4: string; ipv6: string };
      expect(ep.ipv6).toBe('fd00:198:18:40::2/64');
      // The server answers with the source address it saw (IPv4 only: the port forwards to the container's IPv4 address).
      const server = spawn('ip', ['netns', 'exec', sb, 'socat', 'TCP4-LISTEN:80,reuseaddr,fork', 'SYSTEM:echo $SOCAT_PEERADDR'], { stdio: 'ignore' });
      try {
        await until(async () => (await peerSeen(client, `TCP4:${HOST_UL}:8080`)) === CLIENT_UL);
        // Negative control: a port nobody published is refused over IPv6.
        expect(await peerSeen(client, `TCP6:[${HOST_UL6}]:8081`)).toMatch(/^failed.*Connection refused/);
        if (proxy) {
          // The userland proxy serves IPv6 clients: it connects from the gateway, so their source is not kept.
          expect(await peerSeen(client, `TCP6:[${HOST_UL6}]:8080`)).toBe('198.18.40.1');
          expect(await peerSeen(host, 'TCP6:[::1]:8080')).toBe('198.18.40.1');
        } else {
          // Without it a published port is reached over IPv4 only (as the README says).
          expect(await peerSeen(client, `TCP6:[${HOST_UL6}]:8080`)).toMatch(/^failed.*Connection refused/);
          expect(await peerSeen(host, 'TCP6:[::1]:8080')).toMatch(/^failed.*Connection refused/);
        }
      } finally {
        server.kill();
      }
    });
  });
}
