// `cnmkit lab inspect` for people: the lab's hosts, networks, nodes and links as tables.
import type { LabInspect } from '../../lab/inspect.js';
import { table } from '../format.js';

export function printInspect(r: LabInspect): void {
  const lines = [`lab ${r.name} (${r.phase}) from ${r.file}`];
  if (r.underlay) lines.push(`underlay ${r.underlay.prefix} in namespace ${r.underlay.namespace}`);
  if (r.etcd) lines.push(`cluster store ${r.etcd.url}${r.etcd.pid ? ` (etcd pid ${r.etcd.pid}, ${r.etcd.running ? 'running' : 'not running'})` : ''}`);
  lines.push('', table(['HOST', 'NAMESPACE', 'UNDERLAY', 'DAEMON'], r.hosts.map((h) => [h.name, h.namespace, h.underlayAddress ?? '-', h.pid ? `pid ${h.pid} ${h.running ? 'running' : 'NOT RUNNING'}` : '-'])));
  lines.push('', table(['NETWORK', 'DRIVER', 'HOSTS', 'SUBNETS'], r.networks.map((n) => [n.name, n.driver, n.hosts.join(','), n.subnets.join(',') || '-'])));
  lines.push('', table(['NODE', 'HOST', 'KIND', 'INTERFACES'], r.nodes.map((n) => [n.name, n.host, n.kind,
    n.interfaces.map((i) => `${i.ifname}(${i.network ?? 'link'}) ${[i.ipv4, i.ipv6].filter(Boolean).join(' ') || '-'}`).join(', ') || '-'])));
  if (r.links.length > 0) lines.push('', table(['LINK', 'ENDS', 'SETTINGS'], r.links.map((l) => [l.name, l.ends.join(' <-> '), [l.mtu ? `mtu ${l.mtu}` : '', l.rate ?? '', l.delay ? `delay ${l.delay}` : '', l.loss ? `loss ${l.loss}` : ''].filter(Boolean).join(', ') || '-'])));
  console.log(lines.join('\n'));
}
