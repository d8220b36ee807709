// Entry point of the `cnmkit` command: dispatches to subcommands; exit codes 0 ok, 1 error,
// 2 usage, and for run/exec the command's own (127 when it does not exist, 126 when it cannot
// be run). Errors print the field and the reason the daemon gave.
import { ApiError } from '../client/index.js';
import { type Command, helpText, parse, usageMessage, UsageError } from './command.js';
import { daemon } from './commands/daemon.js';
import { networkCommands } from './commands/network.js';
import { connect, disconnect, sandboxCommands } from './commands/sandbox.js';
import { exec, run } from './commands/run.js';
import { port } from './commands/port.js';
import { firewallCommands } from './commands/firewall.js';
import { clusterCommands } from './commands/cluster.js';
import { labCommands } from './commands/lab.js';
import { check } from './commands/check.js';
import { CnmkitError } from '../errors.js';
import { VERSION } from '../version.js';

const groups: Record<string, { summary: string; commands: Command[] }> = {
  network: { summary: 'Manage networks', commands: networkCommands },
  sandbox: { summary: 'Manage sandboxes (network namespaces)', commands: sandboxCommands },
  firewall: { summary: 'Manage the firewall rules cnmkit owns', commands: firewallCommands },
  cluster: { summary: 'Inspect cluster mode (hosts registered in etcd)', commands: clusterCommands },
  lab: { summary: 'Network labs from a topology file', commands: labCommands },
};
const top: Command[] = [daemon, connect, disconnect, run, exec, port, check];

function mainHelp(): string {
  const lines = ['Usage: cnmkit COMMAND [OPTIONS]', '', 'Container networking in the image of Docker\'s libnetwork.', '', 'Commands:'];
  for (const [name, g] of Object.entries(groups)) lines.push(`  ${name.padEnd(12)} ${g.summary} (${g.commands.map((c) => c.name).join(', ')})`);
  for (const c of top) lines.push(`  ${c.name.padEnd(12)} ${c.summary}`);
  lines.push('', 'Run `cnmkit COMMAND --help` for more on a command.');
  return lines.join('\n');
}

function groupHelp(name: string, g: { summary: string; commands: Command[] }): string {
  return [`Usage: cnmkit ${name} COMMAND`, '', g.summary, '', 'Commands:', ...g.commands.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`)].join('\n');
}

async function dispatch(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    console.log(mainHelp());
    return first === undefined ? 2 : 0;
  }
  if (first === '--version' || first === 'version') {
    console.log(`cnmkit ${VERSION}`);
    return 0;
  }
  let cmd: Command | undefined;
  let args = rest;
  const group = groups[first];
  if (group) {
    const [sub, ...subRest] = rest;
    if (sub === undefined || sub === '--help' || sub === '-h') {
      console.log(groupHelp(first, group));
      return sub === undefined ? 2 : 0;
    }
    cmd = group.commands.find((c) => c.name === sub || (c.name === 'ls' && sub === 'list') || (c.name === 'rm' && sub === 'remove'));
    if (!cmd) throw new UsageError(`unknown command "cnmkit ${first} ${sub}"\nSee 'cnmkit ${first} --help'.`);
    args = subRest;
  } else {
    cmd = top.find((c) => c.name === first);
    if (!cmd) throw new UsageError(`unknown command ${JSON.stringify(first)}\nSee 'cnmkit --help'.`);
  }
  const { values, positionals, rest: passthrough } = parse(cmd, args);
  if (values.help) {
    console.log(helpText(cmd));
    return 0;
  }
  return cmd.run(values, positionals, passthrough);
}

/** The command's run; no top-level await, as the build also bundles this file as CommonJS (dist/cnmkit.cjs). */
async function main(): Promise<void> {
  try {
    process.exitCode = await dispatch(process.argv.slice(2));
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

void main();
