// The overlay driver against the kernel's own VXLAN set up by hand, side by side in one run, on
// three simulated hosts (test/helpers/cluster.ts: namespaces on an underlay, a real etcd, a real
// daemon each, driven over the management API): (a) iperf3 TCP across two hosts through a cnmkit
// overlay and through the same VXLAN made by hand with `ip` (same MTU, static entries; two runs
// each in ABBA order, means), and over the
// underlay itself; (b) convergence: from `connect` returning on host A to the first ping answered
// from a sandbox on host B (p50/p99); (c) endpoint create+join p50 as endpoints grow, spread over
// the three hosts (at 1: a host's first endpoint on a network, over several networks; a fresh
// daemon's very first connect apart); (d) a daemon whose overlay has many remote
// peers, SIGKILLed and restarted: time until every FDB/neighbour entry is back; (e) Docker swarm's
// overlay as the anchor (_overlay-swarm.ts).
// Environment: BENCH_OVERLAY_PARTS (default a,b,c,d,e: run it in parts, each a few minutes),
// BENCH_OVERLAY_SECONDS (iperf3, default 5), BENCH_OVERLAY_CONVERGE (endpoints, 100),
// BENCH_OVERLAY_SIZES (create+join checkpoints, default 1,100,1000), BENCH_OVERLAY_C_SUBNET ((c)'s
// subnet, default 198.19.4.0/22: 1000 endpoints fill it to 98 %), BENCH_OVERLAY_FIRSTS ((c) at 1:
// that many networks, each joined once per host, default 10, at most 31), BENCH_OVERLAY_PEERS (1000),
// BENCH_OVERLAY_RESTARTS ((d)'s rounds, default 1, each with the load average at its start),
// BENCH_OVERLAY_LOCAL ((d): that many local endpoints on the restarted host too, on a second overlay
// with twice as many remote peers, as parts b and c leave it; default 0);
// CNMKIT_TRACE_START=1 also prints (d)'s daemon start-up stages (ms from its process start);
// CNMKIT_TRACE_CONNECT=1 the stages of each daemon's very first connect in (c).
// Limits: every host shares this machine's 2 cores, so throughput figures are CPU-bound and compare
// only within the run; a ping includes spawning `nsenter … ping` (a few ms), on both sides.
import fs from 'node:fs';
import { Client } from '../../src/client/index.js';
import { SimCluster, type SimHost } from '../../test/helpers/cluster.js';
import { exec, must, quantile, ratio, sleep, startChild, stopChild } from './_procs.js';
import { met, printTable, type Row } from './_report.js';
import { fmtMs } from './_procs.js';
import { swarmAnchor } from './_overlay-swarm.js';

const env = (name: string, fallback: string): string => process.env[name] ?? fallback;
const SECONDS = Number(env('BENCH_OVERLAY_SECONDS', '5'));
const CONVERGE = Number(env('BENCH_OVERLAY_CONVERGE', '100'));
const SIZES = env('BENCH_OVERLAY_SIZES', '1,100,1000').split(',').map(Number);
const PEERS = Number(env('BENCH_OVERLAY_PEERS', '1000'));
const C_SUBNET = env('BENCH_OVERLAY_C_SUBNET', '198.19.4.0/22');
const PARTS = env('BENCH_OVERLAY_PARTS', 'a,b,c,d,e').split(',');
const RESTARTS = Number(env('BENCH_OVERLAY_RESTARTS', '1'));
const LOCAL = Number(env('BENCH_OVERLAY_LOCAL', '0'));
const FIRSTS = Math.min(31, Number(env('BENCH_OVERLAY_FIRSTS', '10')));
/** Whether part c's connects are the daemons' first (parts a and b connect on h1 and h2 before it). */
const FRESH = !PARTS.includes('a') && !PARTS.includes('b');

interface Ep { id: string; ipv4?: string; macAddress?: string }
const ip = (cidr: string | undefined): string => cidr!.split('/')[0]!;
const api = (h: SimHost): Client => new Client(h.daemon.socket);

async function sandboxOn(h: SimHost, name: string, net: string): Promise<Ep> {
  await api(h).request('POST', '/v1/sandboxes', { name });
  return api(h).request<Ep>('POST', `/v1/networks/${net}/connect`, { sandbox: name });
}

