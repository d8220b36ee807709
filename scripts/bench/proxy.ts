// cnmkit's userland proxy vs docker-proxy in throwaway namespaces: iperf3 TCP through each, then
// time and RSS to publish 1000 and 10 000 ports. Installs docker.io only if missing; no dockerd.
import fs from 'node:fs';
import { check, run } from '../../test/helpers/exec.js';
import { Background, ProxyProcess } from '../../test/netns/fixtures/portmap-harness.js';

const SECONDS = 5;
const CONTAINER_IP = '198.18.0.2';
const IPERF_PORT = 5201;
const PROXY_BINARIES = ['/usr/sbin/docker-proxy', '/usr/bin/docker-proxy'];

function findDockerProxy(): string | undefined {
  return PROXY_BINARIES.find((p) => fs.existsSync(p));
}

async function ensureDockerProxy(): Promise<string> {
  const found = findDockerProxy();
  if (found) return found;
  if ((await run(['dpkg', '-s', 'docker.io'])).code !== 0) {
    console.log('docker-proxy missing: apt-get install -y docker.io (dockerd is not started)');
    await check(['apt-get', 'install', '-y', 'docker.io'], { timeoutMs: 600_000 });
  }
  const installed = findDockerProxy();
  if (!installed) throw new Error(`docker-proxy not found in ${PROXY_BINARIES.join(' or ')} although docker.io is installed`);
  return installed;
}

