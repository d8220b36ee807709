// The lab's picture and its check, without root: Graphviz's dot accepts the DOT and draws an SVG
// naming every node, network and address; the check picks the address on a shared network,
// programs each peer's MAC, and fails on a silent direct pair or a missed expectation; what has
// no address from the lab (a containerlab bridge's ports) is skipped, saying why.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { loadTopology } from '../../src/lab/topology.js';
import { planLab } from '../../src/lab/plan.js';
import { labGraph, renderGraph, toDot } from '../../src/lab/graph.js';
import { checkLab, goneNodes, neighboursOf, pairsOf, type Prober } from '../../src/lab/check.js';
import type { LabState } from '../../src/lab/state.js';
import { printCheck } from '../../src/lab/check-print.js';

const examples = path.resolve(import.meta.dirname, '../../examples/labs');

/** A prober whose every ping answers in 0.05 ms (each address asked noted in asked, as `sandbox>address`) and every TCP try gives tcp. */
function answering(asked: string[], tcp: boolean): Prober {
  return {
    async ping(jobs) {
      for (const j of jobs) asked.push(...j.addresses.map((a) => `${j.sandbox}>${a}`));
      return jobs.map((j) => j.addresses.map(() => 0.05));
    },
    async tcp() {
      return tcp;
    },
  };
}

describe('lab graph', () => {
  for (const file of ['triangle.yml', 'overlay.yml', 'clab.clab.yml']) {
    it(`draws ${file} from the file alone: dot accepts the DOT, the SVG names every node and address`, async () => {
      const t = loadTopology(path.join(examples, file));
      const g = labGraph(t);
      const dot = toDot(g);
      const check = spawnSync('dot', ['-Tcanon'], { input: dot, encoding: 'utf8' });
      expect(check.stderr).toBe('');
      expect(check.status).toBe(0);
      for (const h of t.hosts) expect(check.stdout).toContain(`cluster_${h.name}`);
      const svg = await renderGraph(g, 'svg');
      expect(svg).toMatch(/^<\?xml[^]*<svg[^]*<\/svg>\s*$/);
      for (const n of t.nodes) expect(svg).toContain(`>${n.name}</text>`);
      for (const l of t.links) for (const e of l.ends) if (e.address) expect(svg).toContain(e.address);
    });
  }

  it('writes mermaid and JSON with hosts, networks and links', async () => {
    const g = labGraph(loadTopology(path.join(examples, 'triangle.yml')));
    const mermaid = await renderGraph(g, 'mermaid');
    expect(mermaid.split('\n')[0]).toBe('flowchart LR');
    expect(mermaid).toContain('subgraph host_local["host local"]');
    expect(mermaid).toContain('node_r1 ---|"eth1 198.19.12.1/30 — eth1 198.19.12.2/30"| node_r2');
    const json = JSON.parse(await renderGraph(g, 'json'));
    expect(json.links[2]).toMatchObject({ name: 'r2:eth2--r3:eth2', settings: '100mbit' });
    expect(json.nodes.find((n: { name: string }) => n.name === 'h1').interfaces).toEqual([{ ifname: 'eth0', network: 'lan1', address: '198.19.1.10' }]);
  });
});

/** A lab in state form: a and b on lan, c behind a link with b. */
function state(): LabState {
  const plan = planLab(loadTopology(path.join(examples, 'triangle.yml')), '/r');
  plan.nodes = plan.nodes.filter((n) => ['h1', 'h2', 'r1'].includes(n.name));
  plan.topology.expect = [{ from: 'h1', to: 'h2', reach: true }, { from: 'h1', to: 'r1', port: 22, reach: false }];
  return {
    version: 1, name: 'triangle', file: '/f', phase: 'up', plan, daemons: {}, leftovers: [], execDone: [], created: '', updated: '',
    interfaces: {
      h1: [{ ifname: 'eth0', network: 'lan1', ipv4: '198.19.1.10/24', mac: '02:00:00:00:00:01' }],
      r1: [{ ifname: 'eth0', network: 'lan1', ipv4: '198.19.1.254/24', mac: '02:00:00:00:00:02' }, { ifname: 'eth1', link: 'l1', ipv4: '198.19.12.1/30', mac: '02:00:00:00:00:03' }],
      h2: [{ ifname: 'eth0', network: 'lan2', ipv4: '198.19.2.10/24', mac: '02:00:00:00:00:04' }, { ifname: 'eth1', link: 'l1', ipv4: '198.19.12.2/30', mac: '02:00:00:00:00:05' }],
    },
  };
}

