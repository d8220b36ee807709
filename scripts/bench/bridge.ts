// The bridge driver against its peers, side by side in one run, all in throwaway namespaces:
//  1. publishing a TCP port range (1000 and 10 000 ports, seven times each: median and first) through
//     cnmkit's management API, with the userland proxy on and off — against Docker 20.10 publishing 1000 ports with docker-proxy;
//  2. endpoint create+join latency (p50/p99 at 1, 100 and N endpoints on one bridge) and teardown —
//     against the CNI reference bridge plugin (host-local IPAM, ipMasq, isGateway).
// Environment: BENCH_ENDPOINTS (default 1000), BENCH_PORTS (default 1000,10000), BENCH_PROXY
// (on,off), BENCH_DOCKER=0 skips Docker (which takes ~2.5 minutes), BENCH_PARTS (ports,endpoints),
// BENCH_FIREWALL (cnmkit's --firewall-backend, default auto).
import fs from 'node:fs';
import { measureEndpoints, type EndpointRuns } from './_bridge-endpoints.js';
import { measureCnmkitPorts, measureDockerPorts, type CnmkitPorts, type DockerPorts } from './_bridge-ports.js';
import { cniMissing } from './_cni.js';
import { dockerMissing } from './_dockerd.js';
import { catchInterrupt, exec, fmtMs, mib, quantile, ratio } from './_procs.js';

interface Row {
  figure: string;
  cnmkit: string;
  peer: string;
  ratio: string;
  target: string;
}

function listEnv(name: string, fallback: string): string[] {
  return (process.env[name] ?? fallback).split(',').map((s) => s.trim()).filter(Boolean);
}

function positiveEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  const n = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`bench bridge: ${name}=${raw} is not a positive integer`);
  return n;
}

const pad = (s: string, n: number): string => s.padStart(n);
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const met = (ok: boolean): string => (ok ? 'met' : 'MISSED');

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

function printCnmkitPorts(p: CnmkitPorts): void {
  console.log(`cnmkit, userland proxy ${p.proxy ? 'on' : 'off'} (firewall ${p.firewall}): connect without ports ${fmtMs(p.bareConnectMs)}, disconnect ${fmtMs(p.bareDisconnectMs)} (medians of 7)`);
  console.log('   ports  connect+publish p50 (minus bare)  first   disconnect p50   first   sandbox rm   daemon RSS before → published → after   listeners  processes');
  for (const r of p.runs) {
    console.log(`  ${pad(String(r.count), 6)}  ${pad(fmtMs(r.publishMs), 12)} (${pad(fmtMs(r.publishMs - p.bareConnectMs), 9)})   ${pad(fmtMs(r.firstPublishMs), 9)}   ${pad(fmtMs(r.unpublishMs), 14)}  ${pad(fmtMs(r.firstUnpublishMs), 9)}   ${pad(fmtMs(r.sandboxRmMs), 10)}` +
      `   ${mib(r.rssBeforeKiB)} → ${mib(r.rssPublishedKiB)} (+${mib(r.rssPublishedKiB - r.rssBeforeKiB)}) → ${mib(r.rssAfterKiB)}   ${pad(String(r.listeners), 9)}  ${pad(String(r.processes), 9)}`);
  }
}

function printDocker(d: DockerPorts): void {
  console.log(`Docker ${d.version}, built-in bridge, default userland proxy (docker-proxy), iptables:`);
  console.log(`  docker run -d without ports ${fmtMs(d.bareRunMs)}, docker rm -f ${fmtMs(d.bareRmMs)}`);
  console.log(`  ${d.count} ports: docker run -d -p ${secs(d.publishMs)} (minus bare: ${secs(d.publishMs - d.bareRunMs)}), docker rm -f ${secs(d.removeMs)}`);
  console.log(`  ${d.proxies} docker-proxy processes (children of dockerd) while published: RSS summed ${mib(d.proxiesRssKiB)}, PSS summed ${mib(d.proxiesPssKiB)}; ` +
    `dockerd RSS ${mib(d.dockerdRssBeforeKiB)} → ${mib(d.dockerdRssPublishedKiB)}; docker-proxy left after rm: ${d.proxiesAfterRm}`);
}

function portRows(cnmkit: CnmkitPorts[], docker: DockerPorts | undefined): Row[] {
  const rows: Row[] = [];
  for (const p of cnmkit) {
    for (const r of p.runs) {
      const same = docker && docker.count === r.count;
      const tag = `${r.count} ports, proxy ${p.proxy ? 'on' : 'off'}`;
      rows.push({ figure: `publish ${tag} (p50; first)`, cnmkit: `${fmtMs(r.publishMs)}; ${fmtMs(r.firstPublishMs)}`, peer: same ? secs(docker.publishMs) : '—', ratio: same ? ratio(r.publishMs, docker.publishMs) : '—',
        target: r.count === 1000 ? `≤ 50 ms: ${met(r.publishMs <= 50)}` : '' });
      rows.push({ figure: `unpublish ${tag} (p50; first)`, cnmkit: `${fmtMs(r.unpublishMs)}; ${fmtMs(r.firstUnpublishMs)}`, peer: same ? secs(docker.removeMs) : '—', ratio: same ? ratio(r.unpublishMs, docker.removeMs) : '—', target: '' });
      rows.push({ figure: `procs, RSS growth: ${tag}`, cnmkit: `${r.processes} proc, +${mib(r.rssPublishedKiB - r.rssBeforeKiB)}`,
        peer: same && p.proxy ? `${docker.proxies} proc, ${mib(docker.proxiesPssKiB)} PSS` : '—', ratio: '', target: '' });
    }
  }
  return rows;
}

