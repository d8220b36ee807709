// Topology files without root: the examples read as the lab expects, schema and reference errors
// name file, line and field, containerlab files map to sandboxes, bridges and links, and the plan
// decides names, addresses, etcd and daemon flags before anything is made.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LabFileError } from '../../src/errors.js';
import { Ajv } from 'ajv';
import { loadTopology, topologyFromText } from '../../src/lab/topology.js';
import { AJV_OPTIONS, SCHEMAS } from '../../src/lab/schema-validators.js';
import { defaultUnderlay, labNamespaces, planLab } from '../../src/lab/plan.js';
import { diffPlans } from '../../src/lab/changes.js';

const examples = path.resolve(import.meta.dirname, '../../examples/labs');

function problems(text: string): string[] {
  try {
    topologyFromText('lab.yml', text);
  } catch (err) {
    if (err instanceof LabFileError) return err.problems.map((p) => `${p.line} ${p.field}: ${p.reason}`);
    throw err;
  }
  throw new Error('expected the file to be refused');
}

describe('lab topology files', () => {
  it('ships schemas that ajv\'s meta-schema accepts (lab up skips that check for speed)', () => {
    const ajv = new Ajv({ ...AJV_OPTIONS, validateSchema: true });
    for (const [format, schema] of Object.entries(SCHEMAS)) expect(ajv.validateSchema(schema), `${format}: ${ajv.errorsText(ajv.errors)}`).toBe(true);
    expect(ajv.validateSchema({ type: 'object', properties: { a: { type: 'nonsense' } } })).toBe(false);
  });

  it('reads the triangle example: implicit host, routers, links with addresses and a shaped link, expectations', () => {
    const t = loadTopology(path.join(examples, 'triangle.yml'));
    expect(t.hosts).toEqual([{ name: 'local', firewall: 'none' }]);
    expect(t.networks.map((n) => [n.name, n.host, n.subnet, n.internal])).toEqual([
      ['lan1', 'local', '198.19.1.0/24', true], ['lan2', 'local', '198.19.2.0/24', true], ['lan3', 'local', '198.19.3.0/24', true],
    ]);
    expect(t.nodes.find((n) => n.name === 'r1')).toMatchObject({ kind: 'router', networks: [{ network: 'lan1', ip: '198.19.1.254' }] });
    expect(t.links[2]).toMatchObject({ name: 'r2:eth2--r3:eth2', rate: '100mbit', ends: [{ node: 'r2', ifname: 'eth2', address: '198.19.23.1/30' }, { node: 'r3', ifname: 'eth2' }] });
    expect(t.expect).toContainEqual({ from: 'h1', to: 'h2', port: 8080, reach: false });
    expect(t.expect[0]).toEqual({ from: 'h1', to: 'h2', reach: true });
  });

  it('names the line, field and reason of every schema problem', () => {
    const text = [
      'name: 1tri',            // 1: bad lab name
      'nodes:',                // 2
      '  a: {bogus: 1}',       // 3: unknown field
      '  B.1: {}',             // 4: bad node name
      'links:',                // 5
      '  - endpoints: ["a"]',  // 6: too few ends, bad end
      '    rate: fast',        // 7
    ].join('\n');
    expect(problems(text)).toEqual([
      "1 name: must start with a letter and hold only letters, digits, '_' and '-', at most 16 characters",
      '3 nodes.a.bogus: unknown field (supported here: host, kind, networks, sysctls, routes, exec, env)',
      "4 nodes.B.1: name \"B.1\" must hold only letters, digits, '_' and '-' (not first), at most 24 characters",
      '6 links[0].endpoints: must NOT have fewer than 2 items',
      '6 links[0].endpoints[0]: must be NODE:INTERFACE, e.g. r1:eth1 (an interface name has at most 15 characters)',
      '7 links[0].rate: must be a rate such as 100mbit, 1gbit or 500kbps',
    ]);
  });

  it('a node\'s network in another tool\'s {name, ip} form is one problem with the form to write, not one per key', () => {
    const text = 'name: x\nnetworks: {lan: {}}\nnodes:\n  a: {networks: [{name: lan, ip: 198.19.1.5}, {name: lan}, {lan: 5}]}\n';
    expect(problems(text)).toEqual([
      '4 nodes.a.networks[0]: must be a network name or {NETWORK: {ip: ADDRESS}}; write {lan: {ip: 198.19.1.5}} or just lan',
      '4 nodes.a.networks[1]: must be a network name or {NETWORK: {ip: ADDRESS}}; write {lan: null} or just lan',
      '4 nodes.a.networks[2]: must be a network name or {NETWORK: {ip: ADDRESS}}',
    ]);
  });

  it('says what is wrong with an empty file and with a file of several YAML documents', () => {
    expect(problems('')).toEqual(['1 : the file is empty: a topology has at least a name and nodes']);
    expect(problems('name: a\nnodes: {n1: {}}\n---\nname: b\n')).toEqual(['3 : YAML: the file holds several documents (separated by ---); a topology is one']);
  });

  it('reports YAML syntax errors with their line', () => {
    expect(problems('name: x\nnodes:\n  a: {host: [\n')[0]).toMatch(/^\d+ : YAML: /);
    expect(problems('name: x\nname: y\n')).toEqual([expect.stringMatching(/^2 : YAML: Map keys must be unique/)]);
  });

  it('checks references, addresses and interface names after the schema, each with its line', () => {
    const text = `name: tri
hosts: {h1: {}, h2: {}}
networks:
  lan1: {host: h1, subnet: 198.19.1.0/24}
  lan2: {subnet: 198.19.2.1/24}
nodes:
  a: {host: h1, networks: [lan1, {lan1: {ip: 198.19.9.1}}]}
  b: {host: h3, networks: [lan9]}
  c: {networks: [lan1], sysctls: {kernel.pid_max: 1}}
  underlay: {host: h1}
links:
  - endpoints: ["a:eth0", "c:eth1"]
  - endpoints: ["a:eth5", "b:eth1"]
expect:
  - {from: a, to: zz}
`;
    expect(problems(text)).toEqual([
      '5 networks.lan2: host is required: a bridge network belongs to one host and the lab has several (h1, h2)',
      '5 networks.lan2.subnet: 198.19.2.1/24 has host bits set: did you mean 198.19.2.0/24?',
      '7 nodes.a.networks[1]: network lan1 is listed twice',
      "7 nodes.a.networks[1].lan1.ip: 198.19.9.1 is not inside lan1's subnet 198.19.1.0/24",
      '8 nodes.b.host: no host "h3" (hosts: h1, h2)',
      '8 nodes.b.networks[0]: no network "lan9" (networks: lan1, lan2)',
      '9 nodes.c: host is required: the lab has several hosts (h1, h2)',
      "9 nodes.c.sysctls.kernel.pid_max: only net.* settings can be set (they are the ones that belong to the node's namespace)",
      '10 nodes.underlay: a node cannot be named "underlay": the name is taken by the lab itself',
      '12 links[0].endpoints[0]: node a already has an interface eth0 (its networks take eth0, eth1; links use other names)',
      '13 links[1].endpoints: the ends are on different hosts (h1, h3): a link joins two nodes of one host; join nodes across hosts with an overlay network',
      '15 expect[0].to: no node "zz", and not an address',
    ]);
  });
});

