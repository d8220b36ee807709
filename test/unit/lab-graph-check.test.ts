// The lab's picture and its check, without root: Graphviz's dot accepts the DOT and draws an SVG
// naming every node, network and address; the check picks the address on a shared network,
// programs each peer's MAC, and fails on a silent direct pair or a missed expectation.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTopology } from '../../src/lab/topology.js';
import { planLab } from '../../src/lab/plan.js';
import { labGraph, renderGraph, toDot } from '../../src/lab/graph.js';
import { checkLab, neighboursOf, pairsOf, type Prober } from '../../src/lab/check.js';
import type { LabState } from '../../src/lab/state.js';

const examples = path.resolve(import.meta.dirname, '../../examples/labs');

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
});
