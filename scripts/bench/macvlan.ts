// The macvlan driver against the CNI macvlan plugin (Debian's containernetworking-plugins, host-local
// IPAM), side by side in throwaway namespaces: endpoint create+join latency, p50/p99 at 1, 100 and N
// endpoints on one parent, then teardown. Each side has its own "host" namespace whose veth nic0
// stands for the NIC; both do the same work per endpoint: a macvlan (bridge mode) on nic0 born in
// the container's namespace, its address, up, a default route via the gateway. cnmkit's sandboxes
// and CNI's namespaces are made beforehand; the joins run one side after the other (cnmkit, then CNI),
// teardown chunk by chunk alternating. Targets: p50 ≤ 0.2× CNI at N, last 100 ≤ 1.2× first 100.
// Environment: BENCH_ENDPOINTS (default 500).
// Limits: sequential calls only; CNI's namespaces are made in-process (a floor, not a peer, of cnmkit's sandbox create).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createNamedNetns, deleteNamedNetns } from '../../src/netns/index.js';
import { BenchDaemon } from './_cnmkitd.js';
import { CniMacvlan, cniMissing } from './_cni.js';
import { addHostNs, catchInterrupt, checkInterrupt, deleteNsWithPrefix, exec, fmtMs, must, quantile, ratio, timed } from './_procs.js';
import { met, pad, printTable, type Row } from './_report.js';

const CHUNK = 50;
const CNMKIT_SUBNET = '198.18.64.0/20';
const CNI_SUBNET = '198.18.80.0/20';

interface Runs {
  n: number;
  connect: number[];
  add: number[];
  disconnect: number[];
  del: number[];
  spawnFloorMs: number;
}

function endpointCount(): number {
  const raw = process.env.BENCH_ENDPOINTS;
  const n = raw === undefined ? 500 : Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 4000) throw new Error(`bench macvlan: BENCH_ENDPOINTS=${raw} is not an integer from 1 to 4000`);
  return n;
}

/** A "host" namespace whose nic0 (one end of a veth, the other end nic0p beside it, both up) stands for the NIC. */
async function hostWithNic(name: string): Promise<string> {
  const ns = await addHostNs(name);
  await must(['ip', '-n', name, 'link', 'add', 'nic0', 'type', 'veth', 'peer', 'name', 'nic0p']);
  for (const dev of ['nic0', 'nic0p']) await must(['ip', '-n', name, 'link', 'set', dev, 'up']);
  return ns;
}

/** Runs a(i) for a chunk, then b(i) for the same chunk (the order swaps every chunk). */
async function alternate(n: number, a: (i: number) => Promise<void>, b: (i: number) => Promise<void>): Promise<void> {
  for (let start = 0, k = 0; start < n; start += CHUNK, k++) {
    checkInterrupt();
    const idx = Array.from({ length: Math.min(CHUNK, n - start) }, (_, j) => start + j);
    for (const side of k % 2 === 0 ? [a, b] : [b, a]) for (const i of idx) await side(i);
  }
}

async function inturn(n: number, f: (i: number) => Promise<void>): Promise<void> {
  for (let i = 0; i < n; i++) {
    if (i % CHUNK === 0) checkInterrupt();
    await f(i);
  }
}

function cniLeases(dataDir: string): number {
  const dir = path.join(dataDir, 'cnmkit-bench');
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).length : 0;
}

