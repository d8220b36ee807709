// `cnmkit lab check NAME`: a reachability matrix over every ordered pair of nodes, run
// concurrently — ICMP echo, and TCP (nc -z) where an `expect` names a port — and the file's
// `expect` entries asserted. Pairs that share a network or a link must answer (those that did not
// are asked once more); other pairs show whether a routed path exists. Before pinging, every node gets permanent neighbour entries for
// its peers on each network and link (the lab knows every address and MAC): the kernel's
// neighbour table is shared by all namespaces and capped (gc_thresh3), and permanent entries are
// not counted against that cap, so a large all-pairs check works without changing the machine.
// What the lab gave no address is skipped, and the report says so and why: a node without an IPv4
// address, a containerlab bridge (its ports have none, as in containerlab) and a link whose ends
// have none (addresses that exec lines set are the node's own; the check does not know them).
// A node whose namespace is gone (deleted by hand) is a failure that names it and says how to make
// it again; no pair or expectation from or to it is tried, and the rest of the lab is checked.
import { ApiError, Client } from '../client/index.js';
import { parseAddress } from '../ip/index.js';
import { mapLimit } from './limit.js';
import type { LabPlan } from './plan.js';
import type { LabState } from './state.js';

export type Iface = LabState['interfaces'][string][number];

export interface Pair {
  from: string;
  to: string;
  address: string;
  /** The network or link the two share, or 'routed'. */
  via: string;
}

export interface PairResult extends Pair {
  ok: boolean;
  rttMs?: number;
  port?: number;
}

export interface ExpectResult {
  from: string;
  to: string;
  address: string;
  port?: number;
  reach: boolean;
  ok: boolean;
  got: boolean;
  /** Why it was not tried (a node of it is gone): a failure. */
  notTried?: string;
}

/** A node or a network or link the matrix does not try, and why. */
export interface Skipped {
  what: string;
  reason: string;
}

export interface CheckReport {
  lab: string;
  pairs: PairResult[];
  expect: ExpectResult[];
  /** Left out of the matrix for want of an address the lab gave: not failures. */
  skipped: Skipped[];
  /** Nodes whose namespace is gone (deleted by hand): failures, left out of the matrix and the expectations. */
  gone: string[];
  /** What makes the check fail: direct pairs without answer, and missed expectations. */
  failures: string[];
  ms: number;
}

/** Probes: ICMP echo from many sources at once, and TCP connects. Injected so tests can fake them. */
export interface Prober {
  /** Per job, round-trip times in ms (undefined: no answer) for each address, pinged from its sandbox. */
  ping(jobs: Array<{ sandbox: string; addresses: string[] }>, timeoutMs: number): Promise<Array<Array<number | undefined>>>;
  tcp(sandbox: string, address: string, port: number, timeoutMs: number): Promise<boolean>;
  /** Whether the sandbox's namespace is there (absent: every one is taken as there). */
  hasNamespace?(sandbox: string): boolean;
}

/** The nodes whose namespace is gone (deleted by hand), in the plan's order. */
export function goneNodes(p: LabPlan, prober: Prober): string[] {
  return p.nodes.filter((n) => prober.hasNamespace?.(n.sandbox) === false).map((n) => n.name);
}

/** The failure that names a gone node and what makes it again. */
function goneFailure(s: LabState, node: string): string {
  const sandbox = s.plan.nodes.find((n) => n.name === node)!.sandbox;
  return `node ${node}: its namespace ${sandbox} is gone (deleted by hand?): no pair or expectation from or to it is tried; \`cnmkit lab up ${s.file}\` makes it again, with its networks and links`;
}

const bare = (cidr: string): string => cidr.split('/')[0]!;
const segment = (i: Iface): string | undefined => i.network ?? i.link;

const hasIPv4 = (ifaces: LabState['interfaces'], node: string): boolean => (ifaces[node] ?? []).some((i) => i.ipv4);

/**
 * Every ordered pair of nodes with the address to try: on a shared network or link when there is
 * one. The matrix leaves out nodes without an IPv4 address, either way (skippedOf says so); an
 * expect entry from one is still tried (its exec lines may have given it an address).
 */
