// `cnmkit check` (every network) and `cnmkit network inspect --check NETWORK…`: the kernel state
// compared with the store, one line per difference (object, what, expected, found) or JSON with
// --format json, then a line for each thing that could not be compared (an overlay's peer entries
// while the cluster store is away), with why. Exit 0 when nothing differs, 1 on drift (as on any
// error), 3 when nothing differs but something could not be compared.
import type { NetworkCheck } from '../../controller/check.js';
import { Client, socketPath } from '../../client/index.js';
import { type Command, expectPositionals, FORMAT_HELP, formatOption, SOCKET_HELP, socketOption, wantJson, type Values } from '../command.js';
import { printJson, table } from '../format.js';

/** Exit status of a check that found no difference but could not compare something. */
const CHECK_INCOMPLETE = 3;

/** Prints what check found; returns the exit code (1 when anything differs, else 3 when anything was not compared). */
export function printChecks(checks: NetworkCheck[], json: boolean): number {
  const drift = checks.some((c) => c.items.length > 0);
  const unchecked = checks.flatMap((c) => c.unchecked ?? []);
  if (json) printJson(checks);
  else {
    if (!drift) {
      const scope = unchecked.length > 0 ? ' in what could be compared' : '';
      console.log(`no drift${scope}: ${checks.length} network${checks.length === 1 ? '' : 's'} checked (${checks.map((c) => c.network).join(', ')})`);
    } else {
      const rows = checks.flatMap((c) => c.items.map((i) => [c.network, i.object, i.what, i.expected, i.found]));
      console.log(table(['NETWORK', 'OBJECT', 'WHAT', 'EXPECTED', 'FOUND'], rows));
    }
    for (const u of unchecked) console.log(`not compared: ${u.object} ${u.what}: ${u.reason}`);
  }
  return drift ? 1 : unchecked.length > 0 ? CHECK_INCOMPLETE : 0;
}

/** `network inspect --check NETWORK…`: the check of each network named, in that order. */
export async function checkNamed(v: Values, refs: string[]): Promise<number> {
  const json = wantJson(v);
  const client = new Client(socketPath(v.socket as string | undefined));
  const out: NetworkCheck[] = [];
  for (const ref of refs) out.push(await client.request<NetworkCheck>('GET', `/v1/networks/${encodeURIComponent(ref)}/check`));
  return printChecks(out, json);
}

export const check: Command = {
  name: 'check',
  summary: 'Compare the kernel with what cnmkit recorded, for every network (exit 1 on drift, 3 when something could not be compared).',
  usage: 'cnmkit check [OPTIONS]',
  help: [FORMAT_HELP, SOCKET_HELP],
  options: { ...socketOption, ...formatOption },
  async run(v, pos) {
    expectPositionals(this, pos, 0);
    const json = wantJson(v);
    const checks = await new Client(socketPath(v.socket as string | undefined)).request<NetworkCheck[]>('GET', '/v1/check');
    return printChecks(checks, json);
  },
};
