// The link events of the daemon's namespace, on one subscription shared by the overlay's watches
// of named links (its endpoints' host ends, ./detached.ts; its VXLAN devices, ./flaps.ts): open
// while any of them follows a link, each event handed to each of them, the links none follows
// dropped before they are parsed. Limits: a resync (events lost, or one a watch asked for) goes to
// every watch, each told why (its reason).
import type { Logger } from 'pino';
import { subscribe, type NetlinkEvent, type NetlinkHandlePool, type Subscription } from '../../src/netlink/index.js';

/** A watch of some links by name (or by index). */
export interface LinkFollower {
  follows(ifname: string, index: number): boolean;
  onEvent(e: NetlinkEvent): void;
}

export class LinkEvents {
  private readonly followers = new Set<LinkFollower>();
  private sub: Subscription | undefined;

  constructor(private readonly netlink: Pick<NetlinkHandlePool, 'get'>, private readonly log: Logger) {}

  /** follower is told the events from now on (the subscription opens with the first one). */
  follow(follower: LinkFollower): void {
    this.followers.add(follower);
    this.sub ??= subscribe(this.netlink.get(), {
      // The watches read a link's name, index, state and MTU only: brief links (a new endpoint's port
      // alone sends ~7 messages, each ~0.1 ms to parse whole).
      addresses: false, keepAlive: false, brief: true,
      linkNamed: (name, index) => [...this.followers].some((f) => f.follows(name, index)),
      onEvent: (e) => {
        for (const f of this.followers) f.onEvent(e);
      },
      onError: (err) => this.log.warn({ err }, 'overlay: link events failed; a vanished endpoint interface is pruned at its next call or removal, and a VXLAN device brought down and up gets its entries back at the next resync'),
    });
  }

  /** follower follows no link any more (the subscription closes with the last one). */
  unfollow(follower: LinkFollower): void {
    this.followers.delete(follower);
    if (this.followers.size > 0) return;
    this.sub?.close();
    this.sub = undefined;
  }

  /** Every link read again, as a 'requested' resync to every follower (nothing while none follows). */
  resync(): Promise<void> {
    return this.sub?.resync() ?? Promise.resolve();
  }
}
