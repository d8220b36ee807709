// `cnmkit run` (a new sandbox, connected, running a command) and `cnmkit exec` (a command in an
// existing sandbox). The command is found here first (127 when it does not exist, 126 when it
// cannot be run, as docker), then run with an argument array inside the sandbox's namespace:
// `ip netns exec` for named sandboxes under /run/netns (so /sys and /etc/netns match), nsenter
// for the others (named ones under another --netns-dir included).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { EndpointRecord, SandboxRecord } from '../../core/model.js';
import { runLabels } from '../../api/run-label.js';
import { ApiError, Client, socketPath } from '../../client/index.js';
import { type Command, expectPositionals, SOCKET_HELP, socketOption, UsageError } from '../command.js';
import { mappingText, type PublishedPort } from '../format.js';
import { killProcessesInNetns } from '../../netns/pids.js';

type Sandbox = SandboxRecord & { endpoints: EndpointRecord[] };

/** The executable a command name stands for, searched in PATH like a shell; or why it cannot run. */
export function findExecutable(name: string, searchPath = process.env.PATH ?? ''): { file: string } | { code: 126 | 127; message: string } {
  const direct = name.includes('/');
  const candidates = direct ? [path.resolve(name)] : searchPath.split(':').filter((d) => d !== '').map((d) => path.join(d, name));
  let denied = false;
  for (const file of candidates) {
    try {
      if (!fs.statSync(file).isFile()) {
        denied ||= direct;
        continue;
      }
    } catch {
      continue;
    }
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return { file };
    } catch {
      denied = true;
    }
  }
  if (denied) return { code: 126, message: `exec: ${JSON.stringify(name)}: permission denied` };
  return { code: 127, message: `exec: ${JSON.stringify(name)}: ${direct ? 'no such file or directory' : 'executable file not found in $PATH'}` };
}

/** The command line that runs cmd inside the sandbox; a host sandbox is the daemon's own namespace. */
export async function argvIn(client: Client, sb: SandboxRecord, cmd: string[]): Promise<string[]> {
  if (sb.kind === 'host') {
    const { pid } = await client.request<{ pid: number }>('GET', '/v1/version');
    return ['nsenter', `--net=/proc/${pid}/ns/net`, '--', ...cmd];
  }
  // `ip netns exec` only where it finds the namespace (it also binds /etc/netns/NAME files);
  // a daemon with another --netns-dir recorded where its named sandboxes are.
  if (sb.kind === 'named' && sb.netnsPath === `/run/netns/${sb.name}`) return ['ip', 'netns', 'exec', sb.name, ...cmd];
  return ['nsenter', `--net=${sb.netnsPath}`, '--', ...cmd];
}

/** Runs argv with the terminal attached and env added to this process's, forwarding SIGINT/SIGTERM; resolves to its exit code. */
export function runAttached(argv: string[], env: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'inherit', env: { ...process.env, ...env } });
    const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
    const onInt = forward('SIGINT');
    const onTerm = forward('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    const done = (code: number): void => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve(code);
    };
    child.on('error', (err) => {
      console.error(`cnmkit: cannot run ${argv.join(' ')}: ${err.message}`);
      done(127);
    });
    child.on('exit', (code, signal) => done(code ?? 128 + (signal ? os.constants.signals[signal] : 0)));
  });
}

/**
 * Holds SIGINT and SIGTERM while a run sets up and tears down its sandbox: the first is noted
 * (`got`) and the run stops at its next step, removing the sandbox; a second one ends this process
 * at once, as the signal would. While passOn's function runs (the command), signals are left to
 * it (runAttached forwards them). Without this, a signal before the command started (while the
 * sandbox was being connected) ended the run and left the sandbox and its ports behind.
 */
