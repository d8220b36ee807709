// The closing verdict of scripts/test, from vitest's JSON report and the host check's result:
// tests passed/failed/skipped, files that failed outside their tests (load, beforeAll/afterAll),
// the host-unchanged check, and which skips are allowed. Fails on anything that failed, on a
// host check that failed or did not run as root, and on every skip not allowed: allowed are
// kernel features the machine lacks (test/helpers/kernel-features.ts), the privileged tiers
// without root (unless CI), and every skip when allowed on purpose (--allow-skips).
// Usage: tsx scripts/test-summary.ts REPORT.json HOSTCHECK.json VITEST_EXIT_CODE
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface AssertionResult { fullName: string; status: string; meta?: { kernelFeature?: string } }
export interface FileResult { name: string; status: string; message?: string; assertionResults: AssertionResult[] }
export interface VitestReport { testResults: FileResult[] }
/** What test/helpers/global-setup.ts writes: the check ran and passed or failed, or was not run. */
export interface HostCheck { result: 'passed' | 'failed' | 'not root' | 'not needed (unit tier only)'; differences?: string[] }

export interface RunContext { root: boolean; ci: boolean; allowSkips: boolean; vitestExit: number }

export interface Summary { line: string; details: string[]; ok: boolean }

const PRIVILEGED = new Set(['netns', 'drivers', 'e2e']);

function tierOf(file: string): string {
  const parts = file.split(path.sep);
  const i = parts.lastIndexOf('test');
  return i >= 0 ? (parts[i + 1] ?? '') : '';
}

/** Why a skipped test is allowed, or undefined when it is not. */
function skipAllowed(file: string, t: AssertionResult, ctx: RunContext): string | undefined {
  if (t.meta?.kernelFeature) return `kernel lacks ${t.meta.kernelFeature}`;
  if (ctx.allowSkips) return 'skips allowed (--allow-skips)';
  if (!ctx.root && !ctx.ci && PRIVILEGED.has(tierOf(file))) return 'not root';
  return undefined;
}

function counted(items: string[]): string {
  const counts = new Map<string, number>();
  for (const i of items) counts.set(i, (counts.get(i) ?? 0) + 1);
  return [...counts].map(([k, n]) => (n > 1 ? `${k} ×${n}` : k)).join(', ');
}

export function summarize(report: VitestReport | undefined, host: HostCheck | undefined, ctx: RunContext): Summary {
  const details: string[] = [];
  let passed = 0;
  let failed = 0;
  const allowed: string[] = [];
  const refused: string[] = [];
  const failedSuites: FileResult[] = [];
  for (const file of report?.testResults ?? []) {
    for (const t of file.assertionResults) {
      if (t.status === 'passed') passed++;
      else if (t.status === 'failed') failed++;
      else {
        const why = t.status === 'skipped' || t.status === 'todo' ? skipAllowed(file.name, t, ctx) : undefined;
        if (why === undefined) refused.push(`${t.fullName} (${t.status})`);
        else allowed.push(why);
        // Every skip by name, but those of a whole tier without root (counted in the closing line).
        if (why !== 'not root') details.push(`${why === undefined ? 'SKIP NOT ALLOWED' : 'skipped'}: ${t.fullName}${why ? ` [${why}]` : ''}`);
      }
    }
    if (file.status === 'failed' && !file.assertionResults.some((t) => t.status === 'failed')) {
      failedSuites.push(file);
      details.push(`FAILED SUITE: ${file.name}: ${(file.message ?? '').split('\n')[0] || 'an error outside its tests (beforeAll/afterAll)'}`);
    }
  }
  const hostCheck = host?.result ?? (ctx.root ? 'not run' : 'not root');
  const skipped = allowed.length + refused.length;
  const parts = [
    `tests: ${passed} passed, ${failed} failed, ${skipped} skipped${allowed.length > 0 ? ` (allowed: ${counted(allowed)})` : ''}`,
    ...(refused.length > 0 ? [`${refused.length} skips not allowed`] : []),
    `${failedSuites.length} failed suites`,
    `host check ${hostCheck}`,
  ];
  if (report === undefined) parts.unshift('no vitest report');
  const explained = failed > 0 || failedSuites.length > 0 || hostCheck === 'failed';
  if (ctx.vitestExit !== 0 && !explained) parts.push(`vitest exited ${ctx.vitestExit} (errors outside any test: see above)`);
  const ok = report !== undefined && ctx.vitestExit === 0 && failed === 0 && failedSuites.length === 0 && refused.length === 0 &&
    (hostCheck === 'passed' || hostCheck === 'not needed (unit tier only)' || (hostCheck === 'not root' && !ctx.root));
  return { line: `${parts.join(', ')}: ${ok ? 'ok' : 'FAILED'}`, details, ok };
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [reportFile, hostFile, exit] = process.argv.slice(2);
  const ctx: RunContext = {
    root: process.getuid?.() === 0, ci: Boolean(process.env.CI), allowSkips: process.env.CNMKIT_ALLOW_SKIPS === '1', vitestExit: Number(exit ?? 1),
  };
  const s = summarize(readJson<VitestReport>(reportFile ?? ''), readJson<HostCheck>(hostFile ?? ''), ctx);
  for (const d of s.details) console.log(d);
  console.log(s.line);
  process.exit(s.ok ? 0 : 1);
}
