// What a driver's join describes instead of doing (as libnetwork's JoinInfo): the interface it
// made, where that interface is now, and how the sandbox should see it — name, MAC, MTU,
// addresses, gateways, static routes. One applier (src/controller/apply.ts) puts it into
// cnmkit's sandboxes; each front end translates the same structure for its client (the Docker
// plugin's Join reply, the management API's endpoint view).
import type { EndpointRecord, SandboxRecord } from '../core/model.js';

/**
 * Where the endpoint's container end is born. In cnmkit's own flow it is born inside the sandbox
 * with its final name (a veth's peer made there in one netlink request); in the Docker engine's
 * flow it stays detached in the daemon's namespace and the engine moves and names it.
 */
export type Placement =
  | {
    kind: 'sandbox';
    sandbox: SandboxRecord;
    /** The sandbox's other endpoints, as stored (none: the endpoint is the sandbox's first). */
    peers: EndpointRecord[];
    /** The interface name asked for inside the sandbox (validated); default: the driver's prefix and the next free number. */
    ifname?: string;
    /**
     * Global networks whose scope reserves addresses (GlobalScope.reserveAddress): the endpoint's
     * addresses are reserved, not claimed, and the join claims them for this owner together with
     * its own cluster keys, in one transaction.
     */
    claim?: { owner: string };
  }
  | { kind: 'detached' };

/** A sandbox of cnmkit's own that no endpoint joins yet: only lo, no routes (nothing needs reading back). */
export function isFresh(p: Placement): boolean {
  return p.kind === 'sandbox' && p.sandbox.kind === 'named' && p.peers.length === 0;
}

/** A route the sandbox gets besides the default routes: via a next hop, or connected (on the link). */
export interface StaticRoute {
  /** CIDR. */
  destination: string;
  /** Absent: a connected route. */
  nextHop?: string;
}

export interface JoinInfo {
  /** The interface as the driver left it: its name, and whether it is in the sandbox already or in the daemon's namespace. */
  src: { name: string; where: 'sandbox' | 'host'; /** ifindex where it is, when known (saves a lookup). */ index?: number };
  /** The name inside the sandbox; with src.where 'sandbox' it is src.name. */
  dstName?: string;
  /** Or a prefix: the sandbox's next free PREFIXn (Docker's DstPrefix). */
  dstPrefix?: string;
  /** MAC and MTU to set; absent when the interface has them already. */
  mac?: string;
  mtu?: number;
  /** CIDRs. */
  ipv4?: string;
  ipv6?: string;
  /** Plain addresses, on-link: the default routes (absent: none). */
  gateway?: string;
  gatewayV6?: string;
  routes: StaticRoute[];
  /** The network gives no way out and needs no other (Docker's DisableGatewayService). */
  noGateway: boolean;
  /** IPv6 on the interface (off on a network without IPv6: no link-local address, no DAD or MLD). */
  ipv6Enabled: boolean;
  /**
   * How the sandbox asks for a neighbour's MAC (ARP, and NS with IPv6) when the driver wants other
   * than the kernel's (every 1 s, 3 times): every intervalMs, up to probes times before the entry
   * fails; cnmkit's own sandboxes only (the Docker engine configures its containers' interfaces itself).
   */
  neighSolicit?: { intervalMs: number; probes: number };
}

/** What join returns: the description (none: no interface, as null and host), the endpoint's MAC, and the driver's data when it changed. */
export interface JoinOutcome {
  info?: JoinInfo;
  /**
   * Further interfaces for cnmkit's own sandboxes, applied after info in order (e.g. an overlay's
   * leg on a per-host gateway bridge for egress); the driver's leave removes them. The Docker
   * engine takes one interface: with a detached placement only info counts.
   */
  extra?: JoinInfo[];
  macAddress?: string;
  /** Replaces the endpoint's driverData when given. */
  driverData?: unknown;
}

/** What createEndpoint returns: the driver's data (stored as driverData) and the endpoint's MAC when it chose one. */
export interface EndpointCreated {
  driverData?: unknown;
  macAddress?: string;
}
