// A small command framework over node:util parseArgs: each command declares its options and
// usage, gets `--help` for free, and reports usage errors (exit code 2) in words, with its usage.
// Commands that run a command (`run`, `exec`) stop reading options where that command begins.
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
  /**
   * Takes a command to run: options come first, then this many positionals (SANDBOX for exec),
   * then the command and its arguments, read as they are. A `--` before the command is allowed.
   */
  commandAfter?: number;
  run(values: Values, positionals: string[], rest: string[]): Promise<number>;
}

export class UsageError extends Error {
  constructor(
    message: string,
    /** The command whose usage to show with the message. */
    readonly command?: Command,
  ) {
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

/** The words that name a command: "cnmkit network rm". */
export function commandPath(cmd: Command): string {
  const words = cmd.usage.split(' ');
  const end = words.findIndex((w) => !/^[a-z][a-z-]*$/.test(w));
  return words.slice(0, end < 0 ? words.length : end).join(' ');
}

/** The text printed for a usage error: the problem, the command's usage and where to read more. */
export function usageMessage(err: UsageError): string {
  if (!err.command) return `cnmkit: ${err.message}`;
  const name = commandPath(err.command);
  return `${err.message}\nUsage: ${err.command.usage}\nSee '${name} --help'.`;
}

function optionFor(cmd: Command, token: string): { takesValue: boolean } | undefined {
  const eq = token.indexOf('=');
  const name = token.startsWith('--') ? token.slice(2, eq < 0 ? undefined : eq) : undefined;
  const all: Options = { ...cmd.options, help: { type: 'boolean', short: 'h' } };
  const entry = name !== undefined ? all[name] : Object.values(all).find((o) => o.short === token.slice(1, 2));
  if (!entry) return undefined;
  const inline = name !== undefined ? eq >= 0 : token.length > 2;
  return { takesValue: entry.type === 'string' && !inline };
}

/**
 * Splits argv at the command to run: options and `positionals` positionals before it, the command
 * after. A token that starts with '-' before the command is an option (a command never does).
 */
export function splitCommand(cmd: Command, argv: string[], positionals: number): { head: string[]; rest: string[] } {
  let seen = 0;
  for (let i = 0; i < argv.length; i += 1) {
    const token = argv[i] as string;
    if (token === '--') return { head: argv.slice(0, i), rest: argv.slice(i + 1) };
    if (token.startsWith('-') && token !== '-') {
      if (optionFor(cmd, token)?.takesValue) i += 1;
      continue;
    }
    if (seen === positionals) return { head: argv.slice(0, i), rest: argv.slice(i) };
    seen += 1;
  }
  return { head: argv, rest: [] };
}

/**
 * Joins a flag that takes a value with a next token that starts like a negative number (`-5`,
 * `-0.5`), as `--timeout=-5` / `-o-5`: parseArgs would read that token as a flag of its own, so
 * `--timeout -5` said "takes no value" where `--timeout=-5` reached the flag's own check. Now both
 * get the check's message (what the flag expects). No option of cnmkit is a digit.
 */
function joinNegativeValues(cmd: Command, argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i += 1) {
    const token = argv[i] as string;
    const next = argv[i + 1];
    if (token === '--') return [...out, ...argv.slice(i)];
    if (token.startsWith('-') && optionFor(cmd, token)?.takesValue && next !== undefined && /^-\.?[0-9]/.test(next)) {
      out.push(token.startsWith('--') ? `${token}=${next}` : `${token}${next}`);
      i += 1;
    } else out.push(token);
  }
  return out;
}

/** parseArgs' messages, said the way docker says them. */
function parseProblem(err: Error & { code?: string }): string {
  const option = /'(-[^ ']+)/.exec(err.message)?.[1] ?? '';
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown flag: ${option}`;
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    if (/argument missing/.test(err.message)) return `flag needs an argument: ${option}`;
    // The next token is a flag: the value was left out, or starts with '-' and needs '='.
    if (/ambiguous/.test(err.message)) return `flag needs an argument: ${option} (a value that starts with '-' is written ${option.startsWith('--') ? `${option}=VALUE` : `${option}VALUE`})`;
    return `flag ${option} takes no value`;
  }
  return err.message;
}

export function parse(cmd: Command, argv: string[]): { values: Values; positionals: string[]; rest: string[] } {
  const { head, rest } = cmd.commandAfter === undefined ? { head: argv, rest: [] } : splitCommand(cmd, argv, cmd.commandAfter);
  try {
    const { values, positionals } = parseArgs({
      args: joinNegativeValues(cmd, head),
      options: { ...cmd.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
    return { values: values as Values, positionals, rest };
  } catch (err) {
    throw new UsageError(parseProblem(err as Error), cmd);
  }
}

export function wantJson(values: Values): boolean {
  const f = values.format;
  if (f === undefined) return false;
  if (f !== 'json') throw new UsageError(`--format: unknown format ${JSON.stringify(f)} (only "json")`);
  return true;
}

/**
 * Splits repeated `key=value` flags into a map; the flag name goes into the error. bareKey: a
 * `key` without `=` is that key with an empty value, as docker reads `--opt encrypted`; an empty
 * key is refused either way.
 */
export function keyValues(list: unknown, flag: string, opts: { bareKey?: boolean } = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of (list as string[] | undefined) ?? []) {
    const eq = item.indexOf('=');
    if (eq < 0 && opts.bareKey && item !== '') {
      out[item] = '';
      continue;
    }
    if (eq <= 0) throw new UsageError(`${flag}: expected ${opts.bareKey ? 'key or key=value' : 'key=value'}, got ${JSON.stringify(item)}`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

function plural(n: number): string {
  return `${n} argument${n === 1 ? '' : 's'}`;
}

/** Refuses a wrong number of positionals, in docker's words: `"cnmkit network rm" requires at least 1 argument.` */
export function expectPositionals(cmd: Command, positionals: string[], min: number, max = min): void {
  const n = positionals.length;
  if (n >= min && n <= max) return;
  const name = `"${commandPath(cmd)}"`;
  if (max === 0) throw new UsageError(`${name} accepts no arguments.`, cmd);
  if (min === max) throw new UsageError(`${name} requires exactly ${plural(min)}.`, cmd);
  if (max === Infinity) throw new UsageError(`${name} requires at least ${plural(min)}.`, cmd);
  throw new UsageError(`${name} requires at least ${min} and at most ${plural(max)}.`, cmd);
}
