// A real daemon under a flood of 5000 TCP connections from a client host on the underlay against a
// published port: the management API keeps answering in under 100 ms, the daemon's threads stay
// flat and its fds bounded, connections over the limit are refused and the hit is logged — with
// the default limits and with a small per-port limit. And a publish of every UDP port is refused
// before anything is allocated, naming the field and the numbers, without holding up the API.
// The firewall backend is none: with DNAT rules an underlay client would bypass the proxy.
import fs from 'node:fs';
import http from 'node:http';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeRoot } from '../helpers/root.js';
import { makeNs, underlay, uniqueName, type TestNs } from '../helpers/netns.js';
import { TestDaemon } from '../helpers/daemon.js';
import { Background, Flood, FLOOD_TOOL, nodeFixture } from '../netns/fixtures/portmap-harness.js';

const HOST_UL = '198.19.2.1';
const CLIENT_UL = '198.19.2.2';
const threads = (pid: number): number => fs.readdirSync(`/proc/${pid}/task`).length;
const fds = (pid: number): number => fs.readdirSync(`/proc/${pid}/fd`).length;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Pipes the relay may keep pooled when idle: 32 per loop, at most 4 loops, two fds each. */
const POOLED_PIPE_FDS = 32 * 4 * 2;

/** GET path on the daemon's socket; resolves with the time to the whole answer, in ms. */
function timedGet(socket: string, path: string): Promise<number> {
  const start = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    // A connection each (agent: false): none stays open in the daemon between probes.
    const req = http.get({ socketPath: socket, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - start) / 1e6) : reject(new Error(`GET ${path}: ${res.statusCode}`))));
    });
    req.on('error', reject);
  });
}

/** Asks GET /v1/version every 10 ms until stop resolves; returns every answer's time. */
async function probeApi(socket: string, stop: Promise<unknown>): Promise<number[]> {
  let done = false;
  void stop.finally(() => (done = true));
  const times: number[] = [];
  while (!done) {
    times.push(await timedGet(socket, '/v1/version'));
    await sleep(10);
  }
  return times;
}

const slowest = (times: number[]): string => [...times].sort((a, b) => b - a).slice(0, 5).map((t) => t.toFixed(1)).join(', ');

/** Polls read() until ok() holds or timeoutMs passes; returns the last value. */
async function until<T>(read: () => T, ok: (v: T) => boolean, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let v = read();
  while (!ok(v) && Date.now() < deadline) {
    await sleep(50);
    v = read();
  }
  return v;
}

/** The daemon's resolved proxy limits, from its "proxy: limits" log line. */
function loggedLimits(log: string): { maxConnections: number; maxConnectionsPerPort: number } {
  const line = log.split('\n').find((l) => l.includes('"msg":"proxy: limits"'));
  if (!line) throw new Error(`no proxy limits in the daemon log:\n${log}`);
  return JSON.parse(line) as { maxConnections: number; maxConnectionsPerPort: number };
}

const started: { stop(): Promise<void> }[] = [];