/** iperf3 -c from namespace `from` to `to` for SECONDS; Gbit/s received. */
async function iperf(serverNs: string, clientNs: string, to: string): Promise<number> {
  const server = startChild(['ip', 'netns', 'exec', serverNs, 'iperf3', '-s', '-1']);
  await sleep(300);
  const out = await must(['ip', 'netns', 'exec', clientNs, 'iperf3', '-c', to, '-t', String(SECONDS), '-J'], { timeoutMs: (SECONDS + 20) * 1000 });
  await stopChild(server);
  return (JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e9;
}

/** The same VXLAN by hand on two hosts: bridge, VXLAN device (static entries), a veth into a namespace each. */
async function handVxlan(a: SimHost, b: SimHost, mtu: number): Promise<[string, string]> {
  const names: string[] = [];
  for (const [h, other, n] of [[a, b, 1], [b, a, 2]] as const) {
    const ns = `${h.ns.name}-hand`;
    names.push(ns);
    await must(['ip', 'netns', 'add', ns]);
    const sh = (argv: string[]) => h.ns.sh(argv);
    await sh(['ip', 'link', 'add', 'hbr', 'mtu', String(mtu), 'type', 'bridge']);
    await sh(['ip', 'link', 'add', 'hvx', 'mtu', String(mtu), 'master', 'hbr', 'type', 'vxlan', 'id', '9999', 'local', h.ip, 'dstport', '4800', 'nolearning', 'proxy']);
    await sh(['ip', 'link', 'add', 'hv0', 'mtu', String(mtu), 'master', 'hbr', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns, 'mtu', String(mtu), 'address', `02:99:00:00:00:0${n}`]);
    for (const d of ['hbr', 'hvx', 'hv0']) await sh(['ip', 'link', 'set', d, 'up']);
    await must(['ip', '-n', ns, 'addr', 'add', `198.18.99.${n}/24`, 'dev', 'eth0']);
    await must(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
    const m = 3 - n;
    await sh(['bridge', 'fdb', 'append', '00:00:00:00:00:00', 'dev', 'hvx', 'dst', other.ip, 'self', 'permanent']);
    await sh(['bridge', 'fdb', 'add', `02:99:00:00:00:0${m}`, 'dev', 'hvx', 'dst', other.ip, 'self', 'permanent']);
    await sh(['ip', 'neigh', 'add', `198.18.99.${m}`, 'lladdr', `02:99:00:00:00:0${m}`, 'dev', 'hvx', 'nud', 'permanent']);
  }
  return names as [string, string];
}

async function pingUntil(ns: string, to: string, ms: number): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    // nsenter, as the swarm side does: `ip netns exec` costs more per ping (it remounts /sys).
    const r = await exec(['nsenter', `--net=/run/netns/${ns}`, 'ping', '-c', '1', '-W', '0.2', to]);
    if (r.code === 0) return performance.now() - t0;
  }
  return Number.NaN;
}

/** Static FDB entries and permanent neighbour entries on the VXLAN device. */
async function entries(h: SimHost, dev: string): Promise<{ fdb: number; neigh: number }> {
  // nsenter, not `ip netns exec` (which remounts /sys): (d) polls while the daemon starts, on the same 2 cores.
  const f = await exec(['nsenter', `--net=${h.ns.path}`, 'bridge', 'fdb', 'show', 'dev', dev]);
  const n = await exec(['nsenter', `--net=${h.ns.path}`, 'ip', 'neigh', 'show', 'dev', dev, 'nud', 'permanent']);
  const count = (s: string, re: RegExp) => s.split('\n').filter((l) => re.test(l)).length;
  return { fdb: count(f.stdout, / self /), neigh: count(n.stdout, /lladdr/) };
}

async function vxlanOf(h: SimHost, net: string): Promise<string> {
  const n = await api(h).request<{ global: { vni: number } }>('GET', `/v1/networks/${net}`);
  return `ovvx${n.global.vni}`;
}

async function newNet(h: SimHost, name: string, subnet: string): Promise<void> {
  await api(h).request('POST', '/v1/networks', { name, driver: 'overlay', internal: true, subnet });
}

