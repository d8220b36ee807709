// cnmkit-bridge as a Docker network plugin against Docker's built-in bridge driver, on one engine
// (Debian's docker.io 20.10) in one run, in a throwaway namespace: a cnmkit daemon starts first
// (as systemd orders it) and the engine reaches its plugin sockets through /run/docker/plugins.
//  1. `docker run --rm --network N IMAGE true` on a cnmkit-bridge network, on a built-in bridge
//     network and with --network none (the floor), interleaved; median and p90, ratio to built-in;
//  2. `docker network create` and `docker network rm`, interleaved; medians and ratios;
//  3. `docker run -d -p 20000-20999:20000-20999` (1000 ports) on each: time until it runs, and
//     `docker rm -f`. The built-in side spawns two docker-proxy per port (~50 s + ~96 s here):
//     BENCH_DOCKER_RANGE=0 skips this part.
// Environment: BENCH_DOCKER_RUNS (default 20), BENCH_DOCKER_CREATES (default 10),
// BENCH_DOCKER_RANGE (default 1; 0 skips part 3), BENCH_FIREWALL (cnmkit's backend, default auto).
// Limits: whole-command times as the docker CLI sees them (CLI start-up included, the same on both
// sides); IPv4; the plugin-call split comes from the tail of the daemon's log.
import { BenchDaemon } from './_cnmkitd.js';
import { BUSYBOX_IMAGE as IMAGE, Dockerd } from '../../test/helpers/engine.js';
import { dockerMissing } from './_dockerd.js';
import { addHostNs, catchInterrupt, checkInterrupt, exec, fmtMs, must, quantile, ratio, sleep, timed } from './_procs.js';

const ENGINE_ARGS = ['--bip', '198.18.1.1/24', '--default-address-pool', 'base=198.18.64.0/18,size=24'];
const RANGE = '20000-20999';
const WARMUP = 2;

interface Row {
  figure: string;
  cnmkit: string;
  builtin: string;
  ratio: string;
  target: string;
}

function positiveEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  const n = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`bench docker: ${name}=${raw} is not a positive integer`);
  return n;
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const med = (xs: number[]): number => quantile(xs, 0.5);
const p90 = (xs: number[]): number => quantile(xs, 0.9);

/** Checks that the engine sees the daemon's plugin sockets in its /run/docker/plugins (it activates plugins lazily). */
async function checkPlugins(engine: Dockerd): Promise<void> {
  const seen = (await engine.inNamespaces(['ls', '/run/docker/plugins'])).stdout.split('\n').filter(Boolean).sort();
  if (!seen.includes('cnmkit-bridge.sock')) throw new Error(`bench docker: the engine does not see cnmkit's sockets (it sees: ${seen.join(', ') || 'nothing'})`);
}

async function waitForFile(file: string, ms = 10_000): Promise<void> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(25)) if ((await exec(['test', '-S', file])).code === 0) return;
  throw new Error(`bench docker: ${file} did not appear within ${ms} ms`);
}

/** Part 1: `docker run --rm` on each network, in turns that alternate their order. */
async function measureRuns(engine: Dockerd, runs: number): Promise<Record<string, number[]>> {
  const nets = ['cnm', 'builtin', 'none'];
  const times: Record<string, number[]> = { cnm: [], builtin: [], none: [] };
  for (let i = 0; i < WARMUP + runs; i++) {
    checkInterrupt();
    for (const net of i % 2 === 0 ? nets : [...nets].reverse()) {
      const { ms } = await timed(() => engine.dockerOk(['run', '--rm', '--network', net, IMAGE, 'true']));
      if (i >= WARMUP) times[net]!.push(ms);
    }
  }
  return times;
}

/** Part 2: `docker network create` then `rm`, alternating which driver goes first. */
interface Lifecycle {
  create: number[];
  rm: number[];
}

async function measureCreates(engine: Dockerd, rounds: number): Promise<{ cnm: Lifecycle; builtin: Lifecycle }> {
  const drivers = { cnm: 'cnmkit-bridge', builtin: 'bridge' } as const;
  const out: { cnm: Lifecycle; builtin: Lifecycle } = { cnm: { create: [], rm: [] }, builtin: { create: [], rm: [] } };
  for (let i = 0; i < WARMUP + rounds; i++) {
    checkInterrupt();
    const order = (i % 2 === 0 ? ['cnm', 'builtin'] : ['builtin', 'cnm']) as (keyof typeof drivers)[];
    for (const side of order) {
      const name = `bench-${side}-${i}`;
      const made = await timed(() => engine.dockerOk(['network', 'create', '-d', drivers[side], name]));
      const gone = await timed(() => engine.dockerOk(['network', 'rm', name]));
      if (i >= WARMUP) {
        out[side].create.push(made.ms);
        out[side].rm.push(gone.ms);
      }
    }
  }
  return out;
}

interface RangeRun {
  runMs: number;
  rmMs: number;
  /** Host ports that answered on the daemon's/engine's listeners while published. */
  listening: number;
  /** docker-proxy processes while published (built-in side). */
  proxies: number;
}

