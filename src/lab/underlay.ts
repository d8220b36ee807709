// The lab's own links, over netlink: loopback up in a new namespace, the underlay (a bridge in
// NAME-underlay) and each host's leg on it (eth0). Loaded only when needed, after the daemons of
// hosts without an underlay are started: the netlink package takes a while to load.
import { addAddress, addBridge, addVeth, findLink, NetlinkHandlePool, setLinkUp } from '../netlink/index.js';
import type { HostPlan, UnderlayPlan } from './plan.js';

const UNDERLAY_BRIDGE = 'br0';

export class LabLinks {
  private readonly pool = new NetlinkHandlePool();

  /** Equivalent to: `ip -n NS link set lo up`. */
  async loopbackUp(nsPath: string): Promise<void> {
    await setLinkUp(this.pool.get(nsPath), 'lo');
  }

  /** The underlay's bridge in its (new) namespace. Equivalent to: `ip -n UL link add br0 up type bridge; ip -n UL addr add ADDR dev br0`. */
  async underlayBridge(u: UnderlayPlan): Promise<void> {
    const h = this.pool.get(u.nsPath);
    await addBridge(h, { name: UNDERLAY_BRIDGE, up: true, mcastSnooping: false });
    await addAddress(h, UNDERLAY_BRIDGE, u.bridgeAddress);
  }

  /**
   * A host namespace's leg on the underlay: a veth whose end in the host is eth0, with the host's
   * address, up. Converges: a leg an interrupted `up` left without its address or down is finished.
   */
  async underlayLeg(h: HostPlan, index: number, u: UnderlayPlan): Promise<void> {
    if (!h.underlayAddress) return;
    const hh = this.pool.get(h.nsPath);
    if (!(await findLink(hh, 'eth0'))) await addVeth(this.pool.get(u.nsPath), { name: `ul${index}`, master: UNDERLAY_BRIDGE, up: true, peer: { name: 'eth0', nsPath: h.nsPath } });
    await addAddress(hh, 'eth0', h.underlayAddress, { replace: true });
    await setLinkUp(hh, 'eth0');
  }

  /** Those of names that are interfaces of the namespace this process runs in. Equivalent to: `ip link show NAME`. */
  async present(names: string[]): Promise<string[]> {
    const out: string[] = [];
    for (const n of names) if (await findLink(this.pool.get(), n)) out.push(n);
    return out;
  }

  close(): void {
    this.pool.closeAll();
  }
}
