// `cnmkit firewall reload`: re-applies every rule the store justifies and removes the rules the
// project owns that nothing justifies (after a flush by hand, or a firewall restart).
import { Client, socketPath } from '../../client/index.js';
import { type Command, expectPositionals, FORMAT_HELP, formatOption, SOCKET_HELP, socketOption, wantJson } from '../command.js';
import { printJson } from '../format.js';

const reload: Command = {
  name: 'reload',
  summary: 'Re-apply every firewall rule from the store and remove the ones nothing owns.',
  usage: 'cnmkit firewall reload [OPTIONS]',
  help: [FORMAT_HELP, SOCKET_HELP],
  options: { ...socketOption, ...formatOption },
  async run(v, pos) {
    expectPositionals(this, pos, 0);
    const json = wantJson(v);
    const r = await new Client(socketPath(v.socket as string | undefined)).request<{ backend: string; removedOwners: string[]; notes: string[] }>('POST', '/v1/firewall/reload');
    if (json) printJson(r);
    else {
      console.log(`firewall (${r.backend}) reloaded`);
      for (const o of r.removedOwners) console.log(`removed rules of ${o}`);
      for (const n of r.notes) console.log(n);
    }
    return 0;
  },
};

export const firewallCommands: Command[] = [reload];
