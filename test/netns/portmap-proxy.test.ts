// The userland proxy with real packets: TCP (echo, half-close, HTTP) and UDP through a proxy
// process in a throwaway "host" namespace, from its own 127.0.0.1 and from a client namespace.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { Background, nodeFixture, PORT_TOOL, ProxyProcess } from './fixtures/portmap-harness.js';
import { listeningPorts, proxyTopology, waitListening, type ProxyTopology } from './fixtures/portmap-topology.js';

const started: { stop(): Promise<void> }[] = [];
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop()));
});

async function background(ns: string, argv: string[]): Promise<Background> {
  const proc = Background.spawn(ns, argv);
  started.push(proc);
  return proc;
}

async function proxyIn(topo: ProxyTopology, env: Record<string, string> = {}): Promise<ProxyProcess> {
  const proxy = await ProxyProcess.start(topo.host.name, env);
  started.push(proxy);
  return proxy;
}

/** A socat echo server (fork per connection, half-close aware) in the container. */
async function echoServer(topo: ProxyTopology, port: number): Promise<void> {
  await background(topo.container.name, ['socat', `TCP4-LISTEN:${port},fork,reuseaddr`, 'PIPE']);
  await waitListening(topo.container, 'tcp', port);
}

describeRoot('userland proxy: TCP and UDP through real sockets', () => {
  it('forwards TCP from the host namespace 127.0.0.1 and from a client namespace, half-close included', async () => {
    const topo = await proxyTopology();
    await echoServer(topo, 5000);
    const proxy = await proxyIn(topo);
    const published = await proxy.call('publish', { owner: 'ep1', mappings: [{ proto: 'tcp', hostPort: 8080, containerIP: topo.containerIP, containerPort: 5000 }] });
    expect(published).toEqual([{ owner: 'ep1', proto: 'tcp', hostPort: 8080, hostPortEnd: 8080, containerIP: '198.18.0.2', containerPort: 5000, containerPortEnd: 5000 }]);
    expect(await listeningPorts(topo.host, 'tcp')).toEqual([8080]);

    expect(await topo.host.sh(['socat', '-t', '5', '-', 'TCP4:127.0.0.1:8080'], { input: 'hello\n' })).toBe('hello\n');
    // 1 MiB sent, then the client's write side shuts (FIN); the echo must still arrive whole.
    const big = randomBytes(512 * 1024).toString('hex');
    const echoed = await topo.client.sh(['socat', '-t', '10', '-', 'TCP4:198.19.0.1:8080'], { input: big, timeoutMs: 30_000 });
    expect(echoed.length).toBe(big.length);
    expect(echoed === big).toBe(true);
  });

  it('serves HTTP from busybox httpd in the container to curl in the client namespace, a 16 MiB download included', async () => {
    const topo = await proxyTopology();
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-pm-www-'));
    try {
      fs.writeFileSync(path.join(root, 'index.html'), 'published through cnmkit\n');
      await background(topo.container.name, ['busybox', 'httpd', '-f', '-p', '80', '-h', root]);
      await waitListening(topo.container, 'tcp', 80);
      const proxy = await proxyIn(topo);
      await proxy.call('publish', { owner: 'web', mappings: [{ proto: 'tcp', hostIP: '198.19.0.1', hostPort: 8081, containerIP: topo.containerIP, containerPort: 80 }] });
      const body = await topo.client.sh(['curl', '-sS', '--max-time', '5', 'http://198.19.0.1:8081/']);
      expect(body).toBe('published through cnmkit\n');
      // A download larger than every socket buffer on the way arrives intact.
      const big = randomBytes(16 * 1024 * 1024);
      fs.writeFileSync(path.join(root, 'big.bin'), big);
      const saved = path.join(root, 'saved.bin');
      await topo.client.sh(['curl', '-sS', '--max-time', '20', '-o', saved, 'http://198.19.0.1:8081/big.bin'], { timeoutMs: 30_000 });
      expect(sha256(fs.readFileSync(saved))).toBe(sha256(big));
      // Bound to that address only: the host's loopback does not answer on the port.
      const viaLoopback = await topo.host.exec(['curl', '-sS', '--max-time', '3', 'http://127.0.0.1:8081/']);
      expect(viaLoopback.code).not.toBe(0);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('round-trips UDP, replies come from the published port, and an idle flow is closed', async () => {
    const topo = await proxyTopology();
    await background(topo.container.name, nodeFixture(PORT_TOOL, ['serve', 'udp', '6000', '6000']));
    await waitListening(topo.container, 'udp', 6000);
    const proxy = await proxyIn(topo, { PORTMAP_UDP_IDLE_MS: '1500' });
    await proxy.call('publish', { owner: 'dns', mappings: [{ proto: 'udp', hostPort: 8053, containerIP: topo.containerIP, containerPort: 6000 }] });
    expect(await listeningPorts(topo.host, 'udp')).toEqual([8053]);
    // socat's UDP4 socket is connected: it accepts only replies from 198.19.0.1:8053.
    expect(await topo.client.sh(['socat', '-t', '0.3', '-', 'UDP4:198.19.0.1:8053'], { input: 'ping' })).toBe('6000:ping');
    expect(await topo.host.sh(['socat', '-t', '0.3', '-', 'UDP4:127.0.0.1:8053'], { input: 'pong' })).toBe('6000:pong');
    const flows = async (): Promise<number> =>
      (await topo.host.sh(['ss', '-unH', 'dst', '198.18.0.2:6000'])).split('\n').filter((l) => l.trim() !== '').length;
    expect(await flows()).toBeGreaterThanOrEqual(1);
    // Closed once idle for 1.5 s: asked until it is (10 s at most; the proxy's sweep runs later on a loaded machine).
    let left = await flows();
    for (const deadline = Date.now() + 10_000; left > 0 && Date.now() < deadline; left = await flows()) await new Promise((r) => setTimeout(r, 100));
    expect(left).toBe(0);
  });

  it('resets the client when nothing listens on the container port', async () => {
    const topo = await proxyTopology();
    const proxy = await proxyIn(topo);
    await proxy.call('publish', { owner: 'gone', mappings: [{ proto: 'tcp', hostPort: 8082, containerIP: topo.containerIP, containerPort: 5999 }] });
    const r = await topo.client.exec(['curl', '-sS', '--max-time', '5', 'http://198.19.0.1:8082/']);
    expect(r.code).toBe(56);
    expect(r.stderr).toMatch(/reset by peer/i);
    // The listener stays up for the next client.
    expect(await listeningPorts(topo.host, 'tcp')).toEqual([8082]);
  });

  it('publishes on [::1] in front of an IPv4 container', async () => {
    const topo = await proxyTopology();
    await echoServer(topo, 5000);
    const proxy = await proxyIn(topo);
    await proxy.call('publish', { owner: 'v6', mappings: [{ proto: 'tcp', hostIP: '::1', hostPort: 8443, containerIP: topo.containerIP, containerPort: 5000 }] });
    expect(await topo.host.sh(['socat', '-t', '5', '-', 'TCP6:[::1]:8443'], { input: 'six to four\n' })).toBe('six to four\n');
  });

  it('publishes one port on 0.0.0.0 and :: and as TCP and UDP in one batch, each reachable', async () => {
    const topo = await proxyTopology();
    await echoServer(topo, 5000);
    await background(topo.container.name, nodeFixture(PORT_TOOL, ['serve', 'udp', '6000', '6000']));
    await waitListening(topo.container, 'udp', 6000);
    const proxy = await proxyIn(topo);
    await proxy.call('publish', { owner: 'both', mappings: [
      { proto: 'tcp', hostIP: '0.0.0.0', hostPort: 8095, containerIP: topo.containerIP, containerPort: 5000 },
      { proto: 'tcp', hostIP: '::', hostPort: 8095, containerIP: topo.containerIP, containerPort: 5000 },
      { proto: 'udp', hostPort: 8095, containerIP: topo.containerIP, containerPort: 6000 },
    ] });
    expect(await listeningPorts(topo.host, 'tcp')).toEqual([8095, 8095]);
    expect(await listeningPorts(topo.host, 'udp')).toEqual([8095]);
    expect(await topo.host.sh(['socat', '-t', '5', '-', 'TCP4:127.0.0.1:8095'], { input: 'four\n' })).toBe('four\n');
    expect(await topo.host.sh(['socat', '-t', '5', '-', 'TCP6:[::1]:8095'], { input: 'six\n' })).toBe('six\n');
    expect(await topo.client.sh(['socat', '-t', '0.3', '-', 'UDP4:198.19.0.1:8095'], { input: 'udp' })).toBe('6000:udp');
  });

  it('unpublish closes live connections, frees the port for another listener, and is idempotent', async () => {
    const topo = await proxyTopology();
    await echoServer(topo, 5000);
    const proxy = await proxyIn(topo);
    await proxy.call('publish', { owner: 'ep2', mappings: [{ proto: 'tcp', hostPort: 8090, containerIP: topo.containerIP, containerPort: 5000 }] });
    const live = await background(topo.client.name, ['socat', '-', 'TCP4:198.19.0.1:8090']);
    live.child.stdin!.write('still here\n');
    await live.waitFor(/^still here$/);

    expect(await proxy.call('unpublish', { owner: 'ep2' })).toBe(1);
    expect(await live.exit(5_000)).toBe(0);
    expect(await listeningPorts(topo.host, 'tcp')).toEqual([]);
    expect(await proxy.call('list')).toEqual([]);
    expect(await proxy.call('unpublish', { owner: 'ep2' })).toBe(0);

    const other = await background(topo.host.name, ['socat', 'TCP4-LISTEN:8090,reuseaddr', '-']);
    await waitListening(topo.host, 'tcp', 8090);
    expect(other.running).toBe(true);
  });
});
