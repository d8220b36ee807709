// The bridge driver against its peers, side by side in one run, all in throwaway namespaces:
//  1. publishing a TCP port range (1000 and 10 000 ports, seven cycles each on new sandboxes) through
//     cnmkit's management API, with the userland proxy on and off — against Docker 20.10 publishing
//     1000 ports in the same mode (docker-proxy, or --userland-proxy=false): publish against publish
//     (each less the same call without ports) and new sandbox + publish against `docker run -d -p`;
//  2. the first endpoint on a new bridge (both sides make their bridge; both bridges exist), then
//     endpoint create+join latency (p50/p99 at 1, 100 and N endpoints on one bridge) and teardown —
//     against the CNI reference bridge plugin (host-local IPAM, ipMasq, isGateway).
// Environment: BENCH_ENDPOINTS (default 1000), BENCH_PORTS (default 1000,10000), BENCH_PROXY
// (on,off), BENCH_DOCKER=0 skips Docker (which publishes the smallest count, at most 1000: about
// 5 minutes for both modes), BENCH_PARTS (ports,endpoints), BENCH_FIREWALL (cnmkit's
// --firewall-backend, default auto).
import fs from 'node:fs';
import { measureEndpoints, type EndpointRuns } from './_bridge-endpoints.js';
import type { FirstEndpointRuns } from './_bridge-first.js';
import { DOCKER_MAX_COUNT, PORT_LEGEND, portRows, printCnmkitPorts, printComparison, printDocker } from './_bridge-ports-report.js';
import { measureCnmkitPorts, measureDockerPorts, type CnmkitPorts, type DockerPorts } from './_bridge-ports.js';
import { cniMissing } from './_cni.js';
import { dockerMissing } from './_dockerd.js';
import { catchInterrupt, exec, fmtMs, mib, quantile, ratio } from './_procs.js';
import { met, pad, printTable, type Row } from './_report.js';

function listEnv(name: string, fallback: string): string[] {
  return (process.env[name] ?? fallback).split(',').map((s) => s.trim()).filter(Boolean);
}

function positiveEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  const n = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`bench bridge: ${name}=${raw} is not a positive integer`);
  return n;
}

/** Stops early, before anything is created, when a tool the benchmark needs is not installed. */
async function prerequisites(parts: string[], docker: boolean): Promise<void> {
  const problems: string[] = [];
  for (const tool of ['nsenter', 'ip', 'ss', 'unshare']) if ((await exec(['sh', '-c', `command -v ${tool}`])).code !== 0) problems.push(`${tool} not found`);
  if (parts.includes('endpoints')) problems.push(...[cniMissing()].filter((p): p is string => p !== undefined));
  if (parts.includes('ports') && docker) {
    const why = dockerMissing();
    if (why) problems.push(`${why} (or set BENCH_DOCKER=0 to skip the Docker side)`);
  }
  if (!fs.existsSync('/run/netns') && (await exec(['ip', 'netns', 'list'])).code !== 0) problems.push('ip netns does not work here');
  if (problems.length > 0) throw new Error(`bench bridge: missing prerequisites:\n  ${problems.join('\n  ')}`);
}

function stat(xs: number[]): string {
  return `${pad(fmtMs(quantile(xs, 0.5)), 9)} ${pad(fmtMs(quantile(xs, 0.99)), 9)}`;
}

/** Median of the last 100 over the median of the first 100 (of the last and first tenth when N < 200). */
function drift(xs: number[]): { value: number; label: string } {
  const k = xs.length >= 200 ? 100 : Math.max(1, Math.floor(xs.length / 10));
  return { value: quantile(xs.slice(-k), 0.5) / quantile(xs.slice(0, k), 0.5), label: `last ${k} / first ${k}` };
}

/** The median of xs with its first value (round or cycle 1) after a semicolon. */
const medFirst = (xs: number[]): string => `${fmtMs(quantile(xs, 0.5))}; ${fmtMs(xs[0]!)}`;

function printFirst(f: FirstEndpointRuns): Row[] {
  const made = f.netCreate.map((x, i) => x + f.connectFirst[i]!);
  const show = (xs: number[]): string => `${fmtMs(quantile(xs, 0.5))} (${fmtMs(xs[0]!)})`;
  console.log(`the first endpoint on a new bridge, ${f.rounds} rounds (a new cnmkit network and a new CNI bridge each; who goes first alternates); medians, round 1 in brackets:`);
  console.log(`  cnmkit  network create ${show(f.netCreate)}, first connect ${show(f.connectFirst)}, a connect after one came and went ${show(f.connectAgain)}`);
  console.log(`  CNI     first ADD (makes its bridge) ${show(f.addFirst)}, an ADD after one came and went (the bridge exists) ${show(f.addAgain)}`);
  console.log(`  both make their bridge: cnmkit network create + first connect ${show(made)} vs CNI first ADD ${show(f.addFirst)}: ${ratio(quantile(made, 0.5), quantile(f.addFirst, 0.5))}`);
  console.log(`  both bridges exist:     cnmkit connect ${show(f.connectAgain)} vs CNI ADD ${show(f.addAgain)}: ${ratio(quantile(f.connectAgain, 0.5), quantile(f.addAgain, 0.5))}`);
  return [
    { figure: 'first endpoint, both make their bridge', cnmkit: medFirst(made), peer: medFirst(f.addFirst), ratio: ratio(quantile(made, 0.5), quantile(f.addFirst, 0.5)), target: '' },
    { figure: 'first endpoint, both bridges exist', cnmkit: medFirst(f.connectAgain), peer: medFirst(f.addAgain), ratio: ratio(quantile(f.connectAgain, 0.5), quantile(f.addAgain, 0.5)), target: '' },
  ];
}