/** (a) iperf3 through the overlay, through the same VXLAN by hand, over the underlay. */
async function partA(h1: SimHost, h2: SimHost, extra: string[]): Promise<Row[]> {
  await newNet(h1, 'ova', '198.19.0.0/24');
  await sandboxOn(h1, `${h1.ns.name}-s1`, 'ova');
  const s2 = await sandboxOn(h2, `${h2.ns.name}-s2`, 'ova');
  extra.push(...(await handVxlan(h1, h2, 1450)));
  // Overlay and hand in ABBA order, each figure the mean of its two runs: a run's place in the
  // sequence (the first one warms caches and clocks) weighs on both alike.
  const runOver = () => iperf(`${h2.ns.name}-s2`, `${h1.ns.name}-s1`, ip(s2.ipv4));
  const runHand = () => iperf(extra[1]!, extra[0]!, '198.18.99.2');
  const overs = [await runOver()];
  const hands = [await runHand(), await runHand()];
  overs.push(await runOver());
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const [over, hand] = [mean(overs), mean(hands)];
  const each = `overlay ${overs.map((x) => x.toFixed(2)).join(', ')}; hand ${hands.map((x) => x.toFixed(2)).join(', ')}`;
  const under = await iperf(h2.ns.name, h1.ns.name, h2.ip);
  return [
    { figure: `(a) iperf3 TCP, overlay vs VXLAN by hand (ABBA, means of ${each})`, cnmkit: `${over.toFixed(2)} Gbit/s`, peer: `${hand.toFixed(2)} Gbit/s`, ratio: ratio(over, hand), target: `≥ 0.95×: ${met(over / hand >= 0.95)}` },
    { figure: '(a) overlay vs the underlay itself', cnmkit: `${over.toFixed(2)} Gbit/s`, peer: `${under.toFixed(2)} Gbit/s`, ratio: ratio(over, under), target: '(Docker swarm: 0.69×)' },
  ];
}

/** (b) connect on h1 returning → first ping answered from a sandbox on h2, CONVERGE times. */
async function partB(h1: SimHost, h2: SimHost): Promise<{ rows: Row[]; p50: number }> {
  await newNet(h1, 'ovb', '198.19.1.0/24');
  const probe = `${h2.ns.name}-p`;
  await sandboxOn(h2, probe, 'ovb');
  const converge: number[] = [];
  for (let i = 0; i < CONVERGE; i++) {
    const name = `${h1.ns.name}-b${i}`;
    await api(h1).request('POST', '/v1/sandboxes', { name });
    const ep = await api(h1).request<Ep>('POST', '/v1/networks/ovb/connect', { sandbox: name });
    converge.push(await pingUntil(probe, ip(ep.ipv4), 3000));
  }
  const c50 = quantile(converge, 0.5);
  return { p50: c50, rows: [
    { figure: `(b) connect A → 1st ping from B, p50 (${CONVERGE})`, cnmkit: fmtMs(c50), peer: '—', ratio: '—', target: `≤ 100 ms: ${met(c50 <= 100)}` },
    { figure: '(b) … p99', cnmkit: fmtMs(quantile(converge, 0.99)), peer: '—', ratio: '—', target: '' },
  ] };
}

/**
 * (c) create+join p50 at each checkpoint, endpoints round-robin over the hosts. At 1 endpoint: a
 * host's first endpoint on a network (its devices made and its peer watch started at that connect,
 * the network's peers programmed before it answers), on FIRSTS networks made one after another on
 * h1, each joined once on every host and removed again, before the other checkpoints (the hosts
 * hold few links then); the networks after the first, whose connects are each daemon's first in
 * part c (its very first when part c runs alone: its code cold), shown apart. At N > 1: the p50 of
 * the last 50 connects up to the Nth on one network.
 */