describe('lab check', () => {
  it('tries each pair on the network or link they share, else the first address (routed)', () => {
    const s = state();
    const pairs = pairsOf(s.plan, s.interfaces);
    expect(pairs).toEqual(expect.arrayContaining([
      { from: 'h1', to: 'r1', address: '198.19.1.254', via: 'lan1' },
      { from: 'r1', to: 'h2', address: '198.19.12.2', via: 'l1' },
      { from: 'h1', to: 'h2', address: '198.19.2.10', via: 'routed' },
    ]));
    expect(pairs).toHaveLength(6);
  });

  it('gives every node a permanent entry for each peer on each segment, with the peer\'s MAC', () => {
    const s = state();
    const n = neighboursOf(s.plan, s.interfaces);
    expect(n.get('h1')).toEqual([{ dev: 'eth0', ip: '198.19.1.254', mac: '02:00:00:00:00:02' }]);
    expect(n.get('r1')).toEqual([{ dev: 'eth0', ip: '198.19.1.10', mac: '02:00:00:00:00:01' }, { dev: 'eth1', ip: '198.19.12.2', mac: '02:00:00:00:00:05' }]);
  });

  it('fails on a direct pair without answer and on a missed expectation, and passes a routed pair that does not answer', async () => {
    const s = state();
    const silent = new Set(['r1>198.19.1.10', 'h1>198.19.2.10']);
    const prober: Prober = {
      async ping(jobs) {
        return jobs.map((j) => j.addresses.map((a) => (silent.has(`${j.sandbox.replace('triangle-', '')}>${a}`) ? undefined : 0.05)));
      },
      async tcp() {
        return true;
      },
    };
    const r = await checkLab(s, { prober });
    expect(r.failures).toEqual([
      'r1 → h1 (198.19.1.10, on lan1): no answer',
      'expect h1 → h2 reach true: not reached (198.19.2.10)',
      'expect h1 → r1 port 22 reach false: reached (198.19.1.254)',
    ]);
    expect(r.pairs.find((p) => p.from === 'h1' && p.to === 'h2')).toMatchObject({ ok: false, via: 'routed' });
  });

  it('asks a direct pair that did not answer once more (passing when it answers then), and no routed pair', async () => {
    const s = state();
    const asked: string[] = [];
    // r1 → h1 answers only at its second echo (a path still converging); h1 → h2 (routed) never.
    const prober: Prober = {
      async ping(jobs) {
        return jobs.map((j) => j.addresses.map((a) => {
          const key = `${j.sandbox.replace('triangle-', '')}>${a}`;
          asked.push(key);
          if (key === 'h1>198.19.2.10') return undefined;
          return key === 'r1>198.19.1.10' && asked.filter((k) => k === key).length === 1 ? undefined : 0.05;
        }));
      },
      async tcp() {
        return false;
      },
    };
    const r = await checkLab(s, { prober });
    expect(asked.filter((k) => k === 'r1>198.19.1.10')).toHaveLength(2);
    expect(asked.filter((k) => k === 'h1>198.19.2.10')).toHaveLength(1);
    expect(r.pairs.find((p) => p.from === 'r1' && p.to === 'h1')).toMatchObject({ ok: true, rttMs: 0.05 });
    expect(r.failures).toEqual(['expect h1 → h2 reach true: not reached (198.19.2.10)']);
  });

  it('names a node whose namespace is gone and how to make it again, tries nothing from or to it, and checks the rest', async () => {
    const s = state();
    const asked: string[] = [];
    const prober: Prober = { ...answering(asked, false), hasNamespace: (sb) => sb !== 'triangle-h2' };
    const gone = goneNodes(s.plan, prober);
    expect(gone).toEqual(['h2']);
    const r = await checkLab(s, { prober, gone });
    expect(asked.sort()).toEqual(['triangle-h1>198.19.1.254', 'triangle-r1>198.19.1.10']);
    expect(r.gone).toEqual(['h2']);
    expect(r.failures).toEqual([
      'node h2: its namespace triangle-h2 is gone (deleted by hand?): no pair or expectation from or to it is tried; `cnmkit lab up /f` makes it again, with its networks and links',
      'expect h1 → h2 reach true: not tried (node h2\'s namespace is gone)',
    ]);
    expect(r.expect[1]).toMatchObject({ to: 'r1', ok: true });
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      printCheck(s, r);
      expect(String(log.mock.calls[0]![0])).toMatch(/^h2 +gone +gone +-$/m);
    } finally {
      log.mockRestore();
    }
  });

  it('gives a containerlab bridge\'s ports no address, and skips them (and a node left without any) saying why, not failing', async () => {
    const plan = planLab(loadTopology(path.join(examples, 'clab.clab.yml')), '/r');
    expect(plan.networks.find((n) => n.name === 'br1')!.body).toMatchObject({ driver: 'bridge', enableIPv4: false });
    expect(plan.networks.find((n) => n.name === 'mgmt')!.body.enableIPv4).toBeUndefined();
    const mgmt = (ip: string, mac: string) => ({ ifname: 'eth0', network: 'mgmt', ipv4: `${ip}/24`, mac });
    const s: LabState = {
      version: 1, name: 'clab', file: '/f', phase: 'up', plan, daemons: {}, leftovers: [], execDone: [], created: '', updated: '',
      interfaces: {
        n1: [mgmt('198.19.250.11', '02:00:00:00:00:01')],
        n2: [mgmt('198.19.250.12', '02:00:00:00:00:02'), { ifname: 'eth2', network: 'br1', mac: '02:00:00:00:00:03' }],
        // As if its mgmt leg were gone: a node with no address the lab gave.
        n3: [{ ifname: 'eth1', network: 'br1', mac: '02:00:00:00:00:04' }],
      },
    };
    // An expectation from the node without an address is still tried: its exec lines may give it one.
    plan.topology.expect = [{ from: 'n3', to: 'n1', reach: true }];
    const asked: string[] = [];
    const prober = answering(asked, true);
    const r = await checkLab(s, { prober });
    expect(asked.sort()).toEqual(['clab-n1>198.19.250.12', 'clab-n2>198.19.250.11', 'clab-n3>198.19.250.11']);
    expect(r.pairs.map((x) => `${x.from}>${x.to}`).sort()).toEqual(['n1>n2', 'n2>n1']);
    expect(r.expect).toEqual([{ from: 'n3', to: 'n1', address: '198.19.250.11', reach: true, got: true, ok: true }]);
    expect(r.failures).toEqual([]);
    expect(r.skipped).toEqual([
      { what: 'bridge br1 (n2:eth2, n3:eth1)', reason: 'a containerlab bridge: its ports get no address, as in containerlab (addresses its nodes\' exec lines set are not known to the check)' },
      { what: 'link n1:eth1--n2:eth1', reason: 'no addresses given (addresses its nodes\' exec lines set are not known to the check)' },
      { what: 'link n1:eth2--host:clab-n1', reason: 'no addresses given (addresses its nodes\' exec lines set are not known to the check)' },
      { what: 'node n3', reason: 'it has no IPv4 address the lab gave: no pair from or to it is tried' },
    ]);
    expect(neighboursOf(plan, s.interfaces).get('n3')).toEqual([]);
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    let text: string;
    try {
      printCheck(s, r);
      text = log.mock.calls.map((c) => String(c[0])).join('\n');
    } finally {
      log.mockRestore();
    }
    expect(text).toContain('\nskipped (no address from the lab):\n  bridge br1 (n2:eth2, n3:eth1): a containerlab bridge: its ports get no address');
    expect(text).toMatch(/lab clab check: 2\/2 pairs answered, 1\/1 expectations met, 4 skipped, 0 failure\(s\) in /);
  });
});
