// The keys this daemon put on its lease (peers, endpoint addresses), remembered so that they can
// be put back when the lease was lost (etcd deleted them). An address another host took meanwhile
// is not taken back, and the peer with that address is not published again: both are reported as
// conflicts. Memory only: after a restart the adopted lease still holds the keys, or the driver's
// restore publishes them again.
import { parseJson, type Op, type StoreClient } from './client.js';
import type { Peer } from './types.js';

export interface AddressValue {
  owner: string;
  /** spare: held by `host` for its next endpoints (owner `spare:<hostid>`, see spares.ts). */
  kind: 'endpoint' | 'gateway' | 'aux' | 'spare';
  host: string;
}

/** The value of an address key, built here only: who holds it, as what, for which host. */
export function addressValue(kind: AddressValue['kind'], owner: string, host: string): AddressValue {
  return { owner, kind, host };
}

/** The value of an endpoint's address key on host. */
export function endpointAddress(owner: string, host: string): AddressValue {
  return addressValue('endpoint', owner, host);
}

export type OwnedEntry = { kind: 'peer'; value: Peer } | { kind: 'address'; value: AddressValue };

export class Owned {
  private readonly entries = new Map<string, OwnedEntry>();

  set(key: string, entry: OwnedEntry): void {
    this.entries.set(key, entry);
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Networks this host has peers on. */
  peerNetworks(): string[] {
    const out = new Set<string>();
    for (const e of this.entries.values()) if (e.kind === 'peer') out.add(e.value.network);
    return [...out].sort();
  }

  /**
   * Puts every remembered key back on the new lease, addresses first (a peer is advertised only
   * with an address it holds again); returns the conflicts (addresses others hold now).
   */
  async republish(client: StoreClient, lease: string): Promise<string[]> {
    const conflicts: string[] = [];
    const lost = new Set<string>();
    for (const [key, entry] of this.entries) {
      if (entry.kind !== 'address') continue;
      const conflict = await this.reclaim(client, key, entry.value, lease);
      if (!conflict) continue;
      conflicts.push(conflict);
      lost.add(key.slice(key.lastIndexOf('/') + 1));
      this.entries.delete(key);
    }
    const peers: Op[] = [];
    for (const [key, entry] of this.entries) {
      if (entry.kind !== 'peer') continue;
      // Global pools never overlap, so an IP names one address: a peer whose address was taken stays unpublished.
      if (lost.has(entry.value.ip)) {
        conflicts.push(`${key}: not published again, its address ${entry.value.ip} is held by another owner`);
        this.entries.delete(key);
      } else peers.push({ put: key, value: entry.value, lease });
    }
    // etcd takes at most 128 operations in one transaction (--max-txn-ops).
    for (let i = 0; i < peers.length; i += 100) await client.txn('re-publish peers', [], peers.slice(i, i + 100));
    return conflicts;
  }

  /** Claims an address again; returns why not when another owner holds it now. */
  private async reclaim(client: StoreClient, key: string, value: AddressValue, lease: string): Promise<string | undefined> {
    const put = { put: key, value, lease };
    const res = await client.txn('re-claim an address', [{ key, target: 'version', op: '=', value: 0 }], [put], [{ get: key }]);
    const held = res.reads[0]?.[0];
    if (res.succeeded) return undefined;
    if (!held) return this.reclaim(client, key, value, lease);
    const other = parseJson<AddressValue>(held);
    if (other.host !== value.host || other.owner !== value.owner) return `${key}: held by ${other.kind} ${other.owner} on host ${other.host} since this host's lease was lost`;
    await client.txn('re-claim an address', [{ key, target: 'mod', op: '=', value: held.modRevision }], [put]);
    return undefined;
  }
}
