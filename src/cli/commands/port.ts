// `cnmkit port SANDBOX [PORT[/PROTO]]`: the ports a sandbox publishes, like `docker port` (one
// line per host port: `80/tcp -> 0.0.0.0:49153`; only the host side when a port is given).
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../../core/model.js';
import { Client, socketPath } from '../../client/index.js';
import { type Command, expectPositionals, FORMAT_HELP, formatOption, SOCKET_HELP, socketOption, UsageError, wantJson } from '../command.js';
import { expandPorts, hostAddress, printJson, type PublishedPort } from '../format.js';

type Sandbox = SandboxRecord & { endpoints: EndpointRecord[] };

/** `80` or `80/udp` → the container port and protocol (tcp by default). */
function parsePortFilter(text: string, cmd: Command): { port: number; proto: string } {
  const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/.exec(text);
  const port = Number(m?.[1]);
  if (!m || port < 1 || port > 65535) throw new UsageError(`invalid port ${JSON.stringify(text)}: expected PORT or PORT/PROTO, e.g. 80/tcp`, cmd);
  return { port, proto: m[2] ?? 'tcp' };
}

export const port: Command = {
  name: 'port',
  summary: 'List the ports a sandbox publishes, or the host address of one of them.',
  usage: 'cnmkit port [OPTIONS] SANDBOX [PORT[/PROTO]]',
  help: [FORMAT_HELP, SOCKET_HELP],
  options: { ...socketOption, ...formatOption },
  async run(v, pos) {
    expectPositionals(this, pos, 1, 2);
    const json = wantJson(v);
    const filter = pos[1] === undefined ? undefined : parsePortFilter(pos[1], this);
    const client = new Client(socketPath(v.socket as string | undefined));
    const sb = await client.request<Sandbox>('GET', `/v1/sandboxes/${encodeURIComponent(pos[0]!)}`);
    const networks = new Map((await client.request<NetworkRecord[]>('GET', '/v1/networks')).map((n) => [n.id, n.name]));
    const entries = sb.endpoints
      .flatMap((ep) => (ep.ports as PublishedPort[]).flatMap(expandPorts).map((p) => ({ ...p, network: networks.get(ep.networkId) ?? ep.networkId })))
      .filter((p) => !filter || (p.containerPort === filter.port && p.proto === filter.proto));
    if (filter && entries.length === 0) {
      console.error(`Error: no public port '${filter.port}/${filter.proto}' published for ${sb.name}`);
      return 1;
    }
    if (json) printJson(entries);
    else if (filter) for (const p of entries) console.log(`${hostAddress(p.hostIP)}:${p.hostPort}`);
    else for (const p of entries) console.log(`${p.containerPort}/${p.proto} -> ${hostAddress(p.hostIP)}:${p.hostPort}`);
    return 0;
  },
};
