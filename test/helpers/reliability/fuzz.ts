// The request-fuzzing campaign: batches of fuzzed requests (./requests.ts) against a real daemon's
// management and plugin sockets, as a fast-check property: every answer is a 2xx or a 4xx in the
// socket's one error shape, none hangs, the daemon survives (pid, /health), a batch of refused
// requests changes nothing (store and kernel, ./state.ts), and after accepted ones the invariants
// hold (./invariants.ts). No test-runner imports (scripts/soak uses it).
// Limits: state is compared per batch, so a change is blamed on the batch, not on one request;
// HEAD answers carry no body and are not shape-checked.
import fc from 'fast-check';
import fs from 'node:fs';
import path from 'node:path';
import { run } from '../exec.js';
import type { CampaignHost } from './daemon.js';
import { exchange, jsonRequest, type RawResponse } from './http.js';
import { checkInvariants } from './invariants.js';
import { managementRequests, pluginRequests, routesOf, type FuzzRequest, type Vocabulary } from './requests.js';
import { digest, digestDiff, readState } from './state.js';

export interface FuzzFigures {
  requests: number;
  byStatus: Record<string, number>;
  /** Answers outside 2xx/4xx (5xx above all). */
  badStatus: number;
  /** Error answers not in the socket's one error shape. */
  badShape: number;
  hangs: number;
  deaths: number;
  /** Batches of refused requests after which the store or the kernel differed. */
  changedByRefused: number;
  violations: number;
  /** The first failures, in words. */
  failures: string[];
}

export interface FuzzOptions {
  seed: number;
  /** Batches (fast-check runs). */
  runs: number;
  batch: number;
  /** An answer later than this is a hang. */
  timeoutMs?: number;
  /** fast-check's own limit on the whole run, shrinking included. */
  timeLimitMs?: number;
  log?: (line: string) => void;
}

const MUTATING_PLUGIN = /\.(Create|Delete|Join|Leave|Request|Release|Program|Revoke|Allocate|Free)/;
const ERROR_KEYS = new Set(['error', 'code', 'field']);

/** Why an answer breaks the error shape of its socket, or undefined. */
export function shapeProblem(req: FuzzRequest, r: RawResponse): string | undefined {
  if (r.status < 400 || req.label.startsWith('HEAD')) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(r.body);
  } catch {
    return `not JSON: ${r.body.slice(0, 200)}`;
  }
  const o = body as Record<string, unknown>;
  if (req.target !== 'management') return typeof o?.Err === 'string' && o.Err !== '' ? undefined : `no "Err": ${r.body.slice(0, 200)}`;
  const ok = typeof o?.error === 'string' && typeof o.code === 'string' && (o.field === undefined || typeof o.field === 'string') && Object.keys(o).every((k) => ERROR_KEYS.has(k));
  return ok ? undefined : `not {error, code[, field]}: ${r.body.slice(0, 200)}`;
}

/** The paths a path sandbox may be given: the host's namespaces, and a FIFO, a file, a folder and a missing path of its own. */
function netnsPaths(host: CampaignHost): string[] {
  const dir = path.join(host.dir, 'not-namespaces');
  fs.mkdirSync(dir, { recursive: true });
  const fifo = path.join(dir, 'fifo');
  fs.writeFileSync(path.join(dir, 'file'), 'x');
  return [...host.external, fifo, path.join(dir, 'file'), dir, path.join(dir, 'missing'), path.join(host.netnsDir, 'nope')];
}

