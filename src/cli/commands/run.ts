// `cnmkit run` (a new sandbox, connected, running a command) and `cnmkit exec` (a command in an
// existing sandbox). Commands run with an argument array inside the sandbox's namespace:
// `ip netns exec` for named sandboxes (so /sys and /etc/netns match), nsenter for others.
import { spawn } from 'node:child_process';
import os from 'node:os';
import type { EndpointRecord, SandboxRecord } from '../../cnm/model.js';
import { Client, socketPath } from '../client.js';
import { type Command, expectPositionals, SOCKET_HELP, socketOption, UsageError } from '../command.js';

type Sandbox = SandboxRecord & { endpoints: EndpointRecord[] };

/** The command line that runs cmd inside the sandbox; a host sandbox is the daemon's own namespace. */
export async function argvIn(client: Client, sb: SandboxRecord, cmd: string[]): Promise<string[]> {
  if (sb.kind === 'host') {
    const { pid } = await client.request<{ pid: number }>('GET', '/v1/version');
    return ['nsenter', `--net=/proc/${pid}/ns/net`, '--', ...cmd];
  }
  if (sb.kind === 'named') return ['ip', 'netns', 'exec', sb.name, ...cmd];
  return ['nsenter', `--net=${sb.netnsPath}`, '--', ...cmd];
}

/** Runs argv with the terminal attached, forwarding SIGINT/SIGTERM; resolves to its exit code. */
export function runAttached(argv: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'inherit' });
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

export const run: Command = {
  name: 'run',
  summary: 'Create a sandbox, connect it to networks, run a command in it, and remove it when the command ends.',
  usage: 'cnmkit run [OPTIONS] -- CMD [ARG...]',
  help: [
    '      --name NAME        sandbox name (default: generated)',
    '      --network N        network to connect (repeatable; default: bridge if it exists, else none)',
    '  -p, --publish SPEC     publish a port on the first network, [IP:][HOST[-END]:]PORT[-END][/PROTO] (repeatable)',
    '      --ip IP            IPv4 address on the first network',
    '      --keep             keep the sandbox after the command ends',
    SOCKET_HELP,
  ],
  options: {
    ...socketOption, name: { type: 'string' }, network: { type: 'string', multiple: true }, publish: { type: 'string', short: 'p', multiple: true },
    ip: { type: 'string' }, keep: { type: 'boolean' },
  },
  passthrough: true,
  async run(v, pos, rest) {
    expectPositionals(this, pos, 0);
    if (rest.length === 0) throw new UsageError('run: give the command after --, e.g. cnmkit run -- sh');
    const client = new Client(socketPath(v.socket as string | undefined));
    let networks = (v.network as string[] | undefined) ?? [];
    if (networks.length === 0) {
      const all = await client.request<{ name: string }[]>('GET', '/v1/networks');
      networks = [all.some((n) => n.name === 'bridge') ? 'bridge' : 'none'];
    }
    const host = networks.includes('host');
    const sb = await client.request<Sandbox>('POST', '/v1/sandboxes', { ...(v.name ? { name: v.name } : {}), ...(host ? { host: true } : {}) });
    let code = 1;
    try {
      for (const [i, net] of networks.entries()) {
        const body: Record<string, unknown> = { sandbox: sb.id };
        if (i === 0 && v.publish) body.ports = v.publish;
        if (i === 0 && v.ip) body.ip = v.ip;
        await client.request('POST', `/v1/networks/${encodeURIComponent(net)}/connect`, body);
      }
      code = await runAttached(await argvIn(client, sb, rest));
    } finally {
      if (!v.keep) await client.request('DELETE', `/v1/sandboxes/${sb.id}`);
    }
    return code;
  },
};

export const exec: Command = {
  name: 'exec',
  summary: 'Run a command inside an existing sandbox.',
  usage: 'cnmkit exec [OPTIONS] SANDBOX -- CMD [ARG...]',
  help: [SOCKET_HELP],
  options: { ...socketOption },
  passthrough: true,
  async run(v, pos, rest) {
    expectPositionals(this, pos, 1);
    if (rest.length === 0) throw new UsageError('exec: give the command after --, e.g. cnmkit exec SANDBOX -- ip addr');
    const client = new Client(socketPath(v.socket as string | undefined));
    const sb = await client.request<Sandbox>('GET', `/v1/sandboxes/${encodeURIComponent(pos[0]!)}`);
    return runAttached(await argvIn(client, sb, rest));
  },
};
