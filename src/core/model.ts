// The objects as stored: networks, endpoints, sandboxes, and links between sandboxes. Every record carries a state so
// that the intent is on disk before the kernel changes: 'creating' and 'deleting' records found
// at start-up are operations a crash interrupted, which reconcile finishes or undoes.

export type ObjectState = 'creating' | 'ready' | 'deleting';

/** One subnet of a network, as IPAM handed it out. Addresses are CIDRs with the pool's prefix. */
export interface SubnetRecord {
  poolId: string;
  subnet: string;
  ipRange?: string;
  gateway?: string;
  auxAddresses?: Record<string, string>;
}

export interface NetworkRecord {
  id: string;
  name: string;
  driver: string;
  scope: 'local' | 'global';
  internal: boolean;
  enableIPv6: boolean;
  /** Raw user options (`-o key=value`), as given. */
  options: Record<string, string>;
  labels: Record<string, string>;
  /** The driver's parsed configuration (the output of its parse step), as JSON. */
  config: unknown;
  ipv4: SubnetRecord[];
  ipv6: SubnetRecord[];
  /** Set when the network was created by the Docker engine (its 64-hex id). */
  dockerId?: string;
  state: ObjectState;
  created: string;
}

export interface EndpointRecord {
  id: string;
  networkId: string;
  sandboxId?: string;
  name: string;
  /** Interface name inside the sandbox (e.g. eth0). */
  ifname?: string;
  macAddress?: string;
  /** CIDR, e.g. 172.18.0.2/16. */
  ipv4?: string;
  ipv6?: string;
  /** Published ports, in the parsed form of src/portmap. */
  ports: unknown[];
  /** What the driver needs to find its kernel objects again (host-side veth name, …). */
  driverData: unknown;
  dockerId?: string;
  state: ObjectState;
  created: string;
}

export type SandboxKind = 'named' | 'path' | 'host';

export interface SandboxRecord {
  id: string;
  name: string;
  kind: SandboxKind;
  /** /run/netns/NAME for named sandboxes, the given path for existing ones, '' for the host. */
  netnsPath: string;
  labels: Record<string, string>;
  state: ObjectState;
  created: string;
}

// Point-to-point links as stored: a veth pair whose two ends sit in two sandboxes of one daemon,
// with their names, addresses, MTU and shaping. The state says whether the kernel may hold a
// half-made pair ('creating', 'deleting'), which reconcile removes.

export interface LinkEndRecord {
  sandboxId: string;
  /** Interface name inside that sandbox. */
  ifname: string;
  /** CIDR. */
  address?: string;
  macAddress?: string;
}

/** Shaping of both ends' egress: tbf for rate alone, netem when delay, jitter or loss are asked. */
export interface LinkShaping {
  rate?: string;
  delay?: string;
  jitter?: string;
  loss?: string;
}

export interface LinkRecord {
  id: string;
  name: string;
  ends: [LinkEndRecord, LinkEndRecord];
  mtu?: number;
  shaping: LinkShaping;
  labels: Record<string, string>;
  state: ObjectState;
  created: string;
}
