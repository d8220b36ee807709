// `npm run bench -- lab`: cnmkit labs against mininet, side by side in one run, each inside a
// throwaway namespace standing for the machine, in the three shapes of issue 12 (item 10):
//   star:    50 nodes on one bridge (mininet: one Linux bridge, 50 hosts), with the full ping matrix;
//   chain:   20 routers joined by links, a host behind each (mininet: 20 bridges in a chain, a host each);
//   overlay: 3 simulated hosts × 20 nodes on one overlay network, etcd started by the lab (mininet's
//            closest equivalent: 3 bridges in a chain, 20 hosts each: one layer-2 segment across
//            three switches, as the overlay is one across three hosts).
// cnmkit's figures are the CLI commands as a user runs them (`cnmkit lab up|check|down`, process
// start included). mininet's bring-up is timed the same way, from the spawn of its Python process
// (interpreter start and mininet's imports included, as in `mn` or a user's script) to the network
// being up; its figure without them (its API calls timed inside the process) is printed beside it.
// Its teardown and ping matrix are its API calls timed inside the process. The ping matrix counts neighbour entries on both
// sides: `lab check` programs them, mininet gets static ARP for every pair (autoStaticArp) first.
// Both sides run without NODE_EXTRA_CA_CERTS (Node reads that file at each start; a lab makes no TLS
// connection), as a lab's daemons always do.
// Medians of BENCH_LAB_ROUNDS (default 3) runs; BENCH_LAB_SHAPES=star,chain,overlay picks shapes.
// BENCH_LAB_TIMELINE=1 prints, for each round of the overlay shape, where its bring-up went
// (_lab-timeline.ts): etcd's and each daemon's start, stages and CPU, in ms from `lab up`.
// Targets: bring-up ≤ 0.25× mininet's, teardown ≤ 0.25×, the star's ping matrix ≥ 2× faster.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addHostNs, exec, type Ran } from './_procs.js';
import { labTimeline } from './_lab-timeline.js';
import { met, printTable, secs, type Row } from './_report.js';

const here = import.meta.dirname;
const CLI = path.join(here, '../../bin/cnmkit');

interface Shape {
  name: 'star' | 'chain' | 'overlay';
  /** What is compared, for the legend. */
  legend: string;
  lab: string;
  yaml: string;
  /** mininet's side: _mininet.py SHAPE K N. */
  mininet: [string, number, number];
  ping: boolean;
}

function star(): Shape {
  const nodes = Array.from({ length: 50 }, (_, i) => `  n${i + 1}: {networks: [lan]}`).join('\n');
  return {
    name: 'star', lab: 'bench-star', mininet: ['star', 1, 50], ping: true,
    legend: 'star: 50 nodes on one bridge (mininet: one bridge, 50 hosts)',
    yaml: `name: bench-star\nnetworks:\n  lan: {subnet: 198.19.0.0/24}\nnodes:\n${nodes}\n`,
  };
}

function chain(): Shape {
  const nets: string[] = [];
  const nodes: string[] = [];
  const links: string[] = [];
  for (let i = 1; i <= 20; i++) {
    nets.push(`  lan${i}: {subnet: 198.19.${i}.0/24}`);
    nodes.push(`  r${i}: {kind: router, networks: [{lan${i}: {ip: 198.19.${i}.254}}]}`, `  h${i}: {networks: [lan${i}], routes: [{dst: default, via: 198.19.${i}.254}]}`);
    if (i < 20) links.push(`  - endpoints: ["r${i}:eth1", "r${i + 1}:eth2"]\n    addresses: [198.19.${100 + i}.1/30, 198.19.${100 + i}.2/30]`);
  }
  return {
    name: 'chain', lab: 'bench-chain', mininet: ['linear', 20, 1], ping: false,
    legend: 'chain: 20 routers joined by links, a host behind each (mininet: 20 bridges in a chain, a host each)',
    yaml: `name: bench-chain\nnetworks:\n${nets.join('\n')}\nnodes:\n${nodes.join('\n')}\nlinks:\n${links.join('\n')}\n`,
  };
}

function overlay(): Shape {
  const nodes = [1, 2, 3].flatMap((h) => Array.from({ length: 20 }, (_, i) => `  h${h}n${i + 1}: {host: h${h}, networks: [mesh]}`));
  return {
    name: 'overlay', lab: 'bench-ovl', mininet: ['linear', 3, 20], ping: false,
    legend: 'overlay: 3 simulated hosts × 20 nodes on one overlay network (mininet: 3 bridges in a chain, 20 hosts each)',
    yaml: `name: bench-ovl\nhosts: {h1: {}, h2: {}, h3: {}}\nnetworks:\n  mesh: {driver: overlay, subnet: 198.19.0.0/24}\nnodes:\n${nodes.join('\n')}\n`,
  };
}

