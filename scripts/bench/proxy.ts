// The daemon's userland proxy against docker-proxy, side by side in one run: a real `cnmkit daemon`
// (userland proxy on) in a throwaway host namespace, a sandbox on one of its bridge networks serving
// iperf3, a port published to it through the management API (connect with `ports`, as `cnmkit run
// -p` does); docker-proxy started as dockerd 20.10 starts it (same flags, readiness on fd 3), in the
// same namespace, to the same sandbox. iperf3 TCP from 127.0.0.1 in the host namespace through each,
// both directions, in ABBA order; the listener of each port is checked to be the daemon's and
// docker-proxy's own. Verdict: throughput ≥ 1.0× docker-proxy in both directions (issue 4's target).
// Environment: BENCH_PROXY_SECONDS (a run, default 5), BENCH_PROXY_ROUNDS (ABBA blocks, default 2),
// BENCH_FIREWALL (cnmkit's --firewall-backend, default auto).
// Limits: TCP over IPv4, one connection at a time; the daemon's CPU time counts all its threads
// (whatever else it does meanwhile, which here is nothing); publishing is timed by `bench bridge`.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { BenchDaemon } from './_cnmkitd.js';
import { dockerProxyPath } from './_dockerd.js';
import { addHostNs, catchInterrupt, checkInterrupt, exec, mib, must, pssKiB, ratio, rssKiB, sleep, startChild, stopChild } from './_procs.js';
import { met, printTable, type Row } from './_report.js';

const IPERF_PORT = 5201;
const DAEMON_PORT = 15201;
const DOCKER_PORT = 25201;
const SUBNET = '198.18.40.0/24';

type Side = 'cnmkit' | 'docker';

interface Run {
  gbps: number;
  /** CPU seconds (user + system, all threads) the proxy's process spent per GB carried. */
  cpuPerGB: number;
}

function positiveEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  const n = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`bench proxy: ${name}=${raw} is not a positive integer`);
  return n;
}

/** utime + stime of a process (every thread), in seconds. */
function cpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Waits until a TCP listener on port in the namespace belongs to pid (`ss -p` names its owner). */
async function waitListener(nsPath: string, port: number, pid: number, what: string): Promise<void> {
  for (const deadline = Date.now() + 10_000; ; await sleep(50)) {
    const out = (await exec(['nsenter', `--net=${nsPath}`, '--', 'ss', '-Htlnp', `sport = :${port}`])).stdout;
    if (out.includes(`pid=${pid},`)) return;
    if (Date.now() > deadline) throw new Error(`bench proxy: ${what} (pid ${pid}) does not listen on ${port}: ss shows ${JSON.stringify(out.trim()) || 'nothing'}`);
  }
}

/** docker-proxy as dockerd 20.10 runs it for `-p DOCKER_PORT:IPERF_PORT`: fd 3 is a pipe on which it reports "0" (ready) or "1\nerror". */
async function startDockerProxy(nsPath: string, containerIP: string): Promise<ChildProcess> {
  const binary = dockerProxyPath();
  if (!binary) throw new Error('bench proxy: docker-proxy missing (package docker.io, installed by scripts/setup)');
  const argv = ['nsenter', `--net=${nsPath}`, '--', binary, '-proto', 'tcp', '-host-ip', '0.0.0.0', '-host-port', String(DOCKER_PORT),
    '-container-ip', containerIP, '-container-port', String(IPERF_PORT)];
  const child = startChild(argv, 1);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout!.resume();
  const status = await new Promise<string>((resolve) => {
    let text = '';
    const fd3 = child.stdio[3] as NodeJS.ReadableStream;
    fd3.on('data', (d: Buffer) => (text += d.toString()));
    fd3.on('end', () => resolve(text));
  });
  if (status.trim() !== '0') {
    await stopChild(child);
    throw new Error(`bench proxy: docker-proxy failed to start: ${status.trim()} ${stderr.trim()}`);
  }
  return child;
}

