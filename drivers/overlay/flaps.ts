// The VXLAN devices of this host's overlay networks, watched for a down and up again (an admin's
// `ip link set DEV down`, a network manager): the kernel flushes every neighbour entry of a device
// that goes down, the permanent ones too, and a VXLAN device in proxy mode then answers no ARP/ND
// for the remote peers, so their traffic stops while nothing changes in the cluster. When a watched
// device is up again after it was seen down, its network reads the kernel again and puts back what
// the peer records ask for (its `reread`); so does every watched network when events were lost (the
// subscription's resync dump; not a resync another watch asked for). A device is watched from
// before its bring-up (the subscription is open then): a device the bring-up made is born down and
// then set up, and those events, read a moment later, are no flap (its downs count from its first
// up seen); for one that was there, they count at once (made()). Events from the overlay's shared
// link subscription (./link-events.ts).
// Limits: a device deleted by hand is not made again here (`check` names it; a restart makes it).
import type { Logger } from 'pino';
import type { NetlinkEvent } from '../../src/netlink/index.js';
import type { LinkEvents, LinkFollower } from './link-events.js';

export class DeviceFlaps implements LinkFollower {
  /** seenUp: whether a down now is a flap (undefined until the bring-up said whether it made the device). */
  private readonly watched = new Map<string, { down: boolean; seenUp?: boolean; reread: () => Promise<unknown> }>();

  constructor(private readonly events: LinkEvents, private readonly log: Logger) {}

  follows(ifname: string): boolean {
    return this.watched.has(ifname);
  }

  /** Watches the device ifname, from before its bring-up: reread runs when it is up again after a down. */
  watch(ifname: string, reread: () => Promise<unknown>): void {
    this.watched.set(ifname, { down: false, reread });
    this.events.follow(this);
  }

  /** The bring-up made the device (its birth's events are still to be read) or found it there. */
  made(ifname: string, made: boolean): void {
    const w = this.watched.get(ifname);
    if (w) w.seenUp ??= !made;
  }

  /** Stops watching ifname for reread (a watch of the same name made since by another bring-up stays). */
  forget(ifname: string, reread: () => Promise<unknown>): void {
    if (this.watched.get(ifname)?.reread !== reread) return;
    this.watched.delete(ifname);
    if (this.watched.size === 0) this.events.unfollow(this);
  }

  onEvent(e: NetlinkEvent): void {
    if (e.type === 'resync') {
      // A resync the endpoint watch asked for (a restore's recheck) lost no event of these devices.
      if (e.reason === 'requested') return;
      for (const [ifname, w] of this.watched) this.reread(ifname, w);
      return;
    }
    if (e.type !== 'new-link') return;
    const w = this.watched.get(e.link.name);
    if (!w) return;
    if (!e.link.up) w.down = w.seenUp === true;
    else if (w.seenUp !== true) w.seenUp = true;
    else if (w.down) {
      w.down = false;
      this.reread(e.link.name, w);
    }
  }

  private reread(ifname: string, w: { reread: () => Promise<unknown> }): void {
    this.log.info({ link: ifname }, 'overlay: VXLAN device up again (a down flushed its neighbour entries): its peers are programmed again');
    void w.reread().catch((err: Error) => this.log.error({ err, link: ifname }, 'overlay: programming the peers again after the device came up failed'));
  }
}