async function listeningInRange(hostNs: string): Promise<number> {
  const out = await must(['nsenter', `--net=${hostNs}`, '--', 'ss', '-Hltn', 'sport', '>=', ':20000', 'and', 'sport', '<=', ':20999']);
  return new Set(out.split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/)[3])).size;
}

/** Part 3: one container publishing 1000 ports on `net`: until it runs, then rm -f. */
async function measureRange(engine: Dockerd, hostNs: string, net: string): Promise<RangeRun> {
  const name = `range-${net}`;
  const run = await timed(() => engine.dockerOk(['run', '-d', '--name', name, '--network', net, '-p', `${RANGE}:${RANGE}`, IMAGE, 'sleep', '3600'], { timeoutMs: 900_000 }));
  const running = await engine.dockerOk(['inspect', '-f', '{{.State.Running}}', name]);
  if (running !== 'true') throw new Error(`bench docker: ${name} is not running after docker run -d`);
  const listening = await listeningInRange(hostNs);
  const proxies = (await exec(['pgrep', '-c', '-P', String(engine.pid), '-x', 'docker-proxy'])).stdout.trim();
  const rm = await timed(() => engine.dockerOk(['rm', '-f', name], { timeoutMs: 900_000 }));
  const left = await listeningInRange(hostNs);
  if (left !== 0) throw new Error(`bench docker: ${left} ports of ${RANGE} still listening after docker rm -f ${name}`);
  return { runMs: run.ms, rmMs: rm.ms, listening, proxies: Number(proxies) || 0 };
}

/** Median time cnmkit spent in each NetworkDriver call, from the daemon's log tail (fastify's responseTime). */
function pluginCallMedians(log: string): string {
  const urls = new Map<string, string>();
  const times = new Map<string, number[]>();
  for (const line of log.split('\n')) {
    if (!line.includes('"part":"docker-plugin"')) continue;
    let rec: { reqId?: string; req?: { url?: string }; responseTime?: number };
    try {
      rec = JSON.parse(line) as typeof rec;
    } catch {
      continue;
    }
    if (rec.reqId && rec.req?.url) urls.set(rec.reqId, rec.req.url.replace('/NetworkDriver.', ''));
    const url = rec.reqId ? urls.get(rec.reqId) : undefined;
    if (url && rec.responseTime !== undefined) times.set(url, [...(times.get(url) ?? []), rec.responseTime]);
  }
  const order = ['CreateEndpoint', 'Join', 'ProgramExternalConnectivity', 'RevokeExternalConnectivity', 'Leave', 'DeleteEndpoint', 'EndpointOperInfo'];
  return order.filter((u) => times.has(u)).map((u) => `${u} ${fmtMs(med(times.get(u)!))}`).join(', ');
}

function printRows(rows: Row[]): void {
  const w = [46, 20, 20, 10];
  console.log('\n-- summary (ratio = cnmkit-bridge / built-in bridge; below 1 means cnmkit is faster) --');
  console.log(`${'figure'.padEnd(w[0]!)}${'cnmkit-bridge'.padEnd(w[1]!)}${'built-in bridge'.padEnd(w[2]!)}${'ratio'.padEnd(w[3]!)}target`);
  for (const r of rows) console.log(`${r.figure.padEnd(w[0]!)}${r.cnmkit.padEnd(w[1]!)}${r.builtin.padEnd(w[2]!)}${r.ratio.padEnd(w[3]!)}${r.target}`);
}

