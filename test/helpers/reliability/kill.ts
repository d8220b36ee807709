// The kill -9 campaign: a mixed workload (networks, named and path sandboxes, connect with --ip and
// -p, disconnect, removals; no Docker) runs against a real daemon, which is SIGKILLed after a
// random delay and restarted on the same state; after every restart the invariants are checked
// (./invariants.ts). Then clear() removes everything through the API. Seeded: the same seed, the
// same operations and delays (the kernel's timing still varies). No test-runner imports.
// Limits: operations go through the management socket, not the CLI (a CLI start per operation
// would cost more than the campaign); bridge, host and null drivers only.
import path from 'node:path';
import type { CampaignHost } from './daemon.js';
import { jsonRequest } from './http.js';
import { checkInvariants, countByKind, type ViolationKind } from './invariants.js';
import { readState } from './state.js';

export interface KillFigures {
  iterations: number;
  operations: number;
  /** Operations by outcome: 2xx, 4xx, 5xx, cut (no answer: the kill), hung (no answer, daemon alive). */
  outcomes: Record<string, number>;
  restartsFailed: number;
  violations: Record<ViolationKind, number>;
  failures: string[];
  /** Where the time went, summed over the iterations (ms): the wait before the kill, the kill and the workers' end, the restart until the socket answers, the invariant check. */
  ms: { delay: number; kill: number; restart: number; check: number };
}

export interface KillOptions {
  seed: number;
  iterations: number;
  /** Longest random delay before the kill, in ms. */
  maxDelayMs?: number;
  /** Operations in flight at once. */
  workers?: number;
  /** Stop before this time (ms since the epoch), whatever the iterations. */
  deadline?: number;
  /** Hosts sharing one count: called before each iteration, false ends the campaign (iterations is then only a label). */
  take?: () => boolean;
  log?: (line: string) => void;
}

/** mulberry32: a small seeded generator, so that a seed replays the same campaign. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NETWORKS = 4;
const SANDBOXES = 6;

interface Op {
  method: string;
  path: string;
  body?: unknown;
}

/** One random operation of the workload. */
function nextOp(rand: () => number, host: CampaignHost): Op {
  const pick = (n: number): number => Math.floor(rand() * n);
  const net = pick(NETWORKS);
  const netName = `kn${net}`;
  const sb = pick(SANDBOXES + host.external.length);
  const sbName = `ks${sb}`;
  const roll = rand();
  if (roll < 0.12) return { method: 'POST', path: '/v1/networks', body: { name: netName, subnet: `198.18.${10 + net}.0/24`, ...(net === 3 ? { internal: true } : {}) } };
  if (roll < 0.2) return { method: 'DELETE', path: `/v1/networks/${netName}` };
  if (roll < 0.34) {
    const external = sb >= SANDBOXES ? host.external[sb - SANDBOXES] : undefined;
    return { method: 'POST', path: '/v1/sandboxes', body: { name: sbName, ...(external ? { netns: external } : {}) } };
  }
  if (roll < 0.44) return { method: 'DELETE', path: `/v1/sandboxes/${sbName}?force=true` };
  if (roll < 0.86) {
    const body: Record<string, unknown> = { sandbox: sbName };
    if (rand() < 0.5) body.ip = `198.18.${10 + net}.${2 + pick(12)}`;
    if (rand() < 0.4) body.ports = [`${20000 + pick(24)}:80`, ...(rand() < 0.3 ? [`${20100 + pick(8)}:53/udp`] : [])];
    return { method: 'POST', path: `/v1/networks/${netName}/connect`, body };
  }
  if (roll < 0.9) return { method: 'POST', path: `/v1/networks/${pick(2) ? 'bridge' : netName}/connect`, body: { sandbox: sbName } };
  return { method: 'POST', path: `/v1/networks/${netName}/disconnect`, body: { sandbox: sbName } };
}

/** Checks the invariants of host's current state; returns the violations in words. */
export async function violationsOf(host: CampaignHost): Promise<{ kind: ViolationKind; detail: string }[]> {
  const state = await readState(host.source);
  return checkInvariants(state, { hostNs: host.hostNs, baselineLinks: host.baselineLinks, externalNamespaces: host.external, daemonPid: host.pid, firewall: true, netnsDir: host.netnsDir });
}

