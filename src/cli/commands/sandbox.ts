// `cnmkit sandbox create|ls|inspect|rm` and `cnmkit connect|disconnect NETWORK SANDBOX`.
import type { EndpointRecord, SandboxRecord } from '../../core/model.js';
import { Client, socketPath } from '../../client/index.js';
import { type Command, expectPositionals, FORMAT_HELP, formatOption, SOCKET_HELP, socketOption, wantJson } from '../command.js';
import { printJson, table } from '../format.js';
import { shortId } from '../../core/refs.js';
import { inspectCommand, rmCommand } from './objects.js';

type Sandbox = SandboxRecord & { endpoints: EndpointRecord[] };

const create: Command = {
  name: 'create',
  summary: 'Create a sandbox: a new named namespace (see `ip netns`), an existing one, or the host\'s.',
  usage: 'cnmkit sandbox create [OPTIONS]',
  help: [
    '      --name NAME        sandbox name (default: generated); also the namespace name',
    '      --netns PATH|PID   adopt an existing namespace instead of creating one',
    '      --host             the host\'s own namespace',
    FORMAT_HELP, SOCKET_HELP,
  ],
  options: { ...socketOption, ...formatOption, name: { type: 'string' }, netns: { type: 'string' }, host: { type: 'boolean' } },
  async run(v, pos) {
    expectPositionals(this, pos, 0);
    const json = wantJson(v);
    const body: Record<string, unknown> = {};
    if (v.name !== undefined) body.name = v.name;
    if (v.netns !== undefined) body.netns = v.netns;
    if (v.host) body.host = true;
    const sb = await new Client(socketPath(v.socket as string | undefined)).request<Sandbox>('POST', '/v1/sandboxes', body);
    if (json) printJson(sb);
    else console.log(sb.name);
    return 0;
  },
};

const ls: Command = {
  name: 'ls',
  summary: 'List sandboxes.',
  usage: 'cnmkit sandbox ls [OPTIONS]',
  help: ['  -q, --quiet            only names', FORMAT_HELP, SOCKET_HELP],
  options: { ...socketOption, ...formatOption, quiet: { type: 'boolean', short: 'q' } },
  async run(v, pos) {
    expectPositionals(this, pos, 0);
    const json = wantJson(v);
    const sbs = await new Client(socketPath(v.socket as string | undefined)).request<Sandbox[]>('GET', '/v1/sandboxes');
    if (json) printJson(sbs);
    else if (v.quiet) for (const s of sbs) console.log(s.name);
    else {
      const rows = sbs.map((s) => [shortId(s.id), s.name, s.kind, s.netnsPath || '(host)', s.endpoints.map((e) => e.ipv4 ?? e.ipv6 ?? '').filter(Boolean).join(',') || '-']);
      console.log(table(['SANDBOX ID', 'NAME', 'KIND', 'NAMESPACE', 'ADDRESSES'], rows));
    }
    return 0;
  },
};

const kind = {
  noun: 'sandbox', arg: 'SANDBOX', path: '/v1/sandboxes', rmSummary: 'Remove sandboxes: leaves every network and deletes the namespace cnmkit created.',
  forceHelp: '  -f, --force            remove a sandbox even while `cnmkit run` uses it (that run reports it when it ends)',
};
const inspect = inspectCommand(kind);
const rm = rmCommand(kind);

export const sandboxCommands: Command[] = [create, ls, inspect, rm];

export const connect: Command = {
  name: 'connect',
  summary: 'Connect a sandbox to a network.',
  usage: 'cnmkit connect [OPTIONS] NETWORK SANDBOX',
  help: ['      --ip IP            IPv4 address (the network needs an explicit subnet range)', '      --ipv6 IP          IPv6 address', '      --mac MAC          MAC address (default: the driver\'s, 02:42 + the IPv4 address)', '  -p, --publish SPEC     publish a port (repeatable)', FORMAT_HELP, SOCKET_HELP],
  options: { ...socketOption, ...formatOption, ip: { type: 'string' }, ipv6: { type: 'string' }, mac: { type: 'string' }, publish: { type: 'string', short: 'p', multiple: true } },
  async run(v, pos) {
    expectPositionals(this, pos, 2);
    const json = wantJson(v);
    const body: Record<string, unknown> = { sandbox: pos[1] };
    if (v.ip !== undefined) body.ip = v.ip;
    if (v.ipv6 !== undefined) body.ipv6 = v.ipv6;
    if (v.mac !== undefined) body.mac = v.mac;
    if (v.publish !== undefined) body.ports = v.publish;
    const ep = await new Client(socketPath(v.socket as string | undefined)).request<EndpointRecord>('POST', `/v1/networks/${encodeURIComponent(pos[0]!)}/connect`, body);
    if (json) printJson(ep);
    else console.log([ep.ifname, ep.ipv4, ep.ipv6].filter(Boolean).join(' ') || ep.id);
    return 0;
  },
};

export const disconnect: Command = {
  name: 'disconnect',
  summary: 'Disconnect a sandbox from a network.',
  usage: 'cnmkit disconnect [OPTIONS] NETWORK SANDBOX',
  help: [SOCKET_HELP],
  options: { ...socketOption },
  async run(v, pos) {
    expectPositionals(this, pos, 2);
    await new Client(socketPath(v.socket as string | undefined)).request('POST', `/v1/networks/${encodeURIComponent(pos[0]!)}/disconnect`, { sandbox: pos[1] });
    return 0;
  },
};