function stat(xs: number[]): string {
  return `${pad(fmtMs(quantile(xs, 0.5)), 9)} ${pad(fmtMs(quantile(xs, 0.99)), 9)}`;
}

/** Median of the last 100 over the median of the first 100 (of the last and first tenth when N < 200). */
function drift(xs: number[]): { value: number; label: string } {
  const k = xs.length >= 200 ? 100 : Math.max(1, Math.floor(xs.length / 10));
  return { value: quantile(xs.slice(-k), 0.5) / quantile(xs.slice(0, k), 0.5), label: `last ${k} / first ${k}` };
}

function printEndpoints(e: EndpointRuns): Row[] {
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
    { figure: 'first endpoint create+join', cnmkit: fmtMs(e.connect[0]!), peer: fmtMs(e.add[0]!), ratio: ratio(e.connect[0]!, e.add[0]!), target: '' },
    { figure: `create+join p50 (${e.n})`, cnmkit: fmtMs(p50c), peer: fmtMs(quantile(e.add, 0.5)), ratio: ratio(p50c, quantile(e.add, 0.5)), target: `≤ 2 ms: ${met(p50c <= 2)}` },
    { figure: `create+join p99 (${e.n})`, cnmkit: fmtMs(quantile(e.connect, 0.99)), peer: fmtMs(quantile(e.add, 0.99)), ratio: ratio(quantile(e.connect, 0.99), quantile(e.add, 0.99)), target: '' },
    { figure: `create+join ${dc.label}`, cnmkit: dc.value.toFixed(2), peer: da.value.toFixed(2), ratio: '', target: `≤ 1.2: ${met(dc.value <= 1.2)}` },
    { figure: 'teardown p50 (disconnect / DEL)', cnmkit: fmtMs(quantile(e.disconnect, 0.5)), peer: fmtMs(quantile(e.del, 0.5)), ratio: ratio(quantile(e.disconnect, 0.5), quantile(e.del, 0.5)), target: '' },
    { figure: 'sandbox create / rm p50', cnmkit: `${fmtMs(quantile(e.sandboxCreate, 0.5))} / ${fmtMs(quantile(e.sandboxRm, 0.5))}`, peer: '(no peer)', ratio: '', target: '' },
  ];
}

function printSummary(rows: Row[]): void {
  const w = [44, 22, 22, 12];
  console.log('\n-- summary (ratio = cnmkit / peer; below 1 means cnmkit is faster; the Docker peer always runs with docker-proxy, its default) --');
  console.log(`${'figure'.padEnd(w[0]!)}${'cnmkit'.padEnd(w[1]!)}${'peer'.padEnd(w[2]!)}${'ratio'.padEnd(w[3]!)}target`);
  for (const r of rows) console.log(`${r.figure.padEnd(w[0]!)}${r.cnmkit.padEnd(w[1]!)}${r.peer.padEnd(w[2]!)}${r.ratio.padEnd(w[3]!)}${r.target}`);
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
    if (parts.includes('ports')) {
      console.log(`\n-- 1. publishing a TCP port range on one endpoint (each call timed at the API client; ${portCounts.join(' and ')} ports) --`);
      const ours: CnmkitPorts[] = [];
      for (const proxy of proxies) {
        ours.push(await measureCnmkitPorts(prefix, proxy, portCounts, firewall));
        printCnmkitPorts(ours.at(-1)!);
      }
      let theirs: DockerPorts | undefined;
      if (docker) {
        console.log('Docker: publishing 1000 ports (≈ 50 s to publish and ≈ 96 s to remove on these machines) …');
        theirs = await measureDockerPorts(prefix, 1000);
        printDocker(theirs);
      } else console.log('Docker: skipped (BENCH_DOCKER=0)');
      console.log('Docker, 10 000 ports: not measured (one docker-proxy per port and family: it would take about 10 minutes)');
      if (theirs) {
        for (const p of ours) {
          const r = p.runs.find((x) => x.count === 1000);
          if (!r) continue;
          console.log(`ratio cnmkit (proxy ${p.proxy ? 'on' : 'off'}) / Docker (docker-proxy, its default), 1000 ports: publish ${ratio(r.publishMs, theirs.publishMs)}, ` +
            `publish minus a bare endpoint ${ratio(r.publishMs - p.bareConnectMs, theirs.publishMs - theirs.bareRunMs)}, unpublish ${ratio(r.unpublishMs, theirs.removeMs)}, ` +
            `processes ${r.processes} vs ${theirs.proxies} docker-proxy`);
        }
      }
      rows.push(...portRows(ours, theirs));
    }
    if (parts.includes('endpoints')) {
      console.log(`\n-- 2. endpoint create+join on one bridge: cnmkit connect vs the CNI bridge plugin's ADD (${endpoints} each: all of cnmkit's, a 15 s pause, all of CNI's) --`);
      rows.push(...printEndpoints(await measureEndpoints(prefix, endpoints, firewall)));
    }
    printSummary(rows);
  } finally {
    release();
  }
}
