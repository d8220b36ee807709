// Port publishing end to end: `cnmkit run -p` with a real server in the sandbox, reached from a
// client host on the underlay (its source address preserved), from the host's 127.0.0.1 and from
// a neighbour on the same bridge (hairpin) — for both firewall backends, proxy on and off.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { adoptNs, makeNs, underlay, uniqueName, type TestNs } from '../helpers/netns.js';
import { CLI, TestDaemon } from '../helpers/daemon.js';
import { run } from '../helpers/exec.js';

const HOST_UL = '198.19.1.1';
const CLIENT_UL = '198.19.1.2';

/** Until a server in sandbox sb has bound port (read with ss there; 10 s at most): a connection sooner finds nothing. */
async function bound(sb: string, proto: 'tcp' | 'udp', port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await run(['ip', 'netns', 'exec', sb, 'ss', proto === 'tcp' ? '-Hltn' : '-Hlun', `sport = :${port}`])).stdout.trim() === '') {
    if (Date.now() > deadline) throw new Error(`nothing bound ${proto} port ${port} in ${sb} within 10 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `cnmkit run` in the background of a server on TCP port; resolves once the server has bound it in its sandbox. */
async function runServer(daemon: TestDaemon, args: string[], cmd: string[], port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, 'run', '--socket', daemon.socket, ...args, '--', ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const deadline = Date.now() + 20_000;
  for (;;) {
    const sbs = JSON.parse((await daemon.cmd(['sandbox', 'ls', '--format', 'json'])).stdout) as { endpoints: unknown[]; netnsPath: string }[];
    const sb = sbs.find((s) => s.endpoints.length > 0);
    if (sb && (await run(['nsenter', `--net=${sb.netnsPath}`, '--', 'ss', '-Hltn', `sport = :${port}`])).stdout.trim() !== '') break;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`cnmkit run did not start a server on port ${port}: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return child;
}

/** Link names inside a named namespace, by iproute2. */
async function ipNames(ns: string): Promise<string[]> {
  const r = await run(['ip', '-n', ns, '-j', 'link', 'show']);
  return (JSON.parse(r.stdout) as { ifname: string }[]).map((l) => l.ifname).sort();
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

const curl = (ns: string, url: string) => run(['ip', 'netns', 'exec', ns, 'curl', '-s', '--max-time', '4', url]);

/** iptables-save without comments and counters. */
const stripCounters = (t: string) => t.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/g, '')).join('\n');

/** What a refused request must leave as it was in the host namespace: rules of both backends (no counters), listening sockets, links. */
async function hostState(host: TestNs): Promise<unknown> {
  const listening = (await host.sh(['ss', '-Hlntu'])).split('\n').filter(Boolean).map((l) => { const f = l.split(/\s+/); return `${f[0]} ${f[4]}`; }).sort();
  return {
    nft: JSON.parse(await host.sh(['nft', '-s', '-j', 'list', 'ruleset'])) as unknown,
    iptables: stripCounters(await host.sh(['iptables-save'])),
    listening,
    links: await host.linkNames(),
  };
}

