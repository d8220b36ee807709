// The claim of a given MAC on a global network: `macs/<network>/<mac>` = {host, endpointId} on the
// publishing host's lease, created in the transaction that publishes the endpoint's peer, guarded
// by `version == 0` (or, when the claim is this endpoint's already, as after a restart, by its
// revision): of two endpoints publishing one MAC at the same moment on two hosts, one wins and the
// other is refused naming the field `mac`. Deleted with its peer, in one transaction guarded by its
// value (only this endpoint's own claim goes), and by the lease with it. A claim another endpoint
// took while this host's lease was gone keeps this endpoint unpublished (a conflict, owned.ts and
// the overlay's restore). Only a MAC that is not the one the overlay derives from the endpoint's
// IPv4 address is claimed (PeerSpec.macGiven): a derived one is as unique as the address, which
// the global IPAM claims.
import { ConflictError } from '../errors.js';
import { shortId } from '../core/refs.js';
import { parseJson, type Compare, type KeyValue, type Op, type TxnResult } from './client.js';
import type { Keys } from './keys.js';
import type { MacValue, Owned } from './owned.js';
import type { Peer } from './types.js';

export interface MacDeps {
  keys: Keys;
  owned: Owned;
  /** Names a host for an error, as `cluster hosts` shows it. */
  describeHost(hostId: string): Promise<string>;
}

interface Parts {
  compare: Compare[];
  then: Op[];
  otherwise: Op[];
}

const NONE: Parts = { compare: [], then: [], otherwise: [] };

/** The claim of one peer's MAC across the rounds of its publishing transaction (nothing when the MAC was not given). */
export class MacClaim {
  readonly key: string;
  readonly value: MacValue;
  /** The claim's revision when it is this endpoint's already (the next round guards it). */
  private heldAt: number | undefined;

  constructor(private readonly d: MacDeps, private readonly peer: Peer, readonly given: boolean) {
    this.key = d.keys.mac(peer.network, peer.mac);
    this.value = { host: peer.host, endpointId: peer.endpointId };
  }

  /** The transaction's part: compare, put on the lease, and (last of the reads) the claim's key for failed(). */
  ops(lease: string): Parts {
    if (!this.given) return NONE;
    return {
      compare: [this.heldAt === undefined ? { key: this.key, target: 'version', op: '=', value: 0 } : { key: this.key, target: 'mod', op: '=', value: this.heldAt }],
      then: [{ put: this.key, value: this.value, lease }],
      otherwise: [{ get: this.key }],
    };
  }

  /**
   * After a failed transaction: false when the claim's compare held (something else failed it);
   * true when it did not but the claim is this endpoint's own (the next round guards its
   * revision); else throws ConflictError naming the endpoint that has the MAC and its host.
   */
  async failed(res: TxnResult): Promise<boolean> {
    if (!this.given) return false;
    const held: KeyValue | undefined = res.reads.at(-1)?.[0];
    if (held === undefined ? this.heldAt === undefined : held.modRevision === this.heldAt) return false;
    if (held === undefined) {
      this.heldAt = undefined;
      return true;
    }
    const other = parseJson<MacValue>(held);
    if (other.host === this.value.host && other.endpointId === this.value.endpointId) {
      this.heldAt = held.modRevision;
      return true;
    }
    throw new ConflictError(`mac address ${this.peer.mac} is in use by endpoint ${shortId(other.endpointId)} of network ${this.peer.network} on ${await this.d.describeHost(other.host)}`, { field: 'mac' });
  }

  /** The claim landed: remembered as this host's (put back after a lost lease, deleted with the peer). */
  claimed(): void {
    if (this.given) this.d.owned.set(this.key, { kind: 'mac', value: this.value });
  }
}

/**
 * The deletion of a peer, with its MAC's claim when that is this endpoint's: one transaction,
 * `If(value(claim) == this endpoint's) Then(del peer, del claim) Else(del peer)`.
 */
export function removalOps(keys: Keys, peerKey: string, peer: Peer | undefined): { compare: Compare[]; then: Op[]; otherwise: Op[] } {
  if (!peer) return { compare: [], then: [{ del: peerKey }], otherwise: [] };
  const key = keys.mac(peer.network, peer.mac);
  const value: MacValue = { host: peer.host, endpointId: peer.endpointId };
  return { compare: [{ key, target: 'value', op: '=', value: JSON.stringify(value) }], then: [{ del: peerKey }, { del: key }], otherwise: [{ del: peerKey }] };
}
