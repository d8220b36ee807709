// Throwaway network namespaces for the privileged tests, made and inspected with iproute2 so
// that checks stay independent of the code under test. Every namespace is deleted afterwards;
// one that the code under test made and should have removed (adoptNs) fails the test first.
import fs from 'node:fs';
import { afterEach } from 'vitest';
import { check, run, type RunResult } from './exec.js';

const runId = process.env.CNMKIT_TEST_RUN ?? 'local';
let counter = 0;
/** Namespaces the harness made: removed after each test. */
const live = new Set<TestNs>();
/** Namespaces the code under test made and must have removed by the end of the test. */
const mustGo = new Set<string>();

export class TestNs {
  readonly path: string;
  constructor(readonly name: string) {
    this.path = `/run/netns/${name}`;
  }

  /** Runs argv inside the namespace (`ip netns exec`). */
  exec(argv: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
    return run(['ip', 'netns', 'exec', this.name, ...argv], opts);
  }

  /** Like exec, but throws unless argv exits 0. */
  sh(argv: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
    return check(['ip', 'netns', 'exec', this.name, ...argv], opts);
  }

  /** `ip -j ARGS…` inside the namespace, parsed. */
  async ipJson<T = any>(args: string[]): Promise<T> {
    const out = await check(['ip', '-n', this.name, '-j', ...args]);
    return (out.trim() ? JSON.parse(out) : []) as T;
  }

  async linkNames(): Promise<string[]> {
    const links = await this.ipJson<{ ifname: string }[]>(['link', 'show']);
    return links.map((l) => l.ifname).sort();
  }

  async delete(): Promise<void> {
    live.delete(this);
    await run(['ip', 'netns', 'del', this.name]);
  }
}

/** A prefix unique to this test run, for names of namespaces created by code under test. */
export function uniqueName(tag: string): string {
  counter += 1;
  return `ct${runId}-${process.pid % 100000}-${counter}-${tag}`.slice(0, 60);
}

/** A new, empty namespace with lo up, deleted after the current test. */
export async function makeNs(tag = 'ns'): Promise<TestNs> {
  const ns = new TestNs(uniqueName(tag));
  await check(['ip', 'netns', 'add', ns.name]);
  live.add(ns);
  await check(['ip', '-n', ns.name, 'link', 'set', 'lo', 'up']);
  return ns;
}

/**
 * Registers a namespace that the code under test makes and must have removed by the end of the
 * test (a sandbox it removes, a `cnmkit run` that ends): if /run/netns still holds it after the
 * test's own afterEach hooks, the test fails naming it, and the harness removes it.
 */
export function adoptNs(name: string): void {
  mustGo.add(name);
}

/**
 * Joins two namespaces with an underlay veth (ul0 in host, ul1 in client), addresses /24 from the
 * benchmarking range, both ends up: a second machine on the first one's network.
 */
export async function underlay(host: TestNs, client: TestNs, hostIP: string, clientIP: string): Promise<void> {
  await check(['ip', 'link', 'add', 'ul0', 'netns', host.name, 'type', 'veth', 'peer', 'name', 'ul1', 'netns', client.name]);
  await host.sh(['ip', 'addr', 'add', `${hostIP}/24`, 'dev', 'ul0']);
  await host.sh(['ip', 'link', 'set', 'ul0', 'up']);
  await client.sh(['ip', 'addr', 'add', `${clientIP}/24`, 'dev', 'ul1']);
  await client.sh(['ip', 'link', 'set', 'ul1', 'up']);
}

/** Short, unique interface names (≤ 15 chars) for links created in tests. */
export function ifname(tag: string): string {
  counter += 1;
  return `${tag}${counter.toString(36)}`.slice(0, 15);
}

// Only under vitest: benchmarks import this file through test/helpers/cluster.ts and daemon.ts.
if (process.env.VITEST) afterEach(async () => {
  const all = [...live];
  live.clear();
  const left = [...mustGo].filter((name) => fs.existsSync(`/run/netns/${name}`));
  mustGo.clear();
  await Promise.all([...all.map((ns) => ns.name), ...left].map((name) => run(['ip', 'netns', 'del', name])));
  if (left.length > 0) throw new Error(`namespaces the code under test should have removed are still there (the harness removed them now): ${left.join(', ')}`);
});