const ENDPOINT_LEGEND = [
  'endpoint rows, cnmkit | CNI bridge plugin:',
  '  first endpoint, both make their bridge   network create + the first connect to it | the ADD that makes its bridge (median of the rounds; round 1 after ";")',
  '  first endpoint, both bridges exist       connect | ADD, each after one join came and went on its new bridge',
  '  create+join, teardown                    connect | ADD, then disconnect | DEL, on one bridge that exists on both sides before the first',
];

function printEndpoints(e: EndpointRuns): Row[] {
  const rows = printFirst(e.first);
  console.log(`then ${e.n} joins on one bridge each; both exist before the first (cnmkit's from network create, CNI's from an ADD and DEL of a throwaway namespace).`);
  console.log(`${e.n} sandboxes (cnmkit: POST /v1/sandboxes, p50/p99 ${stat(e.sandboxCreate).trim()}) and ${e.n} namespaces for CNI ` +
    `(made in-process, a floor: p50/p99 ${stat(e.nsCreate).trim()}) made beforehand. cnmkit firewall ${e.firewall}; CNI bridge + host-local, ipMasq (iptables).`);
  console.log(`each CNI call is an exec: nsenter --net=HOST /bin/true alone takes ${fmtMs(e.spawnFloorMs)} (median)`);
  console.log('                    cnmkit connect (API)         CNI bridge ADD (exec)         p50 ratio');
  console.log('  endpoints      first       p50       p99     first       p50       p99   cnmkit/CNI');
  const checkpoints = [...new Set([1, 100, 1000, e.n].filter((k) => k <= e.n))].sort((a, b) => a - b);
  for (const k of checkpoints) {
    const c = e.connect.slice(0, k);
    const a = e.add.slice(0, k);
    const first = (x: number): string => pad(k === 1 ? fmtMs(x) : '', 9);
    console.log(`  ${(k === 1 ? '1' : `first ${k}`).padEnd(10)} ${first(e.connect[0]!)} ${stat(c)} ${first(e.add[0]!)} ${stat(a)}   ${pad(ratio(quantile(c, 0.5), quantile(a, 0.5)), 9)}`);
  }
  const batches = (xs: number[]): string => {
    const out: string[] = [];
    for (let i = 0; i < xs.length; i += 100) out.push(quantile(xs.slice(i, i + 100), 0.5).toFixed(1));
    return out.join(' ');
  };
  console.log(`  medians of each 100 (ms): cnmkit ${batches(e.connect)}`);
  console.log(`                            CNI    ${batches(e.add)}`);
  const dc = drift(e.connect);
  const da = drift(e.add);
  console.log(`  ${dc.label} (medians): cnmkit ${dc.value.toFixed(2)} (target ≤ 1.2: ${met(dc.value <= 1.2)}), CNI ${da.value.toFixed(2)}`);
  // Three samples of each control per chunk of 50: the first and last six stand for the first and last 100.
  const control = (xs: number[]): string => `${fmtMs(quantile(xs.slice(0, 6), 0.5))} → ${fmtMs(quantile(xs.slice(-6), 0.5))} (${ratio(quantile(xs.slice(-6), 0.5), quantile(xs.slice(0, 6), 0.5))})`;
  console.log(`  load controls, first chunks → last chunks: GET /v1/version in cnmkit's turn ${control(e.controlVersion)}; nsenter /bin/true in CNI's ${control(e.controlSpawn)}`);
  console.log('teardown                  p50       p99');
  console.log(`  cnmkit disconnect  ${stat(e.disconnect)}     CNI DEL          ${stat(e.del)}   p50 ratio ${ratio(quantile(e.disconnect, 0.5), quantile(e.del, 0.5))}`);
  console.log(`  cnmkit sandbox rm  ${stat(e.sandboxRm)}     namespace delete ${stat(e.nsDelete)}`);
  console.log(`daemon RSS: ${mib(e.rssStartKiB)} with the sandboxes, ${mib(e.rssJoinedKiB)} with ${e.n} endpoints ` +
    `(${((e.rssJoinedKiB - e.rssStartKiB) / e.n).toFixed(1)} KiB each), ${mib(e.rssEndKiB)} after teardown`);
  const p50c = quantile(e.connect, 0.5);
  return [
    ...rows,
    { figure: `create+join p50 (${e.n})`, cnmkit: fmtMs(p50c), peer: fmtMs(quantile(e.add, 0.5)), ratio: ratio(p50c, quantile(e.add, 0.5)), target: `≤ 2 ms: ${met(p50c <= 2)}` },
    { figure: `create+join p99 (${e.n})`, cnmkit: fmtMs(quantile(e.connect, 0.99)), peer: fmtMs(quantile(e.add, 0.99)), ratio: ratio(quantile(e.connect, 0.99), quantile(e.add, 0.99)), target: '' },
    { figure: `create+join ${dc.label}`, cnmkit: dc.value.toFixed(2), peer: da.value.toFixed(2), ratio: '', target: `≤ 1.2: ${met(dc.value <= 1.2)}` },
    { figure: 'teardown p50 (disconnect / DEL)', cnmkit: fmtMs(quantile(e.disconnect, 0.5)), peer: fmtMs(quantile(e.del, 0.5)), ratio: ratio(quantile(e.disconnect, 0.5), quantile(e.del, 0.5)), target: '' },
    { figure: 'sandbox create / rm p50', cnmkit: `${fmtMs(quantile(e.sandboxCreate, 0.5))} / ${fmtMs(quantile(e.sandboxRm, 0.5))}`, peer: '(no peer)', ratio: '', target: '' },
  ];
}