export function pairsOf(p: LabPlan, ifaces: LabState['interfaces'], from = p.nodes.filter((n) => hasIPv4(ifaces, n.name))): Pair[] {
  const out: Pair[] = [];
  for (const a of from) {
    const mine = ifaces[a.name] ?? [];
    for (const b of p.nodes) {
      if (a.name === b.name) continue;
      const theirs = (ifaces[b.name] ?? []).filter((i) => i.ipv4);
      const shared = theirs.find((t) => mine.some((m) => segment(m) !== undefined && segment(m) === segment(t) && m.ipv4));
      const target = shared ?? theirs[0];
      if (target) out.push({ from: a.name, to: b.name, address: bare(target.ipv4!), via: shared ? segment(shared)! : 'routed' });
    }
  }
  return out;
}

/** What the matrix leaves out for want of an address the lab gave, and why. */
export function skippedOf(p: LabPlan, ifaces: LabState['interfaces']): Skipped[] {
  const ports = (net: string): string[] => p.nodes.flatMap((n) => n.attachments.filter((a) => a.network === net).map((a) => `${n.name}:${a.ifname}`));
  const own = 'addresses its nodes\' exec lines set are not known to the check';
  return [
    ...p.networks.filter((n) => n.spec.ipv4 === false).map((n) => ({
      what: `bridge ${n.name} (${ports(n.name).join(', ') || 'no ports'})`,
      reason: `a containerlab bridge: its ports get no address, as in containerlab (${own})`,
    })),
    ...p.links.filter((l) => l.spec.ends.every((e) => !e.address)).map((l) => ({
      what: `link ${l.name}`, reason: `no addresses given (${own})`,
    })),
    ...p.nodes.filter((n) => !hasIPv4(ifaces, n.name)).map((n) => ({
      what: `node ${n.name}`, reason: 'it has no IPv4 address the lab gave: no pair from or to it is tried',
    })),
  ];
}

/** Permanent neighbour entries per node: each peer on each of its networks and links. */
export function neighboursOf(p: LabPlan, ifaces: LabState['interfaces']): Map<string, Array<{ dev: string; ip: string; mac: string }>> {
  const bySegment = new Map<string, Array<{ node: string; iface: Iface }>>();
  for (const n of p.nodes) {
    for (const i of ifaces[n.name] ?? []) {
      const s = segment(i);
      if (s) bySegment.set(s, [...(bySegment.get(s) ?? []), { node: n.name, iface: i }]);
    }
  }
  const out = new Map<string, Array<{ dev: string; ip: string; mac: string }>>();
  for (const members of bySegment.values()) {
    for (const me of members) {
      const list = out.get(me.node) ?? [];
      for (const peer of members) {
        if (peer.node === me.node || !peer.iface.mac) continue;
        for (const a of [peer.iface.ipv4, peer.iface.ipv6]) if (a) list.push({ dev: me.iface.ifname, ip: bare(a), mac: peer.iface.mac });
      }
      out.set(me.node, list);
    }
  }
  return out;
}

/**
 * Sends each node its neighbour entries through its host's daemon; a node whose entries cannot be
 * set (an interface of it gone) is named in problems, and the others are set all the same.
 */
export async function programNeighbours(s: LabState, gone: string[] = []): Promise<{ count: number; problems: string[] }> {
  const p = s.plan;
  const hosts = new Map(p.hosts.map((h) => [h.name, new Client(h.socket)]));
  const all = neighboursOf(p, s.interfaces);
  let count = 0;
  const problems: string[] = [];
  await mapLimit(p.nodes.filter((n) => !gone.includes(n.name)), 16, async (n) => {
    const neighbors = all.get(n.name) ?? [];
    count += neighbors.length;
    if (neighbors.length === 0) return;
    try {
      await hosts.get(n.host)!.request('POST', `/v1/sandboxes/${encodeURIComponent(n.sandbox)}/config`, { neighbors });
    } catch (err) {
      if (!(err instanceof ApiError) || err.status >= 500) throw err;
      problems.push(`node ${n.name}: its neighbour entries could not be set: ${err.message} (run \`cnmkit lab up\` again to make what is missing)`);
    }
  });
  return { count, problems };
}

function targetAddress(p: LabPlan, ifaces: LabState['interfaces'], from: string, to: string): string {
  if (!p.nodes.some((n) => n.name === to)) return to;
  const both = p.nodes.filter((n) => n.name === from || n.name === to);
  return pairsOf({ ...p, nodes: both }, ifaces, both).find((x) => x.from === from)?.address ?? '';
}

export interface CheckOptions {
  prober: Prober;
  timeoutMs?: number;
  concurrency?: number;
  /** Problems found before the probes (programNeighbours'): failures too. */
  problems?: string[];
  /** Nodes whose namespace is gone (goneNodes): failures, and nothing tried from or to them. */
  gone?: string[];
}

