// The userland proxy's limits with real clients: a flood of 5000 TCP connections from a client
// namespace against a small per-port limit (threads and fds of the proxy process stay flat, the
// excess is reset, one log line), idle TCP connections closed after the idle timeout while a busy
// one lives, UDP flows bounded per port and in total, and a large UDP publish that neither holds
// the proxy's JS thread nor grows its memory, a too-large one refused before anything is bound.
import fs from 'node:fs';
import { afterEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { Background, Flood, nodeFixture, FLOOD_TOOL, PORT_TOOL, ProxyProcess, type FloodCounts } from './fixtures/portmap-harness.js';
import { listeningPorts, proxyTopology, waitListening, type ProxyTopology } from './fixtures/portmap-topology.js';

const started: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop()));
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const threads = (pid: number): number => fs.readdirSync(`/proc/${pid}/task`).length;
const fds = (pid: number): number => fs.readdirSync(`/proc/${pid}/fd`).length;
/** Pipes the relay may keep pooled when idle: 32 per loop, at most 4 loops, two fds each. */
const POOLED_PIPE_FDS = 32 * 4 * 2;

interface Stats {
  tcpConnections: number;
  udpFlows: number;
  bytesToContainer: number;
  bytesFromContainer: number;
  limitHits: Record<string, number>;
}

async function proxyIn(topo: ProxyTopology, env: Record<string, string>, nodeArgs: string[] = []): Promise<ProxyProcess> {
  const proxy = await ProxyProcess.start(topo.host.name, env, nodeArgs);
  started.push(proxy);
  proxy.proc.child.stderr!.resume();
  return proxy;
}

async function echoServer(topo: ProxyTopology, port: number): Promise<void> {
  const server = Background.spawn(topo.container.name, nodeFixture(FLOOD_TOOL, ['echo', String(port)]));
  started.push(server);
  await server.waitFor(/^listening$/);
}

async function flood(topo: ProxyTopology, port: number, count: number, settleMs: number, parallel = 200): Promise<{ flood: Flood; counts: FloodCounts }> {
  const f = await Flood.start(topo.client.name, topo.hostIP, port, count, settleMs, parallel);
  started.push(f.flood);
  return f;
}

/** Polls until ok() holds or timeoutMs passes; returns the last value of read(). */
async function until<T>(read: () => T | Promise<T>, ok: (v: T) => boolean, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let v = await read();
  while (!ok(v) && Date.now() < deadline) {
    await sleep(50);
    v = await read();
  }
  return v;
}

