// cnmkit's side of `npm run bench -- lab`, run under nsenter in the benchmark's throwaway "machine"
// namespace: `lab up` of a file, the check's ping matrix (neighbours programmed, then every pair),
// and `lab down`, each timed in this process (as mininet's side times its own API calls); prints
// them as JSON. Usage: _lab-side.ts FILE [--no-check]
import { checkLab, programNeighbours } from '../../src/lab/check.js';
import { labDown } from '../../src/lab/down.js';
import { prober } from '../../src/lab/probe.js';
import { Progress } from '../../src/lab/progress.js';
import { mustReadState } from '../../src/lab/state.js';
import { labUp } from '../../src/lab/up.js';

const [file, flag] = process.argv.slice(2);
const quiet = new Progress({ quiet: true });
const t0 = performance.now();
const state = await labUp(file!, { progress: quiet });
const t1 = performance.now();
let pingMs = 0;
let answered = 0;
let pairs = 0;
if (flag !== '--no-check') {
  await programNeighbours(mustReadState(state.name));
  const r = await checkLab(mustReadState(state.name), { prober });
  pingMs = performance.now() - t1;
  answered = r.pairs.filter((p) => p.ok).length;
  pairs = r.pairs.length;
}
const t2 = performance.now();
await labDown(state.name, { progress: quiet });
const t3 = performance.now();
console.log(JSON.stringify({ upMs: t1 - t0, pingMs, downMs: t3 - t2, pairs, answered }));
