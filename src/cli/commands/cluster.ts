// `cnmkit cluster hosts|status`: the hosts registered in the cluster store (liveness, lease
// expiry, VTEP) and this daemon's own cluster state.
import type { ClusterStatusReport, HostInfo } from '../../cluster/types.js';
import { Client, socketPath } from '../../client/index.js';
import { type Command, expectPositionals, FORMAT_HELP, formatOption, SOCKET_HELP, socketOption, wantJson } from '../command.js';
import { printJson, table } from '../format.js';

const hosts: Command = {
  name: 'hosts',
  summary: 'List the hosts registered in the cluster store.',
  usage: 'cnmkit cluster hosts [OPTIONS]',
  help: [FORMAT_HELP, SOCKET_HELP],
  options: { ...socketOption, ...formatOption },
  async run(v, pos) {
    expectPositionals(this, pos, 0);
    const json = wantJson(v);
    const list = await new Client(socketPath(v.socket as string | undefined)).request<HostInfo[]>('GET', '/v1/cluster/hosts');
    if (json) printJson(list);
    else {
      const rows = list.map((h) => [`${h.id}${h.self ? ' *' : ''}`, h.hostname, h.vtepInterface === null ? `${h.vtep} (on no interface here)` : h.vtep, h.state, `${h.ttl}s of ${h.grantedTtl}s`, String(h.pid), h.started]);
      console.log(table(['ID', 'HOSTNAME', 'VTEP', 'STATE', 'LEASE EXPIRES IN', 'PID', 'STARTED'], rows));
    }
    return 0;
  },
};

const status: Command = {
  name: 'status',
  summary: "Show this daemon's cluster state: host id, VTEP, lease, store availability.",
  usage: 'cnmkit cluster status [OPTIONS]',
  help: [FORMAT_HELP, SOCKET_HELP],
  options: { ...socketOption, ...formatOption },
  async run(v, pos) {
    expectPositionals(this, pos, 0);
    const json = wantJson(v);
    const s = await new Client(socketPath(v.socket as string | undefined)).request<ClusterStatusReport>('GET', '/v1/cluster');
    if (json) printJson(s);
    else {
      console.log(`state: ${s.state}`);
      console.log(`store: ${s.store}`);
      if (s.error) console.log(s.unavailableSince ? s.error : `error: ${s.error}`);
      console.log(`host id: ${s.hostId}`);
      console.log(`vtep: ${s.vtep} (${s.vtepInterface ?? 'on no interface of this host that is up: overlay networks cannot be created or joined here until it is'})`);
      if (s.lease) console.log(`lease: ${s.lease.id} (TTL ${s.lease.ttl}s, last keep-alive ${s.lease.lastKeepAlive ?? 'none'})`);
      for (const c of s.conflicts) console.log(`conflict: ${c}`);
    }
    return 0;
  },
};

export const clusterCommands: Command[] = [hosts, status];
