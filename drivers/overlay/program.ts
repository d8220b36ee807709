// Static forwarding state of one overlay network on one host, from the cluster's peer records:
// per remote endpoint a permanent FDB entry (MAC → VTEP, self) and permanent neighbour entries
// (IP → MAC) on the VXLAN device, and per remote VTEP one all-zero-MAC flood entry. A resync (and
// the first batch) reads the kernel and makes it hold exactly what every peer wants, so an entry
// added or removed behind cnmkit's back is put right and nothing learned or stale survives; any
// other batch touches only the entries of the peers it changes (counted per entry: a flood entry
// stays while a peer on its VTEP does), so a new endpoint costs each host O(1), not O(peers).
// The writes go in a few netlink datagrams. A peer that went with its host's lease keeps its
// entries for a grace (./linger.ts), so a host that registers again at once loses no traffic.
import type { Peer, PeerBatch } from '../../src/cluster/types.js';
import {
  addNeighbor, appendFdb, deleteFdb, deleteNeighbor, encodeNeighWrite, listFdb, listNeighbors, replaceFdb, type NeighWrite, type NetlinkHandle,
} from '../../src/netlink/index.js';
import { clashes, Lingering } from './linger.js';

export const FLOOD_MAC = '00:00:00:00:00:00';

/** What the VXLAN device holds: FDB entries by `MAC>VTEP`, neighbours by IP (value: MAC). */
export interface Programmed {
  /** permanent false: an entry the kernel holds as not permanent (it ages out), keyed by notPermanentKey. */
  fdb: Map<string, { mac: string; dst: string; permanent?: false }>;
  neigh: Map<string, string>;
}

/** The key of an FDB entry in a Programmed map: its MAC and the VTEP it sends to. */
export function fdbKey(mac: string, dst: string): string {
  return `${mac}>${dst}`;
}

/** The key of an FDB entry that is not permanent (none should exist): never a wanted key, so a resync removes it and writes the permanent one. */
export function notPermanentKey(mac: string, dst: string): string {
  return `${fdbKey(mac, dst)}>not permanent`;
}

/** The entries every remote peer (another host's endpoint) needs on this host. */
export function wanted(peers: Iterable<Peer>, selfHost: string, selfVtep: string): Programmed {
  const out: Programmed = { fdb: new Map(), neigh: new Map() };
  for (const p of peers) {
    if (p.host === selfHost || p.vtep === selfVtep) continue;
    out.fdb.set(fdbKey(p.mac, p.vtep), { mac: p.mac, dst: p.vtep });
    out.fdb.set(fdbKey(FLOOD_MAC, p.vtep), { mac: FLOOD_MAC, dst: p.vtep });
    out.neigh.set(p.ip, p.mac);
    if (p.ipv6) out.neigh.set(p.ipv6, p.mac);
  }
  return out;
}

/**
 * Whether a neighbour entry is one the kernel makes itself, never a peer's: a multicast address
 * (with IPv6 forwarding on, the kernel resolves ff02::16 for MLD on every IPv6 device) or a NOARP
 * entry that is not permanent. Peers' entries are unicast and permanent.
 */
export function kernelOwnNeighbor(n: { ip: string; state: string[] }): boolean {
  if (n.state.includes('noarp') && !n.state.includes('permanent')) return true;
  if (n.ip.includes(':')) return /^ff/i.test(n.ip);
  const first = Number(n.ip.split('.')[0]);
  return first >= 224 && first <= 239;
}

/** Reads the VXLAN device's own FDB entries and its neighbour entries (not those the kernel makes itself). */
export async function readKernel(h: NetlinkHandle, dev: number): Promise<Programmed> {
  const out: Programmed = { fdb: new Map(), neigh: new Map() };
  for (const e of await listFdb(h, { dev })) {
    if (!e.self || e.index !== dev) continue;
    const dst = e.dst ?? '';
    if (e.state.includes('permanent')) out.fdb.set(fdbKey(e.mac, dst), { mac: e.mac, dst });
    else out.fdb.set(notPermanentKey(e.mac, dst), { mac: e.mac, dst, permanent: false });
  }
  // A non-permanent neighbour entry (none should exist) has an empty MAC here, so it differs and is replaced or removed.
  for (const n of await listNeighbors(h, { dev })) if (!kernelOwnNeighbor(n)) out.neigh.set(n.ip, n.state.includes('permanent') ? n.mac ?? '' : '');
  return out;
}

export interface ApplyStats {
  added: number;
  removed: number;
}

