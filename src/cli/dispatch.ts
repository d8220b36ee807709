// The `cnmkit` command's dispatch, shared by its two entry points (main.ts: every command;
// lab-main.ts: the lab group alone, for a smaller bundle): help, version, the command found and
// its flags parsed, and the exit code — 0 ok, 1 error, 2 usage, and for run/exec the command's own
// (127 when it does not exist, 126 when it cannot be run). Errors print the field and the reason
// the daemon gave.
import { ApiError } from '../client/index.js';
import { type Command, helpText, parse, usageMessage, UsageError } from './command.js';
import { CnmkitError } from '../errors.js';
import { VERSION } from '../version.js';

export interface CommandGroup {
  summary: string;
  commands: Command[];
}

export interface Commands {
  groups: Record<string, CommandGroup>;
  top: Command[];
}

function mainHelp(c: Commands): string {
  const lines = ['Usage: cnmkit [--socket PATH] COMMAND [OPTIONS]', '', 'Container networking in the image of Docker\'s libnetwork.', '', 'Commands:'];
  for (const [name, g] of Object.entries(c.groups)) lines.push(`  ${name.padEnd(12)} ${g.summary} (${g.commands.map((x) => x.name).join(', ')})`);
  for (const x of c.top) lines.push(`  ${x.name.padEnd(12)} ${x.summary}`);
  lines.push('', 'Run `cnmkit COMMAND --help` for more on a command. --socket (the daemon\'s socket) may come before the command too.');
  return lines.join('\n');
}

function groupHelp(name: string, g: CommandGroup): string {
  return [`Usage: cnmkit ${name} COMMAND`, '', g.summary, '', 'Commands:', ...g.commands.map((x) => `  ${x.name.padEnd(10)} ${x.summary}`)].join('\n');
}

/**
 * argv without a leading `--socket PATH` (or `--socket=PATH`), as `docker -H` goes before the
 * command; and those words, which go to the command's own options.
 */
function leadingSocket(argv: string[]): { argv: string[]; socket: string[] } {
  if (argv[0]?.startsWith('--socket=')) return { argv: argv.slice(1), socket: [argv[0]] };
  if (argv[0] !== '--socket') return { argv, socket: [] };
  if (argv[1] === undefined || argv[1].startsWith('-')) throw new UsageError('flag needs an argument: --socket\nSee \'cnmkit --help\'.');
  return { argv: argv.slice(2), socket: argv.slice(0, 2) };
}

async function dispatch(c: Commands, all: string[]): Promise<number> {
  const { argv, socket } = leadingSocket(all);
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    console.log(mainHelp(c));
    return first === undefined ? 2 : 0;
  }
  if (first === '--version' || first === 'version') {
    console.log(`cnmkit ${VERSION}`);
    return 0;
  }
  let cmd: Command | undefined;
  let args = rest;
  const group = c.groups[first];
  if (group) {
    const [sub, ...subRest] = rest;
    if (sub === undefined || sub === '--help' || sub === '-h') {
      console.log(groupHelp(first, group));
      return sub === undefined ? 2 : 0;
    }
    cmd = group.commands.find((x) => x.name === sub || (x.name === 'ls' && sub === 'list') || (x.name === 'rm' && sub === 'remove'));
    if (!cmd && sub.startsWith('-')) {
      const names = group.commands.map((x) => x.name).join(', ');
      throw new UsageError(`"cnmkit ${first}" takes a command (${names}) before its options: cnmkit ${first} COMMAND ${sub} …\nSee 'cnmkit ${first} --help'.`);
    }
    if (!cmd) throw new UsageError(`unknown command "cnmkit ${first} ${sub}"\nSee 'cnmkit ${first} --help'.`);
    args = subRest;
  } else {
    cmd = c.top.find((x) => x.name === first);
    if (!cmd) throw new UsageError(`unknown command ${JSON.stringify(first)}\nSee 'cnmkit --help'.`);
  }
  const { values, positionals, rest: passthrough } = parse(cmd, [...socket, ...args]);
  if (values.help) {
    console.log(helpText(cmd));
    return 0;
  }
  return cmd.run(values, positionals, passthrough);
}

/** Runs the command process.argv names; no top-level await, as the build also bundles the entries as CommonJS. */
export async function main(c: Commands): Promise<void> {
  try {
    process.exitCode = await dispatch(c, process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(usageMessage(err));
      process.exitCode = 2;
    } else if (err instanceof ApiError || err instanceof CnmkitError) {
      console.error(`Error: ${err.message}`);
      process.exitCode = 1;
    } else {
      console.error(`Error: ${(err as Error).stack ?? String(err)}`);
      process.exitCode = 1;
    }
  }
}
