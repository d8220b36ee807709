// The firewall seam: what a backend (iptables, nftables, none) must do for bridge networks and
// published ports. Values here are already validated; the kernel is the truth, not this module.

/** pino-compatible logger: only the calls the firewall makes. */
export interface FirewallLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export type BackendName = 'iptables' | 'nftables' | 'none';

/** One bridge network as the firewall sees it. `id` is the owner tag of all its rules. */
export interface FirewallNetwork {
  id: string;
  bridge: string;
  subnets4: string[];
  subnets6: string[];
  /** Containers on the same bridge may talk to each other. */
  icc: boolean;
  /** Masquerade (or SNAT to hostIPv4) traffic leaving through anything but the bridge. */
  masquerade: boolean;
  /** No traffic leaves or enters the bridge; no NAT. */
  internal: boolean;
  /** SNAT source address used instead of MASQUERADE. */
  hostIPv4?: string;
}

export type PortProto = 'tcp' | 'udp' | 'sctp';

/**
 * One published port or port range. A range is one rule. The container range is either as long
 * as the host range (port N+i goes to container port C+i) or one port (every host port goes to it).
 */
export interface PortMapping {
  /** Owner tag, e.g. the endpoint id; several mappings may share it. */
  id: string;
  proto: PortProto;
  /** Host address the port is published on; absent (or 0.0.0.0 / ::) means every local address. */
  hostIP?: string;
  hostPort: number;
  hostPortEnd: number;
  containerIP: string;
  containerPort: number;
  containerPortEnd: number;
  bridge: string;
  /**
   * A userland proxy serves loopback and same-bridge clients: the DNAT rules skip them. When false,
   * loopback clients are DNATed too (route_localnet=1 on the bridge, loopback sources masqueraded)
   * and hairpin traffic from the bridge is DNATed.
   */
  userlandProxy: boolean;
}

export interface FirewallBackend {
  readonly name: BackendName;
  /** Creates the project's chains or table and the jumps into them. Idempotent. */
  init(): Promise<void>;
  /** Installs a network's rules, replacing any rules already tagged with its id. */
  addNetwork(net: FirewallNetwork): Promise<void>;
  /** Removes the rules of network `id`. Idempotent. */
  removeNetwork(id: string): Promise<void>;
  /**
   * Publishes ports. Additive per mapping: a mapping that is already present (same owner,
   * protocol, host address and host port range) is replaced, others stay.
   */
  addPorts(mappings: PortMapping[]): Promise<void>;
  /** Removes every published port owned by these ids. Idempotent. */
  removePorts(ids: string[]): Promise<void>;
  /**
   * For check: how many rules the network should have here (as rendered) and how many the kernel
   * has with its owner tag. Counts, not contents: a rule edited in place is not seen.
   */
  countNetworkRules(net: FirewallNetwork): Promise<{ expected: number; found: number }>;
  /** Owner tags of the rules present in the kernel. */
  listOwners(): Promise<Set<string>>;
  /** Removes every rule tagged with owner (network and port rules alike). Idempotent. */
  removeOwner(owner: string): Promise<void>;
  /** Removes the rules of every owner not in validOwners; returns the owners removed. */
  reconcile(validOwners: Set<string>): Promise<string[]>;
  /** Removes all the project's rules, chains and jumps, except the user chain and its rules. */
  flushAll(): Promise<void>;
}