export default async function bridgeBench(): Promise<void> {
  const parts = listEnv('BENCH_PARTS', 'ports,endpoints');
  const endpoints = positiveEnv('BENCH_ENDPOINTS', 1000);
  const portCounts = listEnv('BENCH_PORTS', '1000,10000').map(Number);
  if (portCounts.some((c) => !Number.isInteger(c) || c < 1 || c > 10_000)) throw new Error('bench bridge: BENCH_PORTS takes counts from 1 to 10000');
  const proxies = listEnv('BENCH_PROXY', 'on,off').map((p) => p === 'on');
  const docker = process.env.BENCH_DOCKER !== '0';
  const firewall = process.env.BENCH_FIREWALL ?? 'auto';
  await prerequisites(parts, docker);
  const prefix = `cnmkit-bench-${process.pid}`;
  const rows: Row[] = [];
  const release = catchInterrupt();
  try {
    const legend: string[] = [];
    if (parts.includes('ports')) {
      console.log(`\n-- 1. publishing a TCP port range on one endpoint (each call timed at the API client; ${portCounts.join(' and ')} ports) --`);
      const ours: CnmkitPorts[] = [];
      for (const proxy of proxies) {
        ours.push(await measureCnmkitPorts(prefix, proxy, portCounts, firewall));
        printCnmkitPorts(ours.at(-1)!);
      }
      const theirs: DockerPorts[] = [];
      const dockerCount = Math.min(...portCounts);
      for (const proxy of docker && dockerCount <= DOCKER_MAX_COUNT ? proxies : []) {
        console.log(`Docker, userland proxy ${proxy ? 'on' : 'off'}: publishing ${dockerCount} ports (1000 take ≈ ${proxy ? '50 s to publish and 96 s' : '33 s to publish and 90 s'} to remove on these machines) …`);
        theirs.push(await measureDockerPorts(prefix, dockerCount, proxy));
        printDocker(theirs.at(-1)!);
      }
      if (!docker) console.log('Docker: skipped (BENCH_DOCKER=0)');
      const unmeasured = portCounts.filter((c) => c !== dockerCount || c > DOCKER_MAX_COUNT);
      if (docker && unmeasured.length > 0) console.log(`Docker, ${unmeasured.join(', ')} ports: not measured (it publishes only the smallest count, at most ${DOCKER_MAX_COUNT}: one docker-proxy per port and family)`);
      for (const p of ours) printComparison(p, theirs.find((d) => d.proxy === p.proxy));
      rows.push(...portRows(ours, theirs));
      legend.push(...PORT_LEGEND);
    }
    if (parts.includes('endpoints')) {
      console.log(`\n-- 2. endpoint create+join: cnmkit connect vs the CNI bridge plugin's ADD (the first on new bridges; then ${endpoints} each on one bridge: all of cnmkit's, a 15 s pause, all of CNI's) --`);
      rows.push(...printEndpoints(await measureEndpoints(prefix, endpoints, firewall)));
      legend.push(...ENDPOINT_LEGEND);
    }
    printTable('summary (ratio = cnmkit / peer; below 1 means cnmkit is faster; "a; b" = median; first)', legend, rows);
  } finally {
    release();
  }
}
