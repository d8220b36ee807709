// cnmkit-bridge as a Docker network plugin against Docker's built-in bridge driver, on one engine
// (Debian's docker.io 20.10) in one run, in a throwaway namespace: a cnmkit daemon starts first
// (as systemd orders it) and the engine reaches its plugin sockets through /run/docker/plugins.
//  1. `docker run --rm --network N IMAGE true` on a cnmkit-bridge network, on a built-in bridge
//     network and with --network none (the floor), interleaved; median and p90, ratio to built-in;
//  2. `docker network create` and `docker network rm`, interleaved; medians and ratios;
//  3. `docker run -d -p 20000-20999:20000-20999` (1000 ports) on each: time until it runs, and
//     `docker rm -f`, each also less the same command without ports; once per userland-proxy mode,
//     the same on both sides (a new daemon and engine per mode): on (cnmkit's proxy in its daemon,
//     dockerd's docker-proxy, two per port: ~50 s + ~96 s here) and off (~33 s + ~90 s).
// Environment: BENCH_DOCKER_RUNS (default 20), BENCH_DOCKER_CREATES (default 10),
// BENCH_DOCKER_RANGE (default 1; 0 skips part 3), BENCH_DOCKER_PORTS (its range, default 1000),
// BENCH_DOCKER_PROXY (its modes, default on,off), BENCH_FIREWALL (cnmkit's backend, default auto).
// Limits: whole-command times as the docker CLI sees them (CLI start-up included, the same on both
// sides); IPv4; the plugin-call split comes from the tail of the daemon's log; part 3 runs once.
import { BenchDaemon } from './_cnmkitd.js';
import { BUSYBOX_IMAGE as IMAGE, Dockerd } from '../../test/helpers/engine.js';
import { dockerMissing } from './_dockerd.js';
import { addHostNs, catchInterrupt, checkInterrupt, exec, fmtMs, must, quantile, ratio, sleep, timed } from './_procs.js';
import { secs } from './_report.js';

const ENGINE_ARGS = ['--bip', '198.18.1.1/24', '--default-address-pool', 'base=198.18.64.0/18,size=24'];
const FIRST_PORT = 20000;
const rangeOf = (ports: number): string => `${FIRST_PORT}-${FIRST_PORT + ports - 1}`;
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
  /** Medians of BARE_RUNS `docker run -d` and `docker rm -f` on the same network without ports. */
  bareRunMs: number;
  bareRmMs: number;
  runMs: number;
  rmMs: number;
  /** Host ports that answered on the daemon's/engine's listeners while published. */
  listening: number;
  /** docker-proxy processes while published (built-in side). */
  proxies: number;
}

const BARE_RUNS = 3;

async function listeningInRange(hostNs: string, ports: number): Promise<number> {
  const out = await must(['nsenter', `--net=${hostNs}`, '--', 'ss', '-Hltn', 'sport', '>=', `:${FIRST_PORT}`, 'and', 'sport', '<=', `:${FIRST_PORT + ports - 1}`]);
  return new Set(out.split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/)[3])).size;
}

/** Part 3 on `net`: containers without ports (the fixed part), then one publishing a range: until it runs, then rm -f. */
async function measureRange(engine: Dockerd, hostNs: string, net: string, ports: number): Promise<RangeRun> {
  const range = rangeOf(ports);
  const bareRun: number[] = [];
  const bareRm: number[] = [];
  for (let i = 0; i < BARE_RUNS; i++) {
    const bare = await timed(() => engine.dockerOk(['run', '-d', '--network', net, IMAGE, 'sleep', '3600']));
    bareRun.push(bare.ms);
    bareRm.push((await timed(() => engine.dockerOk(['rm', '-f', bare.value]))).ms);
  }
  checkInterrupt();
  const name = `range-${net}`;
  const run = await timed(() => engine.dockerOk(['run', '-d', '--name', name, '--network', net, '-p', `${range}:${range}`, IMAGE, 'sleep', '3600'], { timeoutMs: 900_000 }));
  const running = await engine.dockerOk(['inspect', '-f', '{{.State.Running}}', name]);
  if (running !== 'true') throw new Error(`bench docker: ${name} is not running after docker run -d`);
  const listening = await listeningInRange(hostNs, ports);
  const proxies = (await exec(['pgrep', '-c', '-P', String(engine.pid), '-x', 'docker-proxy'])).stdout.trim();
  const rm = await timed(() => engine.dockerOk(['rm', '-f', name], { timeoutMs: 900_000 }));
  const left = await listeningInRange(hostNs, ports);
  if (left !== 0) throw new Error(`bench docker: ${left} ports of ${range} still listening after docker rm -f ${name}`);
  return { bareRunMs: med(bareRun), bareRmMs: med(bareRm), runMs: run.ms, rmMs: rm.ms, listening, proxies: Number(proxies) || 0 };
}

