// The typed values of the netlink layer: links as a tagged union by kind. Optional kernel
// attributes are optional fields, so "the kernel did not say" differs from zero.

export type OperState = 'unknown' | 'notpresent' | 'down' | 'lowerlayerdown' | 'testing' | 'dormant' | 'up';

/** Attributes every link has, whatever its kind. */
export interface LinkCommon {
  name: string;
  index: number;
  /** IFF_UP: administratively up. */
  up: boolean;
  mtu?: number;
  mac?: string;
  operstate?: OperState;
  /** ifindex of the bridge (or other master) the link is attached to. */
  master?: number;
  group?: number;
  /**
   * IFLA_LINK_NETNSID: the id, in this namespace, of the namespace holding the link's other
   * side (a veth's peer, a macvlan's parent) when that is another namespace.
   */
  netnsId?: number;
  minMtu?: number;
  maxMtu?: number;
}

export interface VethLink extends LinkCommon {
  kind: 'veth';
  /** ifindex of the peer, in the namespace named by netnsId when that is set. */
  peerIndex?: number;
}

export interface BridgeLink extends LinkCommon {
  kind: 'bridge';
}

export interface VxlanLink extends LinkCommon {
  kind: 'vxlan';
  vni?: number;
  /** Local tunnel endpoint address (IPv4 or IPv6). */
  local?: string;
  /** UDP destination port. */
  port?: number;
  learning?: boolean;
  /** ARP/ND proxy from the FDB and neighbour table. */
  proxy?: boolean;
  /** ifindex of the underlay device (`dev` in iproute2). */
  underlayIndex?: number;
}

export const MACVLAN_MODES = ['private', 'vepa', 'bridge', 'passthru', 'source'] as const;
export type MacvlanMode = (typeof MACVLAN_MODES)[number];

export interface MacvlanLink extends LinkCommon {
  kind: 'macvlan';
  mode?: MacvlanMode;
  parentIndex?: number;
}

export interface OtherLink extends LinkCommon {
  kind: 'other';
  /** The kernel's kind string (IFLA_INFO_KIND), absent for devices such as lo. */
  type?: string;
}

export type Link = VethLink | BridgeLink | VxlanLink | MacvlanLink | OtherLink;
export type LinkKind = Link['kind'];
