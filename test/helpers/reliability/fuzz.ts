// The request-fuzzing campaign: batches of fuzzed requests (./requests.ts) against a real daemon's
// management and plugin sockets, as a fast-check property: every answer is a 2xx or a 4xx in the
// socket's one error shape, none hangs, the daemon survives (pid, /health), a batch of refused
// requests changes nothing (store and kernel, ./state.ts), and after accepted ones the invariants
// hold (./invariants.ts), and nothing is logged at error level (an internal error; the plugin
// sockets answer 500 on purpose for unknown objects). No test-runner imports (scripts/soak uses it).
// Limits: state is compared per batch, so a change is blamed on the batch, not on one request;
// HEAD answers carry no body and are not shape-checked.
import fc from 'fast-check';
import fs from 'node:fs';
import path from 'node:path';
import { MANAGEMENT_LIMITS } from '../../../src/api/socket.js';
import { run } from '../exec.js';
import type { CampaignHost } from './daemon.js';
import { exchange, jsonRequest, type RawResponse } from './http.js';
import { checkInvariants } from './invariants.js';
import { managementRequests, pluginRequests, routesOf, type FuzzRequest, type Vocabulary } from './requests.js';
import { digest, digestDiff, readState } from './state.js';

export interface FuzzFigures {
  requests: number;
  byStatus: Record<string, number>;
  /** Answers outside 2xx/4xx (5xx above all; a plugin's 500 for an unknown object excepted), and error-level log lines. */
  badStatus: number;
  /** Error answers not in the socket's one error shape. */
  badShape: number;
  hangs: number;
  deaths: number;
  /** Closes without an answer after this client itself stalled past the header timeout before writing (not the daemon's fault; counted apart). */
  clientStalls: number;
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
  /** Stop sending once this many requests were sent (the remaining runs pass at once). */
  requests?: number;
  /** Count every failure and carry on (the soak's figures), instead of stopping at the first and shrinking it. */
  collect?: boolean;
  log?: (line: string) => void;
}

