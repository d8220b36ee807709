// `inspect` and `rm` are the same for every kind of object the API lists (networks, sandboxes):
// one factory makes both, so their output and errors stay alike. Both carry on past an object that
// fails and report each one (exit 1 if any failed), as docker does: inspect prints the others.
import { ApiError, Client, socketPath } from '../../client/index.js';
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
  /** `rm --force`: help line of the flag (the API's `?force=true`); no flag when absent. */
  forceHelp?: string;
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
      let failed = 0;
      for (const ref of pos) {
        try {
          const { data, warnings } = await client.requestWarned('GET', `${k.path}/${encodeURIComponent(ref)}`);
          // On stderr: stdout stays the JSON, and the exit status 0 (what is shown is right).
          for (const w of warnings) console.error(`Warning: ${w}`);
          out.push(data);
        } catch (err) {
          // As rm (and docker): the others are still shown; not reaching the daemon stops there.
          if (!(err instanceof ApiError) || err.status === 0) throw err;
          console.error(`Error: ${err.message}`);
          failed += 1;
        }
      }
      printJson(out);
      return failed > 0 ? 1 : 0;
    },
  };
}

/** Removal of objects that must exist (the API's DELETE is idempotent; the CLI says "not found" like docker). */
export function rmCommand(k: ObjectKind): Command {
  return {
    name: 'rm',
    summary: k.rmSummary,
    usage: `cnmkit ${k.noun} rm [OPTIONS] ${k.arg}...`,
    help: [...(k.forceHelp ? [k.forceHelp] : []), SOCKET_HELP],
    options: { ...socketOption, ...(k.forceHelp ? { force: { type: 'boolean', short: 'f' } } : {}) },
    async run(v, pos) {
      expectPositionals(this, pos, 1, Infinity);
      const client = new Client(socketPath(v.socket as string | undefined));
      const query = v.force ? '?force=true' : '';
      let failed = 0;
      for (const ref of pos) {
        try {
          await client.request('GET', `${k.path}/${encodeURIComponent(ref)}`);
          await client.request('DELETE', `${k.path}/${encodeURIComponent(ref)}${query}`);
          console.log(ref);
        } catch (err) {
          // Not reaching the daemon is the same for every object: stop there.
          if (!(err instanceof ApiError) || err.status === 0) throw err;
          console.error(`Error: ${err.message}`);
          failed += 1;
        }
      }
      return failed > 0 ? 1 : 0;
    },
  };
}
