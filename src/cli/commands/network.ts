// `cnmkit network create|ls|inspect|rm|prune`, shaped like `docker network`.
import type { PruneResult } from '../../controller/controller.js';
import type { EndpointRecord, NetworkRecord } from '../../core/model.js';
import { Client, socketPath } from '../../client/index.js';
import { type Command, expectPositionals, FORMAT_HELP, formatOption, keyValues, SOCKET_HELP, socketOption, UsageError, wantJson } from '../command.js';
import { printJson, table } from '../format.js';
import { shortId } from '../../core/refs.js';
import { inspectCommand, rmCommand } from './objects.js';
import { checkNamed } from './check.js';

/** As the API gives it: a global network also carries what its driver describes (VNI, hosts). */
type Network = NetworkRecord & { endpoints: EndpointRecord[]; global?: { vni?: number } };

const create: Command = {
  name: 'create',
  summary: 'Create a network.',
  usage: 'cnmkit network create [OPTIONS] NAME',
  help: [
    '  -d, --driver D         driver: bridge, null, host, … (default: the daemon\'s default)',
    '      --subnet CIDR      IPv4 subnet (default: the next free default pool)',
    '      --ip-range CIDR    allocate container addresses from this part of the subnet',
    '      --gateway IP       IPv4 gateway of the subnet',
    '      --aux-address K=IP reserve an address (repeatable)',
    '      --ipv6             enable IPv6 (a ULA /64 when --subnet-v6 is not given)',
    '      --subnet-v6 CIDR   IPv6 subnet',
    '      --internal         no traffic in or out of the subnet',
    '  -o, --opt K[=V]        driver option (repeatable; K alone: an empty value)',
    '      --label K=V        label (repeatable)',
    FORMAT_HELP, SOCKET_HELP,
  ],
  options: {
    ...socketOption, ...formatOption,
    driver: { type: 'string', short: 'd' }, subnet: { type: 'string' }, 'ip-range': { type: 'string' }, gateway: { type: 'string' },
    'aux-address': { type: 'string', multiple: true }, ipv6: { type: 'boolean' }, 'subnet-v6': { type: 'string' },
    internal: { type: 'boolean' }, opt: { type: 'string', short: 'o', multiple: true }, label: { type: 'string', multiple: true },
  },
  async run(v, pos) {
    expectPositionals(this, pos, 1);
    const json = wantJson(v);
    const body: Record<string, unknown> = { name: pos[0] };
    const map: Array<[string, string]> = [['driver', 'driver'], ['subnet', 'subnet'], ['ip-range', 'ipRange'], ['gateway', 'gateway'], ['subnet-v6', 'subnetV6']];
    for (const [flag, key] of map) if (v[flag] !== undefined) body[key] = v[flag];
    if (v.ipv6 || v['subnet-v6']) body.enableIPv6 = true;
    if (v.internal) body.internal = true;
    if (v.opt) body.options = keyValues(v.opt, '--opt', { bareKey: true });
    if (v.label) body.labels = keyValues(v.label, '--label');
    if (v['aux-address']) body.auxAddresses = keyValues(v['aux-address'], '--aux-address');
    const { data: net, warnings } = await new Client(socketPath(v.socket as string | undefined)).requestWarned<Network>('POST', '/v1/networks', body);
    for (const w of warnings) console.error(`Warning: ${w}`);
    if (json) printJson(net);
    else console.log(net.id);
    return 0;
  },
};

const ls: Command = {
  name: 'ls',
  summary: 'List networks.',
  usage: 'cnmkit network ls [OPTIONS]',
  help: ['  -q, --quiet            only ids', FORMAT_HELP, SOCKET_HELP],
  options: { ...socketOption, ...formatOption, quiet: { type: 'boolean', short: 'q' } },
  async run(v, pos) {
    expectPositionals(this, pos, 0);
    const json = wantJson(v);
    const { data: nets, warnings } = await new Client(socketPath(v.socket as string | undefined)).requestWarned<Network[]>('GET', '/v1/networks');
    // On stderr: stdout stays the list (JSON unchanged), and the exit status 0 (what is listed is right).
    for (const w of warnings) console.error(`Warning: ${w}`);
    if (json) printJson(nets);
    else if (v.quiet) for (const n of nets) console.log(shortId(n.id));
    else {
      const vni = (n: Network): string => (n.global?.vni !== undefined ? String(n.global.vni) : '-');
      const rows = nets.map((n) => [shortId(n.id), n.name, n.driver, n.scope, vni(n), [...n.ipv4, ...n.ipv6].map((s) => s.subnet).join(',') || '-']);
      console.log(table(['NETWORK ID', 'NAME', 'DRIVER', 'SCOPE', 'VNI', 'SUBNETS'], rows));
    }
    return 0;
  },
};

const kind = { noun: 'network', arg: 'NETWORK', path: '/v1/networks', rmSummary: 'Remove one or more networks (refused while sandboxes are connected).' };
const inspectObjects = inspectCommand(kind);
const inspect: Command = {
  ...inspectObjects,
  summary: 'Show one or more networks in full (JSON); with --check, compare their kernel state with the store.',
  help: [
    '      --check            compare the kernel with the store: one line per difference, exit 1 on drift (3: something not compared)',
    '      --fix              with --check: repair what differs, then check again (as `cnmkit check --fix`, for the networks named)',
    ...inspectObjects.help,
  ],
  options: { ...inspectObjects.options, check: { type: 'boolean' }, fix: { type: 'boolean' } },
  run(v, pos) {
    if (v.fix === true && !v.check) throw new UsageError('--fix repairs what --check finds: give both (network inspect --check --fix NETWORK…)', this);
    if (!v.check) return inspectObjects.run(v, pos, []);
    expectPositionals(this, pos, 1, Infinity);
    return checkNamed(v, pos);
  },
};
const rm = rmCommand(kind);

const prune: Command = {
  name: 'prune',
  summary: "Remove every network that no sandbox uses (predefined networks and the Docker engine's stay).",
  usage: 'cnmkit network prune [OPTIONS]',
  help: [FORMAT_HELP, SOCKET_HELP],
  options: { ...socketOption, ...formatOption },
  async run(v, pos) {
    expectPositionals(this, pos, 0);
    const json = wantJson(v);
    const r = await new Client(socketPath(v.socket as string | undefined)).request<PruneResult>('POST', '/v1/networks/prune');
    if (json) printJson(r);
    else {
      for (const n of r.removed) console.log(`Deleted network ${n}`);
      for (const s of r.skipped) console.log(`Skipped network ${s.name}: ${s.reason}`);
    }
    return 0;
  },
};

export const networkCommands: Command[] = [create, ls, inspect, rm, prune];
