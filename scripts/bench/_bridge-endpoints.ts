// Endpoint create+join on one bridge, for the bridge benchmark: N sandboxes made beforehand, then
// cnmkit's `POST /v1/networks/NET/connect` for each, against the CNI bridge plugin's ADD (host-local
// IPAM, ipMasq, isGateway) for N namespaces made beforehand; then disconnect + sandbox rm against
// DEL + namespace delete. Both bridges exist before the first join (cnmkit's from network create,
// CNI's from one ADD+DEL of a throwaway namespace); the first join on a new bridge is measured by
// _bridge-first.ts, before. Creation and teardown take turns chunk by chunk (who goes first
// alternates), so both see the same machine load. The joins run one side after the other (cnmkit,
// a pause, CNI), so that each side's growth is its own: CNI's containers keep IPv6 on, and their
// multicast, flooded to every port of their bridge, would otherwise load cnmkit's turns more and more.
// Limits: the CNI namespaces are made in-process (cnmkit's native addon, no spawn), so their creation
// is a floor, not a peer, of cnmkit's sandbox create; sequential calls only.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createNamedNetns, deleteNamedNetns } from '../../src/netns/index.js';
import { measureFirstEndpoints, type FirstEndpointRuns } from './_bridge-first.js';
import { BenchDaemon } from './_cnmkitd.js';
import { CniBridge } from './_cni.js';
import { addHostNs, checkInterrupt, deleteNsWithPrefix, exec, quantile, sleep, timed } from './_procs.js';

const CHUNK = 50;
/**
 * Pause between cnmkit's joins and CNI's: an interface that comes up sends IPv6 DAD, MLD and
 * router solicitations for several seconds, flooded to every port of its bridge.
 */
const SETTLE_MS = 15_000;
const CNMKIT_SUBNET = '198.18.64.0/20';
const CNI_SUBNET = '198.18.80.0/20';

export interface EndpointRuns {
  n: number;
  firewall: string;
  first: FirstEndpointRuns;
  sandboxCreate: number[];
  nsCreate: number[];
  connect: number[];
  add: number[];
  disconnect: number[];
  sandboxRm: number[];
  del: number[];
  nsDelete: number[];
  /** Median of `nsenter --net=HOST /bin/true`: what every CNI call pays to be spawned. */
  spawnFloorMs: number;
  /**
   * Controls whose cost does not depend on how many endpoints exist, timed three times after every
   * chunk of each side's joins: GET /v1/version (the daemon's HTTP floor) in cnmkit's turn, the
   * spawn floor in CNI's. Their drift from the first chunks to the last is the machine's load
   * changing, not scaling.
   */
  controlVersion: number[];
  controlSpawn: number[];
  rssStartKiB: number;
  rssJoinedKiB: number;
  rssEndKiB: number;
}

/** Runs a(i) for a chunk, then b(i) for the same chunk (the order swaps every chunk). */
async function alternate(n: number, a: (i: number) => Promise<void>, b: (i: number) => Promise<void>): Promise<void> {
  for (let start = 0, k = 0; start < n; start += CHUNK, k++) {
    checkInterrupt();
    const idx = Array.from({ length: Math.min(CHUNK, n - start) }, (_, j) => start + j);
    for (const side of k % 2 === 0 ? [a, b] : [b, a]) for (const i of idx) await side(i);
  }
}

/** Runs one side's f(0..n-1), with after() between chunks. */
async function inChunks(n: number, f: (i: number) => Promise<void>, after: () => Promise<void>): Promise<void> {
  for (let start = 0; start < n; start += CHUNK) {
    checkInterrupt();
    for (let i = start; i < Math.min(start + CHUNK, n); i++) await f(i);
    await after();
  }
}

/** Addresses host-local still holds (its files named by address). */
function cniLeases(dataDir: string): number {
  const dir = path.join(dataDir, 'cnmkit-bench');
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).length : 0;
}

/** CNI's bridge made the plugin's own way, as cnmkit's is by network create: one ADD and DEL of a throwaway namespace. */
async function makeCniBridge(cni: CniBridge, ns: string): Promise<void> {
  createNamedNetns(ns);
  try {
    await cni.call('ADD', 'warm', `/run/netns/${ns}`);
    await cni.call('DEL', 'warm', `/run/netns/${ns}`);
  } finally {
    deleteNamedNetns(ns);
  }
  const r = await exec(['nsenter', `--net=${cni.opts.hostNsPath}`, '--', 'ip', 'link', 'show', 'dev', cni.opts.bridge]);
  if (r.code !== 0) throw new Error(`bench bridge: CNI's ${cni.opts.bridge} does not exist after an ADD and DEL`);
}

