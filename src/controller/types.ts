// The controller's dependencies and the shapes of its requests and results, apart from the
// Controller class so that its helper modules (endpoints, networks, sandboxes, reconcile) need
// not import it back.
import type { Logger } from 'pino';
import type { AnswerGate } from '../core/answers.js';
import type { Store } from '../store/index.js';
import type { Ipam } from '../ipam/index.js';
import type { DriverRegistry } from '../contract/driver.js';
import type { SubnetRecord } from '../core/model.js';
import type { SandboxKernel } from './sandbox-kernel.js';

export interface CreateNetworkRequest {
  name: string;
  driver?: string;
  subnet?: string;
  ipRange?: string;
  gateway?: string;
  auxAddresses?: Record<string, string>;
  subnetV6?: string;
  gatewayV6?: string;
  /** false: no IPv4 subnet, gateway or endpoint addresses (not for global networks). Default true. */
  enableIPv4?: boolean;
  enableIPv6?: boolean;
  internal?: boolean;
  options?: Record<string, string>;
  labels?: Record<string, string>;
  /** The id to use (Docker's NetworkID); a new one when absent. */
  id?: string;
  dockerId?: string;
  /**
   * Subnets assigned elsewhere (the Docker engine's IPAM): used as given, never allocated here;
   * reserved in IPAM for this network (released with it) unless they are the engine's own
   * cnmkit-ipam pools.
   */
  assigned?: { ipv4: SubnetRecord[]; ipv6: SubnetRecord[] };
}

export interface PruneResult {
  removed: string[];
  /** Unused networks prune leaves alone, and why (the Docker engine's). */
  skipped: { name: string; reason: string }[];
}

export interface CreateSandboxRequest {
  name?: string;
  /** An existing namespace: a path or a pid. */
  netns?: string;
  /** The host's own namespace. */
  host?: boolean;
  labels?: Record<string, string>;
}

export interface ConnectRequest {
  ip?: string;
  ipv6?: string;
  /** The interface's MAC address (unicast); default: the driver's choice (Docker's 02:42 + the IPv4 address). */
  mac?: string;
  /** The interface's name inside the sandbox; default: the driver's next free name (eth0, eth1, …). */
  ifname?: string;
  /** `-p` specs, [HOST_IP:][HOST_PORT[-END]:]PORT[-END][/PROTO]. */
  ports?: string[];
}

export interface ControllerDeps {
  store: Store;
  ipam: Ipam;
  drivers: DriverRegistry;
  kernel: SandboxKernel;
  logger: Logger;
  defaultDriver?: string;
  /** A sandbox's point-to-point links (src/links): removed before the sandbox goes. */
  links?: { deleteFor(sandboxId: string): Promise<void> };
  /** Networks that exist by default (none, host, bridge): never removed. */
  predefined?: Set<string>;
  /** Connects run through it: the background work it defers (a peer's publish) follows their answers. */
  answers?: AnswerGate;
}
