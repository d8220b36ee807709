// The MTU of the interface holding the VTEP address (the underlay), less the VXLAN overhead: what
// an overlay network's devices get unless its MTU is given. The interface is found once (a dump of
// the addresses); its MTU is then kept, and followed through the overlay's link events (a change
// is read from its event, its deletion or lost events make the next read ask the kernel), so that
// a network's bring-up on this host asks the kernel nothing. While no interface has the address,
// each read refuses, naming it (a read after it was added finds it).
// The interface is followed by its index, so a rename changes nothing.
// Limits: the VTEP address moved to another interface while the first one stays is not seen; an
// MTU changed a moment before a bring-up (its event not read yet) is the old one for that bring-up.
import { ConflictError } from '../../src/errors.js';
import { findLink, listAddresses, peekLink, type NetlinkEvent, type NetlinkHandle } from '../../src/netlink/index.js';
import { VXLAN_OVERHEAD } from './config.js';
import type { LinkEvents, LinkFollower } from './link-events.js';

export class UnderlayMtu implements LinkFollower {
  /** The interface found, and its MTU while its events are followed (undefined: ask the kernel). */
  private found: { index: number; mtu?: number } | undefined;

  /** events: the overlay's link subscription (without: the kernel is asked at each read). */
  constructor(private readonly events?: LinkEvents) {}

  async read(h: NetlinkHandle, vtep: string): Promise<number> {
    const found = this.found;
    if (found?.mtu !== undefined) return found.mtu - VXLAN_OVERHEAD;
    const known = found === undefined ? undefined : await peekLink(h, found.index);
    if (found && known) return this.keep(found.index, known.mtu);
    const addr = (await listAddresses(h, { family: 4 })).find((a) => a.address === vtep);
    if (!addr) {
      this.found = undefined;
      throw new ConflictError(`the advertise address ${vtep} (--advertise-addr) is on no interface of this host: overlay networks cannot be created or joined here until it is (their VXLAN devices send from it); add it to the underlay interface, or start the daemon with an address this host has`);
    }
    const link = await findLink(h, addr.index);
    if (!link) {
      this.found = undefined;
      return 1500 - VXLAN_OVERHEAD;
    }
    return this.keep(link.index, link.mtu);
  }

  follows(_ifname: string, index: number): boolean {
    return index === this.found?.index;
  }

  onEvent(e: NetlinkEvent): void {
    if (!this.found) return;
    if (e.type === 'resync') {
      if (e.reason !== 'requested') this.found.mtu = undefined;
    } else if (e.type === 'new-link' && e.link.index === this.found.index) {
      this.found.mtu = e.link.mtu;
    } else if (e.type === 'del-link' && e.link.index === this.found.index) {
      this.found.mtu = undefined;
    }
  }

  /** Keeps the interface, and its MTU once its events are followed. */
  private keep(index: number, mtu: number | undefined): number {
    this.found = { index };
    if (this.events && mtu !== undefined) {
      this.events.follow(this);
      this.found.mtu = mtu;
    }
    return (mtu ?? 1500) - VXLAN_OVERHEAD;
  }
}
