// The lab as cnmkit works with it once a file is read: one shape for cnmkit's own files and for
// containerlab's, every default filled in, every reference checked (see topology.ts, clab.ts).
import type { FieldPath } from './source.js';

export type NetworkDriver = 'bridge' | 'overlay' | 'macvlan' | 'null';
export type Firewall = 'auto' | 'iptables' | 'nftables' | 'none';

/** The name of the one host of a lab whose file has no `hosts`. */
export const IMPLICIT_HOST = 'local';
/** A link end named `host:IFACE` lands in the namespace `lab up` ran in. */
export const MACHINE = 'host';

export interface HostSpec {
  name: string;
  firewall: Firewall;
}

export interface NetworkSpec {
  name: string;
  driver: NetworkDriver;
  /** The host of a bridge, macvlan or null network; undefined for an overlay (it spans hosts). */
  host?: string;
  subnet?: string;
  gateway?: string;
  ipRange?: string;
  ipv6: boolean;
  subnetV6?: string;
  /**
   * false for a containerlab `kind: bridge` node: a layer-2 bridge whose ports get no address, as
   * in containerlab (the nodes' exec lines may set some); cnmkit's own networks give addresses.
   */
  ipv4?: false;
  internal: boolean;
  options: Record<string, string>;
}

export interface Attachment {
  network: string;
  ip?: string;
  ipv6?: string;
  /** Interface name inside the node (containerlab's bridge links name it); default: the next ethN. */
  ifname?: string;
}

export interface RouteSpec {
  dst: string;
  via?: string;
  dev?: string;
}

export interface NodeSpec {
  name: string;
  host: string;
  kind: 'host' | 'router';
  networks: Attachment[];
  sysctls: Record<string, string>;
  routes: RouteSpec[];
  exec: string[];
  env: Record<string, string>;
}

export interface LinkEnd {
  /** A node, or MACHINE for the namespace `lab up` ran in. */
  node: string;
  ifname: string;
  /** CIDR. */
  address?: string;
}

export interface LinkSpec {
  /** `a:eth1--b:eth1`, unique in a lab. */
  name: string;
  ends: [LinkEnd, LinkEnd];
  mtu?: number;
  rate?: string;
  delay?: string;
  jitter?: string;
  loss?: string;
}

export interface ExpectSpec {
  from: string;
  /** A node or an address. */
  to: string;
  reach: boolean;
  port?: number;
}

export interface LabTopology {
  name: string;
  format: 'cnmkit' | 'containerlab';
  underlay?: string;
  clusterStore?: string;
  /** The hosts, never empty: a file without `hosts` has the one host IMPLICIT_HOST. */
  hosts: HostSpec[];
  networks: NetworkSpec[];
  nodes: NodeSpec[];
  links: LinkSpec[];
  expect: ExpectSpec[];
  /** Things read but not acted on (containerlab's images, binds, …), for one warning. */
  warnings: string[];
}

/** Where each object came from in the file, for errors found after reading it. */
export type Origins = Map<string, FieldPath>;

export function linkName(a: LinkEnd, b: LinkEnd): string {
  return `${a.node}:${a.ifname}--${b.node}:${b.ifname}`;
}
