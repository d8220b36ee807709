// `npm run soak -- [--requests N] [--kills N] [--hosts K] [--flood N] [--only PARTS] [--seed S]
// [--minutes M] [--lock]`: the long versions of the reliability campaigns (test/helpers/reliability):
// request fuzzing (N requests), the kill -9 campaign (N iterations shared by K hosts at once), and
// a flood of N connections measuring the API's latency. The campaigns run to their counts
// (--minutes is only a safety stop; the figures say how far they got), isolated in namespaces of
// their own (./isolate.ts), so they need no kernel lock; the flood takes the lock (its latency is
// measured on the least loaded machine we can get), so does everything with --lock. --only picks
// parts (fuzz,kill,flood). Prints the figures and a verdict computed from them.
import { parseArgs } from 'node:util';
import { acquireKernelLock } from '../../test/helpers/kernel-lock.js';
import { diffSnapshots } from '../../test/helpers/host-snapshot.js';
import { CampaignHost } from '../../test/helpers/reliability/daemon.js';
import { floodCampaign, type FloodFigures } from '../../test/helpers/reliability/flood.js';
import { fuzzCampaign, type FuzzFigures } from '../../test/helpers/reliability/fuzz.js';
import { clear, killCampaign, violationsOf, type KillFigures } from '../../test/helpers/reliability/kill.js';
import { isIsolated, ownSnapshot, reexecIsolated, setUpIsolation } from './isolate.js';

