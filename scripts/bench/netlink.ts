// N container endpoints made with cnmkit's netlink layer and with iproute2 (`ip -batch`) side by
// side: per sandbox a namespace, a veth whose peer is born there as eth0 (host end on a bridge,
// up, one request), then eth0 up, an address and a default route inside; torn down by deleting
// the namespaces. Two passes per tool (all veths, then all sandboxes) so that neither step pays
// for the other's deferred kernel work. BENCH_ENDPOINTS sets N (default 1000). All of it lives
// in namespaces it deletes.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import {
  addAddress, addBridge, addRoute, addVeth, getLink, listLinks, NetlinkHandle, setLinkUp, subscribe,
} from '../../src/netlink/index.js';
import { createNamedNetns, deleteNamedNetns } from '../../src/netns/index.js';

const GATEWAY = '10.64.0.1';
const created = new Set<string>();
const children = new Set<ChildProcessWithoutNullStreams>();

/** One tool's way of doing each step, and the times it took. */
interface Side {
  tool: 'cnmkit' | 'iproute2';
  hostNs: string;
  host: NetlinkHandle;
  bridge: number;
  names: string[];
  createNamespaces(names: string[]): Promise<void>;
  veth(i: number): Promise<void>;
  sandbox(i: number): Promise<void>;
  deleteNamespaces(names: string[]): Promise<void>;
  /** Ends what the veth step kept open. Idempotent. */
  close(): Promise<void>;
  nsCreateMs: number;
  vethMs: number[];
  sandboxMs: number[];
  teardownMs: number;
}

/** Endpoints per chunk: the tools take turns chunk by chunk, so both see the same machine load. */
const CHUNK = 50;
const TEARDOWN_LIMIT_MS = 300_000;

