// Entry point of the `cnmkit` command: every command, dispatched by ./dispatch.ts (exit codes there).
// `cnmkit lab …` runs from its own, smaller entry (./lab-main.ts) when the build is used.
import type { CommandGroup } from './dispatch.js';
import { main } from './dispatch.js';
import { daemon } from './commands/daemon.js';
import { networkCommands } from './commands/network.js';
import { connect, disconnect, sandboxCommands } from './commands/sandbox.js';
import { exec, run } from './commands/run.js';
import { port } from './commands/port.js';
import { firewallCommands } from './commands/firewall.js';
import { clusterCommands } from './commands/cluster.js';
import { labGroup } from './commands/lab.js';
import { check } from './commands/check.js';

const groups: Record<string, CommandGroup> = {
  network: { summary: 'Manage networks', commands: networkCommands },
  sandbox: { summary: 'Manage sandboxes (network namespaces)', commands: sandboxCommands },
  firewall: { summary: 'Manage the firewall rules cnmkit owns', commands: firewallCommands },
  cluster: { summary: 'Inspect cluster mode (hosts registered in etcd)', commands: clusterCommands },
  lab: labGroup,
};

void main({ groups, top: [daemon, connect, disconnect, run, exec, port, check] });