export default async function dockerBench(): Promise<void> {
  const runs = positiveEnv('BENCH_DOCKER_RUNS', 20);
  const creates = positiveEnv('BENCH_DOCKER_CREATES', 10);
  const range = process.env.BENCH_DOCKER_RANGE !== '0';
  const firewall = process.env.BENCH_FIREWALL ?? 'auto';
  const missing = dockerMissing();
  if (missing) throw new Error(`bench docker: ${missing}`);
  const nsName = `cnmkit-bench-docker-${process.pid}`;
  const hostNs = await addHostNs(nsName);
  const daemon = new BenchDaemon(hostNs, `cbdk${process.pid}-`, ['--firewall-backend', firewall]);
  let engine: Dockerd | undefined;
  const release = catchInterrupt();
  const rows: Row[] = [];
  try {
    await daemon.start();
    await waitForFile(`${daemon.dir}/plugins/cnmkit-bridge.sock`);
    engine = await Dockerd.start({ path: hostNs }, { args: ENGINE_ARGS, pluginDir: `${daemon.dir}/plugins`, logLevel: 'warn' });
    await checkPlugins(engine);
    await engine.buildImage();
    const version = await engine.dockerOk(['version', '-f', '{{.Server.Version}}']);
    console.log(`Docker ${version} (vfs storage) and cnmkit (firewall ${daemon.firewall}) in namespace ${nsName}`);
    await engine.dockerOk(['network', 'create', '-d', 'cnmkit-bridge', '--subnet', '198.18.10.0/24', 'cnm']);
    await engine.dockerOk(['network', 'create', '-d', 'bridge', '--subnet', '198.18.11.0/24', 'builtin']);

    console.log(`\n-- 1. docker run --rm --network N ${IMAGE} true: ${runs} runs each after ${WARMUP} warm-up, interleaved --`);
    const t = await measureRuns(engine, runs);
    for (const [label, key] of [['cnmkit-bridge', 'cnm'], ['built-in bridge', 'builtin'], ['--network none', 'none']] as const) {
      console.log(`  ${label.padEnd(16)} median ${fmtMs(med(t[key]!))}  p90 ${fmtMs(p90(t[key]!))}  min ${fmtMs(Math.min(...t[key]!))}`);
    }
    const netCost = (key: string) => med(t[key]!) - med(t.none!);
    console.log(`  network setup over --network none (medians): cnmkit-bridge ${fmtMs(netCost('cnm'))}, built-in ${fmtMs(netCost('builtin'))}`);
    console.log(`  cnmkit's share, median per plugin call: ${pluginCallMedians(daemon.log) || '(no log lines)'}`);
    const runRatio = med(t.cnm!) / med(t.builtin!);
    rows.push({ figure: 'docker run --rm … true, median', cnmkit: fmtMs(med(t.cnm!)), builtin: fmtMs(med(t.builtin!)), ratio: ratio(med(t.cnm!), med(t.builtin!)),
      target: `≤ 1.0: ${runRatio <= 1 ? 'met' : 'MISSED'}` });
    rows.push({ figure: 'docker run --rm … true, p90', cnmkit: fmtMs(p90(t.cnm!)), builtin: fmtMs(p90(t.builtin!)), ratio: ratio(p90(t.cnm!), p90(t.builtin!)), target: '' });
    rows.push({ figure: 'network part of a run (median − none)', cnmkit: fmtMs(netCost('cnm')), builtin: fmtMs(netCost('builtin')), ratio: ratio(netCost('cnm'), netCost('builtin')), target: '' });

    console.log(`\n-- 2. docker network create / rm (engine's default IPAM picks the subnet): ${creates} each after ${WARMUP} warm-up, interleaved --`);
    const c = await measureCreates(engine, creates);
    for (const [label, key] of [['cnmkit-bridge', 'cnm'], ['built-in bridge', 'builtin']] as const) {
      console.log(`  ${label.padEnd(16)} create median ${fmtMs(med(c[key].create))} p90 ${fmtMs(p90(c[key].create))}   rm median ${fmtMs(med(c[key].rm))} p90 ${fmtMs(p90(c[key].rm))}`);
    }
    rows.push({ figure: 'docker network create, median', cnmkit: fmtMs(med(c.cnm.create)), builtin: fmtMs(med(c.builtin.create)), ratio: ratio(med(c.cnm.create), med(c.builtin.create)), target: '' });
    rows.push({ figure: 'docker network rm, median', cnmkit: fmtMs(med(c.cnm.rm)), builtin: fmtMs(med(c.builtin.rm)), ratio: ratio(med(c.cnm.rm), med(c.builtin.rm)), target: '' });

    if (range) {
      console.log(`\n-- 3. docker run -d -p ${RANGE}:${RANGE} (1000 ports), then docker rm -f; the built-in side takes minutes (BENCH_DOCKER_RANGE=0 skips) --`);
      const ours = await measureRange(engine, hostNs, 'cnm');
      console.log(`  cnmkit-bridge    running after ${secs(ours.runMs)}, rm -f ${secs(ours.rmMs)}; ${ours.listening} ports listening in the daemon (its own proxy), ${ours.proxies} docker-proxy`);
      const theirs = await measureRange(engine, hostNs, 'builtin');
      console.log(`  built-in bridge  running after ${secs(theirs.runMs)}, rm -f ${secs(theirs.rmMs)}; ${theirs.listening} ports listening, ${theirs.proxies} docker-proxy processes`);
      rows.push({ figure: 'run -d -p 1000 ports: until running', cnmkit: secs(ours.runMs), builtin: secs(theirs.runMs), ratio: ratio(ours.runMs, theirs.runMs), target: '' });
      rows.push({ figure: 'rm -f of the 1000-port container', cnmkit: secs(ours.rmMs), builtin: secs(theirs.rmMs), ratio: ratio(ours.rmMs, theirs.rmMs), target: '' });
    } else console.log('\n-- 3. 1000-port range: skipped (BENCH_DOCKER_RANGE=0) --');
    printRows(rows);
  } finally {
    release();
    // The engine first: it calls the plugin while it shuts down.
    await engine?.cleanup().catch((err: Error) => console.error(`bench docker: ${err.message}`));
    await daemon.cleanup().catch((err: Error) => console.error(`bench docker: ${err.message}`));
    await exec(['ip', 'netns', 'del', nsName]);
  }
}