/**
 * Pings each pair's address from its source node's sandbox, one job per source (in the order the
 * sources first appear): each pair's round-trip time in ms, undefined when it did not answer.
 */
async function pingPairs(prober: Prober, sandbox: Map<string, string>, pairs: { from: string; address: string }[], timeout: number): Promise<(number | undefined)[]> {
  const from = [...new Set(pairs.map((r) => r.from))];
  const rtts = await prober.ping(from.map((f) => ({ sandbox: sandbox.get(f)!, addresses: pairs.filter((r) => r.from === f).map((r) => r.address) })), timeout);
  const next = new Map(from.map((f, j) => [f, { row: rtts[j] ?? [], i: 0 }]));
  return pairs.map((r) => {
    const at = next.get(r.from)!;
    return at.row[at.i++];
  });
}

/**
 * The pairs on a shared network or link that did not answer are asked once more (marked ok when
 * they answer now): an overlay's peers reach the other hosts' kernels a moment after `up` has
 * returned, and one echo lost meanwhile is no failure; a pair that fails twice is one.
 */
async function askAgain(prober: Prober, sandbox: Map<string, string>, failed: PairResult[], timeout: number): Promise<void> {
  if (failed.length === 0) return;
  const rtts = await pingPairs(prober, sandbox, failed, timeout);
  failed.forEach((r, i) => {
    const rtt = rtts[i];
    if (rtt !== undefined) Object.assign(r, { ok: true, rttMs: rtt });
  });
}

/** Runs the matrix and the expectations of the lab in state s. */
export async function checkLab(s: LabState, o: CheckOptions): Promise<CheckReport> {
  const started = performance.now();
  const gone = o.gone ?? [];
  const p = { ...s.plan, nodes: s.plan.nodes.filter((n) => !gone.includes(n.name)) };
  const timeout = o.timeoutMs ?? 1000;
  const sandbox = new Map(p.nodes.map((n) => [n.name, n.sandbox]));
  const pairs = pairsOf(p, s.interfaces);
  // By source node, in the nodes' order.
  const ordered = p.nodes.flatMap((n) => pairs.filter((x) => x.from === n.name));
  const rtts = await pingPairs(o.prober, sandbox, ordered, timeout);
  const results: PairResult[] = ordered.map((y, i) => {
    const rtt = rtts[i];
    return { ...y, ok: rtt !== undefined, ...(rtt !== undefined ? { rttMs: rtt } : {}) };
  });
  await askAgain(o.prober, sandbox, results.filter((r) => !r.ok && r.via !== 'routed'), timeout);
  const expect = await mapLimit(p.topology.expect, o.concurrency ?? 8, async (e): Promise<ExpectResult> => {
    const away = [e.from, e.to].find((n) => gone.includes(n));
    if (away !== undefined) return { from: e.from, to: e.to, address: '', ...(e.port !== undefined ? { port: e.port } : {}), reach: e.reach, got: false, ok: false, notTried: `node ${away}'s namespace is gone` };
    const address = targetAddress(p, s.interfaces, e.from, e.to);
    let got = false;
    if (address) {
      parseAddress('to', address);
      got = e.port !== undefined
        ? await o.prober.tcp(sandbox.get(e.from)!, address, e.port, timeout * 2)
        : (results.find((r) => r.from === e.from && r.address === address)?.ok ?? (await o.prober.ping([{ sandbox: sandbox.get(e.from)!, addresses: [address] }], timeout))[0]?.[0] !== undefined);
    }
    return { from: e.from, to: e.to, address, ...(e.port !== undefined ? { port: e.port } : {}), reach: e.reach, got, ok: got === e.reach };
  });
  const failures = [
    ...gone.map((n) => goneFailure(s, n)),
    ...(o.problems ?? []),
    ...results.filter((r) => !r.ok && r.via !== 'routed').map((r) => `${r.from} → ${r.to} (${r.address}, on ${r.via}): no answer`),
    ...expect.filter((e) => !e.ok).map((e) => `expect ${e.from} → ${e.to}${e.port ? ` port ${e.port}` : ''} reach ${e.reach}: ${e.notTried ? `not tried (${e.notTried})` : e.got ? 'reached' : 'not reached'}${e.address ? ` (${e.address})` : ''}`),
  ];
  return { lab: s.name, pairs: results, expect, skipped: skippedOf(p, s.interfaces), gone, failures, ms: performance.now() - started };
}