for (const backend of ['nftables', 'iptables'] as const) {
  for (const proxy of [true, false]) {
    describeRoot(`publishing ports (${backend}, userland proxy ${proxy ? 'on' : 'off'})`, () => {
      let host: TestNs;
      let client: TestNs;
      let daemon: TestDaemon;
      let www: string;

      beforeEach(async () => {
        host = await makeNs('host');
        client = await makeNs('client');
        await underlay(host, client, HOST_UL, CLIENT_UL);
        daemon = new TestDaemon(host, ['--firewall-backend', backend, '--userland-proxy', String(proxy)]);
        await daemon.start();
        www = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-www-'));
        fs.writeFileSync(path.join(www, 'index.html'), 'hello from the sandbox\n');
      });
      afterEach(async () => {
        await daemon.cleanup();
        fs.rmSync(www, { recursive: true, force: true });
      });

      it('serves -p 8080:80 to another host, to 127.0.0.1 on the host and to a neighbour (hairpin), then removes every rule', async () => {
        const rulesBefore = backend === 'nftables' ? await host.sh(['nft', '-s', 'list', 'ruleset']) : await host.sh(['iptables-save']);
        expect((await daemon.cmd(['network', 'create', '--subnet', '198.18.20.0/24', 'mynet'])).code).toBe(0);
        const name = uniqueName('web');
        adoptNs(name);
        const server = await runServer(daemon, ['--name', name, '--network', 'mynet', '-p', '8080:80'], ['busybox', 'httpd', '-f', '-p', '80', '-h', www], 80);
        try {
          expect((await curl(client.name, `http://${HOST_UL}:8080/`)).stdout).toBe('hello from the sandbox\n');
          expect((await curl(host.name, 'http://127.0.0.1:8080/')).stdout).toBe('hello from the sandbox\n');
          const neighbour = await daemon.sandbox(uniqueName('nb'));
          await daemon.cmd(['connect', 'mynet', neighbour]);
          expect((await curl(neighbour, `http://${HOST_UL}:8080/`)).stdout).toBe('hello from the sandbox\n');
          await daemon.cmd(['sandbox', 'rm', neighbour]);
        } finally {
          await stopServer(server);
        }
        expect((await curl(client.name, `http://${HOST_UL}:8080/`)).code).not.toBe(0);
        await daemon.cmd(['network', 'rm', 'mynet']);
        const rulesAfter = backend === 'nftables' ? await host.sh(['nft', '-s', 'list', 'ruleset']) : await host.sh(['iptables-save']);
        expect(stripCounters(rulesAfter)).toBe(stripCounters(rulesBefore));
      });

      it('preserves the client\'s source address, publishes UDP, and refuses a port that is taken, naming the holder', async () => {
        await daemon.cmd(['network', 'create', '--subnet', '198.18.21.0/24', 'srcnet']);
        const sb = await daemon.sandbox(uniqueName('src'));
        const c = await daemon.cmd(['connect', '-p', '9090:90', '-p', '9191:91/udp', 'srcnet', sb]);
        expect(c.stderr).toBe('');
        const tcp = spawn('ip', ['netns', 'exec', sb, 'socat', 'TCP-LISTEN:90,reuseaddr', 'SYSTEM:echo $SOCAT_PEERADDR'], { stdio: 'ignore' });
        const udp = spawn('ip', ['netns', 'exec', sb, 'socat', 'UDP-RECVFROM:91,fork', 'SYSTEM:echo udp-$SOCAT_PEERADDR'], { stdio: 'ignore' });
        try {
          await bound(sb, 'tcp', 90);
          await bound(sb, 'udp', 91);
          const peer = await run(['ip', 'netns', 'exec', client.name, 'socat', '-t', '3', '-T', '3', '-', `TCP:${HOST_UL}:9090`], { input: '' });
          expect(peer.stdout.trim()).toBe(CLIENT_UL);
          // UDP has no handshake: a datagram lost on the way is not sent again, so ask a few times.
          let u = '';
          for (let i = 0; i < 3 && u === ''; i++) {
            u = (await run(['ip', 'netns', 'exec', client.name, 'socat', '-t', '3', '-T', '3', '-', `UDP:${HOST_UL}:9191`], { input: 'x\n' })).stdout.trim();
          }
          expect(u).toBe(`udp-${CLIENT_UL}`);
        } finally {
          tcp.kill();
          udp.kill();
        }
        const other = await daemon.sandbox(uniqueName('other'));
        const before = await hostState(host);
        expect(JSON.stringify(before)).toContain('9090');
        const clash = await daemon.cmd(['connect', '-p', '9090:80', 'srcnet', other]);
        expect(clash.code).toBe(1);
        expect(clash.stderr).toMatch(/9090.*(already|held|allocated)/);
        expect(clash.stderr).toContain(`is already allocated to sandbox "${sb}" on network "srcnet"`);
        // Refused before any change: rules, listeners and links as they were, nothing in the sandbox.
        expect(await hostState(host)).toEqual(before);
        expect((await host.linkNames()).filter((n) => n.startsWith('veth'))).toHaveLength(1);
        expect(await ipNames(other)).toEqual(['lo']);
        const otherEps = JSON.parse((await daemon.cmd(['sandbox', 'inspect', other])).stdout) as { endpoints: unknown[] }[];
        expect(otherEps[0]!.endpoints).toEqual([]);
      });

      it('survives a SIGKILL of the daemon (ports served again after restart) and `firewall reload` repairs flushed rules', async () => {
        await daemon.cmd(['network', 'create', '--subnet', '198.18.23.0/24', 'relnet']);
        const sb = await daemon.sandbox(uniqueName('rel'));
        expect((await daemon.cmd(['connect', '-p', '8081:80', 'relnet', sb])).stderr).toBe('');
        const srv = spawn('ip', ['netns', 'exec', sb, 'socat', 'TCP-LISTEN:80,reuseaddr,fork', 'SYSTEM:echo $SOCAT_PEERADDR'], { stdio: 'ignore' });
        const peer = async (ns: string, ip: string) =>
          (await run(['ip', 'netns', 'exec', ns, 'socat', '-t', '3', '-T', '3', '-', `TCP:${ip}:8081`], { input: '' })).stdout.trim();
        try {
          await bound(sb, 'tcp', 80);
          expect(await peer(client.name, HOST_UL)).toBe(CLIENT_UL);
          await daemon.stop('SIGKILL');
          await daemon.start();
          expect(await peer(client.name, HOST_UL)).toBe(CLIENT_UL);
          expect(await peer(host.name, '127.0.0.1')).not.toBe('');
          if (backend === 'nftables') await host.sh(['nft', 'flush', 'table', 'inet', 'cnmkit']);
          else for (const t of ['nat', 'filter']) await host.sh(['iptables', '-t', t, '-F', 'CNMKIT']);
          // Without its DNAT rule the client reaches only the proxy (which hides its address), or nothing.
          expect(await peer(client.name, HOST_UL)).not.toBe(CLIENT_UL);
          const reload = await daemon.cmd(['firewall', 'reload', '--format', 'json']);
          expect(reload.code).toBe(0);
          expect(JSON.parse(reload.stdout)).toMatchObject({ backend });
          expect(await peer(client.name, HOST_UL)).toBe(CLIENT_UL);
        } finally {
          srv.kill();
        }
      });

      it('publishes a 1000-port range, reachable at both ends', async () => {
        await daemon.cmd(['network', 'create', '--subnet', '198.18.22.0/24', 'rangenet']);
        const sb = await daemon.sandbox(uniqueName('rng'));
        const c = await daemon.cmd(['connect', '-p', '20000-20999:20000-20999', 'rangenet', sb]);
        expect(c.stderr).toBe('');
        for (const port of [20000, 20999]) {
          const srv = spawn('ip', ['netns', 'exec', sb, 'socat', `TCP-LISTEN:${port},reuseaddr`, 'SYSTEM:echo port-$SOCAT_SOCKPORT'], { stdio: 'ignore' });
          try {
            await bound(sb, 'tcp', port);
            const r = await run(['ip', 'netns', 'exec', client.name, 'socat', '-t', '3', '-T', '3', '-', `TCP:${HOST_UL}:${port}`], { input: '' });
            expect(r.stdout.trim()).toBe(`port-${port}`);
          } finally {
            srv.kill();
          }
        }
        expect((await daemon.cmd(['sandbox', 'rm', sb])).code).toBe(0);
      });
    });
  }
}

