// A small command framework over node:util parseArgs: each command declares its options and
// usage, gets `--help` for free, and reports usage errors with exit code 2.
import { parseArgs, type ParseArgsConfig } from 'node:util';

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** Help lines for each option, in order. */
  help: string[];
  options: Options;
  /** Allow positionals after `--` (the command to run). */
  passthrough?: boolean;
  run(values: Values, positionals: string[], rest: string[]): Promise<number>;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const socketOption: Options = { socket: { type: 'string' } };
export const formatOption: Options = { format: { type: 'string' } };
export const SOCKET_HELP = '      --socket PATH      the daemon socket (default $CNMKIT_SOCKET or /run/cnmkit/cnmkit.sock)';
export const FORMAT_HELP = '      --format json      print JSON instead of a table';

export function helpText(cmd: Command): string {
  return [`Usage: ${cmd.usage}`, '', cmd.summary, '', 'Options:', ...cmd.help, '  -h, --help             show this help'].join('\n');
}

export function parse(cmd: Command, argv: string[]): { values: Values; positionals: string[]; rest: string[] } {
  const dd = argv.indexOf('--');
  const head = cmd.passthrough && dd >= 0 ? argv.slice(0, dd) : argv;
  const rest = cmd.passthrough && dd >= 0 ? argv.slice(dd + 1) : [];
  try {
    const { values, positionals } = parseArgs({
      args: head,
      options: { ...cmd.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
    return { values: values as Values, positionals, rest };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function wantJson(values: Values): boolean {
  const f = values.format;
  if (f === undefined) return false;
  if (f !== 'json') throw new UsageError(`--format: unknown format ${JSON.stringify(f)} (only "json")`);
  return true;
}

/** Splits repeated `key=value` flags into a map; the flag name goes into the error. */
export function keyValues(list: unknown, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of (list as string[] | undefined) ?? []) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`${flag}: expected key=value, got ${JSON.stringify(item)}`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

export function expectPositionals(cmd: Command, positionals: string[], min: number, max = min): void {
  if (positionals.length < min || positionals.length > max)
    throw new UsageError(`"${cmd.usage}" takes ${min === max ? min : `${min} to ${max}`} argument(s), got ${positionals.length}`);
}
