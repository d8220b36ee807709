// One overlay network on this host while it is here: its devices, the watch of its peers and
// what that watch programmed (with the peers kept for a grace after their host's lease ended),
// and the endpoints joined here. Made when the network is created
// here or at its first local join; ended (watch closed, devices deleted) when the network is
// deleted here or, on a host that did not create it, when its last local endpoint leaves.
// A set MTU above what the underlay carries is kept and warned of (logged at each bring-up, and
// said by create, inspect and ls); it is read at the bring-up only, not followed afterwards.
import type { Logger } from 'pino';
import type { Cluster, PeerWatch } from '../../src/cluster/types.js';
import type { HostSysctl } from '../../src/contract/driver.js';
import type { NetlinkHandle } from '../../src/netlink/index.js';
import type { OverlayConfig } from './config.js';
import { mark } from '../../src/core/trace.js';
import { deviceNames, ensureDevices, removeDevices } from './device.js';
import type { DeviceFlaps } from './flaps.js';
import { PeerProgrammer } from './program.js';

/** Why a given MTU above what the underlay carries is a cost: for the log and network inspect. */
export function mtuAboveUnderlay(mtu: number, carried: number): string {
  return `MTU ${mtu} (com.docker.network.driver.mtu) is above what this host's underlay carries, ${carried} (the --advertise-addr interface's MTU less VXLAN's 50 bytes): larger packets cross fragmented, and those with don't-fragment set (TCP's) are answered with ICMP fragmentation-needed (mtu ${carried})`;
}

export class HostNetwork {
  readonly local = new Set<string>();
  devices: { bridge: number; vxlan: number } | undefined;
  /** Whether the last bring-up made the bridge (no endpoint's port on it then). */
  bridgeMade = false;
  mtu = 0;
  /** What the underlay carries (the VTEP interface's MTU less 50) when the given MTU is above it, as read at the last bring-up. */
  underlayBelow: number | undefined;
  programmer: PeerProgrammer | undefined;
  /** Local endpoints whose address another owner took while this host's lease was gone (restart): why, by endpoint id. */
  readonly lost = new Map<string, string>();
  /** Whether this host's stock of spare addresses in the network's pools is held (the driver's). */
  holdsSpares = false;
  private watch: PeerWatch | undefined;
  /** What its device's watch (flaps) runs when the device is up again after a down. */
  private reread: (() => Promise<unknown>) | undefined;
  /** A bring-up under way (up()). */
  private rising: Promise<void> | undefined;
  /** Resolves once the first batch of the watch was programmed. */
  ready: Promise<void> = Promise.resolve();

  /** flaps: where its VXLAN device is watched for a down and up (its neighbour entries then put back). */
  constructor(readonly name: string, readonly config: OverlayConfig & { vni: number }, private readonly flaps?: DeviceFlaps) {}

  /**
   * Devices up and the peer watch running (idempotent: a call while another brings it up waits for
   * that one); underlayMtu: the VTEP interface's MTU less 50.
   */
  up(h: NetlinkHandle, sysctl: HostSysctl, cluster: Cluster, logger: Logger, underlayMtu: () => Promise<number>): Promise<void> {
    if (this.devices && this.watch) return Promise.resolve();
    this.rising ??= this.rise(h, sysctl, cluster, logger, underlayMtu).finally(() => (this.rising = undefined));
    return this.rising;
  }

  private async rise(h: NetlinkHandle, sysctl: HostSysctl, cluster: Cluster, logger: Logger, underlayMtu: () => Promise<number>): Promise<void> {
    const given = this.config.mtu;
    // A given MTU is compared with the underlay's when it can be read (a restore may not read it).
    const carried = given === undefined ? await underlayMtu() : await underlayMtu().catch(() => undefined);
    this.mtu = given ?? (carried as number);
    this.underlayBelow = given !== undefined && carried !== undefined && given > carried ? carried : undefined;
    if (this.underlayBelow !== undefined) {
      logger.warn({ network: this.name, mtu: given, underlay: this.underlayBelow }, `overlay: ${mtuAboveUnderlay(given!, this.underlayBelow)}`);
    }
    mark('mtu');
    const spec = { vni: this.config.vni, port: this.config.port, vtep: cluster.vtep, mtu: this.mtu, ipv6: this.config.enableIPv6 };
    const vx = deviceNames(this.config.vni).vxlan;
    // Watched before the devices are made: the events of their making are read as such (flaps.ts).
    const reread = () => this.programmer?.reread() ?? Promise.resolve();
    this.reread = reread;
    this.flaps?.watch(vx, reread);
    let devices: Awaited<ReturnType<typeof ensureDevices>>;
    try {
      devices = await ensureDevices(h, sysctl, spec);
    } catch (err) {
      this.flaps?.forget(vx, reread);
      this.reread = undefined;
      throw err;
    }
    const { bridge, vxlan, made, bridgeMade } = devices;
    this.flaps?.made(vx, made);
    this.devices = { bridge, vxlan };
    this.bridgeMade = bridgeMade;
    mark('devices');
    const log = logger.child({ network: this.name, vni: this.config.vni });
    const programmer = new PeerProgrammer(h, vxlan, { host: cluster.hostId, vtep: cluster.vtep }, made, {
      onError: (err) => log.error({ err }, 'overlay: removing the entries of peers whose grace ended failed; the next batch reads the kernel again'),
    });
    this.programmer = programmer;
    let first: () => void = () => undefined;
    this.ready = new Promise((resolve) => (first = resolve));
    this.watch = cluster.watchPeers(this.name, async (batch) => {
      try {
        mark('batch in');
        const stats = await programmer.apply(batch);
        mark('batch programmed');
        if (stats.added + stats.removed > 0) log.debug({ ...stats, resync: batch.resync, revision: batch.revision }, 'overlay: peers programmed');
      } catch (err) {
        log.error({ err }, 'overlay: programming peers failed; the next batch reads the kernel again');
        programmer.forget();
      } finally {
        first();
      }
    });
    mark('watch started');
  }

  /** Watch closed, devices deleted (once a bring-up under way has ended); idempotent. */
  async down(h: NetlinkHandle): Promise<void> {
    await this.rising?.catch(() => undefined);
    const watch = this.watch;
    this.watch = undefined;
    if (this.reread) this.flaps?.forget(deviceNames(this.config.vni).vxlan, this.reread);
    this.reread = undefined;
    this.programmer?.close();
    this.programmer = undefined;
    this.devices = undefined;
    await watch?.close();
    await removeDevices(h, this.config.vni);
  }

  get isUp(): boolean {
    return this.devices !== undefined;
  }

  /**
   * The peer records the entries are programmed from: 'live' while the watch follows etcd, 'last'
   * when it lost etcd after a first read (revision: that read's), 'none' before any read since
   * this daemon started (the kernel holds what an earlier run programmed, kept as it is).
   */
  peerView(): { view: 'live' | 'last' | 'none'; revision?: number } {
    const revision = this.programmer?.revision;
    if (revision === undefined) return { view: 'none' };
    return { view: this.watch?.stats().state === 'watching' ? 'live' : 'last', revision };
  }
}