async function measure(prefix: string, n: number): Promise<Runs> {
  const sbName = (i: number): string => `${prefix}-s-${i}`;
  const nsName = (i: number): string => `${prefix}-c-${i}`;
  const hosts = [`${prefix}-hc`, `${prefix}-hn`];
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-bench-cni-'));
  let daemon: BenchDaemon | undefined;
  try {
    daemon = new BenchDaemon(await hostWithNic(hosts[0]!), `${prefix}-s-`, ['--firewall-backend', 'none']);
    const d = daemon;
    const cni = new CniMacvlan({ hostNsPath: await hostWithNic(hosts[1]!), master: 'nic0', subnet: CNI_SUBNET, gateway: '198.18.80.1', dataDir });
    await d.start();
    await d.request('POST', '/v1/networks', { name: 'mvnet', driver: 'macvlan', subnet: CNMKIT_SUBNET, gateway: '198.18.64.1', options: { parent: 'nic0' } });
    const floor: number[] = [];
    for (let i = 0; i < 15; i++) floor.push((await timed(() => cni.spawnFloor())).ms);
    const r: Runs = { n, connect: [], add: [], disconnect: [], del: [], spawnFloorMs: quantile(floor, 0.5) };
    await alternate(n, async (i) => void (await d.request('POST', '/v1/sandboxes', { name: sbName(i) })), async (i) => void createNamedNetns(nsName(i)));
    await inturn(n, async (i) => void (r.connect[i] = (await timed(() => d.request('POST', '/v1/networks/mvnet/connect', { sandbox: sbName(i) }))).ms));
    await inturn(n, async (i) => void (r.add[i] = (await timed(() => cni.call('ADD', `bench${i}`, `/run/netns/${nsName(i)}`))).ms));
    // Both sides did the work: a macvlan eth0 with an address and a default route in the last namespace of each.
    for (const ns of [sbName(n - 1), nsName(n - 1)]) {
      const link = await must(['ip', '-n', ns, '-d', 'link', 'show', 'eth0']);
      const route = await must(['ip', '-n', ns, 'route', 'show', 'default']);
      if (!link.includes('macvlan mode bridge') || !route.includes('via')) throw new Error(`bench macvlan: ${ns} lacks a macvlan eth0 or its default route:\n${link}\n${route}`);
    }
    const joined = (await d.request<{ endpoints: unknown[] }>('GET', '/v1/networks/mvnet')).endpoints.length;
    if (joined !== n || cniLeases(dataDir) !== n) throw new Error(`expected ${n} endpoints on each side, have cnmkit ${joined}, CNI ${cniLeases(dataDir)}`);
    await alternate(n,
      async (i) => {
        r.disconnect[i] = (await timed(() => d.request('POST', '/v1/networks/mvnet/disconnect', { sandbox: sbName(i) }))).ms;
        await d.request('DELETE', `/v1/sandboxes/${sbName(i)}`);
      },
      async (i) => {
        r.del[i] = (await timed(() => cni.call('DEL', `bench${i}`, `/run/netns/${nsName(i)}`))).ms;
        deleteNamedNetns(nsName(i));
      });
    return r;
  } finally {
    await daemon?.cleanup();
    const leftCni = await deleteNsWithPrefix(`${prefix}-c-`);
    if (leftCni > 0) console.warn(`  (removed ${leftCni} CNI namespace(s) left behind)`);
    for (const host of hosts) await exec(['ip', 'netns', 'del', host]);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

const stat = (xs: number[]): string => `${pad(fmtMs(quantile(xs, 0.5)), 9)} ${pad(fmtMs(quantile(xs, 0.99)), 9)}`;

/** Median of the last 100 over the median of the first 100 (of the last and first tenth when N < 200). */
function drift(xs: number[]): { value: number; label: string } {
  const k = xs.length >= 200 ? 100 : Math.max(1, Math.floor(xs.length / 10));
  return { value: quantile(xs.slice(-k), 0.5) / quantile(xs.slice(0, k), 0.5), label: `last ${k} / first ${k}` };
}

function report(e: Runs): Row[] {
  console.log(`each CNI call is an exec: nsenter --net=HOST /bin/true alone takes ${fmtMs(e.spawnFloorMs)} (median)`);
  console.log('                    cnmkit connect (API)         CNI macvlan ADD (exec)        p50 ratio');
  console.log('  endpoints      first       p50       p99     first       p50       p99   cnmkit/CNI   target ≤ 0.2');
  const rows: Row[] = [];
  for (const k of [...new Set([1, 100, e.n].filter((x) => x <= e.n))]) {
    const c = e.connect.slice(0, k);
    const a = e.add.slice(0, k);
    const q = quantile(c, 0.5) / quantile(a, 0.5);
    const first = (x: number): string => pad(k === 1 ? fmtMs(x) : '', 9);
    console.log(`  ${(k === 1 ? '1' : `first ${k}`).padEnd(10)} ${first(e.connect[0]!)} ${stat(c)} ${first(e.add[0]!)} ${stat(a)}   ${pad(ratio(quantile(c, 0.5), quantile(a, 0.5)), 9)}   ${met(q <= 0.2)}`);
    rows.push({ figure: `create+join p50 (${k === 1 ? 'the first' : `first ${k}`})`, cnmkit: fmtMs(quantile(c, 0.5)), peer: fmtMs(quantile(a, 0.5)), ratio: ratio(quantile(c, 0.5), quantile(a, 0.5)), target: `≤ 0.2×: ${met(q <= 0.2)}` });
    if (k > 1) rows.push({ figure: `create+join p99 (first ${k})`, cnmkit: fmtMs(quantile(c, 0.99)), peer: fmtMs(quantile(a, 0.99)), ratio: ratio(quantile(c, 0.99), quantile(a, 0.99)), target: '' });
  }
  const dc = drift(e.connect);
  const da = drift(e.add);
  console.log(`  ${dc.label} (medians): cnmkit ${dc.value.toFixed(2)} (target ≤ 1.2: ${met(dc.value <= 1.2)}), CNI ${da.value.toFixed(2)}`);
  console.log(`teardown p50/p99: cnmkit disconnect ${stat(e.disconnect).trim()}, CNI DEL ${stat(e.del).trim()}, p50 ratio ${ratio(quantile(e.disconnect, 0.5), quantile(e.del, 0.5))}`);
  rows.push({ figure: `create+join ${dc.label}`, cnmkit: dc.value.toFixed(2), peer: da.value.toFixed(2), ratio: '', target: `≤ 1.2: ${met(dc.value <= 1.2)}` });
  rows.push({ figure: 'teardown p50 (disconnect / DEL)', cnmkit: fmtMs(quantile(e.disconnect, 0.5)), peer: fmtMs(quantile(e.del, 0.5)), ratio: ratio(quantile(e.disconnect, 0.5), quantile(e.del, 0.5)), target: '' });
  return rows;
}

export default async function macvlanBench(): Promise<void> {
  const n = endpointCount();
  const missing = cniMissing(['macvlan', 'host-local']);
  if (missing) throw new Error(`bench macvlan: missing prerequisites: ${missing}`);
  const release = catchInterrupt();
  try {
    console.log(`\n-- endpoint create+join on one parent: cnmkit connect vs the CNI macvlan plugin's ADD (${n} each: all of cnmkit's, then all of CNI's) --`);
    const rows = report(await measure(`cnmkit-bench-${process.pid}`, n));
    printTable('summary (ratio = cnmkit / CNI macvlan; below 1 means cnmkit is faster)', [
      'create+join: connect (a macvlan born in the sandbox, address, up, default route) | ADD (the same, host-local IPAM); teardown: disconnect | DEL',
    ], rows);
  } finally {
    release();
  }
}