/** The writes that make the device hold `want` instead of `have`, in a safe order (removals first). */
export function writesFor(dev: number, have: Programmed, want: Programmed): NeighWrite[] {
  const out: NeighWrite[] = [];
  for (const ip of have.neigh.keys()) if (!want.neigh.has(ip)) out.push({ kind: 'neigh', op: 'delete', dev, ip });
  for (const [key, e] of have.fdb) if (!want.fdb.has(key)) out.push({ kind: 'fdb', op: 'delete', dev, mac: e.mac, dst: e.dst });
  for (const [key, e] of want.fdb) if (!have.fdb.has(key)) out.push({ kind: 'fdb', op: e.mac === FLOOD_MAC ? 'append' : 'replace', dev, mac: e.mac, dst: e.dst });
  for (const [ip, mac] of want.neigh) if (have.neigh.get(ip) !== mac) out.push({ kind: 'neigh', op: 'replace', dev, ip, mac });
  return out;
}

/** Some entries of a device: FDB keys (`MAC>VTEP`) and neighbour IPs. */
export interface Keys {
  fdb: Set<string>;
  neigh: Set<string>;
}

/** The entries of `p` under `only` (all of them without it). */
function within(p: Programmed, only: Keys | undefined): Programmed {
  if (!only) return p;
  return {
    fdb: new Map([...p.fdb].filter(([key]) => only.fdb.has(key))),
    neigh: new Map([...p.neigh].filter(([ip]) => only.neigh.has(ip))),
  };
}

/**
 * Makes the device hold exactly `want` (within `only`, when given: entries outside it are left
 * alone, also when the kernel is read again): every write in a few netlink datagrams; when one fails
 * (an entry changed behind cnmkit's back), the kernel is read again and the writes made one at a
 * time. `have` is updated in place.
 */
export async function converge(h: NetlinkHandle, dev: number, have: Programmed, want: Programmed, only?: Keys): Promise<ApplyStats> {
  const writes = writesFor(dev, have, want);
  const stats = { added: writes.filter((w) => w.op !== 'delete').length, removed: writes.filter((w) => w.op === 'delete').length };
  if (writes.length === 0) return stats;
  try {
    h.batch('overlay peer entries', writes.map(encodeNeighWrite));
  } catch {
    const now = within(await readKernel(h, dev), only);
    return convergeOneByOne(h, dev, Object.assign(have, now), want);
  }
  have.fdb = new Map(want.fdb);
  have.neigh = new Map(want.neigh);
  return stats;
}

/** The same one request at a time, each failure its own (a missing entry to delete is none). */
async function convergeOneByOne(h: NetlinkHandle, dev: number, have: Programmed, want: Programmed): Promise<ApplyStats> {
  const stats: ApplyStats = { added: 0, removed: 0 };
  for (const [ip, mac] of have.neigh) {
    if (want.neigh.get(ip) === mac) continue;
    if (!want.neigh.has(ip)) {
      await deleteNeighbor(h, { dev, ip }, { ifExists: true });
      have.neigh.delete(ip);
      stats.removed++;
    }
  }
  for (const [key, e] of have.fdb) {
    if (want.fdb.has(key)) continue;
    await deleteFdb(h, { dev, mac: e.mac, ...(e.dst ? { dst: e.dst } : {}) }, { ifExists: true });
    have.fdb.delete(key);
    stats.removed++;
  }
  for (const [key, e] of want.fdb) {
    if (have.fdb.has(key)) continue;
    if (e.mac === FLOOD_MAC) await appendFdb(h, { dev, mac: e.mac, dst: e.dst });
    else await replaceFdb(h, { dev, mac: e.mac, dst: e.dst });
    have.fdb.set(key, e);
    stats.added++;
  }
  for (const [ip, mac] of want.neigh) {
    if (have.neigh.get(ip) === mac) continue;
    await addNeighbor(h, { dev, ip, mac }, { replace: true });
    have.neigh.set(ip, mac);
    stats.added++;
  }
  return stats;
}

/**
 * Wanted entries with how many remote peers want each. A neighbour's MACs are counted apart (two
 * peers may give one IP different MACs for a moment, or a test's made-up peers may): the MAC
 * counted last is the one programmed, and when its peers go, the one counted before it.
 */
export interface Counted {
  fdb: Map<string, { mac: string; dst: string; refs: number }>;
  neigh: Map<string, Map<string, number>>;
}

export function counted(peers: Iterable<Peer>, selfHost: string, selfVtep: string): Counted {
  const out: Counted = { fdb: new Map(), neigh: new Map() };
  for (const p of peers) count(out, p, 1, selfHost, selfVtep);
  return out;
}

