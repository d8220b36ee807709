// The flood for the soak: COUNT TCP connections from a client on the underlay against a port a
// sandbox publishes through the daemon's userland proxy, while the management API is asked
// GET /v1/version every 10 ms; returns the API's latencies. The flood and echo tools are the
// proxy tests' own (test/netns/fixtures). No test-runner imports.
// Limits: the firewall backend is none (with DNAT rules an underlay client would bypass the proxy).
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { Background, Flood, FLOOD_TOOL, nodeFixture, type FloodCounts } from '../../netns/fixtures/portmap-harness.js';
import { check } from '../exec.js';
import { CampaignHost } from './daemon.js';
import { jsonRequest } from './http.js';

export interface FloodFigures {
  connections: number;
  counts: FloodCounts;
  probes: number;
  p50: number;
  p99: number;
  max: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function timedGet(socket: string): Promise<number> {
  const start = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath: socket, path: '/v1/version', agent: false, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - start) / 1e6) : reject(new Error(`GET /v1/version: ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error('GET /v1/version: no answer in 10 s')));
    req.on('error', reject);
  });
}

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

/** Runs the flood on a host of its own (made and removed here). */
export async function floodCampaign(connections: number): Promise<FloodFigures> {
  const host = await CampaignHost.create({ tag: 'fl', externals: 1, daemonArgs: ['--firewall-backend', 'none', '--docker-plugins', 'false'] });
  const stops: (() => Promise<void>)[] = [];
  try {
    const client = path.basename(host.external[0]!);
    await check(['ip', 'link', 'add', 'ul0', 'netns', host.hostNsName, 'type', 'veth', 'peer', 'name', 'ul1', 'netns', client]);
    await host.addBaseline('ul0', [['addr', 'add', '198.19.2.1/24', 'dev', 'ul0'], ['link', 'set', 'ul0', 'up']]);
    await check(['ip', '-n', client, 'addr', 'add', '198.19.2.2/24', 'dev', 'ul1']);
    await check(['ip', '-n', client, 'link', 'set', 'ul1', 'up']);
    await host.start();
    const ok = (r: { status: number; body: unknown }, what: string): void => {
      if (r.status >= 300) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
    };
    ok(await jsonRequest(host.socket, 'POST', '/v1/networks', { name: 'floodnet', subnet: '198.18.30.0/24' }), 'network create');
    ok(await jsonRequest(host.socket, 'POST', '/v1/sandboxes', { name: 'fl' }), 'sandbox create');
    ok(await jsonRequest(host.socket, 'POST', '/v1/networks/floodnet/connect', { sandbox: 'fl', ports: ['8080:80'] }), 'connect');
    const echo = new Background(spawn('nsenter', [`--net=${path.join(host.netnsDir, 'fl')}`, '--', ...nodeFixture(FLOOD_TOOL, ['echo', '80'])], { stdio: ['pipe', 'pipe', 'pipe'] }));
    stops.push(() => echo.stop());
    await echo.waitFor(/^listening$/);
    let done = false;
    const times: number[] = [];
    const flooding = Flood.start(client, '198.19.2.1', 8080, connections, 5_000, 500).finally(() => (done = true));
    while (!done) {
      times.push(await timedGet(host.socket));
      await sleep(10);
    }
    const { flood, counts } = await flooding;
    stops.push(() => flood.stop());
    const sorted = [...times].sort((a, b) => a - b);
    return { connections, counts, probes: times.length, p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted.at(-1) ?? NaN };
  } finally {
    for (const stop of stops.reverse()) await stop();
    await jsonRequest(host.socket, 'DELETE', '/v1/sandboxes/fl?force=true');
    await host.cleanup();
  }
}
