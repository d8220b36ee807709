// Static forwarding state of one overlay network on one host, from the cluster's peer records:
// per remote endpoint a permanent FDB entry (MAC → VTEP, self) and permanent neighbour entries
// (IP → MAC) on the VXLAN device, and per remote VTEP one all-zero-MAC flood entry. Each batch
// of the peer watch is turned into the wanted set and diffed against what is programmed, the
// writes sent in a few netlink datagrams; a resync (and the first batch) reads the kernel first,
// so an entry added or removed behind cnmkit's back is put right and nothing learned or stale
// survives.
import type { Peer, PeerBatch } from '../../src/cluster/types.js';
import {
  addNeighbor, appendFdb, deleteFdb, deleteNeighbor, encodeNeighWrite, listFdb, listNeighbors, replaceFdb, type NeighWrite, type NetlinkHandle,
} from '../../src/netlink/index.js';

export const FLOOD_MAC = '00:00:00:00:00:00';

/** What the VXLAN device holds: FDB entries by `MAC>VTEP`, neighbours by IP (value: MAC). */
export interface Programmed {
  fdb: Map<string, { mac: string; dst: string }>;
  neigh: Map<string, string>;
}

/** The entries every remote peer (another host's endpoint) needs on this host. */
export function wanted(peers: Iterable<Peer>, selfHost: string, selfVtep: string): Programmed {
  const out: Programmed = { fdb: new Map(), neigh: new Map() };
  for (const p of peers) {
    if (p.host === selfHost || p.vtep === selfVtep) continue;
    out.fdb.set(`${p.mac}>${p.vtep}`, { mac: p.mac, dst: p.vtep });
    out.fdb.set(`${FLOOD_MAC}>${p.vtep}`, { mac: FLOOD_MAC, dst: p.vtep });
    out.neigh.set(p.ip, p.mac);
    if (p.ipv6) out.neigh.set(p.ipv6, p.mac);
  }
  return out;
}

/** Reads the VXLAN device's own FDB entries and its neighbour entries. */
export async function readKernel(h: NetlinkHandle, dev: number): Promise<Programmed> {
  const out: Programmed = { fdb: new Map(), neigh: new Map() };
  for (const e of await listFdb(h, { dev })) {
    if (!e.self || e.index !== dev) continue;
    out.fdb.set(`${e.mac}>${e.dst ?? ''}`, { mac: e.mac, dst: e.dst ?? '' });
  }
  // A non-permanent neighbour entry (none should exist) has an empty MAC here, so it differs and is replaced or removed.
  for (const n of await listNeighbors(h, { dev })) out.neigh.set(n.ip, n.state.includes('permanent') ? n.mac ?? '' : '');
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

/**
 * Makes the device hold exactly `want`: every write in a few netlink datagrams; when one fails
 * (an entry changed behind cnmkit's back), the kernel is read again and the writes made one at a
 * time. `have` is updated in place.
 */
export async function converge(h: NetlinkHandle, dev: number, have: Programmed, want: Programmed): Promise<ApplyStats> {
  const writes = writesFor(dev, have, want);
  const stats = { added: writes.filter((w) => w.op !== 'delete').length, removed: writes.filter((w) => w.op === 'delete').length };
  if (writes.length === 0) return stats;
  try {
    h.batch('overlay peer entries', writes.map(encodeNeighWrite));
  } catch {
    const now = await readKernel(h, dev);
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

/** One network's programming: batches in order; a resync or the first batch reads the kernel again. */
export class PeerProgrammer {
  private have: Programmed | undefined;
  /** Every peer of the network after the last batch (this host's included). */
  peers: ReadonlyMap<string, Peer> = new Map();

  constructor(
    private readonly h: NetlinkHandle,
    private readonly dev: number,
    private readonly self: { host: string; vtep: string },
  ) {}

  async apply(batch: PeerBatch): Promise<ApplyStats> {
    this.peers = batch.peers;
    if (batch.resync || !this.have) this.have = await readKernel(this.h, this.dev);
    return converge(this.h, this.dev, this.have, wanted(batch.peers.values(), this.self.host, this.self.vtep));
  }

  /** Forgets what it believes is programmed: the next batch reads the kernel first. */
  forget(): void {
    this.have = undefined;
  }

  /** What the device should hold now and what it holds (read afresh), for a check. */
  async compare(): Promise<{ want: Programmed; have: Programmed }> {
    return { want: wanted(this.peers.values(), this.self.host, this.self.vtep), have: await readKernel(this.h, this.dev) };
  }
}
