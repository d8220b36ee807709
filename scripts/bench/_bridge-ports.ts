// Publishing port ranges, for the bridge benchmark, measured so that each side's publish can be
// set against the other's: cnmkit runs REPEATS cycles on a new sandbox each (sandbox create, connect
// with `ports`, disconnect, connect again, sandbox rm; each call timed at the API client), with and
// without ports; Docker 20.10 runs `docker run -d` and `docker rm -f` with and without `-p RANGE`, its
// userland proxy on (docker-proxy) or off (`--userland-proxy=false`), its docker-proxy children counted.
// Limits: Docker's published container runs once per mode (it takes minutes), its bare one three
// times; the daemon's RSS and process count are read from /proc at one instant.
import { BenchDaemon } from './_cnmkitd.js';
import { BUSYBOX_IMAGE as IMAGE, Dockerd } from '../../test/helpers/engine.js';
import { addHostNs, checkInterrupt, childrenNamed, exec, pssKiB, quantile, rssKiB, timed } from './_procs.js';

/** The calls of cycle k on sandbox k, in milliseconds (one entry per cycle). */
export interface Cycles {
  create: number[];
  connect: number[];
  disconnect: number[];
  /** Sandbox rm while connected (ports still published, when there are any). */
  rm: number[];
}

export interface CnmkitPortRun {
  count: number;
  cycles: Cycles;
  rssBeforeKiB: number;
  rssPublishedKiB: number;
  rssAfterKiB: number;
  listeners: number;
  processes: number;
}

export interface CnmkitPorts {
  proxy: boolean;
  firewall: string;
  /** The same cycles without ports: the fixed part of every call. */
  bare: Cycles;
  runs: CnmkitPortRun[];
}

/** Cycles per count; the median is the figure, the first one (cold code paths) is shown beside it. */
export const REPEATS = 7;

const range = (count: number): string => `20000-${20000 + count - 1}:20000-${20000 + count - 1}`;

/** Listening TCP sockets on ports 20000-29999 in the namespace (the proxy's, when it is on). */
async function listenersIn(nsPath: string): Promise<number> {
  const r = await exec(['nsenter', `--net=${nsPath}`, '--', 'ss', '-Htln', 'sport >= :20000 and sport <= :29999']);
  return r.stdout.split('\n').filter((l) => l.trim() !== '').length;
}

async function noListeners(nsPath: string, after: string): Promise<void> {
  const left = await listenersIn(nsPath);
  if (left !== 0) throw new Error(`${left} listeners left on 20000-29999 after ${after}`);
}

/**
 * REPEATS cycles, each on a new sandbox: create, connect (with ports when given), disconnect,
 * connect again, rm. `onPublished` runs once, after the first connect.
 */
async function cycles(d: BenchDaemon, hostNs: string, sbPrefix: string, ports: string[] | undefined, onPublished: () => Promise<void>): Promise<Cycles> {
  const out: Cycles = { create: [], connect: [], disconnect: [], rm: [] };
  const net = '/v1/networks/pubnet';
  for (let k = 0; k < REPEATS; k++) {
    checkInterrupt();
    const sb = `${sbPrefix}-${k}`;
    const body = { sandbox: sb, ...(ports ? { ports } : {}) };
    out.create.push((await timed(() => d.request('POST', '/v1/sandboxes', { name: sb }))).ms);
    out.connect.push((await timed(() => d.request('POST', `${net}/connect`, body))).ms);
    if (k === 0) await onPublished();
    out.disconnect.push((await timed(() => d.request('POST', `${net}/disconnect`, { sandbox: sb }))).ms);
    await noListeners(hostNs, `disconnect (${sb})`);
    await d.request('POST', `${net}/connect`, body);
    out.rm.push((await timed(() => d.request('DELETE', `/v1/sandboxes/${sb}`))).ms);
    await noListeners(hostNs, `sandbox rm (${sb})`);
  }
  return out;
}