export async function measureEndpoints(prefix: string, n: number, firewall: string): Promise<EndpointRuns> {
  const cnmkitHost = `${prefix}-hc`;
  const cniHost = `${prefix}-hn`;
  const sbName = (i: number): string => `${prefix}-s-${i}`;
  const nsName = (i: number): string => `${prefix}-c-${i}`;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-bench-cni-'));
  let daemon: BenchDaemon | undefined;
  try {
    daemon = new BenchDaemon(await addHostNs(cnmkitHost), `${prefix}-s-`, ['--firewall-backend', firewall]);
    const d = daemon;
    const cni = new CniBridge({ hostNsPath: await addHostNs(cniHost), bridge: 'cnibr0', subnet: CNI_SUBNET, dataDir });
    await d.start();
    await d.request('POST', '/v1/networks', { name: 'epnet', subnet: CNMKIT_SUBNET });
    const floor: number[] = [];
    for (let i = 0; i < 15; i++) floor.push((await timed(() => cni.spawnFloor())).ms);
    const first = await measureFirstEndpoints(d, cni.opts.hostNsPath, dataDir, prefix);
    await makeCniBridge(cni, `${prefix}-c-warm`);
    const r: EndpointRuns = {
      n, firewall: d.firewall, first, sandboxCreate: [], nsCreate: [], connect: [], add: [], disconnect: [], sandboxRm: [], del: [], nsDelete: [],
      spawnFloorMs: quantile(floor, 0.5), controlVersion: [], controlSpawn: [], rssStartKiB: 0, rssJoinedKiB: 0, rssEndKiB: 0,
    };
    await alternate(n,
      async (i) => void r.sandboxCreate.push((await timed(() => d.request('POST', '/v1/sandboxes', { name: sbName(i) }))).ms),
      async (i) => void r.nsCreate.push((await timed(async () => createNamedNetns(nsName(i)))).ms));
    r.rssStartKiB = d.rssKiB();
    await inChunks(n, async (i) => void (r.connect[i] = (await timed(() => d.request('POST', '/v1/networks/epnet/connect', { sandbox: sbName(i) }))).ms), async () => {
      for (let j = 0; j < 3; j++) r.controlVersion.push((await timed(() => d.request('GET', '/v1/version'))).ms);
    });
    await sleep(SETTLE_MS);
    await inChunks(n, async (i) => void (r.add[i] = (await timed(() => cni.call('ADD', `bench${i}`, `/run/netns/${nsName(i)}`))).ms), async () => {
      for (let j = 0; j < 3; j++) r.controlSpawn.push((await timed(() => cni.spawnFloor())).ms);
    });
    r.rssJoinedKiB = d.rssKiB();
    const joined = (await d.request<{ endpoints: unknown[] }>('GET', '/v1/networks/epnet')).endpoints.length;
    if (joined !== n || cniLeases(dataDir) !== n) throw new Error(`expected ${n} endpoints on each side, have cnmkit ${joined}, CNI ${cniLeases(dataDir)}`);
    await alternate(n,
      async (i) => {
        r.disconnect[i] = (await timed(() => d.request('POST', '/v1/networks/epnet/disconnect', { sandbox: sbName(i) }))).ms;
        r.sandboxRm[i] = (await timed(() => d.request('DELETE', `/v1/sandboxes/${sbName(i)}`))).ms;
      },
      async (i) => {
        r.del[i] = (await timed(() => cni.call('DEL', `bench${i}`, `/run/netns/${nsName(i)}`))).ms;
        r.nsDelete[i] = (await timed(async () => deleteNamedNetns(nsName(i)))).ms;
      });
    r.rssEndKiB = d.rssKiB();
    const left = (await d.request<{ endpoints: unknown[] }>('GET', '/v1/networks/epnet')).endpoints.length;
    if (left !== 0 || cniLeases(dataDir) !== 0) throw new Error(`endpoints left after teardown: cnmkit ${left}, CNI ${cniLeases(dataDir)}`);
    return r;
  } finally {
    await daemon?.cleanup();
    const leftCni = await deleteNsWithPrefix(`${prefix}-c-`);
    if (leftCni > 0) console.warn(`  (removed ${leftCni} CNI namespace(s) left behind)`);
    for (const host of [cnmkitHost, cniHost]) await exec(['ip', 'netns', 'del', host]);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