describeRoot('a host port chosen by cnmkit that another socket of the host holds', () => {
  let host: TestNs;
  let daemon: TestDaemon;
  let holder: ChildProcess | undefined;

  afterEach(async () => {
    if (holder) await stopServer(holder);
    holder = undefined;
    await daemon.cleanup();
  });

  it('is chosen again (the next free port), where a port given exactly is refused', async () => {
    host = await makeNs('host');
    // The host's own outgoing connection takes 40000, its only ephemeral port at that moment:
    // a connected socket, bound by the kernel as every outgoing connection is.
    await host.sh(['sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=40000 40000']);
    const script = "const net=require('net');const s=net.createServer(()=>{}).listen(5555,'127.0.0.1',()=>{const c=net.connect(5555,'127.0.0.1',()=>console.log(c.localPort))})";
    holder = spawn('ip', ['netns', 'exec', host.name, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const held = await new Promise<string>((resolve) => holder!.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim())));
    expect(held).toBe('40000');
    await host.sh(['sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=40000 40009']);
    daemon = new TestDaemon(host, ['--firewall-backend', 'nftables', '--userland-proxy', 'true']);
    await daemon.start();
    await daemon.cmd(['network', 'create', '--subnet', '198.18.23.0/24', 'ephnet']);

    const r = await daemon.cmd(['run', '--network', 'ephnet', '-p', '80', '--', 'true']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.trim()).toBe('0.0.0.0:40001->80/tcp');

    const exact = await daemon.cmd(['run', '--network', 'ephnet', '-p', '40000:80', '--', 'true']);
    expect(exact.code).toBe(1);
    expect(exact.stderr).toContain('port 40000/tcp on all addresses is already in use by another socket on this host');
    expect(JSON.parse((await daemon.cmd(['sandbox', 'ls', '--format', 'json'])).stdout)).toEqual([]);
  });
});