/** Runs the campaign on host (its daemon started with the plugin sockets); returns the figures and the counterexample, if any. */
export async function fuzzCampaign(host: CampaignHost, o: FuzzOptions): Promise<{ figures: FuzzFigures; counterexample?: string }> {
  const log = o.log ?? (() => undefined);
  const timeoutMs = o.timeoutMs ?? 20_000;
  const paths = netnsPaths(host);
  await run(['mkfifo', paths[host.external.length]!]);
  const openapi = await jsonRequest(host.socket, 'GET', '/openapi.json');
  if (openapi.status !== 200) throw new Error(`GET /openapi.json: ${openapi.status}`);
  const vocab: Vocabulary = { names: [`${host.prefix}-a`, `${host.prefix}-b`, 'fz0', 'fz1'], netnsPaths: paths };
  const request = fc.oneof({ weight: 3, arbitrary: managementRequests(routesOf(openapi.body), vocab) }, { weight: 1, arbitrary: pluginRequests('bridge', vocab) }, { weight: 1, arbitrary: pluginRequests('ipam', vocab) });
  const sockets = { management: host.socket, bridge: path.join(host.pluginDir, 'cnmkit-bridge.sock'), ipam: path.join(host.pluginDir, 'cnmkit-ipam.sock') };
  const f: FuzzFigures = { requests: 0, byStatus: {}, badStatus: 0, badShape: 0, hangs: 0, deaths: 0, changedByRefused: 0, violations: 0, failures: [] };
  const fail = (what: string): false => {
    if (f.failures.length < 20) f.failures.push(what);
    log(`fuzz: ${what}`);
    return false;
  };
  let last = digest(await readState(host.source));

  const property = fc.asyncProperty(fc.array(request, { minLength: 1, maxLength: o.batch }), async (batch) => {
    let mutated = false;
    for (const req of batch) {
      const ex = await exchange(sockets[req.target], req.bytes, timeoutMs, req.halfClose);
      f.requests += 1;
      if (ex.hung) return (f.hangs += 1), fail(`${req.target} ${req.label}: no answer in ${timeoutMs} ms`);
      if (ex.refused || !host.alive) return (f.deaths += 1), fail(`${req.target} ${req.label}: the daemon is gone (${ex.refused ?? 'exited'})`);
      const r = ex.responses[0];
      const key = r ? String(r.status) : 'closed';
      f.byStatus[key] = (f.byStatus[key] ?? 0) + 1;
      if (!r) {
        if (!req.halfClose) return (f.badStatus += 1), fail(`${req.target} ${req.label}: closed without an answer`);
        continue;
      }
      if (!(r.status >= 200 && r.status < 300) && !(r.status >= 400 && r.status < 500)) return (f.badStatus += 1), fail(`${req.target} ${req.label}: status ${r.status} ${r.body.slice(0, 300)}`);
      const problem = shapeProblem(req, r);
      if (problem) return (f.badShape += 1), fail(`${req.target} ${req.label}: ${r.status} ${problem}`);
      if (r.status < 300 && (req.target === 'management' ? !/^(GET|HEAD)\b/.test(req.label) : MUTATING_PLUGIN.test(req.label))) mutated = true;
    }
    if ((await host.health()) !== 200 || !host.alive) return (f.deaths += 1), fail('the daemon is not healthy after the batch');
    const state = await readState(host.source);
    const now = digest(state);
    if (!mutated && now !== last) {
      f.changedByRefused += 1;
      const diff = digestDiff(last, now);
      last = now;
      return fail(`refused requests changed the state:\n${diff.join('\n')}`);
    }
    last = now;
    const vs = checkInvariants(state, { hostNs: host.hostNs, baselineLinks: host.baselineLinks, externalNamespaces: host.external, firewall: true, netnsDir: host.netnsDir });
    if (vs.length > 0) return (f.violations += vs.length), fail(`invariants after accepted requests: ${vs.map((v) => `${v.kind}: ${v.detail}`).join('; ')}`);
    return true;
  });
  const result = await fc.check(property, { seed: o.seed, numRuns: o.runs, endOnFailure: false, ...(o.timeLimitMs ? { interruptAfterTimeLimit: o.timeLimitMs } : {}) });
  if (!result.failed) return { figures: f };
  const shrunk = (result.counterexample?.[0] ?? []) as FuzzRequest[];
  const text = shrunk.map((r) => `${r.target} ${r.halfClose ? '(half-closed) ' : ''}${JSON.stringify(r.bytes.toString('latin1').slice(0, 2000))}`).join('\n');
  return { figures: f, counterexample: `seed ${o.seed}, path ${result.counterexamplePath}:\n${text}` };
}
