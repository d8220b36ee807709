// What the bridge benchmark prints of its port-range part: each side's figures, then cnmkit against
// Docker in the same userland-proxy mode, publish against publish and whole container against whole
// sandbox; and the summary rows. Docker's publish is its `run -d -p` less a `run -d` without ports.
import { cycleMedians, REPEATS, type CnmkitPorts, type Cycles, type DockerPorts } from './_bridge-ports.js';
import { met, pad, secs, type Row } from './_report.js';
import { fmtMs, mib, ratio } from './_procs.js';

/** The most ports Docker is asked to publish (10 000 would take it about 10 minutes with docker-proxy). */
export const DOCKER_MAX_COUNT = 1000;
export const PUBLISH_TARGET_MS = 50;

const mode = (proxy: boolean): string => `proxy ${proxy ? 'on' : 'off'}`;
const dockerMode = (proxy: boolean): string => (proxy ? 'userland proxy on (docker-proxy, its default)' : 'userland proxy off (--userland-proxy=false)');

/** Median of a figure with the first cycle's in brackets. */
function medFirst(xs: number[], median: number): string {
  return `${pad(fmtMs(median), 9)} (${pad(fmtMs(xs[0]!), 9)})`;
}

function cycleLine(label: string, c: Cycles): string {
  const m = cycleMedians(c);
  return `  ${pad(label, 6)}  ${medFirst(c.create, m.create)}  ${medFirst(c.connect, m.connect)}  ${medFirst(c.disconnect, m.disconnect)}  ${medFirst(c.rm, m.rm)}`;
}

export function printCnmkitPorts(p: CnmkitPorts): void {
  console.log(`cnmkit, userland ${mode(p.proxy)} (firewall ${p.firewall}): ${REPEATS} cycles per line, each on a new sandbox; medians (the first cycle in brackets)`);
  console.log('   ports  sandbox create          connect [-p]            disconnect              sandbox rm (connected)');
  console.log(cycleLine('none', p.bare));
  for (const r of p.runs) console.log(cycleLine(String(r.count), r.cycles));
  console.log('   ports  daemon RSS before → published → after   listeners  processes');
  for (const r of p.runs) {
    console.log(`  ${pad(String(r.count), 6)}  ${mib(r.rssBeforeKiB)} → ${mib(r.rssPublishedKiB)} (+${mib(r.rssPublishedKiB - r.rssBeforeKiB)}) → ${mib(r.rssAfterKiB)}` +
      `   ${pad(String(r.listeners), 9)}  ${pad(String(r.processes), 9)}`);
  }
}

export function printDocker(d: DockerPorts): void {
  console.log(`Docker ${d.version}, built-in bridge, ${dockerMode(d.proxy)}, iptables:`);
  console.log(`  without ports (medians of 3): docker run -d ${fmtMs(d.bareRunMs)}, docker rm -f ${fmtMs(d.bareRmMs)}`);
  console.log(`  ${d.count} ports: docker run -d -p ${secs(d.publishMs)} (publish alone = less the run without ports: ${secs(d.publishMs - d.bareRunMs)}), ` +
    `docker rm -f ${secs(d.removeMs)} (unpublish alone: ${secs(d.removeMs - d.bareRmMs)})`);
  console.log(`  ${d.proxies} docker-proxy processes (children of dockerd) while published: RSS summed ${mib(d.proxiesRssKiB)}, PSS summed ${mib(d.proxiesPssKiB)}; ` +
    `dockerd RSS ${mib(d.dockerdRssBeforeKiB)} → ${mib(d.dockerdRssPublishedKiB)}; docker-proxy left after rm: ${d.proxiesAfterRm}`);
}

interface Pair {
  what: string;
  cnmkit: number;
  docker: number | undefined;
  /** cnmkit's first cycle, shown beside its median. */
  first?: number;
}

/** The four figures compared for one count and mode: publish and unpublish alone, and whole container/sandbox. */
function pairs(p: CnmkitPorts, count: number, docker: DockerPorts | undefined): Pair[] {
  const run = p.runs.find((r) => r.count === count)!;
  const m = cycleMedians(run.cycles);
  const b = cycleMedians(p.bare);
  const d = docker?.count === count && docker.proxy === p.proxy ? docker : undefined;
  const c = run.cycles;
  return [
    { what: 'publish alone', cnmkit: m.connect - b.connect, docker: d && d.publishMs - d.bareRunMs },
    { what: 'new + publish', cnmkit: m.createConnect, docker: d?.publishMs, first: c.create[0]! + c.connect[0]! },
    { what: 'unpublish alone', cnmkit: m.disconnect - b.disconnect, docker: d && d.removeMs - d.bareRmMs },
    { what: 'remove published', cnmkit: m.rm, docker: d?.removeMs, first: c.rm[0]! },
  ];
}

export const PORT_LEGEND = [
  'port rows, cnmkit | Docker (same userland-proxy mode on both sides; cnmkit medians of 7 cycles on new sandboxes, Docker one run):',
  '  publish alone     connect -p RANGE less connect without ports | docker run -d -p RANGE less docker run -d (median of 3)',
  '  new + publish     sandbox create + connect -p RANGE (what `cnmkit run -p` does; first cycle after ";") | docker run -d -p RANGE',
  '  unpublish alone   disconnect with the range less disconnect without ports | docker rm -f of the published container less docker rm -f of a bare one',
  '  remove published  sandbox rm with the range still published | docker rm -f of the published container',
  `  target            issue 4's: the whole connect -p call, p50, ≤ ${PUBLISH_TARGET_MS} ms at 1000 ports`,
];

/** cnmkit against Docker in the same mode, for each count Docker published. */
export function printComparison(p: CnmkitPorts, docker: DockerPorts | undefined): void {
  if (!docker) return;
  console.log(`cnmkit / Docker, ${docker.count} ports, userland ${mode(p.proxy)} on both sides:`);
  for (const x of pairs(p, docker.count, docker)) {
    console.log(`  ${x.what.padEnd(18)} cnmkit ${pad(fmtMs(x.cnmkit), 9)}   Docker ${pad(secs(x.docker!), 7)}   ${ratio(x.cnmkit, x.docker!)}`);
  }
}

export function portRows(cnmkit: CnmkitPorts[], docker: DockerPorts[]): Row[] {
  const rows: Row[] = [];
  for (const p of cnmkit) {
    const peer = docker.find((d) => d.proxy === p.proxy);
    for (const r of p.runs) {
      const tag = `${r.count}, ${mode(p.proxy)}`;
      const connect = cycleMedians(r.cycles).connect;
      for (const x of pairs(p, r.count, peer)) {
        const target = x.what === 'publish alone' && r.count === 1000 ? `connect -p ${fmtMs(connect)} ≤ ${PUBLISH_TARGET_MS} ms: ${met(connect <= PUBLISH_TARGET_MS)}` : '';
        rows.push({
          figure: `${x.what} ${tag}`, cnmkit: x.first === undefined ? fmtMs(x.cnmkit) : `${fmtMs(x.cnmkit)}; ${fmtMs(x.first)}`,
          peer: x.docker === undefined ? '—' : secs(x.docker), ratio: x.docker === undefined ? '—' : ratio(x.cnmkit, x.docker), target,
        });
      }
      const same = peer?.count === r.count;
      rows.push({ figure: `procs, RSS growth ${tag}`, cnmkit: `${r.processes} proc, +${mib(r.rssPublishedKiB - r.rssBeforeKiB)}`,
        peer: same ? `${peer.proxies} docker-proxy, ${mib(peer.proxiesPssKiB)} PSS` : '—', ratio: '', target: '' });
    }
  }
  return rows;
}
