// `cnmkit lab up|down|ls|inspect|exec|check|graph`: network labs from a topology file (cnmkit's
// own layout or containerlab's). The lab modules load only when a lab command runs.
import fs from 'node:fs';
import type { SandboxRecord } from '../../core/model.js';
import { Client } from '../../client/index.js';
import { type Command, expectPositionals, FORMAT_HELP, formatOption, UsageError, wantJson } from '../command.js';
import type { CommandGroup } from '../dispatch.js';
import { printJson, table } from '../format.js';
import { argvIn, resolveCommand, runAttached } from './run.js';

const QUIET_HELP = '  -q, --quiet            print nothing but errors';

function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) throw new UsageError(`lab ${what}: must run as root (labs make namespaces and start daemons)`);
}

/** A lab name, or a topology file whose name is read from it. */
async function labName(ref: string): Promise<string> {
  if (!fs.existsSync(ref) || !fs.statSync(ref).isFile()) return ref;
  const { loadTopology } = await import('../../lab/topology.js');
  return loadTopology(ref).name;
}

const up: Command = {
  name: 'up',
  summary: 'Bring a lab up from a topology file, or converge a lab that is up to its changed file.',
  usage: 'cnmkit lab up [OPTIONS] FILE',
  help: ['      --name NAME        the lab\'s name instead of the file\'s (two labs from one file)', QUIET_HELP],
  options: { quiet: { type: 'boolean', short: 'q' }, name: { type: 'string' } },
  async run(v, pos) {
    expectPositionals(this, pos, 1);
    requireRoot('up');
    const { labUp } = await import('../../lab/up.js');
    const { Progress } = await import('../../lab/progress.js');
    await labUp(pos[0]!, { progress: new Progress({ quiet: v.quiet === true }), ...(v.name !== undefined ? { name: v.name as string } : {}) });
    return 0;
  },
};

const down: Command = {
  name: 'down',
  summary: 'Remove everything a lab made: daemons, etcd, namespaces, links, hosts files, its run directory.',
  usage: 'cnmkit lab down [OPTIONS] NAME|FILE',
  help: [QUIET_HELP],
  options: { quiet: { type: 'boolean', short: 'q' } },
  async run(v, pos) {
    expectPositionals(this, pos, 1);
    requireRoot('down');
    const name = await labName(pos[0]!);
    const { labDown } = await import('../../lab/down.js');
    const { Progress } = await import('../../lab/progress.js');
    const done = await labDown(name, { progress: new Progress({ quiet: v.quiet === true }) });
    if (!done && !v.quiet) console.log(`lab ${name}: not up (nothing to remove)`);
    return 0;
  },
};

const ls: Command = {
  name: 'ls',
  summary: 'List labs.',
  usage: 'cnmkit lab ls [OPTIONS]',
  help: [FORMAT_HELP],
  options: { ...formatOption },
  async run(v, pos) {
    expectPositionals(this, pos, 0);
    const json = wantJson(v);
    const { listLabs, readState, isAlive } = await import('../../lab/state.js');
    const labs = listLabs().map((n) => readState(n)!).filter(Boolean).map((s) => ({
      name: s.name, phase: s.phase, file: s.file, hosts: s.plan.hosts.length, nodes: s.plan.nodes.length, links: s.plan.links.length,
      daemonsRunning: s.plan.hosts.filter((h) => isAlive(s.daemons[h.name])).length,
    }));
    if (json) printJson(labs);
    else console.log(table(['NAME', 'PHASE', 'HOSTS', 'DAEMONS', 'NODES', 'LINKS', 'FILE'], labs.map((l) => [l.name, l.phase, String(l.hosts), `${l.daemonsRunning}/${l.hosts}`, String(l.nodes), String(l.links), l.file])));
    return 0;
  },
};

const inspect: Command = {
  name: 'inspect',
  summary: 'Show a lab: hosts, nodes with their interfaces and addresses, networks and links.',
  usage: 'cnmkit lab inspect [OPTIONS] NAME',
  help: [FORMAT_HELP],
  options: { ...formatOption },
  async run(v, pos) {
    expectPositionals(this, pos, 1);
    const json = wantJson(v);
    const { inspectLab } = await import('../../lab/inspect.js');
    const { printInspect } = await import('./lab-inspect.js');
    const r = await inspectLab(await labName(pos[0]!));
    if (json) printJson(r);
    else printInspect(r);
    return 0;
  },
};

