// `npm run bench -- lab`: cnmkit labs against mininet, side by side in one run, each inside a
// throwaway namespace standing for the machine. Shapes: a 50-node star on one bridge (mininet:
// one Linux bridge, 50 hosts) and a 20-router chain joined by links with a host behind each
// router (mininet: 20 bridges in a chain, a host each). Figures: bring-up, the full ping matrix
// of the star and teardown, medians of BENCH_LAB_ROUNDS (default 3) runs, each side timing its
// own calls in its own process. The ping matrix counts neighbour entries on both sides: cnmkit's
// `lab check` programs them, mininet gets static ARP for every pair (as autoStaticArp) before
// pingAll. Targets (issue 12): bring-up ≤ 0.25× mininet, teardown ≤ 0.25×, ping matrix ≥ 2×
// faster. The 3 hosts × 20 nodes overlay shape waits for the overlay driver.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addHostNs, exec } from './_procs.js';
import { met, printTable, secs, type Row } from './_report.js';

const here = import.meta.dirname;
const STAR = 50;
const CHAIN = 20;

function starFile(dir: string): string {
  const nodes = Array.from({ length: STAR }, (_, i) => `  n${i + 1}: {networks: [lan]}`).join('\n');
  const file = path.join(dir, 'star.yml');
  fs.writeFileSync(file, `name: bench-star\nnetworks:\n  lan: {subnet: 198.19.0.0/24}\nnodes:\n${nodes}\n`);
  return file;
}

function chainFile(dir: string): string {
  const nets: string[] = [];
  const nodes: string[] = [];
  const links: string[] = [];
  for (let i = 1; i <= CHAIN; i++) {
    nets.push(`  lan${i}: {subnet: 198.19.${i}.0/24}`);
    nodes.push(`  r${i}: {kind: router, networks: [{lan${i}: {ip: 198.19.${i}.254}}]}`, `  h${i}: {networks: [lan${i}], routes: [{dst: default, via: 198.19.${i}.254}]}`);
    if (i < CHAIN) links.push(`  - endpoints: ["r${i}:eth1", "r${i + 1}:eth2"]\n    addresses: [198.19.${100 + i}.1/30, 198.19.${100 + i}.2/30]`);
  }
  const file = path.join(dir, 'chain.yml');
  fs.writeFileSync(file, `name: bench-chain\nnetworks:\n${nets.join('\n')}\nnodes:\n${nodes.join('\n')}\nlinks:\n${links.join('\n')}\n`);
  return file;
}

interface Figures { upMs: number; pingMs: number; downMs: number; pairs: number; answered?: number; lossPct?: number; arpMs?: number }

async function side(argv: string[], nsPath: string, env: NodeJS.ProcessEnv): Promise<Figures> {
  const r = await exec(['nsenter', `--net=${nsPath}`, '--', ...argv], { env, timeoutMs: 300_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code !== 0 || !line.startsWith('{')) throw new Error(`bench lab: ${argv.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(line) as Figures;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function rows(shape: string, c: Figures[], m: Figures[], ping: boolean): Row[] {
  const out: Row[] = [];
  const add = (figure: string, key: 'upMs' | 'downMs' | 'pingMs', target: number, lower: boolean): void => {
    const cv = median(c.map((x) => x[key]));
    const mv = median(m.map((x) => x[key]));
    const ok = lower ? cv / mv <= target : mv / cv >= target;
    const ratio = lower ? `${(cv / mv).toFixed(2)}×` : `${(mv / cv).toFixed(1)}× faster`;
    out.push({ figure: `${shape}: ${figure}`, cnmkit: secs(cv), peer: secs(mv), ratio: `${ratio} `, target: `${lower ? `≤ ${target}×` : `≥ ${target}× faster`} ${met(ok)}` });
  };
  add('bring-up', 'upMs', 0.25, true);
  if (ping) add(`ping matrix (${c[0]!.pairs} pairs)`, 'pingMs', 2, false);
  add('teardown', 'downMs', 0.25, true);
  return out;
}

export default async function bench(): Promise<void> {
  const rounds = Number(process.env.BENCH_LAB_ROUNDS ?? 3);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnmkit-bench-lab-'));
  const labDir = path.join(dir, 'run');
  const machine = await addHostNs('bench-lab-machine');
  const mnNs = await addHostNs('bench-lab-mininet');
  const env = { ...process.env, CNMKIT_LAB_DIR: labDir };
  const tsx = [process.execPath, '--import', 'tsx', path.join(here, '_lab-side.ts')];
  const mn = ['/usr/bin/python3', path.join(here, '_mininet.py')];
  const all: Row[] = [];
  try {
    for (const [shape, file, n, ping] of [['star', starFile(dir), STAR, true], ['chain', chainFile(dir), CHAIN, false]] as const) {
      const c: Figures[] = [];
      const m: Figures[] = [];
      for (let i = 0; i < rounds; i++) {
        c.push(await side([...tsx, file, ...(ping ? [] : ['--no-check'])], machine, env));
        m.push(await side([...mn, shape, String(n), ...(ping ? [] : ['--no-ping'])], mnNs, process.env));
      }
      if (ping && c.some((x) => x.answered !== x.pairs)) throw new Error(`bench lab: cnmkit's ${shape} check did not answer every pair: ${JSON.stringify(c)}`);
      if (ping && m.some((x) => x.lossPct !== 0)) console.log(`note: mininet's pingAll lost ${m.map((x) => x.lossPct).join(', ')} %`);
      if (ping) console.log(`note: of mininet's ping matrix, static ARP for every pair took ${secs(median(m.map((x) => x.arpMs ?? 0)))} and pingAll ${secs(median(m.map((x) => x.pingMs - (x.arpMs ?? 0))))} (medians)`);
      all.push(...rows(shape, c, m, ping));
    }
    printTable('cnmkit lab vs mininet (lxbr-style bridges, no controller)', [
      `medians of ${rounds} runs; each side times its own calls in its own process, inside a throwaway namespace`,
      `star: ${STAR} nodes on one bridge; chain: ${CHAIN} routers joined by links, a host behind each (mininet: ${CHAIN} bridges in a chain, a host each)`,
      '3 hosts × 20 nodes on an overlay: skipped (the overlay driver has not landed yet)',
    ], all);
  } finally {
    // A failed run may have left a lab up: down is a no-op otherwise.
    for (const lab of ['bench-star', 'bench-chain']) await exec([process.execPath, path.join(here, '../../bin/cnmkit'), 'lab', 'down', '-q', lab], { env });
    await exec(['ip', 'netns', 'del', 'bench-lab-machine']);
    await exec(['ip', 'netns', 'del', 'bench-lab-mininet']);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