/** Part 3 in one userland-proxy mode, on both networks of the pair's engine; its summary rows. */
async function rangeRows(pair: Pair, ports: number): Promise<Row[]> {
  const mode = pair.proxy ? 'proxy on' : 'proxy off';
  console.log(`\n-- 3. docker run -d -p ${rangeOf(ports)}:${rangeOf(ports)} (${ports} ports), then docker rm -f; userland proxy ${pair.proxy ? 'on on both sides (cnmkit\'s in its daemon, Docker\'s docker-proxy)' : 'off on both sides (cnmkit --userland-proxy false, dockerd --userland-proxy=false)'} --`);
  const sides = [['cnmkit-bridge', 'cnm'], ['built-in bridge', 'builtin']] as const;
  const got: RangeRun[] = [];
  for (const [label, net] of sides) {
    const r = await measureRange(pair.engine!, pair.hostNs, net, ports);
    got.push(r);
    console.log(`  ${label.padEnd(16)} without ports (medians of ${BARE_RUNS}): run -d ${fmtMs(r.bareRunMs)}, rm -f ${fmtMs(r.bareRmMs)}; with the range: running after ${secs(r.runMs)} ` +
      `(publish alone ${secs(r.runMs - r.bareRunMs)}), rm -f ${secs(r.rmMs)} (unpublish alone ${secs(r.rmMs - r.bareRmMs)}); ${r.listening} ports listening, ${r.proxies} docker-proxy`);
  }
  const [ours, theirs] = got as [RangeRun, RangeRun];
  const row = (figure: string, a: number, b: number): Row => ({ figure: `${figure}, ${mode}`, cnmkit: secs(a), builtin: secs(b), ratio: ratio(a, b), target: '' });
  return [
    row(`run -d -p ${ports}: until running`, ours.runMs, theirs.runMs),
    row('  publish alone (less run -d)', ours.runMs - ours.bareRunMs, theirs.runMs - theirs.bareRunMs),
    row(`rm -f of the ${ports}-port container`, ours.rmMs, theirs.rmMs),
    row('  unpublish alone (less rm -f)', ours.rmMs - ours.bareRmMs, theirs.rmMs - theirs.bareRmMs),
  ];
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
  console.log('\n-- summary (ratio = cnmkit-bridge / built-in bridge on one engine; below 1 means cnmkit is faster) --');
  console.log('"publish alone" = docker run -d -p RANGE less docker run -d on the same network (median of 3); "unpublish alone" = docker rm -f of each less a bare one\'s;');
  console.log('"proxy on" rows: cnmkit --userland-proxy true against dockerd\'s docker-proxy; "proxy off": cnmkit --userland-proxy false against dockerd --userland-proxy=false');
  console.log(`${'figure'.padEnd(w[0]!)}${'cnmkit-bridge'.padEnd(w[1]!)}${'built-in bridge'.padEnd(w[2]!)}${'ratio'.padEnd(w[3]!)}target`);
  for (const r of rows) console.log(`${r.figure.padEnd(w[0]!)}${r.cnmkit.padEnd(w[1]!)}${r.builtin.padEnd(w[2]!)}${r.ratio.padEnd(w[3]!)}${r.target}`);
}

/** A cnmkit daemon and a Docker engine that reaches its plugins, in one throwaway namespace, in one userland-proxy mode. */
interface Pair {
  proxy: boolean;
  nsName: string;
  hostNs: string;
  daemon: BenchDaemon;
  engine?: Dockerd;
}

