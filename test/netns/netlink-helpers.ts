// Shared pieces of the netlink tests: handles closed after each test, ping with busybox inside a
// namespace, and the namespace's links as iproute2 sees them (independent of the code under test).
import { afterEach } from 'vitest';
import { NetlinkHandle } from '../../src/netlink/index.js';
import type { TestNs } from '../helpers/netns.js';

const open = new Set<NetlinkHandle>();

/** A handle on ns, closed after the current test. */
export function handleOn(ns: TestNs): NetlinkHandle {
  const h = NetlinkHandle.open(ns.path);
  open.add(h);
  return h;
}

afterEach(() => {
  for (const h of open) h.close();
  open.clear();
});

export async function pings(ns: TestNs, addr: string): Promise<boolean> {
  const r = await ns.exec(['busybox', 'ping', '-c', '1', '-W', '2', addr], { timeoutMs: 6000 });
  return r.code === 0;
}

export interface IpLink {
  ifname: string;
  ifindex: number;
  mtu: number;
  address: string;
  flags: string[];
  master?: string;
  group?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

/** `ip -d -j link show [DEV]` in ns. */
export function ipLinks(ns: TestNs, dev?: string): Promise<IpLink[]> {
  return ns.ipJson<IpLink[]>(['-d', 'link', 'show', ...(dev ? ['dev', dev] : [])]);
}

/** Polls fn until it returns true or timeoutMs passes. */
export async function eventually(fn: () => Promise<boolean>, timeoutMs = 5000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return fn();
}