/** iperf3 from the host namespace to addr:port for `seconds`; reverse: the server sends. pid's CPU is read around it. */
async function iperf(nsPath: string, addr: string, port: number, seconds: number, reverse: boolean, pid?: number): Promise<Run> {
  const argv = ['nsenter', `--net=${nsPath}`, '--', 'iperf3', '-c', addr, '-p', String(port), '-t', String(seconds), '-J', ...(reverse ? ['-R'] : [])];
  const before = pid === undefined ? 0 : cpuSeconds(pid);
  const out = await must(argv, { timeoutMs: (seconds + 20) * 1000 });
  const cpu = pid === undefined ? 0 : cpuSeconds(pid) - before;
  const sum = (JSON.parse(out) as { end: { sum_received: { bits_per_second: number; bytes: number } } }).end.sum_received;
  return { gbps: sum.bits_per_second / 1e9, cpuPerGB: cpu / (sum.bytes / 1e9) };
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

interface Direction {
  label: string;
  runs: Record<Side, Run[]>;
}

/** Both proxies in ABBA blocks, so that drift on a shared machine falls on both alike. */
async function direction(nsPath: string, pids: Record<Side, number>, seconds: number, rounds: number, reverse: boolean): Promise<Direction> {
  const runs: Record<Side, Run[]> = { cnmkit: [], docker: [] };
  const block: Side[] = ['cnmkit', 'docker', 'docker', 'cnmkit'];
  for (let r = 0; r < rounds; r++) {
    for (const side of r % 2 === 0 ? block : [...block].reverse()) {
      checkInterrupt();
      const run = await iperf(nsPath, '127.0.0.1', side === 'cnmkit' ? DAEMON_PORT : DOCKER_PORT, seconds, reverse, pids[side]);
      // A proxy that carried the bytes spent CPU doing it; none means the traffic went elsewhere.
      if (!(run.cpuPerGB > 0)) throw new Error(`bench proxy: ${side}'s process spent no CPU during a run through it`);
      runs[side].push(run);
    }
  }
  const d = { label: reverse ? 'container → client (iperf3 -R)' : 'client → container (iperf3)', runs };
  const gbps = (s: Side): number => mean(runs[s].map((x) => x.gbps));
  const cpu = (s: Side): number => mean(runs[s].map((x) => x.cpuPerGB));
  const each = (s: Side): string => runs[s].map((x) => x.gbps.toFixed(2)).join(', ');
  console.log(`  ${d.label}`);
  console.log(`    cnmkit daemon  ${gbps('cnmkit').toFixed(2)} Gbit/s [${each('cnmkit')}], ${cpu('cnmkit').toFixed(2)} CPU s/GB`);
  console.log(`    docker-proxy   ${gbps('docker').toFixed(2)} Gbit/s [${each('docker')}], ${cpu('docker').toFixed(2)} CPU s/GB`);
  console.log(`    cnmkit / docker-proxy: throughput ${(gbps('cnmkit') / gbps('docker')).toFixed(2)}×, CPU per GB ${(cpu('cnmkit') / cpu('docker')).toFixed(2)}×`);
  return d;
}

function rows(dirs: Direction[], memory: { daemonGrowthKiB: number; proxyRssKiB: number; proxyPssKiB: number }): Row[] {
  const out: Row[] = [];
  for (const d of dirs) {
    const g = (s: Side): number => mean(d.runs[s].map((x) => x.gbps));
    const c = (s: Side): number => mean(d.runs[s].map((x) => x.cpuPerGB));
    out.push({ figure: `throughput ${d.label}`, cnmkit: `${g('cnmkit').toFixed(2)} Gbit/s`, peer: `${g('docker').toFixed(2)} Gbit/s`,
      ratio: ratio(g('cnmkit'), g('docker')), target: `≥ 1.0×: ${met(g('cnmkit') >= g('docker'))}` });
    out.push({ figure: `CPU per GB ${d.label}`, cnmkit: `${c('cnmkit').toFixed(2)} s`, peer: `${c('docker').toFixed(2)} s`, ratio: ratio(c('cnmkit'), c('docker')), target: '' });
  }
  out.push({ figure: 'memory for the port', cnmkit: `+${mib(memory.daemonGrowthKiB)} daemon RSS`, peer: `${mib(memory.proxyPssKiB)} PSS (${mib(memory.proxyRssKiB)} RSS)`, ratio: '', target: '' });
  return out;
}

export default async function proxyBench(): Promise<void> {
  const seconds = positiveEnv('BENCH_PROXY_SECONDS', 5);
  const rounds = positiveEnv('BENCH_PROXY_ROUNDS', 2);
  const firewall = process.env.BENCH_FIREWALL ?? 'auto';
  for (const tool of ['iperf3', 'nsenter', 'ss']) if ((await exec(['sh', '-c', `command -v ${tool}`])).code !== 0) throw new Error(`bench proxy: ${tool} not found (scripts/setup installs it)`);
  if (!dockerProxyPath()) throw new Error('bench proxy: docker-proxy missing (package docker.io, installed by scripts/setup)');
  const prefix = `cnmkit-bench-${process.pid}`;
  const hostName = `${prefix}-proxyhost`;
  const children: ChildProcess[] = [];
  let daemon: BenchDaemon | undefined;
  const release = catchInterrupt();
  try {
    const hostNs = await addHostNs(hostName);
    daemon = new BenchDaemon(hostNs, `${prefix}-s-`, ['--userland-proxy', 'true', '--firewall-backend', firewall]);
    const d = daemon;
    await d.start();
    const sb = `${prefix}-s-iperf`;
    await d.request('POST', '/v1/networks', { name: 'proxynet', subnet: SUBNET });
    await d.request('POST', '/v1/sandboxes', { name: sb });
    const server = startChild(['ip', 'netns', 'exec', sb, 'iperf3', '-s', '-p', String(IPERF_PORT)]);
    children.push(server);
    server.stdout!.resume();
    server.stderr!.resume();
    await waitListener(`/run/netns/${sb}`, IPERF_PORT, server.pid!, 'the iperf3 server');
    const rssBefore = d.rssKiB();
    const ep = await d.request<{ ipv4?: string }>('POST', '/v1/networks/proxynet/connect', { sandbox: sb, ports: [`${DAEMON_PORT}:${IPERF_PORT}`] });
    const containerIP = ep.ipv4?.split('/')[0];
    if (!containerIP) throw new Error(`bench proxy: the endpoint has no IPv4 address: ${JSON.stringify(ep)}`);
    const daemonGrowthKiB = d.rssKiB() - rssBefore;
    const dockerProxy = await startDockerProxy(hostNs, containerIP);
    children.push(dockerProxy);
    await waitListener(hostNs, DAEMON_PORT, d.pid, 'the cnmkit daemon');
    await waitListener(hostNs, DOCKER_PORT, dockerProxy.pid!, 'docker-proxy');
    console.log(`TCP throughput, iperf3 ${seconds} s a run, ${rounds * 2} runs each way per proxy (ABBA), client on 127.0.0.1 in a "host" namespace → proxy → ${containerIP}:${IPERF_PORT} in a sandbox on a cnmkit bridge`);
    console.log(`  the cnmkit daemon (pid ${d.pid}, firewall ${d.firewall}) holds :${DAEMON_PORT}, published through its API; docker-proxy (pid ${dockerProxy.pid}) holds :${DOCKER_PORT}, started as dockerd starts it`);
    console.log(`  direct to the sandbox, no proxy: ${(await iperf(hostNs, containerIP, IPERF_PORT, seconds, false)).gbps.toFixed(2)} Gbit/s`);
    const pids = { cnmkit: d.pid, docker: dockerProxy.pid! };
    const dirs = [await direction(hostNs, pids, seconds, rounds, false), await direction(hostNs, pids, seconds, rounds, true)];
    const memory = { daemonGrowthKiB, proxyRssKiB: rssKiB(dockerProxy.pid!), proxyPssKiB: pssKiB(dockerProxy.pid!) };
    console.log(`  memory: the daemon's RSS grew ${mib(daemonGrowthKiB)} when the port was published (${mib(d.rssKiB())} in all after the runs); ` +
      `docker-proxy ${mib(memory.proxyRssKiB)} RSS, ${mib(memory.proxyPssKiB)} PSS (dockerd runs one per port and address family)`);
    const ratios = dirs.map((x) => mean(x.runs.cnmkit.map((r) => r.gbps)) / mean(x.runs.docker.map((r) => r.gbps)));
    console.log(`\nverdict: throughput ≥ 1.0× docker-proxy in both directions: ${met(ratios.every((r) => r >= 1))} (${dirs.map((x, i) => `${x.label} ${ratios[i]!.toFixed(2)}×`).join(', ')})`);
    printTable('summary (ratio = cnmkit daemon / docker-proxy, the same sandbox behind both; means of the runs)', [], rows(dirs, memory));
    for (const c of children.splice(0).reverse()) await stopChild(c);
    await d.request('DELETE', `/v1/sandboxes/${sb}`);
  } finally {
    release();
    for (const c of children.reverse()) await stopChild(c);
    await daemon?.cleanup();
    await exec(['ip', 'netns', 'del', hostName]);
  }
}