/** Runs the campaign on host (daemon started); the daemon is running when it returns. */
export async function killCampaign(host: CampaignHost, o: KillOptions): Promise<KillFigures> {
  const log = o.log ?? (() => undefined);
  const rand = prng(o.seed);
  const f: KillFigures = { iterations: 0, operations: 0, outcomes: {}, restartsFailed: 0, violations: countByKind([]), failures: [], ms: { delay: 0, kill: 0, restart: 0, check: 0 } };
  const count = (k: string): void => void (f.outcomes[k] = (f.outcomes[k] ?? 0) + 1);
  for (let i = 0; Date.now() < (o.deadline ?? Infinity) && (o.take ? o.take() : i < o.iterations); i++) {
    let killed = false;
    const worker = async (): Promise<void> => {
      while (!killed) {
        const op = nextOp(rand, host);
        const r = await jsonRequest(host.socket, op.method, op.path, op.body, 20_000);
        f.operations += 1;
        if (r.status === 0) count(killed || !host.alive ? 'cut' : 'hung');
        else count(`${Math.floor(r.status / 100)}xx`);
        if (r.status >= 500 && f.failures.length < 20) f.failures.push(`iteration ${i}: ${op.method} ${op.path} ${JSON.stringify(op.body)}: ${r.status} ${JSON.stringify(r.body)}`);
        if (r.status === 0 && !killed && host.alive && f.failures.length < 20) f.failures.push(`iteration ${i}: ${op.method} ${op.path}: no answer in 20 s`);
      }
    };
    const delay = Math.floor(rand() * (o.maxDelayMs ?? 1500));
    const workers = Array.from({ length: o.workers ?? 3 }, () => worker());
    let mark = Date.now();
    const lap = (k: keyof KillFigures['ms']): void => {
      const now = Date.now();
      f.ms[k] += now - mark;
      mark = now;
    };
    await new Promise((r) => setTimeout(r, delay));
    lap('delay');
    killed = true;
    await host.stop('SIGKILL');
    await Promise.all(workers);
    lap('kill');
    try {
      await host.start();
      lap('restart');
    } catch (err) {
      f.restartsFailed += 1;
      f.failures.push(`iteration ${i}: the daemon did not restart: ${(err as Error).message.slice(0, 3000)}`);
      log(f.failures.at(-1)!);
      throw Object.assign(new Error(`kill campaign: the daemon did not restart after kill ${i}`), { figures: f });
    }
    f.iterations += 1;
    const vs = await violationsOf(host);
    lap('check');
    for (const v of vs) f.violations[v.kind] += 1;
    if (vs.length > 0) {
      const line = `iteration ${i} (seed ${o.seed}, kill after ${delay} ms): ${vs.map((v) => `${v.kind}: ${v.detail}`).join('; ')}`;
      if (f.failures.length < 20) f.failures.push(line);
      log(line);
    }
    if ((i + 1) % 25 === 0) log(`kill: ${i + 1}/${o.iterations} iterations, ${f.operations} operations, ${Object.values(f.violations).reduce((a, b) => a + b, 0)} violations`);
  }
  return f;
}

/** Removes every sandbox and network through the API (Docker's through the plugin sockets); returns the answers that were not 2xx. */
export async function clear(host: CampaignHost): Promise<string[]> {
  const errors: string[] = [];
  const call = async (socket: string, method: string, p: string, body?: unknown): Promise<void> => {
    const r = await jsonRequest(socket, method, p, body);
    if (r.status < 200 || r.status >= 300) errors.push(`${method} ${p}: ${r.status} ${JSON.stringify(r.body)}`);
  };
  const sandboxes = (await jsonRequest<{ name: string; kind: string }[]>(host.socket, 'GET', '/v1/sandboxes')).body;
  const links = (await jsonRequest<{ name: string }[]>(host.socket, 'GET', '/v1/links')).body;
  for (const l of Array.isArray(links) ? links : []) await call(host.socket, 'DELETE', `/v1/links/${encodeURIComponent(l.name)}`);
  const bridgeSock = path.join(host.pluginDir, 'cnmkit-bridge.sock');
  const { store } = await readState(host.source);
  for (const n of store.networks.filter((x) => x.dockerId)) {
    for (const e of store.endpoints.filter((x) => x.networkId === n.id)) {
      const dockerEp = (e as unknown as { dockerId?: string }).dockerId ?? e.id;
      await call(bridgeSock, 'POST', '/NetworkDriver.Leave', { NetworkID: n.dockerId, EndpointID: dockerEp });
      await call(bridgeSock, 'POST', '/NetworkDriver.DeleteEndpoint', { NetworkID: n.dockerId, EndpointID: dockerEp });
    }
    await call(bridgeSock, 'POST', '/NetworkDriver.DeleteNetwork', { NetworkID: n.dockerId });
  }
  for (const sb of Array.isArray(sandboxes) ? sandboxes : []) if (sb.kind !== 'host' || sb.name !== 'host') await call(host.socket, 'DELETE', `/v1/sandboxes/${encodeURIComponent(sb.name)}?force=true`);
  const networks = (await jsonRequest<{ name: string }[]>(host.socket, 'GET', '/v1/networks')).body;
  for (const n of Array.isArray(networks) ? networks : []) if (!['bridge', 'host', 'none'].includes(n.name)) await call(host.socket, 'DELETE', `/v1/networks/${encodeURIComponent(n.name)}`);
  const ipamSock = path.join(host.pluginDir, 'cnmkit-ipam.sock');
  const after = (await readState(host.source)).store;
  for (const pool of after.pools.filter((p) => p.owner === 'docker:pool')) {
    for (const a of after.addresses.filter((x) => x.poolId === pool.id && x.owner.startsWith('docker:'))) {
      await call(ipamSock, 'POST', '/IpamDriver.ReleaseAddress', { PoolID: pool.id, Address: a.address });
    }
    await call(ipamSock, 'POST', '/IpamDriver.ReleasePool', { PoolID: pool.id });
  }
  return errors;
}