for (const [label, flags] of [['default limits', []], ['--proxy-max-connections-per-port 100', ['--proxy-max-connections-per-port', '100']]] as const) {
  describeRoot(`a flood of connections against a published port (${label})`, () => {
    let host: TestNs;
    let client: TestNs;
    let daemon: TestDaemon;

    beforeEach(async () => {
      host = await makeNs('host');
      client = await makeNs('client');
      await underlay(host, client, HOST_UL, CLIENT_UL);
      daemon = new TestDaemon(host, ['--firewall-backend', 'none', ...flags]);
      await daemon.start();
    });
    afterEach(async () => {
      await Promise.all(started.splice(0).map((p) => p.stop()));
      await daemon.cleanup();
    });

    it('keeps the API under 100 ms and the daemon\'s threads and fds bounded while 5000 connections arrive', async () => {
      expect((await daemon.cmd(['network', 'create', '--subnet', '198.18.30.0/24', 'floodnet'])).code).toBe(0);
      const sb = await daemon.sandbox(uniqueName('fl'));
      expect((await daemon.cmd(['connect', '-p', '8080:80', 'floodnet', sb])).stderr).toBe('');
      const echo = Background.spawn(sb, nodeFixture(FLOOD_TOOL, ['echo', '80']));
      started.push(echo);
      await echo.waitFor(/^listening$/);
      const pid = daemon.proc!.pid as number;
      const limits = loggedLimits(daemon.log);
      const perPort = flags.length > 0 ? 100 : limits.maxConnectionsPerPort;
      expect(perPort).toBeLessThan(5000);
      // One connection first, so the relay's threads exist before the baseline is taken.
      const warm = await Flood.start(client.name, HOST_UL, 8080, 1, 3_000);
      expect(warm.counts.ok).toBe(1);
      await warm.flood.stop();
      // One probe first too: the first request of this process on a new connection path is cold
      // (40-100 ms here, flood or not) and would be charged to the flood.
      await timedGet(daemon.socket, '/v1/version');
      await sleep(500);
      const before = { threads: threads(pid), fds: fds(pid) };

      const flooding = Flood.start(client.name, HOST_UL, 8080, 5000, 5_000, 500);
      const times = await probeApi(daemon.socket, flooding);
      const { flood, counts } = await flooding;
      started.push(flood);
      expect(counts).toMatchObject({ ok: perPort, refused: 5000 - perPort, silent: 0 });
      expect(times.length).toBeGreaterThan(10);
      expect(Math.max(...times), `slowest API answers (ms) of ${times.length}: ${slowest(times)}`).toBeLessThan(100);
      expect(threads(pid)).toBeLessThanOrEqual(before.threads + 2);
      expect(fds(pid) - before.fds).toBeLessThanOrEqual(perPort * 2 + POOLED_PIPE_FDS);
      expect(daemon.log).toMatch(/max-connections-per-port limit reached, refusing new connections/);

      await flood.stop();
      expect(await until(() => fds(pid), (n) => n <= before.fds)).toBeLessThanOrEqual(before.fds);
      expect(threads(pid)).toBe(before.threads);
    });
  });
}

describeRoot('publishing every UDP port through the proxy', () => {
  let host: TestNs;
  let daemon: TestDaemon;
  beforeEach(async () => {
    host = await makeNs('host');
    daemon = new TestDaemon(host, ['--firewall-backend', 'none']);
    await daemon.start();
  });
  afterEach(() => daemon.cleanup());

  it('is refused before anything is allocated, naming the field and the numbers; the API answers meanwhile', async () => {
    await daemon.cmd(['network', 'create', '--subnet', '198.18.31.0/24', 'udpnet']);
    const sb = await daemon.sandbox(uniqueName('ud'));
    const pid = daemon.proc!.pid as number;
    const fdsBefore = fds(pid);
    const { maxPorts } = loggedLimits(daemon.log) as unknown as { maxPorts: number };
    const connecting = daemon.cmd(['connect', '-p', '1-65535:1-65535/udp', 'udpnet', sb]);
    const times = await probeApi(daemon.socket, connecting);
    const r = await connecting;
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      `Error: ports: publishing 65535 ports through the userland proxy needs 65535 file descriptors, but --proxy-max-ports allows ${maxPorts} and 0 are published: publish fewer ports, raise --proxy-max-ports (fd limit ${fs.readFileSync(`/proc/${pid}/limits`, 'utf8').match(/Max open files\s+(\d+)/)![1]}), or run the daemon with --userland-proxy false`,
    );
    expect(Math.max(...times), `slowest API answers (ms) of ${times.length}: ${slowest(times)}`).toBeLessThan(100);
    // No socket was bound: at most the sandbox's netlink handle, which the connect opened, is new.
    const fdsRefused = await until(() => fds(pid), (n) => n <= fdsBefore + 1);
    expect(fdsRefused - fdsBefore).toBeLessThanOrEqual(1);
    expect(await host.sh(['ss', '-lunH'])).toBe('');
    // Nothing was leased: a port of that range can be published right after, for one more fd.
    const again = await daemon.cmd(['connect', '-p', '5353:53/udp', 'udpnet', sb]);
    expect(again.stderr).toBe('');
    expect((await host.sh(['ss', '-lunH'])).trim()).toMatch(/:5353\s/);
    expect(await until(() => fds(pid), (n) => n <= fdsRefused + 1)).toBe(fdsRefused + 1);
  });
});