const endpointAddr = (i: number): string => {
  const n = i + 2;
  return `10.${64 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}/10`;
};
const endpointMac = (i: number): string => `02:00:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

function stats(xs: number[]): { median: number; p99: number; mean: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { median: quantile(s, 0.5), p99: quantile(s, 0.99), mean: xs.reduce((a, b) => a + b, 0) / xs.length };
}

/** Runs `ip ARGS` with input on stdin; rejects unless it exits 0. */
function ipOnce(args: string[], input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`ip ${args.join(' ')}: exit ${code}: ${err.trim()}`))));
    child.stdin.end(input);
  });
}

/**
 * A long-lived `ip -batch -`. run() writes lines followed by a marker command whose output
 * tells that they are done (iproute2 flushes its output after each batch command).
 */
class IpBatch {
  private readonly child: ChildProcessWithoutNullStreams;
  private out = '';
  private markersSeen = 0;
  private markersSent = 0;
  private readonly waiters = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private exited?: Error;

  constructor(args: string[]) {
    this.child = spawn('ip', [...args, '-batch', '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(this.child);
    let err = '';
    this.child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    this.child.stdout.on('data', (d: Buffer) => this.onOutput(d.toString()));
    this.child.on('close', (code) => {
      children.delete(this.child);
      this.exited = new Error(`ip -batch exited ${code}: ${err.trim()}`);
      for (const w of this.waiters.values()) w.reject(this.exited);
      this.waiters.clear();
    });
  }

  run(lines: string): Promise<void> {
    if (this.exited) return Promise.reject(this.exited);
    this.markersSent += 1;
    const id = this.markersSent;
    const done = new Promise<void>((resolve, reject) => this.waiters.set(id, { resolve, reject }));
    this.child.stdin.write(`${lines}\nlink show dev lo\n`);
    return done;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.exited) return resolve();
      this.child.once('close', () => resolve());
      this.child.stdin.end();
    });
  }

  private onOutput(text: string): void {
    this.out += text;
    const lines = this.out.split('\n');
    this.out = lines.pop() ?? '';
    for (const line of lines) {
      if (!/^\d+: lo: /.test(line)) continue;
      this.markersSeen += 1;
      this.waiters.get(this.markersSeen)?.resolve();
      this.waiters.delete(this.markersSeen);
    }
  }
}

/** Resolves once the named host ends are gone from the host namespace (seen by events). */
function watchTeardown(host: NetlinkHandle, hostEnds: string[]): { done: Promise<void>; close: () => void } {
  const pending = new Set(hostEnds);
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  const sub = subscribe(host, {
    addresses: false,
    receiveBuffer: 64 << 20,
    onEvent: (e) => {
      if (e.type === 'del-link') pending.delete(e.link.name);
      if (e.type === 'resync') {
        const present = new Set((e.links ?? []).map((l) => l.name));
        for (const name of pending) if (!present.has(name)) pending.delete(name);
      }
      if (pending.size === 0) resolve();
    },
  });
  return { done, close: () => sub.close() };
}

async function setUpHost(hostNs: string): Promise<{ host: NetlinkHandle; bridge: number }> {
  const path = createNamedNetns(hostNs);
  created.add(hostNs);
  const host = NetlinkHandle.open(path);
  await addBridge(host, { name: 'br0', up: true });
  return { host, bridge: (await getLink(host, 'br0')).index };
}

async function timeTeardown(host: NetlinkHandle, hostEnds: string[], names: string[], remove: () => Promise<void>): Promise<number> {
  const watch = watchTeardown(host, hostEnds);
  const t0 = performance.now();
  await remove();
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`teardown: host ends still present after ${TEARDOWN_LIMIT_MS} ms`)), TEARDOWN_LIMIT_MS);
  });
  await Promise.race([watch.done, limit]).finally(() => clearTimeout(timer));
  const ms = performance.now() - t0;
  watch.close();
  for (const n of names) created.delete(n);
  return ms;
}

async function verify(host: NetlinkHandle, bridge: number, sandboxes: string[], tool: string): Promise<void> {
  const ports = await listLinks(host, { master: bridge });
  if (ports.length !== sandboxes.length) throw new Error(`${tool}: ${ports.length} bridge ports, expected ${sandboxes.length}`);
  for (const i of [0, sandboxes.length - 1]) {
    const sb = NetlinkHandle.open(`/run/netns/${sandboxes[i]}`);
    try {
      const eth0 = await getLink(sb, 'eth0');
      if (!eth0.up || eth0.mac !== endpointMac(i) || eth0.mtu !== 1500) throw new Error(`${tool}: eth0 of sandbox ${i} is ${JSON.stringify(eth0)}`);
    } finally {
      sb.close();
    }
  }
}

async function cnmkitSide(n: number, prefix: string): Promise<Side> {
  const hostNs = `${prefix}c-host`;
  const { host, bridge } = await setUpHost(hostNs);
  const names = Array.from({ length: n }, (_, i) => `${prefix}c-s${i}`);
  const nsPath = (i: number): string => `/run/netns/${names[i]}`;
  return {
    tool: 'cnmkit', hostNs, host, bridge, names, nsCreateMs: 0, vethMs: [], sandboxMs: [], teardownMs: 0,
    async createNamespaces(chunk) {
      for (const name of chunk) {
        created.add(name);
        createNamedNetns(name);
      }
    },
    async veth(i) {
      await addVeth(host, { name: `vh${i}`, master: bridge, mtu: 1500, up: true, peer: { name: 'eth0', nsPath: nsPath(i), mtu: 1500, mac: endpointMac(i) } });
    },
    async sandbox(i) {
      const sb = NetlinkHandle.open(nsPath(i));
      try {
        await setLinkUp(sb, 'eth0');
        await addAddress(sb, 'eth0', endpointAddr(i));
        await addRoute(sb, { dst: 'default', gateway: GATEWAY });
      } finally {
        sb.close();
      }
    },
    async deleteNamespaces(chunk) {
      for (const name of chunk) deleteNamedNetns(name);
    },
    async close() {},
  };
}

async function iproute2Side(n: number, prefix: string): Promise<Side> {
  const hostNs = `${prefix}i-host`;
  const { host, bridge } = await setUpHost(hostNs);
  const names = Array.from({ length: n }, (_, i) => `${prefix}i-s${i}`);
  const batch = new IpBatch(['-n', hostNs]);
  return {
    tool: 'iproute2', hostNs, host, bridge, names, nsCreateMs: 0, vethMs: [], sandboxMs: [], teardownMs: 0,
    async createNamespaces(chunk) {
      for (const name of chunk) created.add(name);
      await ipOnce(['-batch', '-'], chunk.map((name) => `netns add ${name}\n`).join(''));
    },
    veth: (i) => batch.run(`link add vh${i} mtu 1500 master br0 up type veth peer name eth0 netns ${names[i]} mtu 1500 address ${endpointMac(i)}`),
    sandbox: (i) => ipOnce(['-n', names[i] as string, '-batch', '-'], `link set eth0 up\naddr add ${endpointAddr(i)} dev eth0\nroute add default via ${GATEWAY}\n`),
    deleteNamespaces: (chunk) => ipOnce(['-batch', '-'], chunk.map((name) => `netns del ${name}\n`).join('')),
    close: () => batch.close(),
  };
}

/** Runs one step for every endpoint, the two sides taking turns chunk by chunk. */
async function interleave(n: number, sides: Side[], step: (side: Side, from: number, to: number) => Promise<void>): Promise<void> {
  for (let from = 0, turn = 0; from < n; from += CHUNK, turn++) {
    const to = Math.min(n, from + CHUNK);
    for (const side of turn % 2 === 0 ? sides : [...sides].reverse()) await step(side, from, to);
  }
}

async function timeEach(from: number, to: number, into: number[], fn: (i: number) => Promise<void>): Promise<void> {
  for (let i = from; i < to; i++) {
    const a = performance.now();
    await fn(i);
    into[i] = performance.now() - a;
  }
}

async function measure(n: number, prefix: string): Promise<Side[]> {
  const sides = [await cnmkitSide(n, prefix), await iproute2Side(n, prefix)];
  try {
    await interleave(n, sides, async (side, from, to) => {
      const a = performance.now();
      await side.createNamespaces(side.names.slice(from, to));
      side.nsCreateMs += performance.now() - a;
    });
    await interleave(n, sides, (side, from, to) => timeEach(from, to, side.vethMs, (i) => side.veth(i)));
    // A long-lived `ip -batch` keeps every namespace it opened for `netns NAME` until it exits.
    for (const side of sides) await side.close();
    await interleave(n, sides, (side, from, to) => timeEach(from, to, side.sandboxMs, (i) => side.sandbox(i)));
    for (const side of sides) await verify(side.host, side.bridge, side.names, side.tool);
    await interleave(n, sides, async (side, from, to) => {
      const chunk = side.names.slice(from, to);
      const hostEnds = chunk.map((_, k) => `vh${from + k}`);
      side.teardownMs += await timeTeardown(side.host, hostEnds, chunk, () => side.deleteNamespaces(chunk));
    });
  } finally {
    for (const side of sides) {
      await side.close();
      side.host.close();
      deleteNamedNetns(side.hostNs);
      created.delete(side.hostNs);
    }
  }
  return sides;
}

/** Median cost of the marker command alone, to read the iproute2 veth figures against. */
async function markerCost(prefix: string): Promise<number> {
  const ns = `${prefix}m-host`;
  createNamedNetns(ns);
  created.add(ns);
  const batch = new IpBatch(['-n', ns]);
  const xs: number[] = [];
  try {
    for (let i = 0; i < 200; i++) {
      const a = performance.now();
      await batch.run('');
      xs.push(performance.now() - a);
    }
  } finally {
    await batch.close();
    deleteNamedNetns(ns);
    created.delete(ns);
  }
  return stats(xs).median;
}

function cleanup(): void {
  for (const child of children) child.kill('SIGKILL');
  for (const name of created) {
    try {
      deleteNamedNetns(name);
    } catch (err) {
      console.error(`bench netlink: could not delete namespace ${name}: ${(err as Error).message}`);
    }
  }
  created.clear();
}

function report(c: Side, i: Side, n: number, marker: number): void {
  const f = (x: number): string => x.toFixed(3).padStart(8);
  const line = (label: string, a: number[], b: number[]): void => {
    const [sa, sb] = [stats(a), stats(b)];
    console.log(`${label.padEnd(30)} median ${f(sa.median)} ${f(sb.median)}   p99 ${f(sa.p99)} ${f(sb.p99)}   ratio(median) ${(sa.median / sb.median).toFixed(2)}`);
  };
  const sum = (side: Side): number[] => side.vethMs.map((v, k) => v + (side.sandboxMs[k] ?? 0));
  const perN = (label: string, a: number, b: number): void => console.log(`${label.padEnd(30)} ${f(a / n)} ${f(b / n)}   ratio ${(a / b).toFixed(2)}`);
  console.log(`endpoints: ${n} (tools take turns every ${CHUNK}); ms per endpoint: cnmkit, iproute2`);
  line('create veth (host side)', c.vethMs, i.vethMs);
  line('eth0 up + addr + route', c.sandboxMs, i.sandboxMs);
  line('create endpoint (sum)', sum(c), sum(i));
  perN('namespace creation, mean', c.nsCreateMs, i.nsCreateMs);
  perN('teardown (netns del), mean', c.teardownMs, i.teardownMs);
  const vethLessMarker = stats(i.vethMs).median - marker;
  console.log(`iproute2 veth times include a completion marker (\`link show dev lo\`, median ${marker.toFixed(3)} ms);`);
  console.log(`  less the marker: iproute2 veth median ${vethLessMarker.toFixed(3)} ms, ratio ${(stats(c.vethMs).median / vethLessMarker).toFixed(2)}`);
  console.log('iproute2 sandbox times include one `ip -n SB -batch -` process per sandbox: a batch cannot switch namespace.');
}

export default async function run(): Promise<void> {
  const n = Number(process.env.BENCH_ENDPOINTS ?? 1000);
  if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_ENDPOINTS must be a positive integer, not ${process.env.BENCH_ENDPOINTS}`);
  const prefix = `cnmb${process.pid}-`;
  const onSignal = (): void => {
    cleanup();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const marker = await markerCost(prefix);
    const [c, i] = await measure(n, prefix);
    report(c as Side, i as Side, n, marker);
  } finally {
    cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