const { values: a } = parseArgs({
  args: process.argv.slice(2).filter((x) => x !== '--'),
  options: {
    requests: { type: 'string', default: '10000' }, kills: { type: 'string', default: '1000' }, hosts: { type: 'string', default: '4' },
    flood: { type: 'string', default: '5000' }, seed: { type: 'string' }, minutes: { type: 'string', default: '0' }, batch: { type: 'string', default: '25' },
    only: { type: 'string', default: 'fuzz,kill,flood' }, lock: { type: 'boolean', default: false },
  },
});
const num = (flag: string, v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`soak: --${flag} must be a whole number, not ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
};
const PARTS = ['fuzz', 'kill', 'flood'];
const parts = new Set(a.only!.split(',').filter(Boolean));
for (const p of parts) {
  if (!PARTS.includes(p)) {
    console.error(`soak: --only takes ${PARTS.join(', ')}, not ${JSON.stringify(p)}`);
    process.exit(2);
  }
}
if (process.getuid?.() !== 0) {
  console.error('soak: must run as root (the campaigns create network namespaces)');
  process.exit(1);
}
// The seed is drawn before re-executing, so the isolated run prints the one it was given.
if (a.seed === undefined) process.argv.push('--seed', String(Math.floor(Math.random() * 2 ** 31)));
if (!isIsolated()) process.exit(await reexecIsolated());
const seed = num('seed', a.seed ?? process.argv.at(-1));
const opts = {
  requests: parts.has('fuzz') ? num('requests', a.requests) : 0, kills: parts.has('kill') ? num('kills', a.kills) : 0, hosts: Math.max(1, num('hosts', a.hosts)),
  flood: parts.has('flood') ? num('flood', a.flood) : 0, minutes: num('minutes', a.minutes), batch: Math.max(1, num('batch', a.batch)),
};
const lock = async (): Promise<() => void> => acquireKernelLock({ onWait: (owner) => console.log(`soak: waiting for another privileged run (pid ${owner}) to end`) });
const releaseAll = a.lock ? await lock() : () => undefined;
const { cli, removeCopy } = await setUpIsolation();
CampaignHost.cli = cli;
// Niced on a busy machine, a restart took over 30 s and a health check over 5 s: slow is not dead.
CampaignHost.timeouts = { readyMs: 180_000, healthMs: 20_000 };
process.on('exit', () => {
  removeCopy();
  releaseAll();
});
const before = await ownSnapshot();
const t0 = Date.now();
const log = (line: string): void => console.log(`[${((Date.now() - t0) / 1000).toFixed(0)} s] ${line}`);
log(`soak: seed ${seed}; ${opts.requests} fuzzed requests, ${opts.kills} kill -9 iterations shared by ${opts.hosts} hosts, a flood of ${opts.flood} connections; isolated (pid ${process.pid})${a.lock ? ', holding the kernel lock' : ''}`);

const leftovers: string[] = [];
// Interrupted: every host made so far is removed (its daemon stopped) before exiting.
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`soak: ${sig}, removing the campaign hosts`);
    void Promise.allSettled(CampaignHost.live().map((h) => h.cleanup())).then(() => process.exit(130));
  });
}

/** Fuzzing on a host of its own, then everything removed through the API: the state must be the one it started with. */
async function fuzz(): Promise<{ figures: FuzzFigures; counterexample?: string } | undefined> {
  if (opts.requests === 0) return undefined;
  const host = await CampaignHost.create({ tag: 'fz', externals: 1 });
  try {
    await host.start();
    // Batches of 1 to `batch` requests, until `requests` were sent.
    const r = await fuzzCampaign(host, { seed, runs: opts.requests, requests: opts.requests, batch: opts.batch, collect: true, log, ...(opts.minutes ? { timeLimitMs: opts.minutes * 60_000 } : {}) });
    leftovers.push(...(await clear(host)).map((e) => `fuzz clear: ${e}`));
    leftovers.push(...(await violationsOf(host)).map((v) => `fuzz after clear: ${v.kind}: ${v.detail}`));
    return r;
  } finally {
    leftovers.push(...(await host.cleanup()).map((x) => `fuzz: ${x} was left`));
  }
}

// The hosts share the count: one that restarts faster does more of it.
let toKill = opts.kills;
const take = (): boolean => toKill-- > 0;

async function kill(k: number, iterations: number): Promise<KillFigures | undefined> {
  if (iterations === 0) return undefined;
  const host = await CampaignHost.create({ tag: `k${k}`, externals: 2, daemonArgs: ['--docker-plugins', 'false'] });
  try {
    await host.start();
    const deadline = opts.minutes ? t0 + opts.minutes * 60_000 : Infinity;
    const f = await killCampaign(host, { seed: seed + k, iterations, log: (l) => log(`host ${k}: ${l}`), deadline, take });
    leftovers.push(...(await clear(host)).map((e) => `kill ${k} clear: ${e}`));
    leftovers.push(...(await violationsOf(host)).map((v) => `kill ${k} after clear: ${v.kind}: ${v.detail}`));
    return f;
  } catch (err) {
    const figures = (err as { figures?: KillFigures }).figures;
    if (!figures) throw err;
    return figures;
  } finally {
    leftovers.push(...(await host.cleanup()).map((x) => `kill ${k}: ${x} was left`));
  }
}

const [fz, ...kills] = await Promise.all([fuzz(), ...Array.from({ length: Math.min(opts.hosts, opts.kills) }, (_, k) => kill(k, opts.kills))]);
async function floodPart(): Promise<FloodFigures | undefined> {
  if (opts.flood === 0) return undefined;
  const release = a.lock ? () => undefined : await lock();
  try {
    log('flood: holding the kernel lock');
    return await floodCampaign(opts.flood);
  } finally {
    release();
  }
}
const flood = await floodPart();
const changed = diffSnapshots(before, await ownSnapshot());

const sum = (xs: number[]): number => xs.reduce((x, y) => x + y, 0);
const ks = kills.filter((x): x is KillFigures => x !== undefined);
const kv = (kind: keyof KillFigures['violations']): number => sum(ks.map((k) => k.violations[kind]));
const outcome = (o: string): number => sum(ks.map((k) => k.outcomes[o] ?? 0));
const fig = {
  seed,
  fuzzedRequests: fz?.figures.requests ?? 0,
  fuzzByStatus: fz?.figures.byStatus ?? {},
  fuzzBadStatus: fz?.figures.badStatus ?? 0,
  fuzzBadShape: fz?.figures.badShape ?? 0,
  fuzzStateChangedByRefused: fz?.figures.changedByRefused ?? 0,
  fuzzInvariantViolations: fz?.figures.violations ?? 0,
  fuzzClientStalls: fz?.figures.clientStalls ?? 0,
  killIterations: sum(ks.map((k) => k.iterations)),
  killOperations: sum(ks.map((k) => k.operations)),
  killMsPerIteration: Object.fromEntries((['delay', 'kill', 'restart', 'check'] as const).map((k) => [k, Math.round(sum(ks.map((x) => x.ms[k])) / Math.max(1, sum(ks.map((x) => x.iterations))))])),
  killOutcomes: { '2xx': outcome('2xx'), '4xx': outcome('4xx'), '5xx': outcome('5xx'), cut: outcome('cut'), hung: outcome('hung') },
  leakedLinks: kv('leaked-link'), leakedNamespaces: kv('leaked-namespace'), missingNamespaces: kv('missing-namespace'), orphanRules: kv('orphan-rule'),
  orphanAddresses: kv('orphan-address'), duplicateIPs: kv('duplicate-ip'), storeKernelDisagreements: kv('disagree'),
  leftAfterClear: leftovers.length,
  ownNamespaceChanges: changed.length,
  hangs: (fz?.figures.hangs ?? 0) + outcome('hung'),
  deaths: (fz?.figures.deaths ?? 0) + sum(ks.map((k) => k.restartsFailed)),
  floodConnections: flood?.connections ?? 0,
  floodCounts: flood?.counts,
  apiLatencyMs: flood ? { probes: flood.probes, p50: +flood.p50.toFixed(1), p99: +flood.p99.toFixed(1), max: +flood.max.toFixed(1) } : undefined,
  minutes: +((Date.now() - t0) / 60_000).toFixed(1),
};
console.log('\n== soak figures ==');
console.log(JSON.stringify(fig, null, 2));
for (const line of [...(fz?.figures.failures ?? []), ...ks.flatMap((k) => k.failures), ...leftovers, ...changed].slice(0, 40)) console.log(`failure: ${line}`);
if (fz?.counterexample) console.log(`fuzz counterexample (shrunk):\n${fz.counterexample}`);
// A part left out (--only) is judged on nothing; a part run is held to the issue's counts.
const problems = [
  parts.has('fuzz') && fig.fuzzedRequests < 10_000 && 'fewer than 10000 fuzzed requests', parts.has('kill') && fig.killIterations < 1000 && 'fewer than 1000 kill -9 iterations',
  parts.has('flood') && fig.floodConnections < 5000 && 'a flood of fewer than 5000 connections', fig.ownNamespaceChanges > 0 && "the soak's own namespace changed",
  fig.fuzzBadStatus + fig.fuzzBadShape > 0 && 'answers outside 2xx/4xx or the error shape', fig.fuzzStateChangedByRefused > 0 && 'refused requests changed the state',
  fig.fuzzInvariantViolations > 0 && 'invariants broken by accepted requests',
  fig.leakedLinks + fig.leakedNamespaces + fig.orphanRules + fig.orphanAddresses > 0 && 'leaks', fig.duplicateIPs > 0 && 'duplicate IPs',
  fig.missingNamespaces + fig.storeKernelDisagreements > 0 && 'store and kernel disagree', fig.leftAfterClear > 0 && 'objects left after removing everything',
  fig.killOutcomes['5xx'] > 0 && '5xx answers in the workload', fig.hangs > 0 && 'hangs', fig.deaths > 0 && 'deaths',
  flood && !(flood.max < 100) && `API latency under the flood reached ${flood.max.toFixed(1)} ms`,
].filter((p): p is string => typeof p === 'string');
console.log(`verdict: ${problems.length === 0 ? 'PASS' : `FAIL (${problems.join('; ')})`}`);
process.exitCode = problems.length === 0 ? 0 : 1;
