// The keys this daemon put on its lease (peers, endpoint addresses, claims of given MACs),
// remembered so that they can be put back when the lease was lost (etcd deleted them). An address
// or a MAC another endpoint took meanwhile is not taken back, and the peer with that address or
// MAC is not published again: both are reported as conflicts. Memory only: after a restart the adopted lease still holds the keys, or the driver's
// restore publishes them again.
import { parseJson, type Op, type StoreClient } from './client.js';
import type { Peer } from './types.js';
import { shortId } from '../core/refs.js';

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

/** The value of a given MAC's claim (macs.ts): the endpoint that has it, and its host. */
export interface MacValue {
  host: string;
  endpointId: string;
}

/**
 * Who holds an address, in an error's words, its host named by describe (describeHost):
 * `endpoint 0123456789ab on host …`, `an endpoint of the Docker engine on host …`, `a spare
 * address of host …`; a gateway or aux address belongs to its network: `the gateway address of NAME`.
 */
export async function holderOf(v: AddressValue, describe: (hostId: string) => Promise<string>): Promise<string> {
  if (v.kind === 'gateway' || v.kind === 'aux') return `the ${v.kind} address of ${v.owner}`;
  const host = await describe(v.host);
  if (v.kind === 'spare') return `a spare address of ${host}`;
  if (v.owner.startsWith('docker:')) return `an endpoint of the Docker engine on ${host}`;
  return `endpoint ${shortId(v.owner.replace(/^endpoint:/, ''))} on ${host}`;
}

export type OwnedEntry = { kind: 'peer'; value: Peer } | { kind: 'address'; value: AddressValue } | { kind: 'mac'; value: MacValue };

/**
 * An owned key as a user knows what it stands for (cluster status's conflicts): `endpoint
 * 0123456789ab of network N`, `mac address M of endpoint 0123456789ab`, `address A of pool P`.
 */
function ownedWords(key: string, entry: OwnedEntry): string {
  const [last = key, before = ''] = key.split('/').reverse();
  if (entry.kind === 'peer') return `endpoint ${shortId(entry.value.endpointId)} of network ${entry.value.network}`;
  if (entry.kind === 'mac') return `mac address ${last} of endpoint ${shortId(entry.value.endpointId)}`;
  return `address ${last} of pool ${before.replace('_', '/')}`;
}

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

  get(key: string): OwnedEntry | undefined {
    return this.entries.get(key);
  }

  /** Networks this host has peers on. */
  peerNetworks(): string[] {
    const out = new Set<string>();
    for (const e of this.entries.values()) if (e.kind === 'peer') out.add(e.value.network);
    return [...out].sort();
  }

  /**
   * Puts every remembered key back on the new lease, addresses and MAC claims first (a peer is
   * advertised only with an address and a claimed MAC it holds again); returns the conflicts
   * (addresses and MACs others hold now).
   */
  async republish(client: StoreClient, lease: string, describe: (hostId: string) => Promise<string>): Promise<string[]> {
    const conflicts: string[] = [];
    const lost = new Set<string>();
    const lostMacs = new Set<string>();
    for (const [key, entry] of this.entries) {
      if (entry.kind === 'peer') continue;
      const conflict = await this.reclaim(client, key, entry, lease, describe);
      if (!conflict) continue;
      conflicts.push(conflict);
      if (entry.kind === 'mac') lostMacs.add(entry.value.endpointId);
      else lost.add(key.slice(key.lastIndexOf('/') + 1));
      this.entries.delete(key);
    }
    const peers: Op[] = [];
    for (const [key, entry] of this.entries) {
      if (entry.kind !== 'peer') continue;
      // Global pools never overlap, so an IP names one address: a peer whose address was taken stays unpublished.
      if (lost.has(entry.value.ip) || lostMacs.has(entry.value.endpointId)) {
        const what = lost.has(entry.value.ip) ? `address ${entry.value.ip}` : `mac address ${entry.value.mac}`;
        conflicts.push(`${ownedWords(key, entry)}: not published again, its ${what} is held by another owner`);
        this.entries.delete(key);
      } else peers.push({ put: key, value: entry.value, lease });
    }
    // etcd takes at most 128 operations in one transaction (--max-txn-ops).
    for (let i = 0; i < peers.length; i += 100) await client.txn('re-publish peers', [], peers.slice(i, i + 100));
    return conflicts;
  }

  /** Claims an address or a MAC again; returns why not when another owner holds it now. */
  private async reclaim(client: StoreClient, key: string, entry: Exclude<OwnedEntry, { kind: 'peer' }>, lease: string, describe: (hostId: string) => Promise<string>): Promise<string | undefined> {
    const put = { put: key, value: entry.value, lease };
    const what = entry.kind === 'mac' ? 're-claim a mac address' : 're-claim an address';
    const res = await client.txn(what, [{ key, target: 'version', op: '=', value: 0 }], [put], [{ get: key }]);
    const held = res.reads[0]?.[0];
    if (res.succeeded) return undefined;
    if (!held) return this.reclaim(client, key, entry, lease, describe);
    if (entry.kind === 'mac') {
      const other = parseJson<MacValue>(held);
      if (other.host !== entry.value.host || other.endpointId !== entry.value.endpointId) return `${ownedWords(key, entry)}: held by endpoint ${shortId(other.endpointId)} on ${await describe(other.host)} since this host's lease was lost`;
    } else {
      const other = parseJson<AddressValue>(held);
      if (other.host !== entry.value.host || other.owner !== entry.value.owner) return `${ownedWords(key, entry)}: held by ${await holderOf(other, describe)} since this host's lease was lost`;
    }
    await client.txn(what, [{ key, target: 'mod', op: '=', value: held.modRevision }], [put]);
    return undefined;
  }
}