/** Adds (by 1) or takes away (by -1) what one peer wants; touched collects the keys it changed. */
export function count(c: Counted, p: Peer, by: 1 | -1, selfHost: string, selfVtep: string, touched?: Keys): void {
  if (p.host === selfHost || p.vtep === selfVtep) return;
  for (const mac of [p.mac, FLOOD_MAC]) {
    const key = fdbKey(mac, p.vtep);
    const e = c.fdb.get(key) ?? { mac, dst: p.vtep, refs: 0 };
    e.refs += by;
    if (e.refs > 0) c.fdb.set(key, e);
    else c.fdb.delete(key);
    touched?.fdb.add(key);
  }
  for (const ip of p.ipv6 ? [p.ip, p.ipv6] : [p.ip]) {
    const macs = c.neigh.get(ip) ?? new Map<string, number>();
    const refs = (macs.get(p.mac) ?? 0) + by;
    // A MAC a peer has just given goes last (the one programmed); one taken away keeps its place.
    if (by > 0 || refs <= 0) macs.delete(p.mac);
    if (refs > 0) macs.set(p.mac, refs);
    if (macs.size > 0) c.neigh.set(ip, macs);
    else c.neigh.delete(ip);
    touched?.neigh.add(ip);
  }
}

function lastKey<K>(m: Map<K, unknown>): K | undefined {
  let last: K | undefined;
  for (const k of m.keys()) last = k;
  return last;
}

/** The entries of `c` (all, or those under the given keys) as the kernel would hold them. */
export function plain(c: Counted, only?: Keys): Programmed {
  const out: Programmed = { fdb: new Map(), neigh: new Map() };
  for (const [key, e] of c.fdb) if (!only || only.fdb.has(key)) out.fdb.set(key, { mac: e.mac, dst: e.dst });
  for (const [ip, macs] of c.neigh) if (!only || only.neigh.has(ip)) out.neigh.set(ip, lastKey(macs)!);
  return out;
}

/**
 * One network's programming: batches in order; a resync or the first batch reads the kernel again
 * (not the first batch on a device made just before, which holds no entry yet). A remote peer that
 * went with its host's lease (leaseEnded) keeps its entries for a grace (./linger.ts) unless
 * another endpoint holds one of its addresses now; what it wants counts with the records' until
 * its grace runs out (then its entries go, unless its host published it again meanwhile). The
 * grace's end runs in order with the batches.
 */
export class PeerProgrammer {
  private have: Programmed | undefined;
  private want: Counted | undefined;
  private latest: PeerBatch | undefined;
  private readonly lingering: Lingering;
  private timer: NodeJS.Timeout | undefined;
  /** The batches' and graces' work, one at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  /**
   * empty: the device was made just now (nothing to read before the first batch); graceMs: how
   * long a peer that went with its lease is kept; onError: told when the end of a grace failed to
   * be programmed (the programmer is forgotten then, as after a failed batch).
   */
  constructor(
    private readonly h: NetlinkHandle,
    private readonly dev: number,
    readonly self: { host: string; vtep: string },
    private empty = false,
    private readonly o: { graceMs?: number; onError?: (err: unknown) => void } = {},
  ) {
    this.lingering = new Lingering(o.graceMs);
  }

  /** The revision of the last batch; undefined before the first (no peer record read yet). */
  get revision(): number | undefined {
    return this.latest?.revision;
  }

  /** Every peer of the network after the last batch (this host's included). */
  get peers(): ReadonlyMap<string, Peer> {
    return this.latest?.peers ?? new Map();
  }

  /** Remote peers whose records went with their host's lease, whose entries are kept for now. */
  get kept(): Peer[] {
    return this.lingering.peers();
  }