interface Figures {
  upMs: number; pingMs: number; downMs: number; pairs: number; answered?: number; lossPct?: number; arpMs?: number;
  /** mininet: its bring-up's API calls alone, without its process start (upMs includes it). */
  apiUpMs?: number;
}

class Unavailable extends Error {}

/** `cnmkit lab ARGS…` in the machine namespace, timed from outside the process. */
async function lab(machine: string, env: NodeJS.ProcessEnv, args: string[]): Promise<{ ms: number; r: Ran }> {
  const t0 = performance.now();
  const r = await exec(['nsenter', `--net=${machine}`, '--', process.execPath, CLI, 'lab', ...args], { env, timeoutMs: 300_000 });
  return { ms: performance.now() - t0, r };
}

const TIMELINE = process.env.BENCH_LAB_TIMELINE === '1';

async function cnmkitRound(s: Shape, file: string, machine: string, env: NodeJS.ProcessEnv): Promise<Figures> {
  const upStart = Date.now();
  const up = await lab(machine, env, ['up', '-q', file]);
  if (up.r.code !== 0) {
    await lab(machine, env, ['down', '-q', s.lab]);
    if (/unknown driver "overlay"/.test(up.r.stderr)) throw new Unavailable(up.r.stderr.trim().split('\n').pop());
    throw new Error(`bench lab: cnmkit lab up ${s.name} exited ${up.r.code}:\n${up.r.stdout}\n${up.r.stderr}`);
  }
  const f: Figures = { upMs: up.ms, pingMs: 0, downMs: 0, pairs: 0 };
  if (TIMELINE && s.name === 'overlay') console.log([`note: ${s.name} bring-up timeline (ms from lab up):`, ...labTimeline(env.CNMKIT_LAB_DIR!, s.lab, upStart, upStart + up.ms)].join('\n'));
  if (s.ping) {
    const c = await lab(machine, env, ['check', '--format', 'json', s.lab]);
    const r = JSON.parse(c.r.stdout) as { pairs: Array<{ ok: boolean }> };
    Object.assign(f, { pingMs: c.ms, pairs: r.pairs.length, answered: r.pairs.filter((p) => p.ok).length });
  }
  const down = await lab(machine, env, ['down', '-q', s.lab]);
  if (down.r.code !== 0) throw new Error(`bench lab: cnmkit lab down ${s.name} exited ${down.r.code}:\n${down.r.stderr}`);
  f.downMs = down.ms;
  return f;
}