async function partC(hosts: SimHost[]): Promise<Row[]> {
  const rows: Row[] = [];
  if (SIZES.includes(1)) {
    const stages: (string | undefined)[] = [];
    const firsts = await firstJoins(hosts, (n) => {
      if (FRESH) stages[n] = connectStages(hosts[n]!.daemon.log)[0];
    });
    const [cold, ...warm] = firsts;
    const p50 = quantile(warm.flat(), 0.5);
    const each = hosts.map((_, n) => `h${n + 1} ${fmtMs(quantile(warm.map((f) => f[n]!), 0.5))}`).join(', ');
    rows.push(
      { figure: `(c) create+join p50 at 1 endpoint: a host's first on a network, ${warm.length} networks × ${hosts.length} hosts (p50 ${each}; h1 made them)`, cnmkit: fmtMs(p50), peer: '—', ratio: '—', target: `≤ 5 ms: ${met(p50 <= 5)}` },
      { figure: `(c) ${FRESH ? "a fresh daemon's very first connect, cold code" : "each host's first connect in part c"} (${cold!.map((ms, n) => `h${n + 1} ${fmtMs(ms)}`).join(', ')}; h1 made the network)`, cnmkit: fmtMs(quantile(cold!, 0.5)), peer: '—', ratio: '—', target: 'none: once per daemon start' },
      ...stages.flatMap((st, n) => (st ? [{ figure: `(c) h${n + 1}'s very first connect, stages (wall/CPU ms from its start)`, cnmkit: st, peer: '—', ratio: '—', target: '' }] : [])),
    );
  }
  await newNet(hosts[0]!, 'ovc', C_SUBNET);
  const joins: number[] = [];
  for (let i = 0; i < Math.max(...SIZES); i++) {
    const h = hosts[i % hosts.length]!;
    const name = `${h.ns.name}-c${i}`;
    await api(h).request('POST', '/v1/sandboxes', { name });
    const t0 = performance.now();
    await api(h).request<Ep>('POST', '/v1/networks/ovc/connect', { sandbox: name });
    joins.push(performance.now() - t0);
    if (i + 1 === 1 || !SIZES.includes(i + 1)) continue;
    const p50 = quantile(joins.slice(-Math.min(joins.length, 50)), 0.5);
    rows.push({ figure: `(c) create+join p50 at ${i + 1} endpoints (${C_SUBNET})`, cnmkit: fmtMs(p50), peer: '—', ratio: '—', target: `≤ 5 ms: ${met(p50 <= 5)}` });
  }
  rows.push(await withGateway(hosts));
  return rows;
}

/**
 * The same create+join on an overlay that is not internal: each connect also joins the sandbox to
 * this host's cnmkit_gwbridge (its egress, a second endpoint); p50 of 48 connects over the hosts,
 * after one each (the gateway network made on every host), all removed after.
 */
async function withGateway(hosts: SimHost[]): Promise<Row> {
  await api(hosts[0]!).request('POST', '/v1/networks', { name: 'ovg', driver: 'overlay', subnet: '198.19.64.0/24' });
  const times: number[] = [];
  const made: [SimHost, string][] = [];
  for (let i = 0; i < hosts.length + 48; i++) {
    const h = hosts[i % hosts.length]!;
    const name = `${h.ns.name}-g${i}`;
    await api(h).request('POST', '/v1/sandboxes', { name });
    made.push([h, name]);
    const t0 = performance.now();
    await api(h).request<Ep>('POST', '/v1/networks/ovg/connect', { sandbox: name });
    if (i >= hosts.length) times.push(performance.now() - t0);
  }
  for (const [h, name] of made) await api(h).request('DELETE', `/v1/sandboxes/${name}`);
  await api(hosts[0]!).request('DELETE', '/v1/networks/ovg');
  return { figure: '(c) … on an overlay that is not internal (each connect also joins cnmkit_gwbridge for egress), p50 of 48', cnmkit: fmtMs(quantile(times, 0.5)), peer: '—', ratio: '—', target: 'none: (c) is the overlay endpoint' };
}

/**
 * 1 + FIRSTS networks made on h1 one after another, each joined once on every host (in order) and
 * then removed: the connect times, per network; afterFirst(n) once host n's first connect answered.
 */
async function firstJoins(hosts: SimHost[], afterFirst: (n: number) => void): Promise<number[][]> {
  const out: number[][] = [];
  for (let k = 0; k <= FIRSTS; k++) {
    const net = `ovf${k}`;
    await newNet(hosts[0]!, net, `198.19.${32 + k}.0/24`);
    const times: number[] = [];
    for (const [n, h] of hosts.entries()) {
      await api(h).request('POST', '/v1/sandboxes', { name: `${h.ns.name}-f${k}` });
      const t0 = performance.now();
      await api(h).request<Ep>('POST', `/v1/networks/${net}/connect`, { sandbox: `${h.ns.name}-f${k}` });
      times.push(performance.now() - t0);
      if (k === 0) afterFirst(n);
    }
    out.push(times);
  }
  // Removed once all are measured: a device's deletion keeps the kernel busy for a while after it.
  for (let k = 0; k <= FIRSTS; k++) {
    for (const h of hosts) await api(h).request('DELETE', `/v1/sandboxes/${h.ns.name}-f${k}`);
    await api(hosts[0]!).request('DELETE', `/v1/networks/ovf${k}`);
  }
  return out;
}