describe('lab topology files: what the daemons would refuse halfway through up', () => {
  it('refuses fixed addresses that are the subnet\'s edges, the gateway or another node\'s, lo as a link end, and bad shaping, each with its line', () => {
    const text = `name: fx
networks:
  lan: {subnet: 198.19.5.0/24}
  gw: {subnet: 198.19.6.0/24, gateway: 198.19.6.254}
nodes:
  a: {networks: [{lan: {ip: 198.19.5.1}}, {gw: {ip: 198.19.6.254}}]}
  b: {networks: [{lan: {ip: 198.19.5.0}}, {gw: {ip: 198.19.6.1}}]}
  c: {networks: [{lan: {ip: 198.19.5.255}}, {gw: {ip: 198.19.6.1}}]}
links:
  - endpoints: ["a:lo", "host:lo"]
  - endpoints: ["a:p1", "b:p1"]
    jitter: 1ms
`;
    expect(problems(text)).toEqual([
      "6 nodes.a.networks[0].lan.ip: 198.19.5.1 is network lan's gateway (the subnet's first address, unless gateway is given)",
      "6 nodes.a.networks[1].gw.ip: 198.19.6.254 is network gw's gateway",
      '7 nodes.b.networks[0].lan.ip: 198.19.5.0 is the network address of 198.19.5.0/24',
      '8 nodes.c.networks[0].lan.ip: 198.19.5.255 is the broadcast address of 198.19.5.0/24',
      "8 nodes.c.networks[1].gw.ip: 198.19.6.1 on network gw is node b's already",
      '10 links[0].endpoints[0]: lo is the loopback interface every namespace has; a link end is a new interface: name it otherwise',
      '10 links[0].endpoints[1]: lo is the loopback interface every namespace has; a link end is a new interface: name it otherwise',
      '12 links[1].jitter: jitter needs a delay',
    ]);
  });
});