async function mininetRound(s: Shape, ns: string, env: NodeJS.ProcessEnv): Promise<Figures> {
  const [topo, k, n] = s.mininet;
  const spawned = Date.now();
  const r = await exec(['nsenter', `--net=${ns}`, '--', '/usr/bin/python3', path.join(here, '_mininet.py'), topo, String(k), String(n), ...(s.ping ? [] : ['--no-ping'])], { env, timeoutMs: 300_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code !== 0 || !line.startsWith('{')) throw new Error(`bench lab: mininet ${s.name} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  const f = JSON.parse(line) as Figures & { upEpochMs: number };
  return { ...f, apiUpMs: f.upMs, upMs: f.upEpochMs - spawned };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Seconds with two decimals (a bring-up near its target differs by tens of ms), ms below a second. */
const secs2 = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : secs(ms));

function rows(shape: string, c: Figures[], m: Figures[], ping: boolean): Row[] {
  const out: Row[] = [];
  const add = (figure: string, key: 'upMs' | 'downMs' | 'pingMs', target: number, lower: boolean): void => {
    const cv = median(c.map((x) => x[key]));
    const mv = median(m.map((x) => x[key]));
    const ok = lower ? cv / mv <= target : mv / cv >= target;
    const ratio = lower ? `${(cv / mv).toFixed(2)}×` : `${(mv / cv).toFixed(1)}× faster`;
    out.push({ figure: `${shape}: ${figure}`, cnmkit: secs2(cv), peer: secs2(mv), ratio: `${ratio} `, target: `${lower ? `≤ ${target}×` : `≥ ${target}× faster`} ${met(ok)}` });
  };
  add('bring-up', 'upMs', 0.25, true);
  if (ping) add(`ping matrix (${c[0]!.pairs} pairs)`, 'pingMs', 2, false);
  add('teardown', 'downMs', 0.25, true);
  return out;
}

/** One shape, rounds times on each side (alternating); its rows, or the reason it was skipped. */
async function runShape(s: Shape, rounds: number, dir: string, machine: string, mnNs: string, env: NodeJS.ProcessEnv, mnEnv: NodeJS.ProcessEnv): Promise<Row[] | string> {
  const file = path.join(dir, `${s.name}.yml`);
  fs.writeFileSync(file, s.yaml);
  const c: Figures[] = [];
  const m: Figures[] = [];
  for (let i = 0; i < rounds; i++) {
    try {
      c.push(await cnmkitRound(s, file, machine, env));
    } catch (err) {
      if (err instanceof Unavailable) return `skipped: overlay driver not yet available (lab up: ${err.message})`;
      throw err;
    }
    m.push(await mininetRound(s, mnNs, mnEnv));
  }
  if (s.ping && c.some((x) => x.answered !== x.pairs)) throw new Error(`bench lab: cnmkit's ${s.name} check did not answer every pair: ${JSON.stringify(c)}`);
  if (s.ping && m.some((x) => x.lossPct !== 0)) console.log(`note: mininet's pingAll lost ${m.map((x) => x.lossPct).join(', ')} %`);
  console.log(`note: ${s.name} bring-up of each round, cnmkit: ${c.map((x) => secs2(x.upMs)).join(', ')}; mininet: ${m.map((x) => secs2(x.upMs)).join(', ')}`);
  const apiUp = median(m.map((x) => x.apiUpMs!));
  console.log(`note: ${s.name} bring-up of mininet without its interpreter start and imports: ${secs2(apiUp)} (median); cnmkit's ratio to it: ${(median(c.map((x) => x.upMs)) / apiUp).toFixed(2)}×`);
  if (s.ping) console.log(`note: of mininet's ${s.name} ping matrix, static ARP for every pair took ${secs(median(m.map((x) => x.arpMs ?? 0)))} and pingAll ${secs(median(m.map((x) => x.pingMs - (x.arpMs ?? 0))))} (medians)`);
  return rows(s.name, c, m, s.ping);
}

export default async function bench(): Promise<void> {
  const rounds = Number(process.env.BENCH_LAB_ROUNDS ?? 3);
  const wanted = (process.env.BENCH_LAB_SHAPES ?? 'star,chain,overlay').split(',');
  const shapes = [star(), chain(), overlay()].filter((s) => wanted.includes(s.name));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-bench-lab-'));
  const machine = await addHostNs('bench-lab-machine');
  const mnNs = await addHostNs('bench-lab-mininet');
  // Node reads NODE_EXTRA_CA_CERTS at every start, before any of cnmkit's code (~50 ms of CPU and
  // wall here, where the machine sets it to reach its npm registry); a lab makes no TLS connection,
  // and its daemons are started without it already. Both sides run without it.
  const caSet = process.env.NODE_EXTRA_CA_CERTS !== undefined;
  const base = { ...process.env };
  delete base.NODE_EXTRA_CA_CERTS;
  const env = { ...base, CNMKIT_LAB_DIR: path.join(dir, 'run'), ...(TIMELINE ? { CNMKIT_TRACE_START: '1' } : {}) };
  const all: Row[] = [];
  const skipped: string[] = [];
  const load = (): string => os.loadavg().map((x) => x.toFixed(1)).join(' ');
  const loadBefore = load();
  try {
    for (const s of shapes) {
      const r = await runShape(s, rounds, dir, machine, mnNs, env, base);
      if (typeof r === 'string') skipped.push(`${s.name}: ${r}`);
      else all.push(...r);
    }
    printTable('cnmkit lab vs mininet (Linux bridges, no controller)', [
      `medians of ${rounds} runs, each side inside a throwaway namespace; cnmkit: the CLI commands as a user runs them (process start included);`,
      'mininet bring-up: from the spawn of its Python process (interpreter start and imports included, as for cnmkit); teardown and ping matrix: its API calls timed in its process',
      ...shapes.map((s) => s.legend),
      `machine load (1, 5, 15 min averages, 2 cores): ${loadBefore} before, ${load()} after`,
      ...(caSet ? ['NODE_EXTRA_CA_CERTS, set in this environment, is unset for both sides (Node reads the file at each start; a lab makes no TLS connection)'] : []),
      ...skipped,
    ], all);
  } finally {
    // A failed run may have left a lab up: down is a no-op otherwise.
    for (const s of shapes) await lab(machine, env, ['down', '-q', s.lab]);
    await exec(['ip', 'netns', 'del', 'bench-lab-machine']);
    await exec(['ip', 'netns', 'del', 'bench-lab-mininet']);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
