// Endpoints on this host, watched by their host-side link: when one vanishes without a leave (the
// Docker engine's, whose container's namespace went: an engine crash, a container killed while the
// plugin was away; a cnmkit sandbox's, whose namespace was deleted by hand, taking the veth along),
// onGone runs for it, so its peer leaves the cluster at once instead of at the engine's next call
// or the sandbox's removal. Events from the overlay's shared link subscription (./link-events.ts).
// An interface found in a listing made earlier (a restore lists the links before it watches them)
// may have gone in between, with no event left to tell: such a watch reads the links again once
// (one dump for the watches of one turn of the event loop).
// onGone says what vanished (this class knows only the link). Limits: events only; a lost event is
// caught by the subscription's resync (a dump of the links).
import type { Logger } from 'pino';
import type { NetlinkEvent } from '../../src/netlink/index.js';
import type { LinkEvents, LinkFollower } from './link-events.js';

export class DetachedLinks<T> implements LinkFollower {
  private readonly watched = new Map<string, T>();
  private recheck: NodeJS.Immediate | undefined;

  constructor(private readonly events: LinkEvents, private readonly log: Logger, private readonly onGone: (item: T) => Promise<void>) {}

  follows(ifname: string): boolean {
    return this.watched.has(ifname);
  }

  /**
   * Watches the link `ifname` for item: one that exists now, or (listedEarlier) one found in a
   * listing made earlier, which the links read again after this turn confirm.
   */
  watch(ifname: string, item: T, o: { listedEarlier?: boolean } = {}): void {
    this.watched.set(ifname, item);
    this.events.follow(this);
    if (o.listedEarlier) this.recheck ??= setImmediate(() => {
      this.recheck = undefined;
      this.events.resync().catch((err: Error) => this.log.warn({ err }, 'overlay: the links of Docker endpoints were not read again; one gone since the restore listed it is pruned at the engine\'s next call'));
    });
  }

  /** Stops watching (the endpoint is being deleted through the engine, or leaves its sandbox). */
  forget(ifname: string): void {
    this.watched.delete(ifname);
    if (this.watched.size === 0) this.events.unfollow(this);
  }

  onEvent(e: NetlinkEvent): void {
    let gone: string[] = [];
    if (e.type === 'del-link') gone = this.watched.has(e.link.name) ? [e.link.name] : [];
    else if (e.type === 'resync' && e.links) {
      const have = new Set(e.links.map((l) => l.name));
      gone = [...this.watched.keys()].filter((n) => !have.has(n));
    }
    for (const ifname of gone) {
      const item = this.watched.get(ifname)!;
      this.forget(ifname);
      void this.onGone(item).catch((err: Error) => this.log.warn({ err, link: ifname }, 'overlay: removing a vanished endpoint\'s peer failed'));
    }
  }
}
