// `cnmkit check` (every network) and `cnmkit network inspect --check NETWORK…`: the kernel state
// compared with the store, one line per difference (object, what, expected, found) or JSON with
// --format json, then a line for each thing that could not be compared (an overlay's peer entries
// while the cluster store is away), with why. Exit 0 when nothing differs, 1 on drift (as on any
// error), 3 when nothing differs but something could not be compared. `check --fix` has each
// driver repair what differs, then checks again: it prints what was repaired (as found before),
// then what is left (the exit code is that of what is left, as above); so does `network inspect
// --check --fix NETWORK…` for the networks named (one it cannot find: an error, exit 1, the others
// still checked and printed).
import type { NetworkCheck } from '../../controller/check.js';
import type { CheckItem } from '../../contract/driver.js';
import { ApiError, Client, socketPath } from '../../client/index.js';
import { type Command, expectPositionals, FORMAT_HELP, formatOption, SOCKET_HELP, socketOption, wantJson, type Values } from '../command.js';
import { printJson, table } from '../format.js';

/** Exit status of a check that found no difference but could not compare something. */
const CHECK_INCOMPLETE = 3;

const HEADERS = ['NETWORK', 'OBJECT', 'WHAT', 'EXPECTED', 'FOUND'];

/** 1 when anything differs, else 3 when anything was not compared, else 0. */
function exitOf(checks: NetworkCheck[]): number {
  if (checks.some((c) => c.items.length > 0)) return 1;
  return checks.some((c) => (c.unchecked ?? []).length > 0) ? CHECK_INCOMPLETE : 0;
}

/** One table row per difference of each network: what is left (items), or what was repaired. */
function rows(checks: NetworkCheck[], of: (c: NetworkCheck) => CheckItem[] = (c) => c.items): string[][] {
  return checks.flatMap((c) => of(c).map((i) => [c.network, i.object, i.what, i.expected, i.found]));
}

/** `no drift: …` (in what could be compared, when something could not be). */
function noDrift(checks: NetworkCheck[]): string {
  const scope = checks.some((c) => (c.unchecked ?? []).length > 0) ? ' in what could be compared' : '';
  return `no drift${scope}: ${checks.length} network${checks.length === 1 ? '' : 's'} checked (${checks.map((c) => c.network).join(', ')})`;
}

function printUnchecked(checks: NetworkCheck[]): void {
  for (const u of checks.flatMap((c) => c.unchecked ?? [])) console.log(`not compared: ${u.object} ${u.what}: ${u.reason}`);
}

/** Prints what check found; returns the exit code (1 when anything differs, else 3 when anything was not compared). */
export function printChecks(checks: NetworkCheck[], json: boolean): number {
  if (json) printJson(checks);
  else {
    const drift = rows(checks);
    console.log(drift.length === 0 ? noDrift(checks) : table(HEADERS, drift));
    printUnchecked(checks);
  }
  return exitOf(checks);
}

/** Prints what check --fix repaired (each difference as found before) and what is left; the exit code is that of what is left. */
export function printFixes(checks: NetworkCheck[], json: boolean): number {
  if (json) {
    printJson(checks);
    return exitOf(checks);
  }
  const repaired = rows(checks, (c) => c.repaired ?? []);
  if (repaired.length > 0) console.log(`repaired ${repaired.length} difference${repaired.length === 1 ? '' : 's'}:\n${table(HEADERS, repaired)}`);
  for (const c of checks) if (c.repairFailed !== undefined) console.log(`repair of network ${c.network} stopped: ${c.repairFailed}`);
  const left = rows(checks);
  if (left.length > 0) console.log(`not repaired, ${left.length} difference${left.length === 1 ? '' : 's'} left:\n${table(HEADERS, left)}`);
  else console.log(noDrift(checks));
  printUnchecked(checks);
  return exitOf(checks);
}

/**
 * `network inspect --check [--fix] NETWORK…`: the check (or the repair) of each network named, in
 * that order. As network inspect: a name the daemon refuses (no such network) is an error on
 * stderr, exit 1, and the others are still checked (repaired) and printed.
 */
export async function checkNamed(v: Values, refs: string[]): Promise<number> {
  const json = wantJson(v);
  const fix = v.fix === true;
  const client = new Client(socketPath(v.socket as string | undefined));
  const out: NetworkCheck[] = [];
  let failed = 0;
  for (const ref of refs) {
    const at = `/v1/networks/${encodeURIComponent(ref)}/check`;
    try {
      out.push(await (fix ? client.request<NetworkCheck>('POST', `${at}/fix`) : client.request<NetworkCheck>('GET', at)));
    } catch (err) {
      // Not reaching the daemon stops there.
      if (!(err instanceof ApiError) || err.status === 0) throw err;
      console.error(`Error: ${err.message}`);
      failed += 1;
    }
  }
  if (out.length === 0 && !json) return 1;
  const code = fix ? printFixes(out, json) : printChecks(out, json);
  return failed > 0 ? 1 : code;
}

export const check: Command = {
  name: 'check',
  summary: 'Compare the kernel with what cnmkit recorded, for every network (exit 1 on drift, 3 when something could not be compared); --fix repairs what differs.',
  usage: 'cnmkit check [OPTIONS]',
  help: [
    '      --fix              repair what differs (an overlay\'s FDB and neighbour entries; devices down; a bridge\'s firewall rules), then check again:',
    '                         prints what was repaired and what is left (exit 0 when nothing is left, 1 on drift left)',
    FORMAT_HELP, SOCKET_HELP,
  ],
  options: { ...socketOption, ...formatOption, fix: { type: 'boolean' } },
  async run(v, pos) {
    expectPositionals(this, pos, 0);
    const json = wantJson(v);
    const client = new Client(socketPath(v.socket as string | undefined));
    if (v.fix === true) return printFixes(await client.request<NetworkCheck[]>('POST', '/v1/check/fix'), json);
    return printChecks(await client.request<NetworkCheck[]>('GET', '/v1/check'), json);
  },
};