  apply(batch: PeerBatch): Promise<ApplyStats> {
    return this.serial(() => this.applyNow(batch));
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async applyNow(batch: PeerBatch): Promise<ApplyStats> {
    this.latest = batch;
    const { host, vtep } = this.self;
    const now = Date.now();
    try {
      if (batch.resync || !this.have || !this.want) {
        this.want = undefined;
        this.have = this.empty ? { fdb: new Map(), neigh: new Map() } : await readKernel(this.h, this.dev);
        this.empty = false;
        // Kept peers that the records name again, or whose addresses another endpoint holds now, end.
        for (const p of batch.peers.values()) this.lingering.endFor(p);
        for (const c of batch.changes) if (c.kind === 'removed' && c.leaseEnded) this.keep(c.peer, batch, now);
        this.want = counted([...batch.peers.values(), ...this.lingering.peers()], host, vtep);
        return await converge(this.h, this.dev, this.have, plain(this.want));
      }
      const touched: Keys = { fdb: new Set(), neigh: new Set() };
      for (const c of batch.changes) {
        if (c.kind !== 'removed') for (const q of this.lingering.endFor(c.peer)) count(this.want, q, -1, host, vtep, touched);
        // A peer kept stays counted until its grace ends.
        if (c.kind === 'removed' && c.leaseEnded && this.keep(c.peer, batch, now)) continue;
        if (c.kind !== 'added') count(this.want, c.kind === 'updated' ? c.previous : c.peer, -1, host, vtep, touched);
        if (c.kind !== 'removed') count(this.want, c.peer, 1, host, vtep, touched);
      }
      return await this.convergeTouched(this.have, this.want, touched);
    } finally {
      this.schedule();
    }
  }

  /** Keeps a remote peer that went with its lease, unless a peer of the batch holds one of its addresses; says whether it was kept. */
  private keep(p: Peer, batch: PeerBatch, now: number): boolean {
    if (p.host === this.self.host || p.vtep === this.self.vtep || clashes(p, batch.peers.values())) return false;
    this.lingering.keep(p, now);
    return true;
  }

  /** Programs the touched entries as `want` has them (the others are left alone). */
  private async convergeTouched(had: Programmed, want: Counted, touched: Keys): Promise<ApplyStats> {
    const have: Programmed = { fdb: new Map(), neigh: new Map() };
    for (const key of touched.fdb) if (had.fdb.has(key)) have.fdb.set(key, had.fdb.get(key)!);
    for (const ip of touched.neigh) if (had.neigh.has(ip)) have.neigh.set(ip, had.neigh.get(ip)!);
    try {
      return await converge(this.h, this.dev, have, plain(want, touched), touched);
    } finally {
      // What those entries are now (converge updated `have` as it went, also when it failed).
      for (const key of touched.fdb) have.fdb.has(key) ? had.fdb.set(key, have.fdb.get(key)!) : had.fdb.delete(key);
      for (const ip of touched.neigh) have.neigh.has(ip) ? had.neigh.set(ip, have.neigh.get(ip)!) : had.neigh.delete(ip);
    }
  }

  /** The next end of a grace, timed (none while nothing is kept). */
  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const next = this.lingering.next();
    if (next === undefined || this.closed) return;
    this.timer = setTimeout(() => {
      this.serial(() => this.expire()).catch((err: unknown) => {
        this.forget();
        this.o.onError?.(err);
      });
    }, Math.max(0, next - Date.now()));
    this.timer.unref();
  }

  /** The kept peers whose grace ran out lose their entries. */
  private async expire(): Promise<void> {
    if (this.closed) return;
    const gone = this.lingering.due(Date.now());
    try {
      if (gone.length === 0) return;
      if (!this.have || !this.want) {
        // Forgotten after a failure: the kernel is read again and made to hold what the records and the peers still kept want.
        if (this.latest) await this.applyNow({ ...this.latest, resync: true, changes: [] });
        return;
      }
      const touched: Keys = { fdb: new Set(), neigh: new Set() };
      const { host, vtep } = this.self;
      for (const q of gone) count(this.want, q, -1, host, vtep, touched);
      await this.convergeTouched(this.have, this.want, touched);
    } finally {
      this.schedule();
    }
  }

  /**
   * Reads the kernel again and makes it hold what the last batch and the kept peers want, in order
   * with the batches: for entries lost behind its back (a device's down flushes its neighbours).
   */
  reread(): Promise<ApplyStats | undefined> {
    return this.serial(async () => (this.closed || !this.latest ? undefined : this.applyNow({ ...this.latest, resync: true, changes: [] })));
  }

  /** Forgets what it believes is programmed: the next batch reads the kernel first (peers kept stay kept). */
  forget(): void {
    this.empty = false;
    this.have = undefined;
    this.want = undefined;
  }

  /** No more work: the grace timer stops and kept peers are dropped (the device goes with the network). */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.lingering.clear();
  }

  /** What the device should hold now (the kept peers' entries too) and what it holds (read afresh), for a check. */
  async compare(): Promise<{ want: Programmed; have: Programmed }> {
    return { want: wanted([...this.peers.values(), ...this.lingering.peers()], this.self.host, this.self.vtep), have: await readKernel(this.h, this.dev) };
  }
}