describeRoot('userland proxy limits', () => {
  it('holds 5000 connections from one client to its per-port limit: threads and fds flat, the rest reset, one log line', async () => {
    const topo = await proxyTopology();
    await echoServer(topo, 5000);
    const proxy = await proxyIn(topo, { PORTMAP_MAX_PER_PORT: '50', PORTMAP_LOG: 'warn' });
    await proxy.call('publish', { owner: 'flood', mappings: [{ proto: 'tcp', hostPort: 8100, containerIP: topo.containerIP, containerPort: 5000 }] });
    // One connection first: the relay's threads start with the first one, then never grow.
    const warm = await flood(topo, 8100, 1, 3_000);
    expect(warm.counts).toMatchObject({ ok: 1 });
    await warm.flood.stop();
    await until(() => proxy.call<Stats>('stats'), (s) => s.tcpConnections === 0);
    const before = { threads: threads(proxy.pid), fds: fds(proxy.pid) };

    const { flood: f, counts } = await flood(topo, 8100, 5000, 3_000, 500);
    expect(counts).toMatchObject({ ok: 50, refused: 4950, silent: 0 });
    // The old proxy ran two threads and held seven fds per connection, here +100 threads.
    expect(threads(proxy.pid)).toBeLessThanOrEqual(before.threads + 2);
    expect(fds(proxy.pid) - before.fds).toBeLessThanOrEqual(50 * 2 + POOLED_PIPE_FDS);
    const stats = await proxy.call<Stats>('stats');
    expect(stats).toMatchObject({ tcpConnections: 50, udpFlows: 0, limitHits: { 'max-connections-per-port': 4950, 'max-connections': 0 } });
    expect(stats.bytesToContainer).toBe(51 * 5);
    expect(proxy.proc.stderr.match(/max-connections-per-port limit reached/g)).toHaveLength(1);

    await f.stop();
    expect((await until(() => proxy.call<Stats>('stats'), (s) => s.tcpConnections === 0)).tcpConnections).toBe(0);
    expect(await until(() => fds(proxy.pid), (n) => n <= before.fds)).toBeLessThanOrEqual(before.fds);
    expect(threads(proxy.pid)).toBe(before.threads);
  });

  it('closes idle TCP connections after the idle timeout and keeps a busy one', async () => {
    const topo = await proxyTopology();
    await echoServer(topo, 5000);
    const proxy = await proxyIn(topo, { PORTMAP_IDLE_MS: '1500' });
    await proxy.call('publish', { owner: 'idle', mappings: [{ proto: 'tcp', hostPort: 8101, containerIP: topo.containerIP, containerPort: 5000 }] });
    const { flood: f, counts } = await flood(topo, 8101, 20, 3_000);
    expect(counts).toMatchObject({ ok: 20 });
    const busy = Background.spawn(topo.client.name, ['socat', '-', `TCP4:${topo.hostIP}:8101`]);
    started.push(busy);
    for (let i = 0; i < 8; i++) {
      busy.child.stdin!.write(`tick ${i}\n`);
      await busy.waitFor(new RegExp(`^tick ${i}$`));
      await sleep(400);
    }
    // 3.2 s in: the idle ones are gone, the busy one (a line each 0.4 s) is not.
    expect(await f.report()).toEqual({ alive: 0, closedByPeer: 20 });
    expect(busy.running).toBe(true);
    expect(await proxy.call<Stats>('stats')).toMatchObject({ tcpConnections: 1, limitHits: { 'idle-timeout': 20 } });
    expect(await busy.exit(4_000)).toBe(0);
    expect(await proxy.call<Stats>('stats')).toMatchObject({ tcpConnections: 0, limitHits: { 'idle-timeout': 21 } });
  });

  it('bounds UDP flows per port and in total; a datagram over a limit is dropped, the flows live on', async () => {
    const topo = await proxyTopology();
    const server = Background.spawn(topo.container.name, nodeFixture(PORT_TOOL, ['serve', 'udp', '6000', '6001']));
    started.push(server);
    await waitListening(topo.container, 'udp', 6001);
    const proxy = await proxyIn(topo, { PORTMAP_MAX_PER_PORT: '3', PORTMAP_MAX_CONNECTIONS: '4', PORTMAP_LOG: 'warn' });
    await proxy.call('publish', { owner: 'dns', mappings: [{ proto: 'udp', hostPort: 8053, hostPortEnd: 8054, containerIP: topo.containerIP, containerPort: 6000, containerPortEnd: 6001 }] });
    // Each socat is a new client address (its own source port), hence a new flow.
    const ask = async (port: number): Promise<string> => (await topo.client.exec(['socat', '-t', '0.5', '-', `UDP4:${topo.hostIP}:${port}`], { input: 'q' })).stdout;
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await ask(8053));
    expect(answers).toEqual(['6000:q', '6000:q', '6000:q', '']);
    expect([await ask(8054), await ask(8054)]).toEqual(['6001:q', '']);
    const flows = (await topo.host.sh(['ss', '-unH', 'dst', topo.containerIP])).split('\n').filter((l) => l.trim() !== '');
    expect(flows).toHaveLength(4);
    expect(await proxy.call<Stats>('stats')).toMatchObject({ udpFlows: 4, bytesToContainer: 4, bytesFromContainer: 24, limitHits: { 'max-connections-per-port': 1, 'max-connections': 1 } });
    expect(proxy.proc.stderr).toMatch(/max-connections-per-port limit reached.*"proto":"udp"|"proto":"udp".*max-connections-per-port limit reached/);
  });

  it('publishes 8000 UDP ports without holding the JS thread or growing its memory, and refuses 1-65535 before binding', async () => {
    const topo = await proxyTopology();
    // The publish's short-lived objects would grow V8's young generation to its default cap and
    // keep it (~27 MB resident, held after a GC too), which is no cost per port and varied enough
    // to fail a sound build: a 1 MB semi-space leaves in the resident set what the ports keep.
    const proxy = await proxyIn(topo, {}, ['--max-semi-space-size=1']);
    const memory = async (): Promise<number> => (await proxy.call<NodeJS.MemoryUsage>('memory')).rss;
    // The requests below grow the runner's heap a little on their own: make them once first.
    for (let i = 0; i < 200; i++) await proxy.call('stats');
    const rssBefore = await memory();
    const fdsBefore = fds(proxy.pid);
    const whole = { proto: 'udp', hostPort: 1, hostPortEnd: 65535, containerIP: topo.containerIP, containerPort: 1, containerPortEnd: 65535 };
    await expect(proxy.call('publish', { owner: 'all', mappings: [whole] })).rejects.toMatchObject({
      name: 'InvalidArgumentError',
      field: 'ports',
      message: expect.stringMatching(/^ports: publishing 65535 ports through the userland proxy needs 65535 file descriptors, but --proxy-max-ports allows 12000 and 0 are published/),
    });
    expect(await listeningPorts(topo.host, 'udp')).toEqual([]);
    expect(fds(proxy.pid)).toBe(fdsBefore);

    // While 8000 ports are bound, the proxy process keeps answering other requests.
    const range = { proto: 'udp', hostPort: 20000, hostPortEnd: 27999, containerIP: topo.containerIP, containerPort: 20000, containerPortEnd: 27999 };
    const publishing = proxy.request('publish', { owner: 'big', mappings: [range] });
    let done = false;
    void publishing.finally(() => (done = true));
    const lags: number[] = [];
    while (!done) {
      const t = Date.now();
      await proxy.call('stats');
      lags.push(Date.now() - t);
      await sleep(5);
    }
    await publishing;
    expect(lags.length).toBeGreaterThan(1);
    expect(Math.max(...lags)).toBeLessThan(100);
    expect((await listeningPorts(topo.host, 'udp')).length).toBe(8000);
    expect(fds(proxy.pid) - fdsBefore).toBe(8000);
    // The Node socket per port cost ~5.5 KiB each (+350 MB for 65535, ~43 MB for these 8000);
    // the relay's ports keep 3-5 MB in all.
    expect((await memory()) - rssBefore).toBeLessThan(16 * 2 ** 20);
    expect(await proxy.call('unpublish', { owner: 'big' })).toBe(8000);
    expect(await listeningPorts(topo.host, 'udp')).toEqual([]);
  });
});
