// The check's report for people: the matrix (rows from, columns to; each cell the round trip in
// ms, x for no answer, gone for a node whose namespace is gone), the expectations, what was
// skipped and why, the failures, and a closing line with counts and time.
import type { CheckReport } from './check.js';
import { seconds } from './progress.js';
import type { LabState } from './state.js';

/** Above this many nodes the cells hold a mark instead of the time (the line would not fit). */
const TIMES_UP_TO = 16;

export function matrixText(s: LabState, r: CheckReport): string {
  const names = s.plan.nodes.map((n) => n.name);
  const byPair = new Map(r.pairs.map((p) => [`${p.from}>${p.to}`, p]));
  const wide = names.length <= TIMES_UP_TO;
  const w = wide ? Math.max(6, ...names.map((n) => n.length)) : 1;
  const first = Math.max(...names.map((n) => n.length), 4);
  const cell = (from: string, to: string): string => {
    if (from === to) return wide ? '-' : ' ';
    if (r.gone.includes(from) || r.gone.includes(to)) return wide ? 'gone' : 'g';
    const p = byPair.get(`${from}>${to}`);
    if (!p) return wide ? '' : '?';
    if (!p.ok) return p.via === 'routed' ? 'x' : wide ? 'FAIL' : 'F';
    return wide ? (p.rttMs ?? 0).toFixed(p.rttMs !== undefined && p.rttMs < 10 ? 3 : 1) : '.';
  };
  const header = wide ? `${'from\\to'.padEnd(first)} ${names.map((n) => n.padStart(w)).join(' ')}` : `${''.padEnd(first)} ${names.map((_, i) => String(i % 10)).join('')}`;
  const rows = names.map((a) => (wide ? `${a.padEnd(first)} ${names.map((b) => cell(a, b).padStart(w)).join(' ')}` : `${a.padEnd(first)} ${names.map((b) => cell(a, b)).join('')}`));
  const legend = wide ? 'round trip in ms; x: no answer (no routed path); FAIL: no answer on a shared network or link' : '.: answered; x: no answer (no routed path); F: no answer on a shared network or link; columns in the order of the rows';
  const goneLegend = r.gone.length === 0 ? '' : `; ${wide ? 'gone' : 'g'}: not tried, a node's namespace is gone`;
  return [header, ...rows, legend + goneLegend].join('\n');
}

export function printCheck(s: LabState, r: CheckReport): void {
  const out = [matrixText(s, r)];
  if (r.expect.length > 0) {
    out.push('', 'expect:');
    for (const e of r.expect) out.push(`  ${e.ok ? 'ok  ' : 'MISS'} ${e.from} → ${e.to}${e.port ? ` port ${e.port}` : ''} reach ${e.reach}${e.address && e.address !== e.to ? ` (${e.address})` : ''}${e.notTried ? ` (not tried: ${e.notTried})` : ''}`);
  }
  if (r.skipped.length > 0) out.push('', 'skipped (no address from the lab):', ...r.skipped.map((x) => `  ${x.what}: ${x.reason}`));
  if (r.failures.length > 0) out.push('', 'failures:', ...r.failures.map((f) => `  ${f}`));
  const answered = r.pairs.filter((p) => p.ok).length;
  out.push('', `lab ${r.lab} check: ${answered}/${r.pairs.length} pairs answered, ${r.expect.filter((e) => e.ok).length}/${r.expect.length} expectations met, ${r.skipped.length > 0 ? `${r.skipped.length} skipped, ` : ''}${r.failures.length} failure(s) in ${seconds(r.ms)}`);
  console.log(out.join('\n'));
}
