// `inspect` and `rm` are the same for every kind of object the API lists (networks, sandboxes):
// one factory makes both, so their output and errors stay alike.
import { Client, socketPath } from '../client.js';
import { type Command, expectPositionals, FORMAT_HELP, formatOption, SOCKET_HELP, socketOption, wantJson } from '../command.js';
import { printJson } from '../format.js';

export interface ObjectKind {
  /** `network`, `sandbox`. */
  noun: string;
  /** `NETWORK`, `SANDBOX`. */
  arg: string;
  /** API collection path: `/v1/networks`. */
  path: string;
  rmSummary: string;
}

export function inspectCommand(k: ObjectKind): Command {
  return {
    name: 'inspect',
    summary: `Show one or more ${k.noun}s in full (JSON).`,
    usage: `cnmkit ${k.noun} inspect [OPTIONS] ${k.arg}...`,
    help: [FORMAT_HELP, SOCKET_HELP],
    options: { ...socketOption, ...formatOption },
    async run(v, pos) {
      expectPositionals(this, pos, 1, Infinity);
      wantJson(v);
      const client = new Client(socketPath(v.socket as string | undefined));
      const out = [];
      for (const ref of pos) out.push(await client.request('GET', `${k.path}/${encodeURIComponent(ref)}`));
      printJson(out);
      return 0;
    },
  };
}

/** Removal of objects that must exist (the API's DELETE is idempotent; the CLI says "not found" like docker). */
export function rmCommand(k: ObjectKind): Command {
  return {
    name: 'rm',
    summary: k.rmSummary,
    usage: `cnmkit ${k.noun} rm [OPTIONS] ${k.arg}...`,
    help: [SOCKET_HELP],
    options: { ...socketOption },
    async run(v, pos) {
      expectPositionals(this, pos, 1, Infinity);
      const client = new Client(socketPath(v.socket as string | undefined));
      for (const ref of pos) {
        await client.request('GET', `${k.path}/${encodeURIComponent(ref)}`);
        await client.request('DELETE', `${k.path}/${encodeURIComponent(ref)}`);
        console.log(ref);
      }
      return 0;
    },
  };
}