const MUTATING_PLUGIN = /\.(Create|Delete|Join|Leave|Request|Release|Program|Revoke|Allocate|Free)/;
const BODY_LIMIT = 1024 * 1024;
/** The sockets' header timeout (the plugin sockets have the same). */
const HEADERS_TIMEOUT_MS = MANAGEMENT_LIMITS.headersTimeoutMs;
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
  const f: FuzzFigures = { requests: 0, byStatus: {}, badStatus: 0, badShape: 0, hangs: 0, deaths: 0, clientStalls: 0, changedByRefused: 0, violations: 0, failures: [] };
  const fail = (what: string): boolean => {
    if (f.failures.length < 20) f.failures.push(what);
    log(`fuzz: ${what}`);
    return o.collect === true;
  };
  let last = digest(await readState(host.source));
  let errorLines = host.errorLines;

  const property = fc.asyncProperty(fc.array(request, { minLength: 1, maxLength: o.batch }), async (batch) => {
    if (o.requests !== undefined && f.requests >= o.requests) return true;
    let mutated = false;
    const trace: string[] = [];
    /** Counts a failure of kind; true when the batch must stop (not collecting). */
    const bad = (kind: 'hangs' | 'badStatus' | 'badShape', what: string): boolean => {
      f[kind] += 1;
      // The state may have changed under a failed answer: compare no digest, check the invariants.
      mutated = true;
      return !fail(what);
    };
    for (const req of batch) {
      const shown = (): string => `\n  request (${req.bytes.length} bytes${req.halfClose ? ', half-closed' : ''}): ${JSON.stringify(req.bytes.toString('latin1', 0, 1500))}`;
      const ex = await exchange(sockets[req.target], req.bytes, timeoutMs, req.halfClose);
      f.requests += 1;
      if (ex.refused || !host.alive) {
        f.deaths += 1;
        fail(`${req.target} ${req.label}: the daemon is gone (${ex.refused ?? 'exited'})`);
        if (o.collect) await host.start();
        return o.collect === true;
      }
      const r = ex.responses[0];
      const key = r ? String(r.status) : ex.hung ? 'hung' : 'closed';
      f.byStatus[key] = (f.byStatus[key] ?? 0) + 1;
      trace.push(`${key} ${req.target} ${req.label}`);
      if (ex.hung) {
        if (bad('hangs', `${req.target} ${req.label}: no answer in ${timeoutMs} ms${shown()}`)) return false;
        continue;
      }
      if (!r) {
        // Over the 1 MiB body limit the daemon answers 413 and closes while the client still writes:
        // the client's write fails and may lose the answer.
        // A client that wrote only after the header timeout was cut (408) and may have lost that
        // answer to its failed write: the campaign's process stalled (a loaded machine), not the daemon.
        if ((ex.wroteAfterMs ?? 0) >= HEADERS_TIMEOUT_MS) {
          f.clientStalls += 1;
          log(`fuzz: ${req.target} ${req.label}: this client wrote ${ex.wroteAfterMs} ms after connecting and got no answer (counted as a client stall)`);
          continue;
        }
        if (!req.halfClose && req.bytes.length <= BODY_LIMIT && bad('badStatus', `${req.target} ${req.label}: closed without an answer (written ${ex.wroteAfterMs} ms after connecting)${shown()}`)) return false;
        continue;
      }
      // A plugin call about an object that does not exist answers 500 on purpose (to the engine a 404
      // means "not implemented"); an internal error is told apart by its error-level log line, below.
      const pluginNotFound = req.target !== 'management' && r.status === 500;
      const statusOk = (r.status >= 200 && r.status < 300) || (r.status >= 400 && r.status < 500) || pluginNotFound;
      if (!statusOk && bad('badStatus', `${req.target} ${req.label}: status ${r.status} ${r.body.slice(0, 300)}${shown()}`)) return false;
      const problem = shapeProblem(req, r);
      if (problem && bad('badShape', `${req.target} ${req.label}: ${r.status} ${problem}${shown()}`)) return false;
      if (r.status < 300 && (req.target === 'management' ? !/^(GET|HEAD)\b/.test(req.label) : MUTATING_PLUGIN.test(req.label))) mutated = true;
    }
    let ok = true;
    if ((await host.health()) !== 200 || !host.alive) {
      f.deaths += 1;
      ok = fail('the daemon is not healthy after the batch');
      if (!host.alive && o.collect) await host.start();
    }
    if (host.errorLines > errorLines) {
      errorLines = host.errorLines;
      f.badStatus += 1;
      mutated = true;
      ok = fail(`the daemon logged an error: ${host.lastErrors.at(-1)}\nthe batch: ${trace.join('; ')}`) && ok;
    }
    const state = await readState(host.source);
    const now = digest(state);
    if (!mutated && now !== last) {
      f.changedByRefused += 1;
      ok = fail(`refused requests changed the state:\n${digestDiff(last, now).join('\n')}\nthe batch: ${trace.join('; ')}`) && ok;
    }
    last = now;
    const vs = checkInvariants(state, { hostNs: host.hostNs, baselineLinks: host.baselineLinks, externalNamespaces: host.external, firewall: true, netnsDir: host.netnsDir });
    if (vs.length > 0) {
      f.violations += vs.length;
      ok = fail(`invariants after accepted requests: ${vs.map((v) => `${v.kind}: ${v.detail}`).join('; ')}\nthe batch: ${trace.join('; ')}`) && ok;
    }
    return ok;
  });
  const result = await fc.check(property, { seed: o.seed, numRuns: o.runs, endOnFailure: false, ...(o.timeLimitMs ? { interruptAfterTimeLimit: o.timeLimitMs } : {}) });
  if (!result.failed) return { figures: f };
  const shrunk = (result.counterexample?.[0] ?? []) as FuzzRequest[];
  const text = shrunk.map((r) => `${r.target} ${r.halfClose ? '(half-closed) ' : ''}${JSON.stringify(r.bytes.toString('latin1').slice(0, 2000))}`).join('\n');
  return { figures: f, counterexample: `seed ${o.seed}, path ${result.counterexamplePath}:\n${text}` };
}