function holdSignals(): { readonly got: NodeJS.Signals | undefined; passOn<T>(fn: () => Promise<T>): Promise<T>; release(): void } {
  let got: NodeJS.Signals | undefined;
  let passing = false;
  const on = (sig: NodeJS.Signals): void => {
    if (passing) return;
    if (got === undefined) {
      got = sig;
      return;
    }
    release();
    process.kill(process.pid, sig);
  };
  const release = (): void => {
    process.off('SIGINT', on);
    process.off('SIGTERM', on);
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
  const passOn = async <T>(fn: () => Promise<T>): Promise<T> => {
    passing = true;
    try {
      return await fn();
    } finally {
      passing = false;
    }
  };
  return { get got() { return got; }, passOn, release };
}

/** The command with its executable resolved, or the exit code that says why it cannot run. */
export function resolveCommand(rest: string[]): string[] | number {
  const found = findExecutable(rest[0]!);
  if ('file' in found) return [found.file, ...rest.slice(1)];
  console.error(`cnmkit: ${found.message}`);
  return found.code;
}

/** True when the sandbox is gone (someone ran `sandbox rm --force` while the command ran). */
async function vanished(client: Client, id: string): Promise<boolean> {
  try {
    await client.request('GET', `/v1/sandboxes/${id}`);
    return false;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return true;
    throw err;
  }
}

/** Connects sb to each network (ports and --ip on the first); prints the ports chosen to stderr. */
async function connectAll(client: Client, sb: Sandbox, networks: string[], publish: string[] | undefined, ip: string | undefined): Promise<void> {
  for (const [i, net] of networks.entries()) {
    const body: Record<string, unknown> = { sandbox: sb.id };
    if (i === 0 && publish) body.ports = publish;
    if (i === 0 && ip) body.ip = ip;
    const ep = await client.request<EndpointRecord>('POST', `/v1/networks/${encodeURIComponent(net)}/connect`, body);
    // stderr, so that the command's own output stays clean.
    for (const p of ep.ports as PublishedPort[]) console.error(mappingText(p));
  }
}

export const run: Command = {
  name: 'run',
  summary: 'Create a sandbox, connect it to networks, run a command in it, and remove it when the command ends.',
  usage: 'cnmkit run [OPTIONS] CMD [ARG...]',
  help: [
    '      --name NAME        sandbox name (default: generated)',
    '      --network N        network to connect (repeatable; default: bridge if it exists, else none)',
    '  -p, --publish SPEC     publish a port on the first network, [IP:][HOST[-END]:]PORT[-END][/PROTO] (repeatable);',
    '                         the host ports chosen are printed on stderr, e.g. 0.0.0.0:49153->80/tcp',
    '      --ip IP            IPv4 address on the first network',
    '      --keep             keep the sandbox after the command ends (otherwise it is removed, and any process',
    '                         the command left running in it is killed, as in a container that stops)',
    SOCKET_HELP,
    '  Options go before CMD; a `--` before CMD is allowed. Exit code: the command\'s own (127: not found, 126: cannot run).',
  ],
  options: {
    ...socketOption, name: { type: 'string' }, network: { type: 'string', multiple: true }, publish: { type: 'string', short: 'p', multiple: true },
    ip: { type: 'string' }, keep: { type: 'boolean' },
  },
  commandAfter: 0,
  async run(v, pos, rest) {
    expectPositionals(this, pos, 0);
    if (rest.length === 0) throw new UsageError('"cnmkit run" requires a command to run.', this);
    const cmd = resolveCommand(rest);
    if (typeof cmd === 'number') return cmd;
    const client = new Client(socketPath(v.socket as string | undefined));
    let networks = (v.network as string[] | undefined) ?? [];
    if (networks.length === 0) {
      const all = await client.request<{ name: string }[]>('GET', '/v1/networks');
      networks = [all.some((n) => n.name === 'bridge') ? 'bridge' : 'none'];
    }
    const host = networks.includes('host');
    const signals = holdSignals();
    try {
      const sb = await client.request<Sandbox>('POST', '/v1/sandboxes', { ...(v.name ? { name: v.name } : {}), ...(host ? { host: true } : {}), labels: runLabels() });
      let code = 1;
      try {
        if (signals.got === undefined) await connectAll(client, sb, networks, v.publish as string[] | undefined, v.ip as string | undefined);
        // Stopped before the command started: it is not started, and the sandbox goes as after it.
        code = signals.got === undefined ? await signals.passOn(async () => runAttached(await argvIn(client, sb, cmd))) : 128 + os.constants.signals[signals.got];
      } finally {
        if (await vanished(client, sb.id)) console.error(`cnmkit: sandbox ${sb.name} was removed while the command ran (\`cnmkit sandbox rm --force\`)`);
        else if (!v.keep) {
          // As a container's other processes end with it: what the command left running inside.
          if (!host) killProcessesInNetns([sb.netnsPath]);
          await client.request('DELETE', `/v1/sandboxes/${sb.id}?force=true`);
        }
      }
      return code;
    } finally {
      signals.release();
    }
  },
};

export const exec: Command = {
  name: 'exec',
  summary: 'Run a command inside an existing sandbox.',
  usage: 'cnmkit exec [OPTIONS] SANDBOX CMD [ARG...]',
  help: [SOCKET_HELP, '  Options go before SANDBOX; everything after SANDBOX is the command (a `--` there is allowed).'],
  options: { ...socketOption },
  commandAfter: 1,
  async run(v, pos, rest) {
    expectPositionals(this, pos, 1);
    if (rest.length === 0) throw new UsageError('"cnmkit exec" requires a command to run after SANDBOX.', this);
    const client = new Client(socketPath(v.socket as string | undefined));
    const sb = await client.request<Sandbox>('GET', `/v1/sandboxes/${encodeURIComponent(pos[0]!)}`);
    const cmd = resolveCommand(rest);
    if (typeof cmd === 'number') return cmd;
    return runAttached(await argvIn(client, sb, cmd));
  },
};