describe('containerlab files', () => {
  it('maps kinds linux and bridge, mgmt, links and host: ends, with one warning for ignored fields', () => {
    const t = loadTopology(path.join(examples, 'clab.clab.yml'));
    expect(t.format).toBe('containerlab');
    expect(t.networks.map((n) => [n.name, n.subnet ?? null, n.internal])).toEqual([['mgmt', '198.19.250.0/24', false], ['br1', null, true]]);
    expect(t.nodes.map((n) => n.name)).toEqual(['n1', 'n2', 'n3']);
    expect(t.nodes.find((n) => n.name === 'n2')!.networks).toEqual([{ network: 'mgmt', ip: '198.19.250.12' }, { network: 'br1', ifname: 'eth2' }]);
    expect(t.links.map((l) => l.name)).toEqual(['n1:eth1--n2:eth1', 'n1:eth2--host:clab-n1']);
    expect(t.warnings).toEqual([expect.stringContaining('n1 (image), n2 (image, binds), n3 (image)')]);
  });

  it('refuses what it cannot run, by name and line', () => {
    const text = `name: c
topology:
  nodes:
    r1: {kind: nokia_srlinux}
    r2: {kind: linux, network-mode: host}
  links:
    - endpoints: ["r1:e1-1", "mgmt-net:r1-mgmt"]
`;
    expect(problems(text)).toEqual(['5 topology.nodes.r2.network-mode: not supported by cnmkit lab (supported here: kind, image, cmd, entrypoint, binds, labels, user, group, env, exec, mgmt-ipv4, mgmt-ipv6, sysctls)']);
    expect(problems(text.replace(', network-mode: host', ''))).toEqual([
      '4 topology.nodes.r1.kind: kind "nokia_srlinux" is not supported by cnmkit lab (supported: linux, bridge)',
      '7 topology.links[0].endpoints: endpoint mgmt-net:r1-mgmt is not supported by cnmkit lab (nodes, bridges and host:IFACE are)',
    ]);
  });

  it('refuses a network named after one every daemon has (it would be that one, with its subnet, not the file\'s)', () => {
    const text = 'name: t\nnetworks:\n  bridge: {subnet: 198.19.77.0/24}\n  lan: {}\nnodes:\n  a: {networks: [bridge, lan]}\n';
    expect(problems(text)).toEqual(['3 networks.bridge: bridge is the name of a network every host\'s daemon has (bridge, host, none): give the lab\'s network another name']);
    expect(problems(text.replace('bridge: {subnet', 'none: {subnet').replace('[bridge, lan]', '[none, lan]'))).toEqual(['3 networks.none: none is the name of a network every host\'s daemon has (bridge, host, none): give the lab\'s network another name']);
  });
});

