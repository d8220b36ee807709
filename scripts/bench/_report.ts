// The summary table the bridge benchmark prints: one row per figure, cnmkit's figure, the peer's,
// their ratio (cnmkit / peer) and the target it is held to, if any; a duration format shared too.
import { fmtMs } from './_procs.js';

export interface Row {
  figure: string;
  cnmkit: string;
  peer: string;
  ratio: string;
  target: string;
}

export const pad = (s: string, n: number): string => s.padStart(n);
/** Seconds from 1 s up, milliseconds below. */
export const secs = (ms: number): string => (Math.abs(ms) >= 1000 ? `${(ms / 1000).toFixed(1)} s` : fmtMs(ms));
export const met = (ok: boolean): string => (ok ? 'met' : 'MISSED');

export function printTable(title: string, legend: string[], rows: Row[]): void {
  const w = [46, 22, 22, 12];
  console.log(`\n-- ${title} --`);
  for (const line of legend) console.log(line);
  console.log(`${'figure'.padEnd(w[0]!)}${'cnmkit'.padEnd(w[1]!)}${'peer'.padEnd(w[2]!)}${'ratio'.padEnd(w[3]!)}target`);
  for (const r of rows) console.log(`${r.figure.padEnd(w[0]!)}${r.cnmkit.padEnd(w[1]!)}${r.peer.padEnd(w[2]!)}${r.ratio.padEnd(w[3]!)}${r.target}`);
}
