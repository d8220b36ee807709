// containerlab files as they are: `kind: linux` nodes become sandboxes (image, binds, cmd and the
// like are ignored, with one warning), `kind: bridge` nodes become bridge networks the lab makes
// without IPv4 (their ports get no address, as in containerlab: exec lines set what the user wants),
// `mgmt` a management bridge network that every node joins first (eth0, `mgmt-ipv4` addresses),
// links stay veth pairs, `host:IFACE` ends land in the namespace `lab up` ran in.
// Not supported, refused by name: other kinds, special endpoints (mgmt-net, macvlan), fields the
// schema does not list (network-mode, ports, startup-config, …).
import type { LabFileProblem } from '../errors.js';
import { LabFileError } from '../errors.js';
import { IMPLICIT_HOST, linkName, MACHINE, type LabTopology, type LinkSpec, type NetworkSpec, type NodeSpec, type Origins } from './model.js';
import type { LabSource } from './source.js';
import { endOf, str, strMap } from './fields.js';

type Obj = Record<string, unknown>;

/** containerlab's defaults: management network `clab` on 172.20.20.0/24. */
export const CLAB_MGMT = { network: 'clab', subnet: '172.20.20.0/24' } as const;
const IGNORED = ['image', 'cmd', 'entrypoint', 'binds', 'labels', 'user', 'group'];
const SUPPORTED_KINDS = ['linux', 'bridge'];

/** containerlab's precedence: the node's own fields over its kind's, over the defaults. */
function merged(topology: Obj, raw: Obj | null): Obj {
  const defaults = (topology.defaults ?? {}) as Obj;
  const kind = (raw?.kind ?? defaults.kind) as string | undefined;
  const kinds = (topology.kinds ?? {}) as Record<string, Obj | null>;
  const byKind = (kind && kinds[kind]) || {};
  const out: Obj = { ...defaults, ...byKind, ...(raw ?? {}) };
  out.env = { ...((defaults.env as Obj) ?? {}), ...((byKind.env as Obj) ?? {}), ...((raw?.env as Obj) ?? {}) };
  return out;
}

function mgmtNetwork(data: Obj): NetworkSpec {
  const m = (data.mgmt ?? {}) as Obj;
  const options: Record<string, string> = {};
  if (m.bridge) options['com.docker.network.bridge.name'] = str(m.bridge);
  if (m.mtu !== undefined) options['com.docker.network.driver.mtu'] = str(m.mtu);
  return {
    name: m.network ? str(m.network) : CLAB_MGMT.network, driver: 'bridge', host: IMPLICIT_HOST,
    subnet: m['ipv4-subnet'] ? str(m['ipv4-subnet']) : CLAB_MGMT.subnet, ...(m['ipv4-gw'] ? { gateway: str(m['ipv4-gw']) } : {}),
    ipv6: m['ipv6-subnet'] !== undefined, ...(m['ipv6-subnet'] ? { subnetV6: str(m['ipv6-subnet']) } : {}),
    // As in containerlab: the management network gives every node its default route.
    internal: false, options,
  };
}

/** Reads containerlab's layout (already shape-checked) into a LabTopology with its origins. */
export function fromClab(src: LabSource, data: Obj): { topo: LabTopology; origins: Origins } {
  const origins: Origins = new Map([['name', ['name']]]);
  const problems: LabFileProblem[] = [];
  const topology = data.topology as Obj;
  const mgmt = mgmtNetwork(data);
  const networks: NetworkSpec[] = [mgmt];
  const nodes: NodeSpec[] = [];
  const ignored = new Map<string, string[]>();
  for (const [name, raw] of Object.entries((topology.nodes ?? {}) as Record<string, Obj | null>)) {
    const at = ['topology', 'nodes', name];
    const n = merged(topology, raw);
    const kind = n.kind as string | undefined;
    if (!kind) problems.push(src.problem(at, 'kind is required (cnmkit lab runs kinds linux and bridge)'));
    else if (!SUPPORTED_KINDS.includes(kind)) problems.push(src.problem([...at, 'kind'], `kind ${JSON.stringify(kind)} is not supported by cnmkit lab (supported: ${SUPPORTED_KINDS.join(', ')})`));
    if (kind === 'bridge') {
      origins.set(`network:${name}`, at);
      // A layer-2 bridge, as containerlab's: no subnet, no address on its ports (exec lines may add them).
      networks.push({ name, driver: 'bridge', host: IMPLICIT_HOST, ipv4: false, ipv6: false, internal: true, options: {} });
      continue;
    }
    origins.set(`node:${name}`, at);
    const fields = IGNORED.filter((f) => n[f] !== undefined);
    if (fields.length > 0) ignored.set(name, fields);
    const attach = { network: mgmt.name, ...(n['mgmt-ipv4'] ? { ip: str(n['mgmt-ipv4']) } : {}), ...(n['mgmt-ipv6'] ? { ipv6: str(n['mgmt-ipv6']) } : {}) };
    nodes.push({
      name, host: IMPLICIT_HOST, kind: 'host', networks: [attach], sysctls: strMap(n.sysctls), routes: [],
      exec: ((n.exec as unknown[] | undefined) ?? []).map(str), env: strMap(n.env),
    });
  }
  const bridges = new Set(networks.slice(1).map((b) => b.name));
  const links: LinkSpec[] = [];
  ((topology.links ?? []) as Obj[]).forEach((l, i) => {
    const at = ['topology', 'links', i];
    const [a, b] = (l.endpoints as [string, string]).map((e) => endOf(e, undefined)) as [ReturnType<typeof endOf>, ReturnType<typeof endOf>];
    const special = [a, b].find((e) => ['mgmt-net', 'macvlan', 'ovs-bridge'].includes(e.node));
    if (special) {
      problems.push(src.problem([...at, 'endpoints'], `endpoint ${special.node}:${special.ifname} is not supported by cnmkit lab (nodes, bridges and host:IFACE are)`));
      return;
    }
    const onBridge = [a, b].filter((e) => bridges.has(e.node));
    if (onBridge.length === 2) {
      problems.push(src.problem([...at, 'endpoints'], 'a link between two bridges is not supported by cnmkit lab'));
      return;
    }
    if (onBridge.length === 1) {
      // A node's port on a bridge: the node joins the bridge network with that interface name.
      const bridge = onBridge[0]!;
      const end = bridge === a ? b : a;
      const node = nodes.find((n) => n.name === end.node);
      if (node) node.networks.push({ network: bridge.node, ifname: end.ifname });
      else problems.push(src.problem([...at, 'endpoints'], `${end.node === MACHINE ? 'a host: end' : `node ${JSON.stringify(end.node)}`} cannot join bridge ${bridge.node} (only linux nodes can)`));
      return;
    }
    origins.set(`link:${links.length}`, at);
    links.push({ name: linkName(a, b), ends: [a, b], ...(l.mtu !== undefined ? { mtu: Number(l.mtu) } : {}) });
  });
  if (problems.length > 0) throw new LabFileError(problems);
  const warnings = ignored.size === 0 ? [] : [
    `containerlab fields ignored (cnmkit lab makes sandboxes, not containers; exec runs with this machine's tools): ${[...ignored].map(([n, f]) => `${n} (${f.join(', ')})`).join(', ')}`,
  ];
  const topo: LabTopology = {
    name: str(data.name), format: 'containerlab', hosts: [{ name: IMPLICIT_HOST, firewall: 'none' }], networks, nodes, links, expect: [], warnings,
  };
  origins.set(`network:${mgmt.name}`, data.mgmt ? ['mgmt'] : ['name']);
  return { topo, origins };
}