describe('lab plan', () => {
  it('gives a one-host lab without overlay no underlay and no etcd, and its nodes namespaces NAME-NODE', () => {
    const p = planLab(loadTopology(path.join(examples, 'triangle.yml')), '/run/labs');
    expect(p.underlay).toBeUndefined();
    expect(p.etcd).toBeUndefined();
    expect(p.hosts[0]).toMatchObject({ ns: 'triangle-local', socket: '/run/labs/triangle/hosts/local/cnmkit.sock' });
    expect(p.hosts[0]!.daemonArgs).toEqual(expect.arrayContaining(['--netns-dir', '/run/netns', '--firewall-backend', 'none', '--bip', '198.19.255.1/24']));
    expect(p.hosts[0]!.daemonArgs).not.toContain('--cluster-store');
    expect(p.nodes.find((n) => n.name === 'r1')).toMatchObject({ sandbox: 'triangle-r1', sysctls: { 'net.ipv4.ip_forward': '1', 'net.ipv6.conf.all.forwarding': '1' } });
    expect(labNamespaces(p)).toEqual(['triangle-r1', 'triangle-r2', 'triangle-r3', 'triangle-h1', 'triangle-h2', 'triangle-h3', 'triangle-local']);
  });

  it('plans the underlay, etcd on its bridge address, and the daemons\' cluster-store flags for an overlay lab', () => {
    const p = planLab(loadTopology(path.join(examples, 'overlay.yml')), '/run/labs');
    const prefix = defaultUnderlay('overlay');
    expect(prefix).toMatch(/^198\.18\.\d+\.0\/24$/);
    const base = prefix.split('.').slice(0, 3).join('.');
    expect(p.underlay).toMatchObject({ ns: 'overlay-underlay', prefix, bridgeAddress: `${base}.254/24` });
    expect(p.etcd).toMatchObject({ managed: true, url: `etcd://${base}.254:2379`, dataDir: '/run/labs/overlay/etcd' });
    expect(p.hosts.map((h) => h.underlayAddress)).toEqual([`${base}.1/24`, `${base}.2/24`]);
    // The VTEP as an address (the host's on the underlay): the daemon starts before its leg is made.
    for (const [i, h] of p.hosts.entries()) expect(h.daemonArgs.join(' ')).toContain(`--cluster-store etcd://${base}.254:2379 --advertise-addr ${base}.${i + 1}`);
    expect(p.networks.find((n) => n.name === 'mesh')).toMatchObject({ hosts: ['h1', 'h2'], body: { driver: 'overlay', subnet: '198.19.100.0/24' } });
    expect(p.networks.find((n) => n.name === 'lan1')!.hosts).toEqual(['h1']);
  });

  it('gives different labs different default underlays, always inside 198.18.0.0/16', () => {
    const seen = new Set(['a', 'b', 'tri', 'overlay', 'lab1', 'lab2'].map(defaultUnderlay));
    expect(seen.size).toBeGreaterThan(4);
    for (const u of seen) expect(u).toMatch(/^198\.18\.(\d|[1-9]\d|1\d\d|2[0-4]\d|25[0-4])\.0\/24$/);
  });

  it('sorts a changed file into what up applies and what it refuses, naming each refusal', () => {
    const before = planLab(loadTopology(path.join(examples, 'triangle.yml')), '/r');
    const text = (extra: string) => `name: triangle\nnetworks:\n  lan1: {subnet: 198.19.1.0/24${extra}}\nnodes:\n  r1: {networks: [lan1], exec: ['true']}\n  n9: {networks: [lan1]}\n`;
    const after = planLab(topologyFromText('t.yml', text('')), '/r');
    const c = diffPlans(before, after);
    expect(c.removedNodes.map((n) => n.name)).toEqual(['r2', 'r3', 'h1', 'h2', 'h3']);
    expect(c.removedNetworks.map((n) => n.name)).toEqual(['lan2', 'lan3']);
    expect(c.removedLinks).toHaveLength(3);
    expect(c.detach).toEqual([{ node: 'r1', host: 'local', sandbox: 'triangle-r1', network: 'lan1' }]);
    expect(c.execChanged).toEqual(['r1']);
    const refused = planLab(topologyFromText('t.yml', text(', gateway: 198.19.1.9')), '/r');
    expect(() => diffPlans(before, refused)).toThrow(/cannot be made in place[^]*network lan1: its definition changed/);
  });
});