const exec: Command = {
  name: 'exec',
  summary: 'Run a command inside a node of a lab (cnmkit exec with the node\'s host resolved).',
  usage: 'cnmkit lab exec NAME NODE CMD [ARG...]',
  help: ['  Everything after NODE is the command (a `--` there is allowed); it gets the node\'s env. Exit code: the command\'s own (127: not found, 126: cannot run).'],
  options: {},
  commandAfter: 2,
  async run(_v, pos, rest) {
    expectPositionals(this, pos, 2);
    if (rest.length === 0) throw new UsageError('"cnmkit lab exec" requires a command to run after NODE.', this);
    requireRoot('exec');
    const { mustReadState } = await import('../../lab/state.js');
    const s = mustReadState(await labName(pos[0]!));
    const node = s.plan.nodes.find((n) => n.name === pos[1]);
    if (!node) throw new UsageError(`lab ${s.name} has no node ${JSON.stringify(pos[1])} (nodes: ${s.plan.nodes.map((n) => n.name).join(', ')})`);
    const client = new Client(s.plan.hosts.find((h) => h.name === node.host)!.socket);
    const sb = await client.request<SandboxRecord>('GET', `/v1/sandboxes/${encodeURIComponent(node.sandbox)}`);
    const cmd = resolveCommand(rest);
    if (typeof cmd === 'number') return cmd;
    // With the node's env, as its exec lines have it.
    return runAttached(await argvIn(client, sb, cmd), node.env);
  },
};

const check: Command = {
  name: 'check',
  summary: 'Ping every pair of nodes (TCP where an expect names a port) and assert the file\'s expect entries.',
  usage: 'cnmkit lab check [OPTIONS] NAME',
  help: ['      --timeout MS       how long to wait for each answer, in milliseconds, at least 10 (default 1000)', FORMAT_HELP],
  options: { ...formatOption, timeout: { type: 'string' } },
  async run(v, pos) {
    expectPositionals(this, pos, 1);
    const json = wantJson(v);
    const timeoutMs = v.timeout === undefined ? 1000 : /^[0-9]{1,9}$/.test(v.timeout as string) ? Number(v.timeout) : NaN;
    if (!(timeoutMs >= 10)) throw new UsageError(`--timeout: expected a whole number of milliseconds, at least 10, got ${JSON.stringify(v.timeout)}`);
    requireRoot('check');
    const { mustReadState } = await import('../../lab/state.js');
    const { checkLab, goneNodes, programNeighbours } = await import('../../lab/check.js');
    const { prober } = await import('../../lab/probe.js');
    const { printCheck } = await import('../../lab/check-print.js');
    const s = mustReadState(await labName(pos[0]!));
    const gone = goneNodes(s.plan, prober);
    const { problems } = await programNeighbours(s, gone);
    const r = await checkLab(s, { prober, timeoutMs, problems, gone });
    if (json) printJson(r);
    else printCheck(s, r);
    return r.failures.length === 0 ? 0 : 1;
  },
};

const graph: Command = {
  name: 'graph',
  summary: 'Draw a lab (from its file, before up, or as it is up): hosts as clusters, nodes, networks, links with addresses.',
  usage: 'cnmkit lab graph [OPTIONS] NAME|FILE',
  help: ['      --format F         svg (default), dot, mermaid or json', '  -o, --output FILE      write to FILE instead of standard output'],
  options: { format: { type: 'string' }, output: { type: 'string', short: 'o' } },
  async run(v, pos) {
    expectPositionals(this, pos, 1);
    const format = (v.format as string | undefined) ?? 'svg';
    if (!['svg', 'dot', 'mermaid', 'json'].includes(format)) throw new UsageError(`--format: expected svg, dot, mermaid or json, got ${JSON.stringify(format)}`);
    const { labGraph, renderGraph } = await import('../../lab/graph.js');
    const ref = pos[0]!;
    let g;
    if (fs.existsSync(ref) && fs.statSync(ref).isFile()) {
      const { loadTopology } = await import('../../lab/topology.js');
      g = labGraph(loadTopology(ref));
    } else {
      const { mustReadState } = await import('../../lab/state.js');
      const s = mustReadState(ref);
      g = labGraph(s.plan.topology, s.interfaces);
    }
    const text = await renderGraph(g, format as 'svg');
    if (v.output) {
      try {
        fs.writeFileSync(v.output as string, text);
      } catch (err) {
        throw new UsageError(`--output: cannot write ${JSON.stringify(v.output)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    } else process.stdout.write(text);
    return 0;
  },
};

export const labCommands: Command[] = [up, down, ls, inspect, exec, check, graph];

export const labGroup: CommandGroup = { summary: 'Network labs from a topology file', commands: labCommands };