/** Two namespaces: "host" (proxies, iperf3 client) and "container" (iperf3 server), one veth between. */
async function makeNamespaces(prefix: string): Promise<{ host: string; container: string }> {
  const host = `${prefix}-host`;
  const container = `${prefix}-ctr`;
  for (const ns of [host, container]) {
    await check(['ip', 'netns', 'add', ns]);
    await check(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  }
  await check(['ip', '-n', host, 'link', 'add', 'ctr0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', container]);
  await check(['ip', '-n', host, 'addr', 'add', '198.18.0.1/24', 'dev', 'ctr0']);
  await check(['ip', '-n', host, 'link', 'set', 'ctr0', 'up']);
  await check(['ip', '-n', container, 'addr', 'add', `${CONTAINER_IP}/24`, 'dev', 'eth0']);
  await check(['ip', '-n', container, 'link', 'set', 'eth0', 'up']);
  return { host, container };
}

async function waitListening(ns: string, port: number): Promise<void> {
  const until = Date.now() + 10_000;
  for (;;) {
    const out = await check(['ip', 'netns', 'exec', ns, 'ss', '-ltnH', `sport = :${port}`]);
    if (out.trim() !== '') return;
    if (Date.now() > until) throw new Error(`nothing listens on ${port} in ${ns}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** docker-proxy as dockerd runs it: fd 3 is a pipe on which it reports "0" (ready) or "1\nerror". */
async function startDockerProxy(ns: string, binary: string, hostPort: number): Promise<Background> {
  const argv = [binary, '-proto', 'tcp', '-host-ip', '127.0.0.1', '-host-port', String(hostPort), '-container-ip', CONTAINER_IP, '-container-port', String(IPERF_PORT)];
  const proc = Background.spawn(ns, argv, {}, 1);
  const status = await new Promise<string>((resolve) => {
    let text = '';
    const fd3 = proc.child.stdio[3] as NodeJS.ReadableStream;
    fd3.on('data', (d: Buffer) => (text += d.toString()));
    fd3.on('end', () => resolve(text));
  });
  if (status.trim() !== '0') {
    await proc.stop();
    throw new Error(`docker-proxy failed to start: ${status.trim()} ${proc.stderr}`);
  }
  await waitListening(ns, hostPort);
  return proc;
}

interface Run {
  gbps: number;
  /** CPU seconds (user + system) the proxy process spent per GB carried. */
  cpuPerGB: number;
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** iperf3 client from the host namespace through the proxy with pid; reverse: the server sends. */
async function iperf(ns: string, host: string, port: number, pid: number, reverse = false): Promise<Run> {
  const argv = ['ip', 'netns', 'exec', ns, 'iperf3', '-c', host, '-p', String(port), '-t', String(SECONDS), '-J', ...(reverse ? ['-R'] : [])];
  const cpuBefore = pid > 0 ? cpuSeconds(pid) : 0;
  const out = await check(argv, { timeoutMs: (SECONDS + 20) * 1000 });
  const cpu = pid > 0 ? cpuSeconds(pid) - cpuBefore : 0;
  const sum = (JSON.parse(out) as { end: { sum_received: { bits_per_second: number; bytes: number } } }).end.sum_received;
  return { gbps: sum.bits_per_second / 1e9, cpuPerGB: cpu / (sum.bytes / 1e9) };
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Both proxies in ABBA order, twice, so that drift on a shared machine falls on both alike. */
async function compare(host: string, pids: { cnmkit: number; docker: number }, reverse: boolean): Promise<void> {
  const runs: Record<'cnmkit' | 'docker', Run[]> = { cnmkit: [], docker: [] };
  for (const which of ['cnmkit', 'docker', 'docker', 'cnmkit', 'cnmkit', 'docker', 'docker', 'cnmkit'] as const)
    runs[which].push(await iperf(host, '127.0.0.1', which === 'cnmkit' ? 15201 : 25201, pids[which], reverse));
  const gbps = (which: 'cnmkit' | 'docker'): number => mean(runs[which].map((r) => r.gbps));
  const cpu = (which: 'cnmkit' | 'docker'): number => mean(runs[which].map((r) => r.cpuPerGB));
  const each = (which: 'cnmkit' | 'docker'): string => runs[which].map((r) => r.gbps.toFixed(2)).join(', ');
  console.log(`  ${reverse ? 'container → client (iperf3 -R)' : 'client → container (iperf3)'}`);
  console.log(`    cnmkit proxy  ${gbps('cnmkit').toFixed(2)} Gbit/s [${each('cnmkit')}], ${cpu('cnmkit').toFixed(2)} CPU s/GB`);
  console.log(`    docker-proxy  ${gbps('docker').toFixed(2)} Gbit/s [${each('docker')}], ${cpu('docker').toFixed(2)} CPU s/GB`);
  console.log(`    ratio cnmkit/docker-proxy: throughput ${(gbps('cnmkit') / gbps('docker')).toFixed(2)} (target ≥ 1.0), CPU per GB ${(cpu('cnmkit') / cpu('docker')).toFixed(2)}`);
}

function vmRssKiB(pid: number): number {
  const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return Number(line?.replace(/\D+/g, '') ?? 0);
}

async function throughput(ns: { host: string; container: string }, dockerProxy: string, stop: { stop(): Promise<void> }[]): Promise<void> {
  const server = Background.spawn(ns.container, ['iperf3', '-s', '-p', String(IPERF_PORT)]);
  stop.push(server);
  await waitListening(ns.container, IPERF_PORT);
  const proxy = await ProxyProcess.start(ns.host);
  stop.push(proxy);
  await proxy.call('publish', { owner: 'bench', mappings: [{ proto: 'tcp', hostIP: '127.0.0.1', hostPort: 15201, containerIP: CONTAINER_IP, containerPort: IPERF_PORT }] });
  const docker = await startDockerProxy(ns.host, dockerProxy, 25201);
  stop.push(docker);

  console.log(`TCP throughput, iperf3 ${SECONDS} s a run, client on 127.0.0.1 in a "host" ns → proxy → ${CONTAINER_IP}:${IPERF_PORT} in a "container" ns`);
  console.log(`  direct to the container, no proxy: ${(await iperf(ns.host, CONTAINER_IP, IPERF_PORT, 0)).gbps.toFixed(2)} Gbit/s`);
  const pids = { cnmkit: proxy.pid, docker: docker.pid };
  await compare(ns.host, pids, false);
  await compare(ns.host, pids, true);
  console.log(`  RSS after the runs: cnmkit proxy process ${(vmRssKiB(proxy.pid) / 1024).toFixed(1)} MiB; one docker-proxy ${(vmRssKiB(docker.pid) / 1024).toFixed(1)} MiB per port and protocol`);
}

async function publishing(ns: { host: string }, stop: { stop(): Promise<void> }[]): Promise<void> {
  console.log('Publishing with the cnmkit proxy (one call each, times measured inside the proxy process)');
  for (const count of [1000, 10_000]) {
    const proxy = await ProxyProcess.start(ns.host);
    stop.push(proxy);
    const before = await proxy.call<NodeJS.MemoryUsage>('memory');
    const mapping = { proto: 'tcp', hostPort: 20000, hostPortEnd: 20000 + count - 1, containerIP: CONTAINER_IP, containerPort: 20000, containerPortEnd: 20000 + count - 1 };
    const published = await proxy.request('publish', { owner: `range-${count}`, mappings: [mapping] });
    const after = await proxy.call<NodeJS.MemoryUsage>('memory');
    const unpublished = await proxy.request<number>('unpublish', { owner: `range-${count}` });
    const growth = after.rss - before.rss;
    console.log(
      `  ${String(count).padStart(6)} tcp ports: publish ${published.ms.toFixed(0)} ms, unpublish ${unpublished.ms.toFixed(0)} ms, ` +
        `RSS +${(growth / 2 ** 20).toFixed(1)} MiB (${(growth / count / 1024).toFixed(2)} KiB/port; process ${(after.rss / 2 ** 20).toFixed(0)} MiB)`,
    );
    await proxy.stop();
  }
}

export default async function proxyBench(): Promise<void> {
  const dockerProxy = await ensureDockerProxy();
  const ns = await makeNamespaces(`cnmkit-bench-${process.pid}`);
  const stop: { stop(): Promise<void> }[] = [];
  try {
    await throughput(ns, dockerProxy, stop);
    for (const s of stop.splice(0)) await s.stop();
    await publishing(ns, stop);
  } finally {
    for (const s of stop) await s.stop();
    for (const name of [ns.host, ns.container]) await run(['ip', 'netns', 'del', name]);
  }
}