/** A made-up peer n of a network whose subnet starts at 198.19.BASE.0. */
const fakePeer = (n: number, base: number, tag: number) => ({
  endpointId: `fake${tag}-${n}`, ip: `198.19.${base + (n >> 8)}.${n & 255}`, mac: `02:43:00:${tag.toString(16).padStart(2, '0')}:${((n >> 8) & 255).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`,
});

/** BENCH_OVERLAY_LOCAL endpoints on h3 on a second overlay, with twice as many remote peers (what parts b and c leave on h3). */
async function localLoad(h3: SimHost, fake: Awaited<ReturnType<SimCluster['inProcessHost']>>): Promise<void> {
  if (LOCAL <= 0) return;
  await newNet(h3, 'ovl', '198.19.16.0/20');
  for (let i = 0; i < LOCAL; i++) {
    await api(h3).request('POST', '/v1/sandboxes', { name: `${h3.ns.name}-l${i}`, connect: [{ network: 'ovl' }] });
  }
  const remote: Promise<unknown>[] = [];
  for (let i = 0; i < 2 * LOCAL; i++) {
    remote.push(fake.publishPeer('ovl', fakePeer(i + 2048, 16, 2)));
    if (remote.length >= 32) await Promise.all(remote.splice(0));
  }
  await Promise.all(remote);
}

/** (d) PEERS remote peers (published by an in-process host standing for many) on h3; SIGKILL, device gone, restart. */
async function partD(sim: SimCluster, h3: SimHost): Promise<Row[]> {
  const fake = await sim.inProcessHost(9);
  await localLoad(h3, fake);
  await newNet(h3, 'ovd', '198.19.8.0/21');
  await sandboxOn(h3, `${h3.ns.name}-d`, 'ovd');
  const vx = await vxlanOf(h3, 'ovd');
  const remote: Promise<unknown>[] = [];
  for (let i = 0; i < PEERS; i++) {
    remote.push(fake.publishPeer('ovd', fakePeer(i + 10, 8, 0)));
    if (remote.length >= 32) await Promise.all(remote.splice(0));
  }
  await Promise.all(remote);
  const want = { fdb: PEERS + 1, neigh: PEERS };
  const all = (e: { fdb: number; neigh: number }) => e.fdb >= want.fdb && e.neigh >= want.neigh;
  for (const t = Date.now(); !all(await entries(h3, vx)) && Date.now() - t < 60_000;) await sleep(200);
  const before = await entries(h3, vx);
  const rows: Row[] = [];
  const backs: number[] = [];
  for (let round = 1; round <= RESTARTS; round++) {
    const r = await restartOnce(h3, vx, before, all, round);
    rows.push(...r.rows);
    backs.push(r.back);
  }
  const p50 = quantile(backs, 0.5);
  if (RESTARTS > 1) rows.push({ figure: `(d) restart: median of ${RESTARTS} rounds`, cnmkit: fmtMs(p50), peer: '—', ratio: '—', target: `≤ 1 s: ${met(p50 <= 1000)}` });
  return rows;
}

/** One round of (d): SIGKILL h3's daemon, delete its VXLAN device, restart, time until every entry is back. */
async function restartOnce(h3: SimHost, vx: string, before: { fdb: number; neigh: number }, all: (e: { fdb: number; neigh: number }) => boolean, round: number): Promise<{ rows: Row[]; back: number }> {
  await h3.daemon.stop('SIGKILL');
  // Everything the daemon programmed goes with the VXLAN device; restart makes it and programs it again.
  await must(['ip', 'netns', 'exec', h3.ns.name, 'ip', 'link', 'del', vx]);
  // The entries are polled from spawn on (every 50 ms: each poll takes CPU from the starting
  // daemon), while start() waits for the daemon to say its API answers (--ready-fd: no CLI
  // process polling it every 100 ms on the same cores).
  const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
  const t0 = performance.now();
  let ready = Number.NaN;
  const logFrom = h3.daemon.log.length;
  const started = h3.daemon.start({ readyFd: true }).then(() => (ready = performance.now() - t0));
  let now = { fdb: 0, neigh: 0 };
  while (!all(now) && performance.now() - t0 < 30_000) {
    await sleep(50);
    now = await entries(h3, vx).catch(() => ({ fdb: 0, neigh: 0 }));
  }
  const back = performance.now() - t0;
  await started;
  // From spawn (issue 11, 9 (d)).
  const ok = all(now) && back <= 1000;
  const local = LOCAL > 0 ? `, ${LOCAL + 1} local endpoints` : '';
  const label = RESTARTS > 1 ? ` (round ${round}, load ${load}${local})` : ` (load ${load}${local})`;
  const row = { figure: `(d) restart: ${before.fdb} FDB + ${before.neigh} neigh back, from spawn${label}`, cnmkit: fmtMs(back), peer: '—', ratio: '—', target: `≤ 1 s (API answered at ${fmtMs(ready)}): ${met(ok)}` };
  // The ready line comes on stdout, apart from the ready pipe: waited for a moment when tracing.
  for (const t = Date.now(); process.env.CNMKIT_TRACE_START === '1' && !h3.daemon.log.slice(logFrom).includes('"startStages"') && Date.now() - t < 2000;) await sleep(20);
  const stages = startStages(h3.daemon.log.slice(logFrom));
  return { back: all(now) ? back : Number.POSITIVE_INFINITY, rows: stages ? [row, { figure: '(d) daemon start stages, ms from its process start', cnmkit: stages, peer: '—', ratio: '—', target: '' }] : [row] };
}