async function startPair(proxy: boolean, firewall: string): Promise<Pair> {
  const nsName = `cnmkit-bench-docker-${process.pid}-${proxy ? 'p1' : 'p0'}`;
  const hostNs = await addHostNs(nsName);
  const daemon = new BenchDaemon(hostNs, `cbdk${process.pid}-`, ['--firewall-backend', firewall, '--userland-proxy', String(proxy)]);
  const pair: Pair = { proxy, nsName, hostNs, daemon };
  try {
    await daemon.start();
    await waitForFile(`${daemon.dir}/plugins/cnmkit-bridge.sock`);
    pair.engine = await Dockerd.start({ path: hostNs }, { args: [...ENGINE_ARGS, ...(proxy ? [] : ['--userland-proxy=false'])], pluginDir: `${daemon.dir}/plugins`, logLevel: 'warn' });
    await checkPlugins(pair.engine);
    await pair.engine.buildImage();
    await pair.engine.dockerOk(['network', 'create', '-d', 'cnmkit-bridge', '--subnet', '198.18.10.0/24', 'cnm']);
    await pair.engine.dockerOk(['network', 'create', '-d', 'bridge', '--subnet', '198.18.11.0/24', 'builtin']);
  } catch (err) {
    await stopPair(pair);
    throw err;
  }
  return pair;
}

async function stopPair(pair: Pair): Promise<void> {
  // The engine first: it calls the plugin while it shuts down.
  await pair.engine?.cleanup().catch((err: Error) => console.error(`bench docker: ${err.message}`));
  await pair.daemon.cleanup().catch((err: Error) => console.error(`bench docker: ${err.message}`));
  await exec(['ip', 'netns', 'del', pair.nsName]);
}

/** Parts 1 and 2 (no ports: the userland-proxy mode plays no part). */
async function runAndCreateRows(pair: Pair, runs: number, creates: number): Promise<Row[]> {
  const engine = pair.engine!;
  const rows: Row[] = [];
  console.log(`\n-- 1. docker run --rm --network N ${IMAGE} true: ${runs} runs each after ${WARMUP} warm-up, interleaved --`);
  const t = await measureRuns(engine, runs);
  for (const [label, key] of [['cnmkit-bridge', 'cnm'], ['built-in bridge', 'builtin'], ['--network none', 'none']] as const) {
    console.log(`  ${label.padEnd(16)} median ${fmtMs(med(t[key]!))}  p90 ${fmtMs(p90(t[key]!))}  min ${fmtMs(Math.min(...t[key]!))}`);
  }
  const netCost = (key: string) => med(t[key]!) - med(t.none!);
  console.log(`  network setup over --network none (medians): cnmkit-bridge ${fmtMs(netCost('cnm'))}, built-in ${fmtMs(netCost('builtin'))}`);
  console.log(`  cnmkit's share, median per plugin call: ${pluginCallMedians(pair.daemon.log) || '(no log lines)'}`);
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
  return rows;
}

export default async function dockerBench(): Promise<void> {
  const runs = positiveEnv('BENCH_DOCKER_RUNS', 20);
  const creates = positiveEnv('BENCH_DOCKER_CREATES', 10);
  const range = process.env.BENCH_DOCKER_RANGE !== '0';
  const ports = positiveEnv('BENCH_DOCKER_PORTS', 1000);
  if (ports > 10_000) throw new Error('bench docker: BENCH_DOCKER_PORTS takes 1 to 10000');
  const modes = (process.env.BENCH_DOCKER_PROXY ?? 'on,off').split(',').map((m) => m.trim());
  if (modes.length === 0 || modes.some((m) => m !== 'on' && m !== 'off')) throw new Error('bench docker: BENCH_DOCKER_PROXY takes on, off or on,off');
  const firewall = process.env.BENCH_FIREWALL ?? 'auto';
  const missing = dockerMissing();
  if (missing) throw new Error(`bench docker: ${missing}`);
  const release = catchInterrupt();
  const rows: Row[] = [];
  try {
    for (const [i, mode] of (range ? modes : modes.slice(0, 1)).entries()) {
      checkInterrupt();
      const pair = await startPair(mode === 'on', firewall);
      try {
        if (i === 0) {
          const version = await pair.engine!.dockerOk(['version', '-f', '{{.Server.Version}}']);
          console.log(`Docker ${version} (vfs storage) and cnmkit (firewall ${pair.daemon.firewall}) in namespace ${pair.nsName}, userland proxy ${mode} on both`);
          rows.push(...(await runAndCreateRows(pair, runs, creates)));
        }
        if (range) rows.push(...(await rangeRows(pair, ports)));
      } finally {
        await stopPair(pair);
      }
    }
    if (!range) console.log('\n-- 3. port range: skipped (BENCH_DOCKER_RANGE=0) --');
    printRows(rows);
  } finally {
    release();
  }
}