/** One daemon (proxy on or off) in its own host namespace: cycles without ports, then with each count. */
export async function measureCnmkitPorts(prefix: string, proxy: boolean, counts: number[], firewall: string): Promise<CnmkitPorts> {
  const hostName = `${prefix}-ph${proxy ? 1 : 0}`;
  let daemon: BenchDaemon | undefined;
  try {
    const hostNs = await addHostNs(hostName);
    daemon = new BenchDaemon(hostNs, `${prefix}-ps`, ['--userland-proxy', String(proxy), '--firewall-backend', firewall]);
    const d = daemon;
    await d.start();
    await d.request('POST', '/v1/networks', { name: 'pubnet', subnet: '198.18.32.0/24' });
    const bare = await cycles(d, hostNs, `${prefix}-ps-bare`, undefined, async () => undefined);
    const runs: CnmkitPortRun[] = [];
    for (const count of counts) {
      const rssBeforeKiB = d.rssKiB();
      const seen = { rssPublishedKiB: 0, processes: 0, listeners: 0 };
      const c = await cycles(d, hostNs, `${prefix}-ps-${count}`, [range(count)], async () => {
        seen.rssPublishedKiB = d.rssKiB();
        seen.processes = d.processCount();
        seen.listeners = await listenersIn(hostNs);
      });
      runs.push({ count, cycles: c, rssBeforeKiB, rssAfterKiB: d.rssKiB(), ...seen });
    }
    return { proxy, firewall: d.firewall, bare, runs };
  } finally {
    await daemon?.cleanup();
    await exec(['ip', 'netns', 'del', hostName]);
  }
}

/** Medians of a cycle set: each call, and sandbox create + connect as one (what `cnmkit run -p` does). */
export function cycleMedians(c: Cycles): { create: number; connect: number; createConnect: number; disconnect: number; rm: number } {
  return {
    create: quantile(c.create, 0.5), connect: quantile(c.connect, 0.5), disconnect: quantile(c.disconnect, 0.5), rm: quantile(c.rm, 0.5),
    createConnect: quantile(c.create.map((x, i) => x + c.connect[i]!), 0.5),
  };
}

export interface DockerPorts {
  count: number;
  /** Docker's userland proxy: on = docker-proxy (its default), off = `--userland-proxy=false`. */
  proxy: boolean;
  version: string;
  /** Medians of BARE_RUNS `docker run -d` and `docker rm -f` without ports. */
  bareRunMs: number;
  bareRmMs: number;
  publishMs: number;
  removeMs: number;
  proxies: number;
  proxiesRssKiB: number;
  proxiesPssKiB: number;
  dockerdRssBeforeKiB: number;
  dockerdRssPublishedKiB: number;
  proxiesAfterRm: number;
}

const BARE_RUNS = 3;

/** Docker with its userland proxy on or off: containers without ports, then one publishing count ports. */
export async function measureDockerPorts(prefix: string, count: number, proxy: boolean): Promise<DockerPorts> {
  const hostName = `${prefix}-dh${proxy ? 1 : 0}`;
  let engine: Dockerd | undefined;
  try {
    const args = ['--bip', '198.19.0.1/24', '--default-address-pool', 'base=198.19.128.0/17,size=24', ...(proxy ? [] : ['--userland-proxy=false'])];
    engine = await Dockerd.start({ path: await addHostNs(hostName) }, { args, logLevel: 'warn' });
    const dockerd = engine;
    const pid = dockerd.pid!;
    await dockerd.buildImage();
    const version = await dockerd.dockerOk(['version', '--format', '{{.Server.Version}}']);
    const bareRun: number[] = [];
    const bareRm: number[] = [];
    for (let i = 0; i < BARE_RUNS; i++) {
      const bare = await timed(() => dockerd.dockerOk(['run', '-d', IMAGE, 'sleep', '1000']));
      bareRun.push(bare.ms);
      bareRm.push((await timed(() => dockerd.dockerOk(['rm', '-f', bare.value]))).ms);
    }
    checkInterrupt();
    const dockerdRssBeforeKiB = rssKiB(pid);
    const published = await timed(() => dockerd.dockerOk(['run', '-d', '-p', range(count), IMAGE, 'sleep', '1000'], { timeoutMs: 900_000 }));
    const proxies = childrenNamed(pid, 'docker-proxy');
    const proxiesRssKiB = proxies.reduce((sum, pid) => sum + rssKiB(pid), 0);
    const proxiesPssKiB = proxies.reduce((sum, pid) => sum + pssKiB(pid), 0);
    const dockerdRssPublishedKiB = rssKiB(pid);
    checkInterrupt();
    const removed = await timed(() => dockerd.dockerOk(['rm', '-f', published.value], { timeoutMs: 900_000 }));
    return {
      count, proxy, version, bareRunMs: quantile(bareRun, 0.5), bareRmMs: quantile(bareRm, 0.5), publishMs: published.ms, removeMs: removed.ms,
      proxies: proxies.length, proxiesRssKiB, proxiesPssKiB, dockerdRssBeforeKiB, dockerdRssPublishedKiB,
      proxiesAfterRm: childrenNamed(pid, 'docker-proxy').length,
    };
  } finally {
    await engine?.cleanup();
    await exec(['ip', 'netns', 'del', hostName]);
  }
}
