// One reader for the tests of a device's FDB and neighbour entries, straight from iproute2 in its
// namespace (`bridge -j fdb show dev DEV`, `ip -j neigh show dev DEV [nud STATE]`), so the checks
// stay independent of the code under test. The rows come back as the kernel lists them: each
// test keeps its own filters (self, dst, state) in the test. No test-runner imports.
// Limits: one device per read, no address selector; only the fields the tests compare are typed
// (iproute2 prints more); the text form (`ip neigh show` without -j) is not read here.

/** A namespace to read in: anything that runs argv there and returns its stdout, throwing unless it exits 0 (SimHost.ns, TestNs). */
export interface InNamespace {
  sh(argv: string[]): Promise<string>;
}

/** A row of `bridge -j fdb show`: flags holds 'self' for the device's own table (VXLAN remotes); state is '' for a dynamic entry. */
export interface FdbRow {
  mac: string;
  dst?: string;
  flags?: string[];
  state?: string;
  master?: string;
  vlan?: number;
  vni?: number;
  port?: number;
}

/** A row of `ip -j neigh show`: state as iproute2 names it (['PERMANENT'], ['NOARP'], …). */
export interface NeighRow {
  dst: string;
  lladdr?: string;
  state?: string[];
}

/** Every FDB entry of dev (its own and its bridge's). */
export async function fdbRows(ns: InNamespace, dev: string): Promise<FdbRow[]> {
  return JSON.parse(await ns.sh(['bridge', '-j', 'fdb', 'show', 'dev', dev])) as FdbRow[];
}

/** The neighbour entries of dev: without nud, those `ip neigh show` lists by default; with it, `nud NUD` (permanent, all, …). */
export async function neighRows(ns: InNamespace, dev: string, nud?: string): Promise<NeighRow[]> {
  return JSON.parse(await ns.sh(['ip', '-j', 'neigh', 'show', 'dev', dev, ...(nud === undefined ? [] : ['nud', nud])])) as NeighRow[];
}

/**
 * The static entries of a VXLAN device, sorted: its own FDB entries as `MAC DST STATE` (STATE ''
 * for a dynamic one, so a permanent entry that became dynamic shows) and its nud-permanent
 * neighbours as `IP MAC`.
 */
export async function permanentEntries(ns: InNamespace, dev: string): Promise<string[]> {
  const fdb = (await fdbRows(ns, dev)).filter((e) => e.flags?.includes('self')).map((e) => `${e.mac} ${e.dst} ${e.state ?? ''}`);
  const neigh = (await neighRows(ns, dev, 'permanent')).map((n) => `${n.dst} ${n.lladdr}`);
  return [...fdb, ...neigh].sort();
}