/** The connectStages of the daemon's log lines (CNMKIT_TRACE_CONNECT=1), one `stage wall/cpu, …` per connect. */
function connectStages(log: string): string[] {
  return log.split('\n').filter((l) => l.includes('"connectStages"'))
    .map((l) => (JSON.parse(l) as { connectStages: string[] }).connectStages.join(', '));
}

/** The startStages of the daemon's ready line (CNMKIT_TRACE_START=1), as `stage=ms …`. */
function startStages(log: string): string | undefined {
  const line = log.split('\n').find((l) => l.includes('"startStages"'));
  if (!line) return undefined;
  const stages = (JSON.parse(line) as { startStages: Record<string, number> }).startStages;
  return Object.entries(stages).map(([k, v]) => `${k}=${v}`).join(' ');
}

/**
 * Whether the cluster daemons start from a code cache of this build that earlier runs left (bin/cnmkit):
 * without one, each daemon's first connects also compile their code (a first run after a build).
 */
function codeCacheState(): string {
  try {
    const { started } = JSON.parse(fs.readFileSync('dist/build.json', 'utf8')) as { started: number };
    const size = fs.statSync(`dist/code-cache/daemon-cluster-${started}.bin`).size;
    return `daemons start from the code cache earlier runs of this build left (${Math.round(size / 1024)} KiB)`;
  } catch {
    return 'no code cache of this build yet: this run makes it, and its first connects compile their code';
  }
}

export default async function bench(): Promise<void> {
  const cache = codeCacheState();
  const sim = await SimCluster.create({ hosts: 3, leaseTtl: 5 });
  const [h1, h2, h3] = sim.hosts as [SimHost, SimHost, SimHost];
  const extra: string[] = [];
  try {
    for (const h of sim.hosts) await h.daemon.start();
    const rows: Row[] = [];
    if (PARTS.includes('a')) rows.push(...(await partA(h1, h2, extra)));
    const b = PARTS.includes('b') ? await partB(h1, h2) : undefined;
    rows.push(...(b?.rows ?? []));
    if (PARTS.includes('c')) rows.push(...(await partC([h1, h2, h3])));
    if (PARTS.includes('d')) rows.push(...(await partD(sim, h3)));
    if (PARTS.includes('e')) {
      const e = await swarmAnchor(sim);
      rows.push(...e.rows);
      if (b && !Number.isNaN(e.convergeP50)) rows.push({ figure: '(b) vs (e): convergence p50 vs swarm', cnmkit: fmtMs(b.p50), peer: fmtMs(e.convergeP50), ratio: ratio(b.p50, e.convergeP50), target: '' });
    }
    printTable('overlay', [`3 simulated hosts, etcd on the underlay, iperf3 ${SECONDS} s, MTU 1450 on both VXLANs; parts ${PARTS.join(',')}; a shared 2-core machine; ${cache}`], rows);
  } finally {
    for (const ns of extra) await exec(['ip', 'netns', 'del', ns]);
    for (const h of [h1, h2]) for (const d of ['hvx', 'hbr']) await exec(['ip', '-n', h.ns.name, 'link', 'del', d]);
    const ls = await exec(['ip', 'netns', 'list']);
    for (const line of ls.stdout.split('\n')) {
      const name = line.split(' ')[0]!;
      if (sim.hosts.some((h) => name.startsWith(`${h.ns.name}-`))) await exec(['ip', 'netns', 'del', name]);
    }
    await sim.destroy();
  }
}
