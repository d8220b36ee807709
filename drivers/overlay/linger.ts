// Remote peers whose records went with their host's etcd lease (it expired, or an etcd frozen
// past the TTL revoked every lease at its thaw), kept programmed for a grace: such a host
// registers again on a new lease and publishes the same peers anew within moments, and its
// traffic must not stop meanwhile. A kept peer ends when its grace runs out, when the same
// endpoint of the same host is published again (its entries are then the new record's), or at
// once when another endpoint holds one of its IPs or its MAC (the new owner wins). Pure
// bookkeeping: the programmer (program.ts) counts the kept peers as wanted and drops those that end.
// Limits: a host that truly died keeps its entries on the others for the grace beyond its TTL.
import type { Peer } from '../../src/cluster/types.js';

/**
 * How long the entries of a peer that went with its host's lease are kept. It covers a host's
 * return after etcd does (its next keep-alive finds the lease gone: it registers again and
 * publishes its peers, in a few round trips) with room for a loaded machine.
 */
export const PEER_GRACE_MS = 3000;

const idOf = (p: Peer): string => `${p.host}/${p.endpointId}`;

/** The addresses that name an endpoint on the network: its IPs and its MAC. */
function addressesOf(p: Peer): string[] {
  return [`ip ${p.ip}`, ...(p.ipv6 ? [`ip ${p.ipv6}`] : []), `mac ${p.mac}`];
}

/** Whether a peer of another endpoint than p, among `peers`, holds one of its addresses. */
export function clashes(p: Peer, peers: Iterable<Peer>): boolean {
  const mine = new Set(addressesOf(p));
  for (const q of peers) if (idOf(q) !== idOf(p) && addressesOf(q).some((a) => mine.has(a))) return true;
  return false;
}

export class Lingering {
  private readonly kept = new Map<string, { peer: Peer; until: number }>();
  /** Kept peers' ids by address (IP or MAC). */
  private readonly byAddress = new Map<string, Set<string>>();

  constructor(private readonly graceMs = PEER_GRACE_MS) {}

  get size(): number {
    return this.kept.size;
  }

  peers(): Peer[] {
    return [...this.kept.values()].map((k) => k.peer);
  }

  /** Keeps p until now + the grace (a peer kept already under its id is replaced). */
  keep(p: Peer, now: number): void {
    this.end(idOf(p));
    this.kept.set(idOf(p), { peer: p, until: now + this.graceMs });
    for (const a of addressesOf(p)) {
      const ids = this.byAddress.get(a) ?? new Set<string>();
      ids.add(idOf(p));
      this.byAddress.set(a, ids);
    }
  }

  /** Ends and returns the kept peers that p (published now) replaces: its own endpoint's, and those holding one of its addresses. */
  endFor(p: Peer): Peer[] {
    const ids = new Set([idOf(p)]);
    for (const a of addressesOf(p)) for (const id of this.byAddress.get(a) ?? []) ids.add(id);
    return [...ids].flatMap((id) => this.end(id) ?? []);
  }

  /** Ends and returns the kept peers whose grace has run out by now. */
  due(now: number): Peer[] {
    return [...this.kept].filter(([, k]) => k.until <= now).map(([id]) => this.end(id)!);
  }

  /** When the next grace runs out; undefined when none is kept. */
  next(): number | undefined {
    let first: number | undefined;
    for (const k of this.kept.values()) if (first === undefined || k.until < first) first = k.until;
    return first;
  }

  clear(): void {
    this.kept.clear();
    this.byAddress.clear();
  }

  private end(id: string): Peer | undefined {
    const k = this.kept.get(id);
    if (!k) return undefined;
    this.kept.delete(id);
    for (const a of addressesOf(k.peer)) {
      const ids = this.byAddress.get(a);
      ids?.delete(id);
      if (ids?.size === 0) this.byAddress.delete(a);
    }
    return k.peer;
  }
}
